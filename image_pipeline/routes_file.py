"""Read a routes file (TOML) into a validated RouteTable; errors name the route and the key. Standard library only.

A `[[route]]` table is one of our routes, or, with an `extension` key, an extension route (extension/route.py).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from image_pipeline.errors import RouteError
from image_pipeline.extension.route import (
    EXTENSION_KEY,
    ExtensionRoute,
    check_outputs_reach_no_route,
    parse_extension_route,
)
from image_pipeline.model_files import model_location
from image_pipeline.options import CutoutFamily, CutoutSpec, Encoding, Fit, ImagingOptions, OutputFormat, Variant
from image_pipeline.output_names import DEFAULT_NAMES, Names
from image_pipeline.routes import (
    DeleteOriginal,
    Mirror,
    MissingDocument,
    Pattern,
    Route,
    Template,
    check_table,
    default_cache_control,
)

ROUTE_NAME = re.compile(r"[a-z0-9-]{1,32}")
VARIANT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_BOX = re.compile(r"([1-9][0-9]{0,4})x([1-9][0-9]{0,4})")
_COLOUR = re.compile(r"#([0-9a-fA-F]{6})")
SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_EDGE = 16384
_KEYS = frozenset(
    {"name", "match", "document", "field", "require", "missing", "owner", "output", "formats", "quality", "mirror",
     "names", "cache_control", "delete_original", "keep_animation", "background", "variants", "cutout"}
)  # fmt: skip
_REQUIRED = ("name", "match", "document", "field", "output", "variants")
# The formats a [[route]] may name (docs/routes.md). The core also writes GIF and TIFF: extension routes reproduce
# the Resize Images extension's outputs in them.
ROUTE_FORMATS = tuple(
    member.value for member in (OutputFormat.WEBP, OutputFormat.AVIF, OutputFormat.JPEG, OutputFormat.PNG)
)
_CUTOUT_KEYS = ("family", "uri", "sha256", "trim")


@dataclass(frozen=True)
class RouteTable:
    """A validated routes file: our routes in the order they are tried, and the extension routes (each takes every
    upload its filters pass, as separate extension instances did)."""

    routes: tuple[Route, ...] = ()
    extensions: tuple[ExtensionRoute, ...] = ()


def load_routes(path: Path, limits: ImagingOptions, project: str | None = None) -> RouteTable:
    """Read and validate the routes file at `path`; `limits` gives the size limits every route shares.

    `project` is the Google Cloud project, for an extension route's channel or event source that names none.
    """
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise RouteError(f"ROUTES_FILE {str(path)!r}: cannot read it: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:  # TOML is UTF-8; tomllib decodes before parsing
        raise RouteError(f"ROUTES_FILE {str(path)!r}: not valid TOML: {error}") from None
    return parse_routes(document, limits, source=str(path), project=project)


def parse_routes(
    document: Mapping[str, Any], limits: ImagingOptions, source: str = "routes", project: str | None = None
) -> RouteTable:
    """Validate a parsed routes document; the table as a whole is checked for repeated names and loops."""
    unknown = sorted(set(document) - {"route"})
    if unknown:
        raise RouteError(f"{source}: unknown top-level key {unknown[0]!r} (only [[route]] tables are allowed)")
    tables = document.get("route", [])
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise RouteError(f"{source}: 'route' must be an array of tables: [[route]]")
    parsed = [_parse_table(table, index, limits, source, project) for index, table in enumerate(tables)]
    table = RouteTable(
        tuple(route for route in parsed if isinstance(route, Route)),
        tuple(route for route in parsed if isinstance(route, ExtensionRoute)),
    )
    try:
        check_table(table.routes, names=[route.name for route in parsed])
        for extension in table.extensions:
            check_outputs_reach_no_route(extension, table.routes)
    except RouteError as error:
        raise error.within(source) from None
    return table


def _parse_table(
    table: Mapping[str, Any], index: int, limits: ImagingOptions, source: str, project: str | None
) -> Route | ExtensionRoute:
    if EXTENSION_KEY not in table:
        return _parse_route(table, index, limits, source)
    label = f"{source}: route {table.get('name', f'#{index + 1}')!r}"
    name = _Reader(table, label).text("name", ROUTE_NAME, "1-32 of a-z 0-9 - (the extension's instance id)")
    return parse_extension_route(table, name, limits, label, project)


def _parse_route(table: Mapping[str, Any], index: int, limits: ImagingOptions, source: str) -> Route:
    label = f"{source}: route {table.get('name', f'#{index + 1}')!r}"
    reader = _Reader(table, label)
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise RouteError(f"{label}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})", unknown[0])
    for key in _REQUIRED:
        if key not in table:
            raise RouteError(f"{label}: missing key {key!r}", key)
    encodings = reader.encodings()
    names = reader.parsed("names", Names.parse) if "names" in table else DEFAULT_NAMES
    imaging = replace(
        limits,
        variants=reader.variants(),
        encodings=encodings,
        background=reader.colour("background", limits.background),
        keep_animation=reader.boolean("keep_animation", limits.keep_animation),
    )
    try:
        return Route(
            name=reader.text("name", ROUTE_NAME, "1-32 of a-z 0-9 -"),
            match=reader.parsed("match", Pattern.parse),
            document=Template(reader.text("document")),
            field=reader.field_path("field"),
            output=Template(reader.text("output")),
            imaging=imaging,
            require=reader.require(),
            missing=reader.choice("missing", MissingDocument, MissingDocument.WAIT),
            owner=reader.owner(),
            mirror=reader.mirror(),
            names=names,
            cache_control=reader.optional_text("cache_control") or default_cache_control(names),
            delete_original=reader.choice("delete_original", DeleteOriginal, DeleteOriginal.NEVER),
            cutout=reader.cutout(),
        )
    except ValueError as error:
        # Route's own checks say "key: problem".
        key, _, problem = str(error).partition(": ")
        raise RouteError(f"{label}: {error}", key, problem) from None


class _Reader:
    """Typed reads of one route table; each error names the route and the key."""

    def __init__(self, table: Mapping[str, Any], label: str) -> None:
        self._table = table
        self._label = label

    def fail(self, key: str, problem: str) -> RouteError:
        return RouteError(f"{self._label}: {key}: {problem}", key, problem)

    def text(self, key: str, shape: re.Pattern[str] | None = None, described: str = "") -> str:
        value = self._table.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"must be a non-empty string, got {value!r}")
        if shape is not None and not shape.fullmatch(value):
            raise self.fail(key, f"must be {described}, got {value!r}")
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if key in self._table else None

    def parsed(self, key: str, parse: Callable[[str], Any]) -> Any:
        try:
            return parse(self.text(key))
        except ValueError as error:
            raise self.fail(key, str(error)) from None

    def field_path(self, key: str, value: Any = None) -> str:
        value = self._table.get(key) if value is None else value
        if not isinstance(value, str) or not FIELD_PATH.fullmatch(value):
            raise self.fail(key, f"must be a dotted field path like 'visuals.showcase', got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        return value

    def choice(self, key: str, kind: Any, default: Any) -> Any:
        value = self._table.get(key, default.value)
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(f'"{member.value}"' for member in kind)
            raise self.fail(key, f"must be one of {allowed}, got {value!r}") from None

    def colour(self, key: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
        value = self._table.get(key)
        if value is None:
            return default
        found = _COLOUR.fullmatch(value) if isinstance(value, str) else None
        if not found:
            raise self.fail(key, f'must be a colour like "#ffffff", got {value!r}')
        digits = found.group(1)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)

    def owner(self) -> str | None:
        value = self.optional_text("owner")
        if value is None:
            return None
        if not (value.startswith("{") and value.endswith("}")):
            raise self.fail("owner", f'must name one capture like "{{uid}}", got {value!r}')
        return value[1:-1]

    def require(self) -> Mapping[str, Template]:
        value = self._table.get("require", {})
        if not isinstance(value, dict):
            raise self.fail("require", f'must be a table like {{ "meta.userId" = "{{uid}}" }}, got {value!r}')
        required = {}
        for path, template in value.items():
            self.field_path(f"require.{path}", path)
            if not isinstance(template, str) or not template:
                raise self.fail(f"require.{path}", f"must be a non-empty string, got {template!r}")
            required[path] = Template(template)
        return MappingProxyType(required)

    def mirror(self) -> Mirror:
        value = self._table.get("mirror", {})
        if not isinstance(value, dict):
            raise self.fail("mirror", f"must be a table with status, url and/or ready, got {value!r}")
        unknown = sorted(set(value) - {"status", "url", "ready"})
        if unknown:
            raise self.fail(f"mirror.{unknown[0]}", "unknown key (known: ready, status, url)")
        return Mirror(**{key: self.field_path(f"mirror.{key}", path) for key, path in value.items()})

    def cutout(self) -> CutoutSpec | None:
        value = self._table.get("cutout")
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail("cutout", f"must be a table: [route.cutout] with family, uri and sha256, got {value!r}")
        unknown = sorted(set(value) - set(_CUTOUT_KEYS))
        if unknown:
            raise self.fail(f"cutout.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_CUTOUT_KEYS))})")
        for key in _CUTOUT_KEYS[:3]:
            if key not in value:
                raise self.fail(f"cutout.{key}", "missing (family, uri and sha256 are all required)")
        uri = value["uri"]
        if not isinstance(uri, str) or not uri:
            raise self.fail("cutout.uri", f"must be a non-empty string, got {uri!r}")
        try:
            model_location(uri)
        except ValueError as error:
            raise self.fail("cutout.uri", str(error)) from None
        family = value["family"]
        if family not in {member.value for member in CutoutFamily}:
            allowed = ", ".join(f'"{member.value}"' for member in CutoutFamily)
            raise self.fail("cutout.family", f"must be one of {allowed}, got {family!r}")
        sha256 = value["sha256"]
        if not isinstance(sha256, str) or not SHA256.fullmatch(sha256.lower()):
            raise self.fail("cutout.sha256", f"must be the model file's SHA-256: 64 hex digits, got {sha256!r}")
        trim = value.get("trim", False)
        if not isinstance(trim, bool):
            raise self.fail("cutout.trim", f"must be true or false, got {trim!r}")
        return CutoutSpec(CutoutFamily(family), uri, sha256.lower(), trim)

    def encodings(self) -> tuple[Encoding, ...]:
        names = self._table.get("formats", ["webp"])
        if not isinstance(names, list) or not names:
            raise self.fail("formats", f'must be a non-empty list like ["webp"], got {names!r}')
        formats = []
        for name in names:
            if name not in ROUTE_FORMATS:
                raise self.fail("formats", f"{name!r} is not one of {', '.join(ROUTE_FORMATS)}")
            formats.append(OutputFormat(name))
        if len(set(formats)) != len(formats):
            raise self.fail("formats", "names each format once")
        qualities = self._qualities(formats)
        return tuple(Encoding(output_format, qualities[output_format]) for output_format in formats)

    def _qualities(self, formats: list[OutputFormat]) -> dict[OutputFormat, int]:
        value = self._table.get("quality")
        qualities = {output_format: output_format.default_quality for output_format in formats}
        if value is None:
            return qualities
        if isinstance(value, int) and not isinstance(value, bool):
            return {output_format: self._quality("quality", value) for output_format in formats}
        if not isinstance(value, dict):
            raise self.fail("quality", f"must be 1-100 or a table like {{ avif = 50, webp = 80 }}, got {value!r}")
        for name, number in value.items():
            key = f"quality.{name}"
            if name not in {output_format.value for output_format in formats}:
                raise self.fail(key, "names a format that is not in formats")
            if name == OutputFormat.PNG.value:
                raise self.fail(key, "png is lossless and takes no quality")
            qualities[OutputFormat(name)] = self._quality(key, number)
        return qualities

    def _quality(self, key: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
            raise self.fail(key, f"must be a whole number from 1 to 100, got {value!r}")
        return value

    def variants(self) -> tuple[Variant, ...]:
        table = self._table.get("variants")
        if not isinstance(table, dict) or not table:
            raise self.fail("variants", 'must be a table of name = pixels or name = { box = "WxH", fit = ... }')
        return tuple(self._variant(name, spec) for name, spec in table.items())

    def _variant(self, name: str, spec: Any) -> Variant:
        key = f"variants.{name}"
        if not VARIANT_NAME.fullmatch(name):
            raise self.fail(key, "a variant name is 1-32 of a-z 0-9 _ -, starting with a letter")
        if isinstance(spec, int) and not isinstance(spec, bool):
            if not 1 <= spec <= _MAX_EDGE:
                raise self.fail(key, f"the longest edge must be 1 to {_MAX_EDGE} pixels, got {spec}")
            return Variant(name, spec)
        if not isinstance(spec, dict) or set(spec) - {"box", "fit"} or "box" not in spec:
            raise self.fail(key, f'must be pixels or {{ box = "256x256", fit = "cover" }}, got {spec!r}')
        box = _BOX.fullmatch(spec["box"]) if isinstance(spec["box"], str) else None
        if not box or max(int(box.group(1)), int(box.group(2))) > _MAX_EDGE:
            raise self.fail(f"{key}.box", f'must be "WIDTHxHEIGHT" of 1 to {_MAX_EDGE} pixels, got {spec["box"]!r}')
        try:
            fit = Fit(spec.get("fit", Fit.INSIDE.value))
        except ValueError:
            raise self.fail(f"{key}.fit", f'must be "inside" or "cover", got {spec.get("fit")!r}') from None
        return Variant(name, int(box.group(1)), int(box.group(2)), fit)

"""The built-in route: CharaForge's layout, spelled from environment variables as the `[[route]]` table a routes file
would hold, and validated by the routes file's own parser. Standard library only.

The variables only fill in keys; every rule about routes is the parser's. Its errors name the key at fault, which
is turned back into the variable that spelled it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from image_pipeline.errors import ConfigurationError, RouteError
from image_pipeline.options import ImagingOptions
from image_pipeline.routes import Route
from image_pipeline.routes_file import parse_routes

NAME = "showcase"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
BOOLEAN_ACCEPTS = "`true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off`)"
_CUTOUT_KEYS = {"CUTOUT_FAMILY": "family", "CUTOUT_MODEL_URI": "uri", "CUTOUT_MODEL_SHA256": "sha256"}


@dataclass(frozen=True)
class RouteVariable:
    """One environment variable that spells a key of the built-in route."""

    name: str
    key: str  # the route key it fills in ("cutout.uri" for a key of [route.cutout])
    default: str  # as it would be written in the environment; "" when unset by default
    accepts: str  # the values it takes (Markdown)
    help: str  # what it does, in one line (Markdown)
    cloud: bool = False  # where sources, outputs or documents are, or what happens to them: no local run uses it


ROUTE_VARIABLES = (
    RouteVariable("SOURCE_PREFIX", "match", "raw-uploads/", "a folder path ending in `/`, like `a/b/`",
                  "where uploads are watched: `{SOURCE_PREFIX}{uid}/{characterId}/{file}`", cloud=True),
    RouteVariable("OUTPUT_PREFIX", "output", "showcase-images/", "a folder path ending in `/`, like `a/b/`",
                  "where variants go: `{OUTPUT_PREFIX}{uid}/{characterId}/`; outputs must not fit the source pattern",
                  cloud=True),
    RouteVariable("FIRESTORE_COLLECTION", "document", "characters", "a collection name of `A-Z a-z 0-9 _ . -`",
                  "the documents' collection: `{FIRESTORE_COLLECTION}/{characterId}`", cloud=True),
    RouteVariable("VARIANTS", "variants", "thumb:256,medium:1024,large:2048",
                  "comma-separated `name:longest-edge` pairs", "the sizes made; the largest is `showcaseImageUrl`"),
    RouteVariable("OUTPUT_FORMAT", "formats", "webp", "`webp`, `avif`, `jpeg` or `png`", "the variants' format"),
    RouteVariable("QUALITY", "quality", "80", "whole number 1-100", "the encoder's quality"),
    RouteVariable("KEEP_ANIMATION", "keep_animation", "false", BOOLEAN_ACCEPTS,
                  "keep animations (GIF/WebP/APNG in; WebP/AVIF/PNG out)"),
    RouteVariable("DELETE_ORIGINAL", "delete_original", "never", "`never` or `on_success`",
                  "whether the upload is deleted once its variants are recorded", cloud=True),
    RouteVariable("CUTOUT_FAMILY", "cutout.family", "", "`isnet` or `u2net`",
                  "background removal before the variants are made (docs/cutout.md); unset: off"),
    RouteVariable("CUTOUT_MODEL_URI", "cutout.uri", "",
                  "`gs://{bucket}/models/NAME.onnx` (`{bucket}`: the event's) or a file path (relative: source root)",
                  "the model file; never downloaded from elsewhere"),
    RouteVariable("CUTOUT_MODEL_SHA256", "cutout.sha256", "", "64 hex digits",
                  "the model file's SHA-256, checked before its use"),
)  # fmt: skip


def builtin_routes(environ: Mapping[str, str], limits: ImagingOptions) -> tuple[Route, ...]:
    """The built-in route from the variables set in `environ` (the rest at their defaults), validated as a file's."""
    spelled = {variable.name: variable.default for variable in ROUTE_VARIABLES} | {
        variable.name: environ[variable.name] for variable in ROUTE_VARIABLES if variable.name in environ
    }
    try:
        return parse_routes({"route": [builtin_table(spelled)]}, limits, source="the built-in route").routes
    except RouteError as error:
        raise ConfigurationError(_named(error, spelled)) from None


def builtin_table(spelled: Mapping[str, str]) -> dict[str, object]:
    """The `[[route]]` table the variables spell; a value whose spelling is wrong is refused naming its variable."""
    source, output, collection = spelled["SOURCE_PREFIX"], spelled["OUTPUT_PREFIX"], spelled["FIRESTORE_COLLECTION"]
    for name, folder in (("SOURCE_PREFIX", source), ("OUTPUT_PREFIX", output)):
        if not folder.endswith("/") or folder.startswith("/"):
            raise ConfigurationError(f"{name} must look like 'folder/' or 'a/b/' (ending in '/'), got {folder!r}")
    table: dict[str, object] = {
        "name": NAME,
        "match": f"{source}{{uid}}/{{characterId}}/{{file}}",
        "document": f"{collection}/{{characterId}}",
        "field": "visuals.showcase",
        "require": {"meta.userId": "{uid}"},
        "missing": "wait",
        "owner": "{uid}",
        "output": f"{output}{{uid}}/{{characterId}}/",
        "formats": [spelled["OUTPUT_FORMAT"].lower()],
        "quality": _whole_number("QUALITY", spelled["QUALITY"]),
        "variants": _variants(spelled["VARIANTS"]),
        "keep_animation": _boolean("KEEP_ANIMATION", spelled["KEEP_ANIMATION"]),
        "delete_original": spelled["DELETE_ORIGINAL"].lower(),
        "mirror": {
            "status": "visuals.showcaseProcessingStatus",
            "url": "visuals.showcaseImageUrl",
            "ready": "visuals.isShowcaseProcessed",
        },
    }
    cutout = _cutout(spelled)
    if cutout:
        table["cutout"] = cutout
    return table


def _named(error: RouteError, spelled: Mapping[str, str]) -> str:
    """The parser's complaint about a key, told as a complaint about the variable that spelled it."""
    variable = _spelling(error.key)
    if variable is None:
        return f"the built-in route: {error.problem}"
    message = f"{variable.name} {spelled[variable.name]!r}: {error.problem}"
    other = _spelling(error.other_key)
    if other is not None:
        message += f" ({other.name} is {spelled[other.name]!r})"
    return message


def _spelling(key: str | None) -> RouteVariable | None:
    """The variable that spells a route key (or the table the key is in), None for a key no variable spells."""
    if key is None:
        return None
    return next((variable for variable in ROUTE_VARIABLES if variable.key in (key, key.split(".")[0])), None)


def _whole_number(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None


def _boolean(name: str, raw: str) -> bool:
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise ConfigurationError(f"{name} must be one of true/false/1/0/yes/no/on/off, got {raw!r}")


def _variants(raw: str) -> dict[str, int]:
    """`thumb:256,large:2048` as the table `{thumb = 256, large = 2048}`; the parser checks names and sizes."""
    variants: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        name, _, edge = item.partition(":")
        if not name or not edge.isdigit():
            raise ConfigurationError(
                f"VARIANTS must be a comma-separated list of name:pixels (e.g. thumb:256,large:2048); {item!r} is not"
            )
        if name in variants:
            raise ConfigurationError(f"VARIANTS names each variant once; {name!r} is repeated")
        variants[name] = int(edge)
    return variants


def _cutout(spelled: Mapping[str, str]) -> dict[str, str]:
    """`[route.cutout]` from the three CUTOUT_ variables: all three set, or none (no cutout)."""
    given = {name: spelled[name] for name in _CUTOUT_KEYS if spelled[name]}
    if given and len(given) < len(_CUTOUT_KEYS):
        missing = [name for name in _CUTOUT_KEYS if name not in given]
        raise ConfigurationError(
            f"{', '.join(given)} set without {' and '.join(missing)}: background removal needs all three "
            f"({', '.join(_CUTOUT_KEYS)}) or none"
        )
    # Choices are case-insensitive in the environment, as every other variable's.
    return {_CUTOUT_KEYS[name]: value.lower() if name == "CUTOUT_FAMILY" else value for name, value in given.items()}


def refuse_beside_routes_file(environ: Mapping[str, str]) -> None:
    """A routes file says what these variables said: refuse every one that is set, naming them all."""
    present = [variable.name for variable in ROUTE_VARIABLES if variable.name in environ]
    if present:
        unset = ", ".join(present)
        raise ConfigurationError(f"ROUTES_FILE is set: the routes file says what these said; unset {unset}")

"""An extension route: one Resize Images instance's parameters, and what it makes of an upload. Standard library only.

In a routes file it is a `[[route]]` table with `extension = "storage-resize-images"`, its `name` the instance id
and every other key an extension parameter spelled as the instance's `.env` spells it (docs/routes.md). Unlike a
`[[route]]` of our own it records no manifest: its outputs are named, marked and published as the extension's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from image_pipeline.errors import ConfigurationError, RouteError
from image_pipeline.extension import filters, naming
from image_pipeline.extension.events import Publishing
from image_pipeline.extension.params import (
    EXTENSION,
    DeleteOriginalFile,
    ExtensionParams,
    ImageType,
    ParamError,
    Size,
)
from image_pipeline.options import Encoding, ImagingOptions, OutputFormat, Variant
from image_pipeline.results import EncodedImage, ProcessedImage, RenderedVariant
from image_pipeline.routes import CAPTURE_VALUE, Pattern, Route

EXTENSION_KEY = "extension"
# The format an upload of each supported type is read as; "keep the original type" writes it back in that format.
# HEIC and HEIF, which the extension skips, come back as JPEG: browsers cannot show HEIC and nothing here encodes it.
SOURCE_FORMATS: Mapping[str, OutputFormat] = {
    "image/jpeg": OutputFormat.JPEG,
    "image/jpg": OutputFormat.JPEG,
    "image/png": OutputFormat.PNG,
    "image/webp": OutputFormat.WEBP,
    "image/gif": OutputFormat.GIF,
    "image/tiff": OutputFormat.TIFF,
    "image/avif": OutputFormat.AVIF,
    "image/heic": OutputFormat.JPEG,
    "image/heif": OutputFormat.JPEG,
}
REENCODED_TYPES = frozenset({"image/heic", "image/heif"})
CONVERTED_FORMATS: Mapping[ImageType, OutputFormat] = {
    ImageType.JPEG: OutputFormat.JPEG,
    ImageType.JPG: OutputFormat.JPEG,
    ImageType.WEBP: OutputFormat.WEBP,
    ImageType.PNG: OutputFormat.PNG,
    ImageType.TIFF: OutputFormat.TIFF,
    ImageType.TIF: OutputFormat.TIFF,
    ImageType.GIF: OutputFormat.GIF,
    ImageType.AVIF: OutputFormat.AVIF,
}
# The OUTPUT_OPTIONS keys whose quality applies to a format (the legacy spelling too).
_QUALITY_KEYS: Mapping[OutputFormat, tuple[ImageType, ...]] = {
    OutputFormat.JPEG: (ImageType.JPEG, ImageType.JPG),
    OutputFormat.TIFF: (ImageType.TIFF, ImageType.TIF),
    OutputFormat.WEBP: (ImageType.WEBP,),
    OutputFormat.AVIF: (ImageType.AVIF,),
}
# The extension keeps an animation only in GIF and WebP outputs; the others get the first frame.
ANIMATED_FORMATS = frozenset({OutputFormat.GIF, OutputFormat.WEBP})
# sharp flattens transparency onto black when it writes a format without alpha; the outputs look the same here.
SHARP_BACKGROUND = (0, 0, 0)


@dataclass(frozen=True)
class PlannedOutput:
    """One output of one upload: the IMG_SIZES and IMAGE_TYPE entries it is made for, its object and its format."""

    size: Size
    image_type: ImageType
    path: str
    format: OutputFormat
    content_type: str

    def made(self, processed: ProcessedImage) -> tuple[RenderedVariant, EncodedImage]:
        """This output among what the core made of the plan's options: its variant and its encoding."""
        variant = next(variant for variant in processed.variants if variant.name == self.size.text)
        return variant, next(encoded for encoded in variant.encodings if encoded.format == self.format.value)


@dataclass(frozen=True)
class ResizePlan:
    """Every output of an upload, in the extension's order (formats outer, sizes inner), and the core's options."""

    outputs: tuple[PlannedOutput, ...]
    imaging: ImagingOptions

    @property
    def objects(self) -> tuple[PlannedOutput, ...]:
        """The outputs to write: one per object (`false,jpeg` on a `.jpeg` upload names one object twice)."""
        return tuple({output.path: output for output in reversed(self.outputs)}.values())[::-1]


@dataclass(frozen=True)
class ExtensionRoute:
    """One Resize Images instance: its id, its parameters, the limits every route shares and where events go."""

    name: str
    params: ExtensionParams
    limits: ImagingOptions
    publishing: Publishing | None = None  # None: no EVENTARC_CHANNEL, nothing is published

    def skip_reason(self, resource: Mapping[str, object]) -> str | None:
        """None when the instance takes this object (a finalize event's data), else why not (the extension's words)."""
        return filters.skip_reason(resource, self.params.include_paths or None, self.params.exclude_paths or None)

    def plan(self, object_name: str, content_type: str) -> ResizePlan:
        """What is made of an upload with this name and Content-Type (one the filters took)."""
        outputs = tuple(
            self._planned(object_name, content_type, image_type, size)
            for image_type in self.params.image_types
            for size in self.params.sizes
        )
        formats = tuple(dict.fromkeys(output.format for output in outputs))
        imaging = replace(
            self.limits,
            variants=tuple(
                Variant(size.text, size.width, size.height, self.params.fit, self.params.position)
                for size in self.params.sizes
            ),
            encodings=tuple(
                Encoding(output_format, self.quality(output_format), still=output_format not in ANIMATED_FORMATS)
                for output_format in formats
            ),
            background=SHARP_BACKGROUND,
            keep_animation=self.params.animated,
            placeholder=False,  # nothing records one: its outputs are the whole result
        )
        return ResizePlan(outputs, imaging)

    @property
    def listing_prefixes(self) -> tuple[str, ...]:
        """Where its uploads can be (a backfill lists there): INCLUDE_PATH_LIST's literal folders, else everywhere."""
        return tuple(filters.literal_folders(entry) for entry in self.params.include_paths or ("",))

    def failed_copy_path(self, object_name: str) -> str | None:
        """Where a failed upload is copied (FAILED_IMAGES_PATH), None for nowhere."""
        return naming.failed_copy_path(object_name, self.params.failed_images_path)

    def _planned(self, object_name: str, content_type: str, image_type: ImageType, size: Size) -> PlannedOutput:
        path = naming.output_path(object_name, size.text, image_type.value, self.params.resized_images_path)
        if image_type is ImageType.ORIGINAL:
            output_format = SOURCE_FORMATS[content_type]
            # The original's Content-Type is copied, as the extension does, unless the format changes (HEIC).
            output_type = output_format.content_type if content_type in REENCODED_TYPES else content_type
        else:
            output_format = CONVERTED_FORMATS[image_type]
            output_type = naming.output_content_type(content_type, image_type.value) or output_format.content_type
        return PlannedOutput(size, image_type, path, output_format, output_type)

    def quality(self, output_format: OutputFormat) -> int:
        """OUTPUT_OPTIONS' quality for the format (applied to every output in it), else sharp's default."""
        for key in _QUALITY_KEYS.get(output_format, ()):
            if key in self.params.qualities:
                return self.params.qualities[key]
        return output_format.default_quality


def parse_extension_route(
    table: Mapping[str, Any], name: str, limits: ImagingOptions, label: str, project: str | None
) -> ExtensionRoute:
    """An extension route from its routes-file table (its name already checked); errors name the route and key."""
    if table[EXTENSION_KEY] != EXTENSION:
        problem = f'must be "{EXTENSION}" (the only extension this function replaces), got {table[EXTENSION_KEY]!r}'
        raise RouteError(f"{label}: {EXTENSION_KEY}: {problem}", EXTENSION_KEY, problem)
    values = {key: value for key, value in table.items() if key not in ("name", EXTENSION_KEY)}
    try:
        params = ExtensionParams.from_mapping(values)
        publishing = _publishing(params, name, project)
    except ParamError as error:
        raise RouteError(f"{label}: {error}", error.param, str(error)) from None
    return ExtensionRoute(name, params, limits, publishing)


def _publishing(params: ExtensionParams, instance_id: str, project: str | None) -> Publishing | None:
    """Where the instance's events go, resolved as firebase-admin resolves them; None without a channel."""
    events = params.events
    if not events.channel:
        return None
    try:
        return Publishing.resolve(events.channel, events.types, events.source, instance_id, project)
    except ConfigurationError as error:
        raise ParamError("EVENTARC_CHANNEL", str(error)) from None


def check_outputs_reach_no_route(extension: ExtensionRoute, routes: tuple[Route, ...]) -> None:
    """Refuse an instance whose outputs or failed copies could fit a `[[route]]`'s match (a loop).

    Extension routes need no such check among themselves: every output carries the `resizedImage` mark, which their
    filters skip. A `[[route]]` reads no marks, so its match must not reach those folders.
    """
    folders = {"RESIZED_IMAGES_PATH": extension.params.resized_images_path}
    if extension.params.failed_images_path:
        folders["FAILED_IMAGES_PATH"] = extension.params.failed_images_path
    for key, folder in folders.items():
        for route in routes:
            if _folder_reaches(folder, extension.params.include_paths, route.match):
                where = f"{folder!r} under the upload's folder" if folder else "beside the upload"
                problem = (
                    f"{key} puts objects {where}, where route {route.name!r}'s match {route.match.text!r} could take "
                    "them: they would trigger the function again"
                )
                raise RouteError(f"route {extension.name!r}: {problem}", key, problem, other_key="match")


def _folder_reaches(relative: str, include_paths: tuple[str, ...], pattern: Pattern) -> bool:
    """Whether `{an accepted upload's folder}/{relative}/{file}` could fit `pattern` (when unsure: yes)."""
    ups, tail = _relative_parts(relative)
    folders = list(zip(pattern.segments[:-1], pattern.captures[:-1], strict=True))
    if len(tail) > len(folders):
        return False
    lead = folders[: len(folders) - len(tail)]
    if not all(_segment_fits(part, *folder) for part, folder in zip(tail, folders[len(lead) :], strict=True)):
        return False
    # Climbing out of the upload's folder (`..`) can land anywhere above it: assume it reaches.
    return ups > 0 or not include_paths or any(_entry_fits(entry, lead) for entry in include_paths)


def _relative_parts(relative: str) -> tuple[int, list[str]]:
    """A relative folder as (how many `..` lead it, the folders after them), as output names are formed from it:
    joined under the upload's folder (so a leading `/` is relative), normalised, then `\\` made `/`."""
    parts = [part for part in naming.normalise(relative.lstrip("/")).replace("\\", "/").split("/") if part]
    ups = next((index for index, part in enumerate(parts) if part != ".."), len(parts))
    return ups, parts[ups:]


def _segment_fits(part: str, literal: str, capture: str | None) -> bool:
    return CAPTURE_VALUE.fullmatch(part) is not None if capture is not None else part == literal


def _entry_fits(entry: str, lead: list[tuple[str, str | None]]) -> bool:
    """Whether a folder fitting `lead` could lie inside the INCLUDE_PATH_LIST `entry` (a `*` spans folders: yes)."""
    if "*" in entry:
        return True
    parts = [part for part in entry.strip().split("/") if part]
    return len(parts) <= len(lead) and all(
        _segment_fits(part, *folder) for part, folder in zip(parts, lead, strict=False)
    )


_DELETES = {
    DeleteOriginalFile.NEVER: "kept",
    DeleteOriginalFile.ALWAYS: "deleted once its outcome is final, whatever it is",
    DeleteOriginalFile.ON_SUCCESS: "deleted once every output is written",
}


def describe(route: ExtensionRoute) -> list[str]:
    """Every setting of an extension route as it is understood, as `key  value` lines (`routes check`)."""
    params = route.params
    names = (
        f"{{folder}}/{params.resized_images_path + '/' if params.resized_images_path else ''}{{name}}_{{WxH}}.{{ext}}"
    )
    qualities = ", ".join(f"{fmt.value} {route.quality(fmt)}" for fmt in _QUALITY_KEYS)
    events = "none (no EVENTARC_CHANNEL)"
    if route.publishing is not None:
        types = "every type" if route.publishing.allowed is None else ", ".join(sorted(route.publishing.allowed))
        events = f"{route.publishing.channel} ({types}; source {route.publishing.source})"
    lines = [
        ("extension", f"{EXTENSION}: takes every upload its filters pass (other extension routes too)"),
        ("include", ", ".join(params.include_paths) or "(every folder)"),
        ("exclude", ", ".join(params.exclude_paths) or "(none)"),
        ("sizes", ", ".join(size.text for size in params.sizes)),
        (
            "types",
            ", ".join("the original's" if kind is ImageType.ORIGINAL else kind.value for kind in params.image_types),
        ),
        ("names", names),
        ("fit", f"{params.fit.value}, position {params.position.value}, never enlarged"),
        ("animation", "kept in GIF and WebP outputs" if params.animated else "first frame only"),
        ("quality", qualities),
        ("cache_control", params.cache_control or "(the upload's)"),
        ("tokens", "a new one per output" if params.regenerate_token else "the upload's, copied"),
        ("public", "yes" if params.make_public else "no"),
        ("failed copies", f"{{folder}}/{params.failed_images_path}/{{file}}" if params.failed_images_path else "none"),
        ("original", _DELETES[params.delete_original]),
        ("events", events),
    ]
    return [f"route {route.name!r}"] + [f"  {key:<16}{value}" for key, value in lines]


def explain(route: ExtensionRoute, resource: Mapping[str, object]) -> list[str]:
    """What the route does with an upload (`routes explain`): why it skips it, or the objects it writes."""
    reason = route.skip_reason(resource)
    if reason is not None:
        return [f"  extension route {route.name!r}: skips it: {reason}"]
    name = str(resource["name"])
    if _looks_like_an_output(route, name):
        # `explain` sees a name, not the object's metadata, which the function reads first.
        return [f"  extension route {route.name!r}: it has the shape of this route's outputs; if it is one (its "
                "resizedImage mark), it is skipped, else it is taken"]  # fmt: skip
    plan = route.plan(name, str(resource["contentType"]))
    lines = [f"  extension route {route.name!r} takes it ({resource['contentType']}) and writes:"]
    lines += [f"    {output.size.text:<12}{output.format.value:<6}{output.path}" for output in plan.objects]
    failed = route.failed_copy_path(str(resource["name"]))
    if failed:
        lines.append(f"    (if it fails: a copy at {failed})")
    lines.append(f"    the upload is {_DELETES[route.params.delete_original]}")
    return lines


def _looks_like_an_output(route: ExtensionRoute, name: str) -> bool:
    """Whether `name` has the shape of one of the route's outputs: `…/{RESIZED_IMAGES_PATH}/{name}_{WxH}[.ext]`."""
    folder, _, file_name = name.rpartition("/")
    resized = route.params.resized_images_path.strip("/")
    if resized and not resized.startswith("..") and not (folder == resized or folder.endswith("/" + resized)):
        return False
    stem = file_name.rsplit(".", 1)[0] if "." in file_name[1:] else file_name
    return any(stem.endswith(f"_{size.text}") or file_name.endswith(f"_{size.text}") for size in route.params.sizes)

"""Routes: which uploads are sources, which document records each one, and what is made of it. Standard library only.

A route is the whole layout of one kind of upload: a `match` pattern over object names, the document and field the
manifest goes to, the fields that must equal captures (the owner check), the output folder and what to make. The
table is validated once at start-up, so that a running function never meets a malformed route.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from image_pipeline.errors import RouteError
from image_pipeline.model_files import ModelObject, model_location
from image_pipeline.options import CutoutSpec, ImagingOptions, Variant
from image_pipeline.output_names import DEFAULT_NAMES, STEM, VALUE_CHARS, Names, Shape, common_name

# fullmatch, not match with `$`: `$` also matches before a trailing newline ("user\n" would pass).
CAPTURE_VALUE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_LITERAL_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_CAPTURE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
_UNSAFE_STEM_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_STEM = 64
DEFAULT_CACHE_CONTROL = "public, max-age=31536000, immutable"
# For names without {generation}: a re-upload overwrites the outputs, which caches must then fetch again.
SHORT_CACHE_CONTROL = "public, max-age=3600"


class MissingDocument(str, Enum):
    """What to do when the route's document does not exist."""

    WAIT = "wait"  # the app may create it after uploading: retry while the event is young
    CREATE = "create"


class DeleteOriginal(str, Enum):
    """Whether the uploaded source is deleted once its variants are recorded."""

    NEVER = "never"
    ON_SUCCESS = "on_success"


@dataclass(frozen=True)
class Pattern:
    """An object-name pattern: `/`-separated segments, each a literal or exactly one `{capture}`; the last a capture.

    Captures before the last take 1-128 characters of A-Z a-z 0-9 _ -; the last is the file name (dots allowed).
    """

    text: str
    segments: tuple[str, ...]
    captures: tuple[str | None, ...]  # the capture name of each segment, None for a literal

    @classmethod
    def parse(cls, text: str) -> Pattern:
        """Parse and validate a `match` pattern; ValueError says what is wrong."""
        segments = tuple(text.split("/"))
        captures = tuple(_capture_of(segment) for segment in segments)
        if captures[-1] is None:
            raise ValueError("the last segment must be a {capture} (the file name)")
        named = [name for name in captures if name is not None]
        if len(set(named)) != len(named):
            raise ValueError("each capture name may appear once")
        if STEM in named:
            raise ValueError("{stem} is reserved (the cleaned file name); name the capture differently")
        return cls(text, segments, captures)

    @property
    def file_capture(self) -> str:
        """The name of the last capture: the file name."""
        return self.captures[-1] or ""

    @property
    def literal_prefix(self) -> str:
        """The literal folders before the first capture: where a listing of this route's sources starts."""
        prefix = []
        for segment, capture in zip(self.segments, self.captures, strict=True):
            if capture is not None:
                break
            prefix.append(segment + "/")
        return "".join(prefix)

    def match(self, name: str) -> dict[str, str] | None:
        """The captures if `name` fits this pattern, else None."""
        parts = name.split("/")
        if len(parts) != len(self.segments):
            return None
        *folders, file_name = parts
        values: dict[str, str] = {}
        for part, segment, capture in zip(folders, self.segments, self.captures, strict=False):
            if capture is None and part != segment:
                return None
            if capture is not None:
                if not CAPTURE_VALUE.fullmatch(part):
                    return None
                values[capture] = part
        if file_name in ("", ".", "..") or not file_name.isprintable():
            return None
        values[self.file_capture] = file_name
        return values


def _capture_of(segment: str) -> str | None:
    """The capture name of a `{name}` segment, None for a literal; ValueError for anything else."""
    if segment.startswith("{") and segment.endswith("}"):
        name = segment[1:-1]
        if not _CAPTURE_NAME.fullmatch(name):
            raise ValueError(f"capture {segment!r} must be {{name}} with a name of A-Z a-z 0-9 _")
        return name
    if "{" in segment or "}" in segment:
        raise ValueError(f"segment {segment!r} must be a literal or exactly one {{capture}}")
    if not _LITERAL_SEGMENT.fullmatch(segment) or segment in (".", ".."):
        raise ValueError(f"segment {segment!r} must be 1 or more of A-Z a-z 0-9 _ . - (and not a dot segment)")
    return None


@dataclass(frozen=True)
class Template:
    """A name made from captures and {stem}: a document path, an output folder or a required value."""

    text: str

    def placeholders(self) -> tuple[str, ...]:
        """The names between braces, in order."""
        return tuple(_PLACEHOLDER.findall(self.text))

    def render(self, values: Mapping[str, str]) -> str:
        """The text with each {name} replaced by its value."""
        return _PLACEHOLDER.sub(lambda found: values[found.group(1)], self.text)

    def as_pattern(self) -> re.Pattern[str]:
        """What rendered names can look like: each placeholder stands for 1 or more of A-Z a-z 0-9 _ -."""
        pieces = _PLACEHOLDER.split(self.text)
        # split() alternates literal text and placeholder names.
        return re.compile(
            "".join(re.escape(piece) if i % 2 == 0 else "[A-Za-z0-9_-]+" for i, piece in enumerate(pieces))
        )


@dataclass(frozen=True)
class Mirror:
    """Document fields an app already reads, kept in step with the manifest (all optional)."""

    status: str | None = None
    url: str | None = None
    ready: str | None = None


@dataclass(frozen=True)
class Route:
    """One upload layout: where sources are, where their manifest goes, and what is made of them."""

    name: str
    match: Pattern
    document: Template
    field: str
    output: Template
    imaging: ImagingOptions
    # Qualified: inside this class body `field` is the attribute above, not dataclasses.field.
    require: Mapping[str, Template] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    missing: MissingDocument = MissingDocument.WAIT
    owner: str | None = None
    mirror: Mirror = Mirror()
    names: Names = DEFAULT_NAMES
    cache_control: str = DEFAULT_CACHE_CONTROL
    delete_original: DeleteOriginal = DeleteOriginal.NEVER
    # Background removal before the variants are made (docs/cutout.md); None: the image as uploaded.
    cutout: CutoutSpec | None = None

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse a route whose parts contradict each other; ValueError names the key."""
        known = {name for name in self.match.captures if name is not None} - {self.match.file_capture}
        known.add(STEM)
        for key, template in (("document", self.document), ("output", self.output), *self._require_items()):
            unknown = [name for name in template.placeholders() if name not in known]
            if unknown:
                raise ValueError(f"{key}: unknown placeholder {{{unknown[0]}}} (known: {', '.join(sorted(known))}; "
                                 f"the file name itself cannot be used, {{stem}} is its cleaned form)")  # fmt: skip
        segments = self.document.text.split("/")
        if len(segments) % 2 or any(not segment for segment in segments):
            raise ValueError("document: a document path has an even number of non-empty segments (collection/id)")
        for segment in segments:
            literal = _PLACEHOLDER.sub("", segment)
            if segment in (".", "..") or (literal and not _LITERAL_SEGMENT.fullmatch(literal)):
                raise ValueError(f"document: segment {segment!r} must be A-Z a-z 0-9 _ . - and placeholders")
        if not self.output.text.endswith("/") or self.output.text.startswith("/") or "//" in self.output.text:
            raise ValueError("output: a folder like 'thumbs/{uid}/' (ending in '/', no empty segment)")
        for folder in self.output.text[:-1].split("/"):
            literal = _PLACEHOLDER.sub("", folder)
            if folder in (".", "..") or (literal and not _LITERAL_SEGMENT.fullmatch(literal)):
                raise ValueError(f"output: folder {folder!r} must be A-Z a-z 0-9 _ . - and placeholders")
        if self.owner is not None and self.owner not in known - {STEM}:
            raise ValueError(
                f"owner: {self.owner!r} is not a capture of match (known: {', '.join(sorted(known - {STEM}))})"
            )
        if self.missing is MissingDocument.CREATE and self.require:
            raise ValueError('missing: "create" with "require" is refused: the first uploader would own the document')
        self.names.check(self.imaging.variants, [encoding.format for encoding in self.imaging.encodings])
        if not self.names.has_generation:
            self._check_outputs_name_their_document()

    def _check_outputs_name_their_document(self) -> None:
        """Without {generation}, uploads whose outputs share names must share the document that records them.

        Otherwise one document's URLs would serve another upload's image. So every part of the document path must be
        read from an output's name: a placeholder alone in a folder of `output` (text around it is fine), or the stem
        in `names`.
        """
        alone = (Template(folder).placeholders() for folder in self.output.text.split("/"))
        told = {found[0] for found in alone if len(found) == 1}
        if self.names.has_stem:
            told.add(STEM)
        untold = [name for name in self.document.placeholders() if name not in told]
        if untold:
            raise ValueError(
                f"names: without {{generation}}, outputs are named by their folder and names only, but "
                f"{{{untold[0]}}} of document {self.document.text!r} is in neither (alone in a folder of output, or "
                "{stem} in names): uploads recorded in two documents would overwrite each other's outputs; add it to "
                "output or names, or add {generation}"
            )

    def _require_items(self) -> tuple[tuple[str, Template], ...]:
        return tuple((f"require.{path}", template) for path, template in self.require.items())

    def values(self, captures: Mapping[str, str], file_name: str) -> dict[str, str]:
        """The captures plus {stem}: everything a template of this route may name."""
        return {**captures, STEM: clean_stem(file_name)}

    def output_path(self, values: Mapping[str, str], generation: int, variant: str, extension: str) -> str:
        """The name of one output: the rendered `output` folder, then `names` (`{stem}-{generation}-{variant}.{ext}`).

        Deterministic, so that a retry of a generation writes (and finds) the same objects.
        """
        chosen = next(item for item in self.imaging.variants if item.name == variant)
        return self.output.render(values) + self.names.render(values[STEM], generation, chosen, extension)

    def shared_output_name(self, other: Route) -> str | None:
        """An object name both this route and `other` could write (for some captures and stems), or None."""
        folder = common_name(_folder_shape(self.output), _folder_shape(other.output))
        if folder is None:
            return None
        for mine, my_extension in self._outputs():
            for theirs, their_extension in other._outputs():
                name = common_name(self.names.shape(mine, my_extension), other.names.shape(theirs, their_extension))
                if name is not None:
                    return folder + name
        return None

    def _outputs(self) -> list[tuple[Variant, str]]:
        """Every variant with every format's extension: the outputs of one upload."""
        encodings = self.imaging.encodings
        return [(variant, encoding.format.extension) for variant in self.imaging.variants for encoding in encodings]

    def outputs_could_match(self, other: Route) -> bool:
        """Whether an object this route writes could fit `other`'s match pattern (a loop)."""
        folders = self.output.text[:-1].split("/")
        if len(folders) + 1 != len(other.match.segments):
            return False
        for folder, segment, capture in zip(folders, other.match.segments, other.match.captures, strict=False):
            if not _segments_intersect(Template(folder), segment, capture):
                return False
        # The last segment of a match is a capture that takes any file name, so ours fits it.
        return True


def _folder_shape(folder: Template) -> Shape:
    """The spellings of a rendered output folder: each placeholder 1 or more of A-Z a-z 0-9 _ -."""
    pieces = _PLACEHOLDER.split(folder.text)
    return tuple(item for i, piece in enumerate(pieces) for item in (piece if i % 2 == 0 else (VALUE_CHARS,)))


def _segments_intersect(folder: Template, segment: str, capture: str | None) -> bool:
    """Whether one output folder segment could equal one match segment (conservatively: when unsure, yes)."""
    if capture is None:
        return folder.as_pattern().fullmatch(segment) is not None
    if not folder.placeholders():
        return CAPTURE_VALUE.fullmatch(folder.text) is not None
    literal = _PLACEHOLDER.sub("", folder.text)
    return all(CAPTURE_VALUE.fullmatch(char) for char in literal)


def clean_stem(file_name: str) -> str:
    """The file name without its extension, cut to 64 of A-Z a-z 0-9 _ - ('image' if nothing is left)."""
    stem = file_name.rsplit(".", 1)[0] if "." in file_name[1:] else file_name
    return _UNSAFE_STEM_CHARS.sub("_", stem)[:_MAX_STEM].strip("_") or "image"


def default_cache_control(names: Names) -> str:
    """A route's `Cache-Control` when it sets none: long and immutable unless a re-upload overwrites its outputs."""
    return DEFAULT_CACHE_CONTROL if names.has_generation else SHORT_CACHE_CONTROL


def check_table(routes: tuple[Route, ...], names: list[str] | None = None) -> None:
    """Refuse a table with repeated names, where an output of any route could be taken as a source (a loop), or where
    a route that overwrites its outputs (no {generation}) could overwrite another route's.

    `names` are every route's in the file, extension routes included (the routes' own by default).
    """
    if not routes and not names:
        raise RouteError("no routes: a routes file needs at least one [[route]]")
    names = [route.name for route in routes] if names is None else names
    for name in names:
        if names.count(name) > 1:
            raise _route_error(name, "name", "used by more than one route")
    for route in routes:
        check_model_location(route, routes)
    for writer in routes:
        for reader in routes:
            if writer.outputs_could_match(reader):
                problem = (
                    f"{writer.output.text!r} could match route {reader.name!r}'s match {reader.match.text!r}: "
                    "its outputs would trigger the function again"
                )
                raise RouteError(f"route {writer.name!r}: output {problem}", "output", problem, other_key="match")
    check_shared_names(routes)


def check_shared_names(routes: tuple[Route, ...]) -> None:
    """Refuse two routes whose outputs could get one name when either has no {generation} in its names.

    With {generation} in both, two uploads' names differ by their generations; without, the later upload would
    replace the other route's object, and the other route's manifest would serve its image.
    """
    for index, first in enumerate(routes):
        for second in routes[index + 1 :]:
            if first.names.has_generation and second.names.has_generation:
                continue
            shared = first.shared_output_name(second)
            if shared is not None:
                blamed, other = (second, first) if not second.names.has_generation else (first, second)
                problem = (
                    f"{blamed.names.text!r} in {blamed.output.text!r} and route {other.name!r}'s {other.names.text!r} "
                    f"in {other.output.text!r} could both write {shared!r}, and without {{generation}} an upload "
                    "overwrites what is there: give each route an output folder of its own"
                )
                raise RouteError(f"route {blamed.name!r}: names: {problem}", "names", problem, other_key="output")


def _route_error(route: str, key: str, problem: str) -> RouteError:
    return RouteError(f"route {route!r}: {key}: {problem}", key, problem)


def check_model_location(route: Route, routes: tuple[Route, ...]) -> None:
    """Refuse a model object that a route would take as a source, or that sits among a route's outputs.

    Uploading it would then run the pipeline on the model file, or a prune of outputs could delete it.
    """
    if route.cutout is None:
        return
    try:
        location = model_location(route.cutout.uri)
    except ValueError as error:
        raise _route_error(route.name, "cutout.uri", str(error)) from None
    if not isinstance(location, ModelObject):
        return
    folder = location.name.rsplit("/", 1)[0] + "/" if "/" in location.name else ""
    for other in routes:
        if other.match.match(location.name) is not None:
            where = f"fits route {other.name!r}'s match {other.match.text!r} (an upload of it would be processed)"
        elif other.output.as_pattern().fullmatch(folder):
            where = f"is in route {other.name!r}'s output folder {other.output.text!r} (a prune could delete it)"
        else:
            continue
        problem = f"the model object {location.name!r} {where}: put it in a folder of its own, such as models/"
        raise _route_error(route.name, "cutout.uri", problem)

"""What the imaging core is asked to make: variants, formats and limits. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class OutputFormat(str, Enum):
    """Encodings the variants can be written in."""

    WEBP = "webp"
    AVIF = "avif"
    JPEG = "jpeg"
    PNG = "png"
    GIF = "gif"
    TIFF = "tiff"

    @property
    def content_type(self) -> str:
        """The MIME type stored on output objects."""
        return f"image/{self.value}"

    @property
    def extension(self) -> str:
        """The file-name extension of output objects."""
        return "jpg" if self is OutputFormat.JPEG else self.value

    @property
    def supports_animation(self) -> bool:
        """Whether the core can write more than one frame in this format."""
        return self in (OutputFormat.WEBP, OutputFormat.PNG, OutputFormat.AVIF, OutputFormat.GIF)

    @property
    def default_quality(self) -> int:
        """The quality used when a route names none for this format (PNG and GIF ignore it)."""
        return {OutputFormat.AVIF: 50, OutputFormat.PNG: 100, OutputFormat.GIF: 100}.get(self, 80)


class Fit(str, Enum):
    """How a variant fills its box: `inside` keeps the whole picture, `cover` crops to fill the box (at its gravity)."""

    INSIDE = "inside"
    COVER = "cover"


class Gravity(str, Enum):
    """The side or corner of the picture a `cover` crop keeps (sharp's gravity names); centre keeps the middle."""

    CENTRE = "centre"
    NORTH = "north"
    NORTHEAST = "northeast"
    EAST = "east"
    SOUTHEAST = "southeast"
    SOUTH = "south"
    SOUTHWEST = "southwest"
    WEST = "west"
    NORTHWEST = "northwest"


@dataclass(frozen=True)
class Variant:
    """A named output size: fit inside (or cover) a `width` x `height` box, never upscaled.

    `Variant("thumb", 256)` is the longest-edge form: a 256 x 256 box, fit inside.
    """

    name: str
    width: int
    height: int = 0  # 0: the same as width (a square box)
    fit: Fit = Fit.INSIDE
    gravity: Gravity = Gravity.CENTRE  # where a cover crop is taken; inside ignores it

    @property
    def box(self) -> tuple[int, int]:
        """The box the variant fits in (or covers)."""
        return self.width, self.height or self.width

    @property
    def max_edge(self) -> int:
        """The box's longest edge: what orders variants from small to large."""
        return max(self.box)


@dataclass(frozen=True)
class Encoding:
    """One output format and its quality (1-100; ignored for PNG and GIF)."""

    format: OutputFormat
    quality: int
    # The first frame only, even when the options keep animations: the Resize Images extension keeps them in its GIF
    # and WebP outputs alone, and writes its PNG and AVIF outputs of an animated upload from the first frame.
    still: bool = False

    @property
    def animates(self) -> bool:
        """Whether an animation kept by the options is written with every frame in this encoding."""
        return self.format.supports_animation and not self.still


class CutoutFamily(str, Enum):
    """A background-removal model family: it sets the model's input size and its pre- and post-processing."""

    ISNET = "isnet"  # isnet-anime, isnet-general-use: 1024 x 1024
    U2NET = "u2net"  # u2net, u2netp: 320 x 320


@dataclass(frozen=True)
class CutoutSpec:
    """Which background-removal model a route runs, where it is and the checksum it must have."""

    family: CutoutFamily
    # "gs://{bucket}/models/x.onnx" ({bucket}: the event's bucket) or a local file path (relative: the source root).
    uri: str
    sha256: str  # 64 hex digits
    trim: bool = False  # crop the result to the subject's bounding box plus a margin

    @property
    def label(self) -> str:
        """How the manifest and the logs name the model: its family and the start of its checksum."""
        return f"{self.family.value}:{self.sha256[:12].lower()}"


WHITE = (255, 255, 255)
# The most pixels any limit may allow: Pillow's own bomb guard is fixed here once, as a backstop to our checks.
PIXEL_CEILING = 1 << 30


@dataclass(frozen=True)
class ImagingOptions:
    """Everything the pure imaging core needs; nothing about clouds."""

    variants: tuple[Variant, ...] = (Variant("thumb", 256), Variant("medium", 1024), Variant("large", 2048))
    # One or more; the first is the primary format (the one the manifest's top-level keys describe).
    encodings: tuple[Encoding, ...] = (Encoding(OutputFormat.WEBP, 80),)
    # What formats without alpha (JPEG) and the BlurHash are flattened onto.
    background: tuple[int, int, int] = WHITE
    max_input_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 100_000_000
    max_frames: int = 300
    max_decode_mib: int = 512
    keep_animation: bool = False
    encode_threads: int = 0
    # The dominant colour, BlurHash and ThumbHash a manifest carries; extension routes write none and skip them.
    placeholder: bool = True

    @property
    def largest_variant(self) -> Variant:
        """The variant with the longest edge, whose URL the app shows."""
        return max(self.variants, key=lambda variant: variant.max_edge)

    @property
    def primary(self) -> Encoding:
        """The first encoding: the one the manifest's `path`, `url` and `bytes` describe."""
        return self.encodings[0]

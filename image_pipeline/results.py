"""What the imaging core returns to the use case: plain typed facts and bytes. Standard library only (no Pillow)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceFacts:
    """The uploaded image as detected from its bytes; width and height as displayed (after orientation)."""

    format: str
    width: int
    height: int
    bytes: int
    frames: int


@dataclass(frozen=True)
class EncodedImage:
    """One variant in one format, encoded once, with no metadata from the upload."""

    format: str  # an OutputFormat value
    content_type: str
    extension: str
    data: bytes

    @property
    def bytes(self) -> int:
        """The encoded size."""
        return len(self.data)


@dataclass(frozen=True)
class RenderedVariant:
    """One named variant: its displayed size and its encodings, in the order of ImagingOptions.encodings."""

    name: str
    width: int
    height: int
    encodings: tuple[EncodedImage, ...]

    @property
    def primary(self) -> EncodedImage:
        """The encoding in the primary (first) format."""
        return self.encodings[0]


@dataclass(frozen=True)
class Placeholder:
    """What an app can paint before the image loads."""

    dominant_color: str
    blurhash: str
    thumbhash: str | None = None

    def as_record(self) -> dict[str, str]:
        """The placeholder as stored in Firestore and printed by the CLI."""
        record = {"dominantColor": self.dominant_color, "blurhash": self.blurhash}
        if self.thumbhash is not None:
            record["thumbhash"] = self.thumbhash
        return record


@dataclass(frozen=True)
class DecoderWarnings:
    """Warnings the decoders raised for one image: counted, with the first few distinct messages kept."""

    count: int = 0
    messages: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class CutoutFacts:
    """What the background removal did to one image."""

    applied: bool
    model: str | None = None  # CutoutSpec.label, when applied
    coverage: float | None = None  # share of pixels with alpha >= 128 (0..1), when applied
    reason: str | None = None  # why not applied: "no_subject"

    def as_record(self) -> dict[str, bool | str | float | None]:
        """The manifest's `cutout` value."""
        if self.applied:
            return {"applied": True, "model": self.model, "coverage": self.coverage}
        return {"applied": False, "reason": self.reason}


@dataclass(frozen=True)
class ProcessedImage:
    """The success outcome of the core."""

    source: SourceFacts
    variants: tuple[RenderedVariant, ...]
    placeholder: Placeholder | None  # None: the options asked for none
    warnings: DecoderWarnings = DecoderWarnings()
    cutout: CutoutFacts | None = None  # None: no background removal was asked for

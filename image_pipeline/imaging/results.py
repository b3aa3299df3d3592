"""What the imaging core returns: facts about the source and the encoded variants."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFacts:
    """The uploaded image as detected from its bytes; width and height as displayed (after orientation)."""

    format: str
    width: int
    height: int
    bytes: int
    frames: int


@dataclass(frozen=True)
class EncodedVariant:
    """One output image, encoded once, with no metadata from the upload."""

    name: str
    width: int
    height: int
    format: str
    content_type: str
    extension: str
    data: bytes

    @property
    def bytes(self) -> int:
        """The encoded size."""
        return len(self.data)


@dataclass(frozen=True)
class Placeholder:
    """What an app can paint before the image loads."""

    dominant_color: str
    blurhash: str

    def as_record(self) -> dict[str, str]:
        """The placeholder as stored in Firestore and printed by the CLI."""
        return {"dominantColor": self.dominant_color, "blurhash": self.blurhash}


@dataclass(frozen=True)
class ProcessedImage:
    """The success outcome of the core."""

    source: SourceFacts
    variants: tuple[EncodedVariant, ...]
    placeholder: Placeholder

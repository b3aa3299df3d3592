"""The pure imaging core: untrusted bytes in, web-ready variants out. Imports Pillow, never a cloud client."""

from image_pipeline.imaging.pipeline import process_image
from image_pipeline.imaging.results import EncodedVariant, Placeholder, ProcessedImage, SourceFacts

__all__ = ["EncodedVariant", "Placeholder", "ProcessedImage", "SourceFacts", "process_image"]

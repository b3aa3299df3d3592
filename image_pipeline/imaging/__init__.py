"""The pure imaging core: untrusted bytes in, web-ready variants out. Imports Pillow, never a cloud client."""

from image_pipeline.imaging.pipeline import ContentStep, make_variants

__all__ = ["ContentStep", "make_variants"]

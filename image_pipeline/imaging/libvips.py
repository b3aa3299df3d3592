"""libvips as the core uses it: the Lanczos downscale (resample.py) and the GIF and TIFF encoders (encode.py).

Only pixels Pillow has decoded reach libvips, as bare buffers; its file loaders, a second parser of untrusted bytes,
are blocked for the whole process.
"""

from __future__ import annotations

import pyvips
from PIL import Image

# Set once, for the whole process: libvips' operation cache would keep pixel buffers alive between calls; one
# libvips worker per call, since the core already encodes in parallel; and no libvips file loader is ever used
# (every byte of an upload is parsed by Pillow), so none can be reached.
pyvips.cache_set_max(0)
pyvips.concurrency_set(1)
pyvips.operation_block_set("VipsForeignLoad", True)


def from_pillow(image: Image.Image) -> pyvips.Image:
    """The pixels of an L, RGB or RGBA image as a libvips image of as many 8-bit bands, and nothing else of it."""
    return pyvips.Image.new_from_memory(image.tobytes(), image.width, image.height, len(image.mode), "uchar")

"""The core's entry point: untrusted bytes in, checked, decoded once, then one typed sequence of still-image steps.

    decode (at a reduced JPEG scale) -> orient -> to sRGB -> content steps -> resize cascade -> encode

Orientation and colour come first, so that every later step sees the picture as displayed. The cascade renders the
largest rendition first and each smaller one from the smallest rendition that still holds it; each rendition is
handed to the encode pool (every requested encoding of it) as soon as it exists.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from image_pipeline.cpus import available_cpus
from image_pipeline.errors import ImageRejected, RejectionCode
from image_pipeline.imaging.colour import to_resizable, to_srgb
from image_pipeline.imaging.decode import (
    ANIMATED_FORMATS,
    DECODER_ERRORS,
    OpenedImage,
    check_decode_memory,
    check_pixels,
    corrupt,
    load_first_frame,
    open_checked,
    orientation_of,
    pixel_limit,
)
from image_pipeline.imaging.decoder_warnings import collecting
from image_pipeline.imaging.encode import encode, encode_animation
from image_pipeline.imaging.geometry import (
    WHOLE,
    Rendition,
    Size,
    covers,
    displayed_size,
    orient,
    plan,
    render,
    required_size,
)
from image_pipeline.imaging.placeholder import make_placeholder
from image_pipeline.options import Encoding, ImagingOptions
from image_pipeline.results import (
    CutoutFacts,
    EncodedImage,
    Placeholder,
    ProcessedImage,
    RenderedVariant,
    SourceFacts,
)


@dataclass(frozen=True)
class Stepped:
    """What a content step may return instead of a bare picture: the picture with what the step found out."""

    picture: Image.Image
    cutout: CutoutFacts | None = None


# A step that looks at the upright sRGB picture (L, RGB or RGBA) and returns the picture to resize (bare or Stepped).
# A picture of another size (a smaller working copy, a crop) becomes what the variants are planned on: none is
# made larger than it. Content steps work on stills: an animation with content steps is made from its first frame.
ContentStep = Callable[[Image.Image], Image.Image | Stepped]

# Animated output keeps every frame of every variant in memory; beyond this many source pixels
# (frames x canvas) the animation is flattened to its first frame instead.
ANIMATION_PIXEL_BUDGET = 25_000_000


def make_variants(
    data: bytes,
    options: ImagingOptions,
    content_steps: Sequence[ContentStep] = (),
    on_content_done: Callable[[], None] | None = None,
) -> ProcessedImage:
    """Turn untrusted image bytes into the configured variants, or raise ImageRejected.

    `on_content_done` is called once, after the content steps and before any resizing or encoding.
    """
    content_done = on_content_done or _nothing
    with collecting() as collector:
        opened = open_checked(data, options)
        try:
            draft = _jpeg_draft(opened, options)
            check_decode_memory(opened, draft, options.max_decode_mib)
            if not content_steps and _keeps_animation(opened, options):
                content_done()
                made = _make_animation(opened, options)
            else:
                made = _make_still(opened, draft, options, content_steps, content_done)
        except ImageRejected:
            raise
        except MemoryError:
            raise ImageRejected(
                RejectionCode.TOO_LARGE, "decoding the image needs more memory than is available"
            ) from None
        except DECODER_ERRORS as error:
            raise corrupt(error) from None
        finally:
            opened.image.close()
        source_size, variants, placeholder, cutout = made
        source = SourceFacts(opened.format, source_size[0], source_size[1], len(data), opened.frames)
        return ProcessedImage(source, variants, placeholder, collector.facts(), cutout)


_Made = tuple[Size, tuple[RenderedVariant, ...], Placeholder | None, CutoutFacts | None]


def _nothing() -> None:
    pass


def _keeps_animation(opened: OpenedImage, options: ImagingOptions) -> bool:
    return (
        options.keep_animation
        and opened.frames > 1
        and opened.format in ANIMATED_FORMATS
        and any(encoding.animates for encoding in options.encodings)
        and opened.frames * opened.image.width * opened.image.height <= ANIMATION_PIXEL_BUDGET
    )


# ---------------------------------------------------------------------------
# Stills
# ---------------------------------------------------------------------------


def _make_still(
    opened: OpenedImage,
    draft: Size | None,
    options: ImagingOptions,
    content_steps: Sequence[ContentStep],
    content_done: Callable[[], None],
) -> _Made:
    stored_size = opened.image.size  # a draft makes the image report its decoded size
    decoded = _decode(opened, draft, options)
    orientation = orientation_of(decoded)
    upright = _to_srgb(orient(decoded, orientation))
    picture, cutout = _run_steps(upright, content_steps)
    content_done()
    upright_size = displayed_size(stored_size, orientation)
    # Planned on the source's full size (the decoded picture may be a JPEG draft), unless a step resized or cropped.
    basis = upright_size if picture.size == upright.size else picture.size
    renditions = {variant.name: plan(basis, variant) for variant in options.variants}
    distinct = dict.fromkeys(renditions.values())
    with _Encoder(options, tasks=len(distinct)) as encoder:
        rendered = _cascade(picture, distinct, encoder.submit)
        placeholder = None
        if options.placeholder:
            placeholder_source = _smallest_with_region(rendered, renditions[options.largest_variant.name])
            placeholder = make_placeholder(
                placeholder_source, options.background, opaque_only=cutout is not None and cutout.applied
            )
        variants = tuple(encoder.variant(name, rendition) for name, rendition in renditions.items())
    return upright_size, variants, placeholder, cutout


def _run_steps(picture: Image.Image, steps: Sequence[ContentStep]) -> tuple[Image.Image, CutoutFacts | None]:
    cutout = None
    for step in steps:
        result = step(picture)
        if isinstance(result, Stepped):
            picture, cutout = result.picture, result.cutout or cutout
        else:
            picture = result
    return picture, cutout


def _jpeg_draft(opened: OpenedImage, options: ImagingOptions) -> Size | None:
    """The size to ask a JPEG's decoder for: what the largest rendition needs, so that no rendition is enlarged.

    Never a smaller scale that a rendition would then enlarge: with libvips' downscale a full decode plus a reduction
    costs less than a smaller decode plus an enlargement, and the largest variant keeps 0.1 dB more (performance.md).
    """
    if opened.image.format not in ("JPEG", "MPO"):
        return None
    # A JPEG's EXIF (and so its orientation) is read with its header, before any pixel is decoded.
    orientation = orientation_of(opened.image)
    upright_size = displayed_size(opened.image.size, orientation)
    needed = required_size(plan(upright_size, variant) for variant in options.variants)
    return displayed_size(needed, orientation)


def _decode(opened: OpenedImage, draft: Size | None, options: ImagingOptions) -> Image.Image:
    decoded = load_first_frame(opened, draft)
    check_pixels(decoded.size, pixel_limit(options))
    return decoded


def _to_srgb(image: Image.Image) -> Image.Image:
    """8-bit sRGB (L, RGB or RGBA) through the embedded profile, with nothing of the upload's metadata."""
    picture = to_srgb(to_resizable(image), image.info.get("icc_profile"))
    picture.info = {}
    return picture


def _cascade(
    picture: Image.Image, renditions: Iterable[Rendition], submit: Callable[[Rendition, Image.Image], None]
) -> dict[Rendition, Image.Image]:
    """Render each rendition, largest first, from the smallest one already rendered that holds it (else the picture).

    A cover crop is rendered from a larger rendition only if that one still covers the crop at the crop's size.
    """
    root = Rendition(WHOLE, picture.size)
    rendered: dict[Rendition, Image.Image] = {}
    for target in sorted(renditions, key=lambda rendition: rendition.area, reverse=True):
        sources = [rendition for rendition in rendered if covers(rendition, target)]
        source = min(sources, key=lambda rendition: rendition.area, default=root)
        image = render(rendered.get(source, picture), source.region, target)
        rendered[target] = image
        submit(target, image)
    return rendered


def _smallest_with_region(rendered: dict[Rendition, Image.Image], like: Rendition) -> Image.Image:
    """The smallest rendered picture showing the same region as `like` (what the placeholder is made from)."""
    same_region = [rendition for rendition in rendered if rendition.region == like.region]
    return rendered[min(same_region, key=lambda rendition: rendition.area)]


class _Encoder:
    """Encodes each rendition in every requested encoding on a thread pool, as soon as it is rendered.

    Each task runs in a copy of the caller's context, so that its decoder warnings reach the caller's collector.
    """

    def __init__(self, options: ImagingOptions, tasks: int) -> None:
        self._options = options
        self._encodings = tuple(dict.fromkeys(options.encodings))
        threads = options.encode_threads or max(1, min(tasks * len(self._encodings), available_cpus()))
        self._pool = ThreadPoolExecutor(max_workers=threads)
        self._encoded: dict[tuple[Rendition, Encoding], Future[bytes]] = {}

    def __enter__(self) -> _Encoder:
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, rendition: Rendition, image: Image.Image) -> None:
        """Start encoding `image` in every encoding."""
        for index, encoding in enumerate(self._encodings):
            # Pillow's save() keeps its parameters on the image object: saves running together need their own.
            own = image if index == 0 else image.copy()
            task = contextvars.copy_context().run
            self._encoded[rendition, encoding] = self._pool.submit(
                task, encode, own, encoding, self._options.background
            )

    def variant(self, name: str, rendition: Rendition) -> RenderedVariant:
        """The named variant, once every encoding of its rendition is done, in the order of the options."""
        width, height = rendition.size
        images = tuple(
            _encoded_image(encoding, self._encoded[rendition, encoding].result())
            for encoding in self._options.encodings
        )
        return RenderedVariant(name, width, height, images)


def _encoded_image(encoding: Encoding, data: bytes) -> EncodedImage:
    output_format = encoding.format
    return EncodedImage(output_format.value, output_format.content_type, output_format.extension, data)


# ---------------------------------------------------------------------------
# Animations
# ---------------------------------------------------------------------------


def _make_animation(opened: OpenedImage, options: ImagingOptions) -> _Made:
    frames, durations = _decode_frames(opened, options)
    plays = _plays(opened.image)
    orientation = orientation_of(opened.image)
    upright = [orient(frame, orientation) for frame in frames]
    canvas = upright[0].size
    renditions = {variant.name: plan(canvas, variant) for variant in options.variants}
    first_frames: dict[Rendition, Image.Image] = {}
    payloads: dict[tuple[Rendition, Encoding], bytes] = {}
    for rendition in dict.fromkeys(renditions.values()):
        resized = [render(frame, WHOLE, rendition) for frame in upright]
        first_frames[rendition] = resized[0]
        for encoding in dict.fromkeys(options.encodings):
            if encoding.animates:
                payloads[rendition, encoding] = encode_animation(resized, durations, plays, encoding)
            else:
                payloads[rendition, encoding] = encode(resized[0], encoding, options.background)
    variants = tuple(
        RenderedVariant(
            name,
            *rendition.size,
            tuple(_encoded_image(encoding, payloads[rendition, encoding]) for encoding in options.encodings),
        )
        for name, rendition in renditions.items()
    )
    largest = renditions[options.largest_variant.name]
    placeholder = (
        make_placeholder(_smallest_with_region(first_frames, largest), options.background)
        if options.placeholder
        else None
    )
    return canvas, variants, placeholder, None


def _plays(image: Image.Image) -> int:
    """How many times the animation plays, 0 for ever. WebP and APNG store that number; a GIF stores the repeats
    after the first play (0: for ever) in a NETSCAPE block, and without one it plays once."""
    loop = image.info.get("loop")
    if image.format != "GIF":
        return int(loop or 0)
    if loop is None:
        return 1
    return int(loop) + 1 if loop else 0


def _decode_frames(opened: OpenedImage, options: ImagingOptions) -> tuple[list[Image.Image], list[int]]:
    """Every frame as sRGB RGBA with its duration, each checked against the pixel limit."""
    image = opened.image
    frames, durations = [], []
    icc_profile = image.info.get("icc_profile")
    for index in range(opened.frames):
        image.seek(index)
        check_pixels(image.size, pixel_limit(options))
        frame = to_srgb(to_resizable(image.convert("RGBA")), icc_profile)
        frame.info = {}
        frames.append(frame)
        durations.append(int(image.info.get("duration", 100)))
    return frames, durations

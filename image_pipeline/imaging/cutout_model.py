"""A background-removal model run with onnxruntime, with rembg's pre- and post-processing for each family.

Imported only when a route has a cutout (by `cutout.load_matting`): every other deployment loads neither numpy nor
onnxruntime. The arithmetic follows rembg's sessions step by step (Lanczos to the model's size, divide by the
image's maximum, subtract the mean and divide by the standard deviation in float64, run in float32, min-max
normalise the first output's channel 0, truncate to 8 bits, Lanczos back), so that a model file gives the masks
rembg's named session gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime  # type: ignore[import-untyped]  # no stubs, no py.typed
from PIL import Image

from image_pipeline.errors import ModelUnusable
from image_pipeline.options import CutoutFamily, CutoutSpec

# Guards rembg's division by its image's maximum (a black image).
_SMALLEST_MAXIMUM = 1e-6


@dataclass(frozen=True)
class Preprocessing:
    """A family's model input: a square of `size`, normalised per channel as (value / max - mean) / std."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
PREPROCESSING = {
    # rembg's DisSession (isnet-anime, isnet-general-use): the mean alone, std 1.
    CutoutFamily.ISNET: Preprocessing(1024, IMAGENET_MEAN, (1.0, 1.0, 1.0)),
    # rembg's U2netSession and U2netpSession.
    CutoutFamily.U2NET: Preprocessing(320, IMAGENET_MEAN, (0.229, 0.224, 0.225)),
}


class OnnxMatting:
    """A loaded model: predicts a subject mask for a picture."""

    def __init__(self, model: bytes, spec: CutoutSpec, threads: int) -> None:
        self.label = spec.label
        self._preprocessing = PREPROCESSING[spec.family]
        self._session = _session(model, spec, threads)
        self._input = self._session.get_inputs()[0].name

    def predict(self, picture: Image.Image) -> Image.Image | None:
        """The subject mask ("L", 0 background .. 255 subject) at the picture's size; None for a constant output.

        A constant output has no subject to show (rembg divides by zero there).
        """
        prediction = self._session.run(None, {self._input: self._tensor(picture)})[0][:, 0, :, :]
        highest, lowest = np.max(prediction), np.min(prediction)
        if not (np.isfinite(highest) and np.isfinite(lowest) and highest > lowest):
            return None
        normalised = np.squeeze((prediction - lowest) / (highest - lowest))
        mask = Image.fromarray((normalised.clip(0, 1) * 255).astype(np.uint8))
        return mask.resize(picture.size, Image.Resampling.LANCZOS)

    def _tensor(self, picture: Image.Image) -> np.ndarray:
        size, mean, std = self._preprocessing.size, self._preprocessing.mean, self._preprocessing.std
        pixels = np.asarray(picture.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
        scaled = pixels / max(np.max(pixels), _SMALLEST_MAXIMUM)
        normalised = (scaled - np.array(mean)) / np.array(std)
        return np.expand_dims(normalised.transpose((2, 0, 1)), 0).astype(np.float32)


def _session(model: bytes, spec: CutoutSpec, threads: int) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # The arena keeps its buffers from one image to the next: without it every ISNet run takes 0.5-0.7 GiB of fresh
    # pages from the kernel again, about 0.4 s of CPU per image (12 %); with it the cutout step peaks about 0.14 GiB
    # higher (benchmarks/bench_cutout.py, docs/cutout.md). Memory patterns stay off: they add another 0.5 GiB of
    # peak (1.85 GiB with both on a 1024 x 1536 image) and save no CPU.
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # errors only: warnings about unused initialisers are not ours to act on
    try:
        session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own unexported exception types for a bad file
        raise ModelUnusable(f"cutout model {spec.label}: onnxruntime cannot load it: {error}") from None
    _check_signature(session, spec)
    return session


def _check_signature(session: onnxruntime.InferenceSession, spec: CutoutSpec) -> None:
    """Refuse a model whose input or first output does not have the family's shape (a wrong family or file)."""
    size = PREPROCESSING[spec.family].size
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected_input = [1, 3, size, size]
    if len(inputs) != 1 or not _shape_fits(inputs[0].shape, expected_input):
        shapes = [item.shape for item in inputs]
        raise ModelUnusable(
            f"cutout model {spec.label}: inputs {shapes} do not fit family {spec.family.value} (1x3x{size}x{size})"
        )
    if not outputs or len(outputs[0].shape) != 4:
        raise ModelUnusable(f"cutout model {spec.label}: its first output is not a 4-dimensional mask")


def _shape_fits(shape: list[int | str | None], expected: list[int]) -> bool:
    # A named (symbolic) dimension takes whatever is fed.
    return len(shape) == len(expected) and all(
        not isinstance(dimension, int) or dimension == wanted for dimension, wanted in zip(shape, expected, strict=True)
    )

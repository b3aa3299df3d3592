"""Tiny background-removal models with a family's real signature and a mask the tests can predict.

Nothing is downloaded: the models are built here with the onnx package's helper API. `flat_background_model` marks
as subject every pixel whose colour differs from a flat background colour: it undoes the family's normalisation
(value / image maximum - mean) / std, so its `background` is given as an 8-bit colour relative to an image whose
brightest channel value is 255 (a white background, or any picture holding a 255 somewhere).
"""

from __future__ import annotations

import hashlib

import onnx
from onnx import TensorProto, helper, numpy_helper

from image_pipeline.options import CutoutFamily, CutoutSpec

# (input size, mean, std) as rembg's sessions normalise for each family.
FAMILIES = {
    CutoutFamily.ISNET: (1024, (0.485, 0.456, 0.406), (1.0, 1.0, 1.0)),
    CutoutFamily.U2NET: (320, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
# A pixel is subject when its channels differ from the background's by more than this much in all (0..3 scale).
THRESHOLD = 0.1
# How steeply the output goes from 0 to 1 past the threshold: a 1/1000 step further is already fully subject.
GAIN = 1000.0
# rembg reads the first output; U²-Net's real files have seven (the fused mask first), so ours have two.
U2NET_OUTPUTS = 2
OPSET = 17
# What onnxruntime releases of the last years all read.
IR_VERSION = 9


def flat_background_model(family: CutoutFamily, background: tuple[int, int, int] = (255, 255, 255)) -> bytes:
    """A model: 1 where a pixel's colour differs from `background`, else 0 (first output, channel 0)."""
    size, mean, std = FAMILIES[family]
    nodes = [
        helper.make_node("Mul", ["input", "std"], ["scaled"]),
        helper.make_node("Add", ["scaled", "mean"], ["relative"]),  # value / image maximum, 0..1
        helper.make_node("Sub", ["relative", "background"], ["difference"]),
        helper.make_node("Abs", ["difference"], ["distance"]),
        helper.make_node("ReduceSum", ["distance", "channels"], ["total"], keepdims=1),
        helper.make_node("Sub", ["total", "threshold"], ["excess"]),
        helper.make_node("Mul", ["excess", "gain"], ["steep"]),
        helper.make_node("Clip", ["steep", "zero", "one"], ["mask"]),
    ]
    initialisers = {
        "std": _channels(std),
        "mean": _channels(mean),
        "background": _channels(tuple(value / 255 for value in background)),
        "channels": numpy_helper.from_array(_int64([1]), "channels"),
        "threshold": _scalar(THRESHOLD),
        "gain": _scalar(GAIN),
        "zero": _scalar(0.0),
        "one": _scalar(1.0),
    }
    return _model(family, size, nodes, initialisers)


def graded_model(family: CutoutFamily, weights: tuple[float, float, float] = (0.5, -0.3, 0.8)) -> bytes:
    """A model whose output is a weighted sum of the normalised channels: masks with every level, for parity checks."""
    size, _, _ = FAMILIES[family]
    nodes = [
        helper.make_node("Mul", ["input", "weights"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "channels"], ["mask"], keepdims=1),
    ]
    initialisers = {"weights": _channels(weights), "channels": numpy_helper.from_array(_int64([1]), "channels")}
    return _model(family, size, nodes, initialisers)


def constant_model(family: CutoutFamily, value: float = 0.5) -> bytes:
    """A model whose output is `value` everywhere, whatever the picture (rembg would divide by zero)."""
    size, _, _ = FAMILIES[family]
    nodes = [
        helper.make_node("ReduceSum", ["input", "channels"], ["total"], keepdims=1),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "value"], ["mask"]),
    ]
    initialisers = {
        "channels": numpy_helper.from_array(_int64([1]), "channels"),
        "zero": _scalar(0.0),
        "value": _scalar(value),
    }
    return _model(family, size, nodes, initialisers)


def spec_for(model: bytes, family: CutoutFamily, trim: bool = False) -> CutoutSpec:
    """The spec naming `model` with its right checksum."""
    return CutoutSpec(family, "models/test.onnx", hashlib.sha256(model).hexdigest(), trim)


def _model(family: CutoutFamily, size: int, nodes: list, initialisers: dict) -> bytes:
    outputs = ["mask"]
    if family is CutoutFamily.U2NET:
        for index in range(1, U2NET_OUTPUTS):
            nodes = [*nodes, helper.make_node("Identity", ["mask"], [f"side{index}"])]
            outputs.append(f"side{index}")
    graph = helper.make_graph(
        nodes,
        f"tiny-{family.value}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, size, size]) for name in outputs],
        initializer=[_named(tensor, name) for name, tensor in initialisers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _channels(values: tuple[float, ...]) -> TensorProto:
    return helper.make_tensor("channels", TensorProto.FLOAT, [1, 3, 1, 1], list(values))


def _scalar(value: float) -> TensorProto:
    return helper.make_tensor("scalar", TensorProto.FLOAT, [], [value])


def _int64(values: list[int]):
    import numpy as np

    return np.array(values, dtype=np.int64)


def _named(tensor: TensorProto, name: str) -> TensorProto:
    tensor.name = name
    return tensor

"""Per-layer work and size figures: multiply-accumulates and parameter counts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autotune.model.graph import Graph, Layer, Tensor


def _shape(t: Tensor | None) -> tuple[int, ...]:
    return t.shape if t is not None else ()


def _conv_macs(g: Graph, layer: Layer) -> int:
    out = g.tensors[layer.outputs[0]].shape  # N H W Cout
    w = _shape(g.tensor(layer.inputs[1]))  # Cout KH KW Cin/groups
    return int(np.prod(out, dtype=np.int64)) * w[1] * w[2] * w[3]


def _depthwise_macs(g: Graph, layer: Layer) -> int:
    out = g.tensors[layer.outputs[0]].shape
    w = _shape(g.tensor(layer.inputs[1]))  # 1 KH KW Cout
    return int(np.prod(out, dtype=np.int64)) * w[1] * w[2]


def _fc_macs(g: Graph, layer: Layer) -> int:
    w = _shape(g.tensor(layer.inputs[1]))  # Out In
    x = g.tensors[layer.inputs[0]]
    batches = x.size // w[1] if w[1] else 0
    return batches * w[0] * w[1]


def _transpose_conv_macs(g: Graph, layer: Layer) -> int:
    w = _shape(g.tensor(layer.inputs[1]))  # Cout KH KW Cin
    x = g.tensors[layer.inputs[2]]
    return x.size * w[0] * w[1] * w[2]


def _lstm_macs(g: Graph, layer: Layer) -> int:
    x = g.tensors[layer.inputs[0]]
    w_in = _shape(g.tensor(layer.inputs[2]))  # input-to-forget: units x features (also CIFG)
    units, features = w_in[0], w_in[1]
    steps_times_batch = x.size // features if features else 0
    return 4 * units * (features + units) * steps_times_batch


def _svdf_macs(g: Graph, layer: Layer) -> int:
    x = g.tensors[layer.inputs[0]]
    feat = _shape(g.tensor(layer.inputs[1]))  # filters x input
    time = _shape(g.tensor(layer.inputs[2]))  # filters x memory
    batches = x.shape[0] if x.shape else 1
    return batches * feat[0] * (feat[1] + time[1])


MAC_COUNTERS: dict[str, Callable[[Graph, Layer], int]] = {
    "CONV_2D": _conv_macs,
    "DEPTHWISE_CONV_2D": _depthwise_macs,
    "FULLY_CONNECTED": _fc_macs,
    "TRANSPOSE_CONV": _transpose_conv_macs,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm_macs,
    "SVDF": _svdf_macs,
}


def layer_macs(graph: Graph, layer: Layer) -> int:
    """Multiply-accumulates of one invocation; 0 for ops without a weight product."""
    counter = MAC_COUNTERS.get(layer.op)
    return int(counter(graph, layer)) if counter else 0


def inference_work(graph: Graph) -> tuple[int, int]:
    """(MACs, activation elements written) of one inference: what the instructions of a
    whole-model run grow with."""
    macs = sum(layer_macs(graph, layer) for layer in graph.layers)
    elements = sum(graph.tensors[t].size for layer in graph.layers for t in layer.outputs)
    return macs, elements


def is_parameter(t: Tensor | None) -> bool:
    """Weights and biases: constants that carry quantization or are floating point.

    Shape, axis and padding operands (plain int32 constants) are not parameters.
    """
    return t is not None and t.is_constant and (t.quant is not None or t.dtype.startswith("float"))


def layer_params(graph: Graph, layer: Layer) -> int:
    return sum(t.size for t in graph.layer_inputs(layer) if is_parameter(t))


def parameter_tensors(graph: Graph) -> list[Tensor]:
    """Every parameter tensor once, even where layers share it."""
    seen: dict[int, Tensor] = {}
    for layer in graph.layers:
        for t in graph.layer_inputs(layer):
            if is_parameter(t):
                seen[t.index] = t  # type: ignore[union-attr]
    return list(seen.values())

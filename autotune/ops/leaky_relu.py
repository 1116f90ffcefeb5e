"""LEAKY_RELU, int8, as TFLM computes it (leaky_relu_common.cc, QuantizeLeakyRelu).

Prepare: alpha_multiplier = input_scale * alpha / output_scale and identity =
input_scale / output_scale, each computed in float and quantized with
QuantizeMultiplier. Eval: x - input_zp rescaled by the identity multiplier when it is
non-negative and by the alpha multiplier otherwise (MultiplyByQuantizedMultiplier),
plus output_zp, clamped to int8. The C is a 256-entry table computed by this kernel.
"""

from __future__ import annotations

import numpy as np

from autotune.emit.layer_code import LayerCode
from autotune.emit.table import table_layer
from autotune.model.graph import Graph, Layer
from autotune.opdef import Op
from autotune.reference.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from autotune.reference.quant_params import per_tensor_scale, require_quantized
from autotune.reference.registry import OpContext, require_dtypes


def check(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    if x is None:
        return "input is required"
    reason = (
        require_dtypes(x, y)
        or require_quantized(x, y)
        or per_tensor_scale(x)
        or per_tensor_scale(y)
    )
    if reason:
        return reason
    if tuple(x.shape) != tuple(y.shape):
        return f"input shape {list(x.shape)} differs from the output's {list(y.shape)}"
    return None


def params(ctx: OpContext) -> tuple[int, int, int, int, int, int]:
    """(input_zp, output_zp, identity multiplier, shift, alpha multiplier, shift)."""
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    alpha = np.float32(ctx.options.get("alpha", 0.2))
    sx, sy = np.float32(x.scale), np.float32(y.scale)
    alpha_mult, alpha_shift = quantize_multiplier(float(sx * alpha / sy))
    identity_mult, identity_shift = quantize_multiplier(float(sx / sy))
    return x.zero_point, y.zero_point, identity_mult, identity_shift, alpha_mult, alpha_shift


def kernel(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    in_zp, out_zp, id_mult, id_shift, a_mult, a_shift = params(ctx)
    v = x.astype(np.int64) - in_zp
    scaled = np.where(
        v >= 0,
        multiply_by_quantized_multiplier(v, id_mult, id_shift),
        multiply_by_quantized_multiplier(v, a_mult, a_shift),
    )
    return [np.clip(scaled + out_zp, -128, 127).astype(np.int8)]


def emit(graph: Graph, layer: Layer, function: str) -> LayerCode:
    return table_layer(graph, layer, function, kernel, check, lambda ctx: f"alpha {_alpha(ctx):g}")


def _alpha(ctx: OpContext) -> float:
    return float(ctx.options.get("alpha", 0.2))


OPS = [Op("LEAKY_RELU", kernel, check, emitter=emit, description="int8 leaky ReLU")]

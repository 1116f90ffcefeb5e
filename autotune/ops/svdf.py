"""SVDF with int8 input and output and an int16 state, as tflite-micro computes it
(svdf_common.cc, EvalIntegerSvdfReference).

Each call shifts the state (per batch, filters x memory int16 values) one step left,
writes each filter's feature product (sum of w * (x - input_zp), rescaled by
in*feature/state scales, saturated to int16) into the newest slot, takes each filter's
dot product with its time weights over the memory, sums `rank` filters per unit, adds
the bias, rescales by state*time/output scales, adds the output zero point, clamps.
"""

from __future__ import annotations

import numpy as np

from autotune.model.graph import Tensor
from autotune.opdef import Op
from autotune.reference.fixedpoint import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    wrap_int32,
)
from autotune.reference.quant_params import require_quantized
from autotune.reference.registry import OpContext


def _tensors(ctx: OpContext) -> tuple[Tensor | None, ...]:
    """(input, weights_feature, weights_time, bias, state, output)."""
    return (*(ctx.input(i) for i in range(5)), ctx.output(0))


def scales(x: Tensor, wf: Tensor, wt: Tensor, state: Tensor, y: Tensor) -> tuple[int, ...]:
    f = float
    s1 = f(np.float32(x.scale)) * f(np.float32(wf.scale)) / f(np.float32(state.scale))
    s2 = f(np.float32(state.scale)) * f(np.float32(wt.scale)) / f(np.float32(y.scale))
    return (*quantize_multiplier(s1), *quantize_multiplier(s2))


def check(ctx: OpContext) -> str | None:
    x, wf, wt, bias, state, y = _tensors(ctx)
    if x is None or wf is None or wt is None or state is None:
        return "input, feature and time weights and the state are required"
    want = {"input": (x, "int8"), "weights_feature": (wf, "int8"), "weights_time": (wt, "int16"),
            "state": (state, "int16"), "output": (y, "int8")}  # fmt: skip
    for name, (t, dtype) in want.items():
        if t.dtype != dtype:
            return f"{name} '{t.name}' is {t.dtype}; supported: {dtype}"
    reason = require_quantized(x, wf, wt, state, y)
    if reason:
        return reason
    if wf.data is None or wt.data is None or (bias is not None and bias.data is None):
        return "weights and bias must be constant"
    if not state.variable:
        return f"state '{state.name}' must be a variable tensor"
    if len(x.shape) != 2 or len(wf.shape) != 2 or len(wt.shape) != 2:
        return "input and weights must be 2-D"
    batch, n_input = x.shape
    n_filter, n_memory = wt.shape
    rank = ctx.options.get("rank", 1)
    if wf.shape != (n_filter, n_input) or not isinstance(rank, int) or rank < 1:
        return "weights_feature must be filters x input, rank at least 1"
    if n_filter % rank:
        return f"{n_filter} filters are not a multiple of rank {rank}"
    units = n_filter // rank
    if state.size != batch * n_filter * n_memory or y.shape != (batch, units):
        return "state or output shape does not match the weights"
    if bias is None:  # measured: the tflite-micro wheel aborts on an int8 SVDF without one
        return "bias is required"
    if bias.dtype != "int32" or bias.size != units:
        return f"bias must be int32 with {units} values"
    if ctx.options.get("fused_activation_function", "NONE") not in ("NONE", "RELU"):
        return f"fused activation {ctx.options.get('fused_activation_function')}"
    return None


def kernel(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, wf, wt, bias, _ = (*args, None, None)[:5]
    x_t, wf_t, wt_t, _, state_t, y = _tensors(ctx)
    assert x is not None and wf is not None and wt is not None and state_t is not None
    assert x_t is not None and wf_t is not None and wt_t is not None
    m1, s1, m2, s2 = scales(x_t, wf_t, wt_t, state_t, y)
    batch = x.shape[0]
    n_filter, n_memory = wt.shape
    rank = int(ctx.options.get("rank", 1))
    state = ctx.state[state_t.index].reshape(batch, n_filter, n_memory).astype(np.int64)
    state = np.concatenate([state.reshape(batch, -1)[:, 1:], np.zeros((batch, 1), np.int64)], 1)
    state = state.reshape(batch, n_filter, n_memory)
    feature = (x.astype(np.int64) - x_t.zero_point) @ wf.astype(np.int64).T  # (batch, filters)
    feature = np.clip(multiply_by_quantized_multiplier(feature, m1, s1), -32768, 32767)
    state[:, :, -1] = feature
    ctx.state[state_t.index] = state.astype(np.int16).reshape(state_t.shape)
    per_filter = wrap_int32((state * wt.astype(np.int64)).sum(axis=2))  # int32 sums in TFLM
    units = per_filter.reshape(batch, n_filter // rank, rank).sum(axis=2)
    if bias is not None:
        units = units + bias.astype(np.int64).reshape(-1)
    units = wrap_int32(units)
    out = multiply_by_quantized_multiplier(units, m2, s2) + y.zero_point
    return [np.clip(out, -128, 127).astype(np.int8)]


OPS = [Op("SVDF", kernel, check, description="int8 SVDF with int16 state (reference only)")]

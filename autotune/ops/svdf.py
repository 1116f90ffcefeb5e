"""SVDF with int8 input and output, as tflite-micro computes it (svdf_common.cc,
EvalIntegerSvdfReference<T>), for both of its state types: T is int16 (int16 time
weights and state) or int8 (int8 time weights and state, TFLM's keyword benchmark).

Each call shifts the state (per batch, filters x memory values of T, one flat buffer)
one step left, writes each filter's feature product (sum of w * (x - input_zp),
rescaled by in*feature/state scales, saturated to T, plus the state zero point, narrowed
to T with a wrap: the tflite_micro wheel's order, which newer TFLM sources changed to a
clamp after the zero point) into the newest slot, takes each filter's dot product of its time weights with
(state - state_zp) over the memory (int32 sums), sums `rank` filters per unit, adds the
bias, rescales by state*time/output scales, adds the output zero point, clamps to int8.
The fused activation is not applied: TFLM's integer SVDF ignores it.

The C is one function that updates the state buffer the library keeps across calls
(and resets to the state's zero point): kernels/ops/svdf.c.j2 untuned, and the tuned
template kernels/svdf.py (whose baseline is that same file) from the spec built here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from autotune.emit.layer_code import LayerCode, c_type, layer_io
from autotune.emit.ops.shape import checked_context, const_array, render
from autotune.model.graph import Graph, Layer, Tensor
from autotune.opdef import Op
from autotune.reference.fixedpoint import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    wrap_int32,
)
from autotune.reference.quant_params import require_quantized
from autotune.reference.registry import OpContext

if TYPE_CHECKING:  # tune.spec installs the built-in ops, this module among them
    from autotune.tune.spec import KernelSpec

# weights_time type -> the state type it runs with (TFLM reads the state as that type).
STATE_TYPES = {"int16": "int16", "int8": "int8"}
BIAS_SCALE_TOLERANCE = 1e-5  # TFLM's Prepare: |bias - state * time scale| below this


def wrap(values: np.ndarray, dtype: str) -> np.ndarray:
    """Two's-complement narrowing, as C's conversion to int8_t / int16_t does on targets."""
    bits = 8 * np.dtype(dtype).itemsize
    return ((values.astype(np.int64) + (1 << (bits - 1))) % (1 << bits)) - (1 << (bits - 1))


def _tensors(ctx: OpContext) -> tuple[Tensor | None, ...]:
    """(input, weights_feature, weights_time, bias, state, output)."""
    return (*(ctx.input(i) for i in range(5)), ctx.output(0))


def scales(x: Tensor, wf: Tensor, wt: Tensor, state: Tensor, y: Tensor) -> tuple[int, ...]:
    """(m1, s1, m2, s2): TFLM computes each effective scale in float, then widens it."""
    f32 = np.float32
    s1 = float(f32(x.scale) * f32(wf.scale) / f32(state.scale))
    s2 = float(f32(state.scale) * f32(wt.scale) / f32(y.scale))
    return (*quantize_multiplier(s1), *quantize_multiplier(s2))


def check(ctx: OpContext) -> str | None:
    x, wf, wt, bias, state, y = _tensors(ctx)
    if x is None or wf is None or wt is None or state is None:
        return "input, feature and time weights and the state are required"
    for name, t, dtypes in (
        ("input", x, ("int8",)),
        ("weights_feature", wf, ("int8",)),
        ("weights_time", wt, tuple(STATE_TYPES)),
        ("output", y, ("int8",)),
    ):
        if t.dtype not in dtypes:
            return f"{name} '{t.name}' is {t.dtype}; supported: {', '.join(dtypes)}"
    if state.dtype != STATE_TYPES[wt.dtype]:
        return f"state '{state.name}' is {state.dtype}; with {wt.dtype} time weights: {wt.dtype}"
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
    if n_input * 255 * 128 >= 1 << 31:
        return f"an input of {n_input} can overflow TFLM's int32 feature sums"
    units = n_filter // rank
    if state.size != batch * n_filter * n_memory or y.shape != (batch, units):
        return "state or output shape does not match the weights"
    if bias is None:  # measured: the tflite-micro wheel aborts on an int8 SVDF without one
        return "bias is required"
    if bias.dtype != "int32" or bias.size != units:
        return f"bias must be int32 with {units} values"
    want = float(np.float32(state.scale) * np.float32(wt.scale))
    bias_scale = bias.scale if bias.quant is not None else 0.0
    if abs(bias_scale - want) >= BIAS_SCALE_TOLERANCE:
        return f"bias scale {bias_scale:g} is not state scale x time weights scale ({want:g})"
    if ctx.options.get("fused_activation_function", "NONE") not in ("NONE", "RELU"):
        return f"fused activation {ctx.options.get('fused_activation_function')}"
    return None


def kernel(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, wf, wt, bias, _ = (*args, None, None)[:5]
    x_t, wf_t, wt_t, _, state_t, y = _tensors(ctx)
    assert x is not None and wf is not None and wt is not None and state_t is not None
    assert x_t is not None and wf_t is not None and wt_t is not None
    m1, s1, m2, s2 = scales(x_t, wf_t, wt_t, state_t, y)
    info = np.iinfo(np.dtype(state_t.dtype))
    batch = x.shape[0]
    n_filter, n_memory = wt.shape
    rank = int(ctx.options.get("rank", 1))
    flat = ctx.state[state_t.index].reshape(-1).astype(np.int64)
    # The whole buffer moves one element left; every newest slot is written below.
    state = np.concatenate([flat[1:], flat[-1:]]).reshape(batch, n_filter, n_memory)
    feature = (x.astype(np.int64) - x_t.zero_point) @ wf.astype(np.int64).T  # (batch, filters)
    # Saturated to T, then the zero point added and narrowed to T with a wrap: the wheel's
    # order (measured: a state zero point near the top of int8 wraps there).
    feature = np.clip(multiply_by_quantized_multiplier(feature, m1, s1), info.min, info.max)
    state[:, :, -1] = wrap(feature + state_t.zero_point, state_t.dtype)
    ctx.state[state_t.index] = state.astype(state_t.dtype).reshape(state_t.shape)
    centered = state - state_t.zero_point
    per_filter = wrap_int32((centered * wt.astype(np.int64)).sum(axis=2))  # int32 sums
    units = per_filter.reshape(batch, n_filter // rank, rank).sum(axis=2)
    if bias is not None:
        units = units + bias.astype(np.int64).reshape(-1)
    units = wrap_int32(units)
    out = multiply_by_quantized_multiplier(units, m2, s2) + y.zero_point
    return [np.clip(out, -128, 127).astype(np.int8)]


def spec(ctx: OpContext) -> KernelSpec:
    """The layer as the tuned template sees it: shapes and state type key the workload."""
    from autotune.tune.spec import KernelSpec
    x, wf, wt, bias, state, y = _tensors(ctx)
    assert x is not None and wf is not None and wt is not None and state is not None
    assert bias is not None and wf.data is not None and wt.data is not None
    assert bias.data is not None
    m1, s1, m2, s2 = scales(x, wf, wt, state, y)
    batches, n_input = x.shape
    filters, memory = wt.shape
    rank = int(ctx.options.get("rank", 1))
    reset = state.zero_point if state.dtype == "int8" else 0  # TFLM's ResetVariableTensors
    return KernelSpec(
        op="SVDF",
        layer_index=ctx.layer.index,
        dims={
            "batches": batches,
            "inputs": n_input,
            "filters": filters,
            "memory": memory,
            "rank": rank,
            "units": filters // rank,
        },
        flags={"state": state.dtype},
        consts={
            "weights_feature": wf.data.astype(np.int8).reshape(filters, n_input),
            "weights_time": wt.data.astype(state.dtype).reshape(filters, memory),
            "bias": bias.data.astype(np.int32).reshape(-1),
        },
        scalars={
            "input_zp": x.zero_point,
            "state_zp": state.zero_point,
            "output_zp": y.zero_point,
            "feature_mult": m1,
            "feature_shift": s1,
            "output_mult": m2,
            "output_shift": s2,
        },
        state=[(state.dtype, state.size, reset)],
        io_sizes=([x.size], y.size),
    )


def c_context(k: KernelSpec) -> dict[str, Any]:
    """What kernels/ops/svdf.c.j2 needs beyond its header and signature (whose parameters
    are in0, out0, state0, scratch), from the layer's spec."""
    d, sc, dtype = k.dims, k.scalars, str(k.flags["state"])
    info = np.iinfo(np.dtype(dtype))
    ctype = c_type(dtype)
    arrays = [
        const_array("int8", "c0", k.consts["weights_feature"]),
        const_array(dtype, "c1", k.consts["weights_time"]),
        const_array("int32", "c2", k.consts["bias"]),
    ]
    return {
        "arrays": arrays,
        "src": "in0",
        "dst": "out0",
        "state": "state0",
        "weights_feature": "c0",
        "weights_time": "c1",
        "bias": "c2",
        "state_type": ctype,
        "state_bits": 8 * np.dtype(dtype).itemsize,
        "state_min": int(info.min),
        "state_max": int(info.max),
        **d,
        **sc,
    }


def describe(k: KernelSpec) -> str:
    d = k.dims
    return (
        f"{d['batches']} x {d['inputs']} -> {d['units']} units, {d['filters']} filters "
        f"(rank {d['rank']}) x {d['memory']} steps, {k.flags['state']} time weights and state"
    )


def emit(graph: Graph, layer: Layer, function: str) -> LayerCode:
    k = spec(checked_context(graph, layer))
    ctx = c_context(k)
    signature = f"void {function}(const int8_t *in0, int8_t *out0, {ctx['state_type']} *state0, void *scratch)"
    source = render("svdf.c.j2", graph, layer, describe(k), signature=signature, **ctx)
    inputs, outputs, state = layer_io(graph, layer)
    return LayerCode(function, source, inputs, outputs, state, description=describe(k))


OPS = [
    Op("SVDF", kernel, check, emitter=emit, spec=spec, description="int8 SVDF, int8/int16 state")
]

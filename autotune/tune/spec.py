"""KernelSpec: one layer as a kernel sees it, split into structure and values.

The structure (op, shapes, strides, padding, quantization layout) is the
workload: identical workloads are tuned once and key the results DB. The
values (weights, bias, multipliers, offsets) are only used to render and
verify a variant, never to key the cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autotune.model.graph import Graph, Layer
from autotune.opdef import SPEC_BUILDERS
from autotune.reference import ops as _ops  # noqa: F401  (registers the reference kernels)
from autotune.reference.registry import REGISTRY, OpContext


@dataclass
class KernelSpec:
    op: str
    layer_index: int
    dims: dict[str, int]
    flags: dict[str, Any] = field(default_factory=dict)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    scalars: dict[str, int] = field(default_factory=dict)
    # Variable tensors the kernel reads and writes (LSTM state): (dtype, elements, reset value),
    # passed after the output, in this order.
    state: list[tuple[str, int, int]] = field(default_factory=list)
    # Set for ops whose I/O sizes the per-op properties below do not know (bytes).
    io_sizes: tuple[list[int], int] | None = None

    def workload(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "dims": dict(sorted(self.dims.items())),
            "flags": dict(sorted(self.flags.items())),
        }

    def workload_key(self) -> str:
        blob = json.dumps(self.workload(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def values_hash(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.consts):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.consts[name]).tobytes())
        h.update(json.dumps(self.scalars, sort_keys=True).encode())
        return h.hexdigest()[:24]

    def describe(self) -> str:
        d = self.dims
        if self.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            return (
                f"{d['in_h']}x{d['in_w']}x{d['in_c']} -> {d['out_h']}x{d['out_w']}x{d['out_c']}, "
                f"kernel {d['k_h']}x{d['k_w']}, stride {d['stride_h']}x{d['stride_w']}, "
                f"dilation {d['dil_h']}x{d['dil_w']}, pad {d['pad_top']},{d['pad_left']}"
            )
        if self.op == "FULLY_CONNECTED":
            return f"{d['batches']}x{d['depth']} -> {d['units']} units"
        if self.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            return (
                f"{d['in_h']}x{d['in_w']}x{d['channels']} -> {d['out_h']}x{d['out_w']}, "
                f"window {d['k_h']}x{d['k_w']}, stride {d['stride_h']}x{d['stride_w']}"
            )
        if self.op == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            return (
                f"{d['steps']} steps x {d['batches']} batch, {d['features']} features -> "
                f"{d['units']} units, {'time' if d['time_major'] else 'batch'}-major"
            )
        if self.op == "SVDF":
            return (
                f"{d['batches']}x{d['inputs']} -> {d['units']} units, {d['filters']} filters "
                f"x {d['memory']} steps, {self.flags['state']} state"
            )
        return f"{d.get('size', 0)} elements"

    @property
    def input_sizes(self) -> list[int]:
        """Bytes of each runtime input, in call order."""
        if self.io_sizes is not None:
            return list(self.io_sizes[0])
        d = self.dims
        if self.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            return [d["batches"] * d["in_h"] * d["in_w"] * d["in_c"]]
        if self.op == "FULLY_CONNECTED":
            return [d["batches"] * d["depth"]]
        if self.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            return [d["batches"] * d["in_h"] * d["in_w"] * d["channels"]]
        return [d["size"], d["size"]]

    @property
    def output_size(self) -> int:
        if self.io_sizes is not None:
            return self.io_sizes[1]
        d = self.dims
        if self.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            return d["batches"] * d["out_h"] * d["out_w"] * d["out_c"]
        if self.op == "FULLY_CONNECTED":
            return d["batches"] * d["units"]
        if self.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            return d["batches"] * d["out_h"] * d["out_w"] * d["channels"]
        return d["size"]


def _conv(ctx: OpContext, depthwise: bool) -> KernelSpec:
    from autotune.reference.ops import conv

    x, w, bias, y = ctx.input(0), ctx.input(1), ctx.input(2), ctx.output(0)
    assert x is not None and w is not None and w.data is not None and w.quant is not None
    out_c = y.shape[3]
    geo = conv.conv_geometry(ctx, np.zeros(x.shape, np.int8), (w.shape[1], w.shape[2]), y)
    mult, shift, lo, hi = conv.requant_params(ctx, out_c)
    dims = {
        "batches": x.shape[0],
        "in_h": x.shape[1],
        "in_w": x.shape[2],
        "in_c": x.shape[3],
        "out_h": y.shape[1],
        "out_w": y.shape[2],
        "out_c": out_c,
        "k_h": w.shape[1],
        "k_w": w.shape[2],
        "stride_h": geo["stride_hw"][0],
        "stride_w": geo["stride_hw"][1],
        "dil_h": geo["dilation_hw"][0],
        "dil_w": geo["dilation_hw"][1],
        "pad_top": geo["pad_hw"][0],
        "pad_left": geo["pad_hw"][1],
    }
    if depthwise:
        dims["depth_multiplier"] = out_c // x.shape[3]
    else:
        dims["groups"] = x.shape[3] // w.shape[3]
    b = (
        np.zeros(out_c, np.int32)
        if bias is None or bias.data is None
        else bias.data.astype(np.int32).reshape(-1)
    )
    return KernelSpec(
        op=ctx.layer.op,
        layer_index=ctx.layer.index,
        dims=dims,
        flags={"per_channel": bool(w.quant.per_channel)},
        consts={
            "weights": w.data.astype(np.int8),
            "bias": b,
            "mult": np.broadcast_to(np.asarray(mult, np.int64), (out_c,)).astype(np.int32),
            "shift": np.broadcast_to(np.asarray(shift, np.int64), (out_c,)).astype(np.int32),
        },
        scalars={
            "input_offset": -x.zero_point,
            "output_offset": y.zero_point,
            "act_min": lo,
            "act_max": hi,
        },
    )


def _fully_connected(ctx: OpContext) -> KernelSpec:
    from autotune.reference.fixedpoint import quantize_multiplier
    from autotune.reference.quant_params import activation_range, per_channel_multipliers

    x, w, bias, y = ctx.input(0), ctx.input(1), ctx.input(2), ctx.output(0)
    assert x is not None and w is not None and w.data is not None and w.quant is not None
    units, depth = w.shape
    if w.quant.per_channel:
        mult, shift = per_channel_multipliers(x.scale, w.quant.scale, y.scale, units)
        filter_offset = 0
    else:
        # As the reference: float32 product of the scales, then the division in double.
        product = float(np.float32(x.scale) * np.float32(w.scale))
        m, sh = quantize_multiplier(product / float(np.float32(y.scale)))
        mult, shift = np.full(units, m), np.full(units, sh)
        filter_offset = -w.zero_point
    lo, hi = activation_range(ctx.options.get("fused_activation_function", "NONE"), y)
    b = (
        np.zeros(units, np.int32)
        if bias is None or bias.data is None
        else bias.data.astype(np.int32).reshape(-1)
    )
    return KernelSpec(
        op="FULLY_CONNECTED",
        layer_index=ctx.layer.index,
        dims={"batches": x.size // depth, "depth": depth, "units": units},
        flags={"per_channel": bool(w.quant.per_channel), "filter_offset": filter_offset != 0},
        consts={
            "weights": w.data.astype(np.int8),
            "bias": b,
            "mult": np.asarray(mult, np.int64).astype(np.int32),
            "shift": np.asarray(shift, np.int64).astype(np.int32),
        },
        scalars={
            "input_offset": -x.zero_point,
            "filter_offset": filter_offset,
            "output_offset": y.zero_point,
            "act_min": lo,
            "act_max": hi,
        },
    )


def _pool(ctx: OpContext) -> KernelSpec:
    from autotune.reference.ops.conv import window_padding
    from autotune.reference.quant_params import activation_range

    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    o = ctx.options
    kh, kw = int(o.get("filter_height", 1)), int(o.get("filter_width", 1))
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    padding = o.get("padding", "SAME")
    lo, hi = activation_range(o.get("fused_activation_function", "NONE"), y)
    return KernelSpec(
        op=ctx.layer.op,
        layer_index=ctx.layer.index,
        dims={
            "batches": x.shape[0],
            "in_h": x.shape[1],
            "in_w": x.shape[2],
            "channels": x.shape[3],
            "out_h": y.shape[1],
            "out_w": y.shape[2],
            "k_h": kh,
            "k_w": kw,
            "stride_h": sh,
            "stride_w": sw,
            "pad_top": window_padding(padding, x.shape[1], kh, sh, 1),
            "pad_left": window_padding(padding, x.shape[2], kw, sw, 1),
        },
        scalars={"act_min": lo, "act_max": hi},
    )


def _add(ctx: OpContext) -> KernelSpec | None:
    from autotune.reference.ops.elementwise import add_params
    from autotune.reference.quant_params import activation_range

    a, b, y = ctx.input(0), ctx.input(1), ctx.output(0)
    assert a is not None and b is not None
    if a.shape != b.shape:  # broadcasting adds stay with the reference kernel
        return None
    params = add_params(a, b, y)
    lo, hi = activation_range(ctx.options.get("fused_activation_function", "NONE"), y)
    return KernelSpec(
        op="ADD",
        layer_index=ctx.layer.index,
        dims={"size": y.size},
        scalars={**params, "act_min": lo, "act_max": hi},
    )


def _lstm(ctx: OpContext) -> KernelSpec | None:
    """The integer LSTM as TFLM's Prepare sees it; None for variants the templates leave
    to the op emitter (weight zero points, a cell scale whose tanh rescaling overflows
    int32, accumulators that could leave int32)."""
    from autotune.reference.ops.activations import int16_input_scaling
    from autotune.reference.ops.lstm import (
        BIASES,
        INPUT_WEIGHTS,
        RECURRENT_WEIGHTS,
        cell_tanh_params,
        effective_bias,
        prepare_lstm,
    )

    p = prepare_lstm(ctx)
    if any(p.input_weight_zero_points) or any(p.recurrent_weight_zero_points):
        return None
    tanh_mult, tanh_shift = int16_input_scaling(*cell_tanh_params(p.cell_scale_power))
    rounding = (1 << (tanh_shift - 1)) if tanh_shift > 0 else 0
    if not all(-(2**31) <= x * tanh_mult + rounding < 2**31 for x in (-32768, 32767)):
        return None

    def data(i: int) -> np.ndarray:
        t = ctx.input(i)
        assert t is not None and t.data is not None
        return t.data

    w_in = np.stack([data(i).reshape(p.units, p.input_size) for i in INPUT_WEIGHTS])
    w_rec = np.stack([data(i).reshape(p.units, p.units) for i in RECURRENT_WEIGHTS])
    bias = np.concatenate([data(i).reshape(p.units).astype(np.int64) for i in BIASES])
    flat_in, flat_rec = w_in.reshape(4 * p.units, -1), w_rec.reshape(4 * p.units, -1)
    # TFLM's effective biases: the zero points folded in (weight zero points are 0 here).
    input_bias = effective_bias(flat_in, bias, p.input_zero_point, 0)
    recurrent_bias = effective_bias(flat_rec, None, p.hidden_zero_point, 0)
    # Every product sum must stay an int32, with the folded bias and with TFLM's offsets
    # added per element (|x - zp| <= 255), since the kernels accumulate in int32.
    for w, b in ((flat_in, input_bias), (flat_rec, recurrent_bias)):
        weight_sum = np.abs(w.astype(np.int64)).sum(axis=1)
        bound = np.maximum(np.abs(b).astype(np.int64) + 128 * weight_sum, 255 * weight_sum)
        if np.any(bound >= 2**31):
            return None
    rows = p.batch * p.time_steps
    fm, fs = p.forget_cell_multiplier
    im, is_ = p.input_cell_multiplier
    hm, hs = p.hidden_multiplier
    return KernelSpec(
        op="UNIDIRECTIONAL_SEQUENCE_LSTM",
        layer_index=ctx.layer.index,
        dims={
            "batches": p.batch,
            "steps": p.time_steps,
            "features": p.input_size,
            "units": p.units,
            "time_major": int(p.time_major),
        },
        flags={"cell_clip": p.cell_clip > 0},
        consts={
            "input_weights": w_in.astype(np.int8),  # [gate][unit][feature], gates i, f, c, o
            "recurrent_weights": w_rec.astype(np.int8),  # [gate][unit][unit]
            "bias": bias.astype(np.int32),  # [gate * units + unit], as stored
            "input_bias": input_bias.astype(np.int32),  # bias - input_zp * row sum
            "recurrent_bias": recurrent_bias.astype(np.int32),  # -hidden_zp * row sum
            "input_multiplier": p.input_multiplier.astype(np.int32),  # per gate, to Q3.12
            "input_shift": p.input_shift.astype(np.int32),
            "recurrent_multiplier": p.recurrent_multiplier.astype(np.int32),
            "recurrent_shift": p.recurrent_shift.astype(np.int32),
        },
        scalars={
            "input_zero_point": p.input_zero_point,
            "hidden_zero_point": p.hidden_zero_point,
            "cell_scale_power": p.cell_scale_power,
            "cell_clip": p.cell_clip,
            "forget_cell_multiplier": fm,
            "forget_cell_shift": fs,
            "input_cell_multiplier": im,
            "input_cell_shift": is_,
            "hidden_multiplier": hm,
            "hidden_shift": hs,
            "cell_tanh_multiplier": tanh_mult,  # cell -> tanh table input: (x * m + r) >> s
            "cell_tanh_shift": tanh_shift,
        },
        state=[("int8", p.batch * p.units, p.hidden_zero_point), ("int16", p.batch * p.units, 0)],
        io_sizes=([rows * p.input_size], rows * p.units),
    )


SPEC_BUILDERS.update(
    {
        "CONV_2D": lambda ctx: _conv(ctx, depthwise=False),
        "DEPTHWISE_CONV_2D": lambda ctx: _conv(ctx, depthwise=True),
        "FULLY_CONNECTED": _fully_connected,
        "AVERAGE_POOL_2D": _pool,
        "MAX_POOL_2D": _pool,
        "ADD": _add,
        "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm,
    }
)


def build_spec(graph: Graph, layer: Layer) -> KernelSpec | None:
    """The KernelSpec of a tunable layer, or None for layers the tuner leaves to the reference.

    The set of tunable ops is open: an op defined with a spec builder (autotune/opdef.py,
    ``register_ops``) is tunable by the templates registered for it.
    """
    builder = SPEC_BUILDERS.get(layer.op)
    if builder is None:
        return None
    ctx = OpContext(graph, layer)
    spec = REGISTRY.get(layer.op)
    if spec is None or (spec.check is not None and spec.check(ctx)):
        return None
    return builder(ctx)

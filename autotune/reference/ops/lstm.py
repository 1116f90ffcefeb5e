"""UNIDIRECTIONAL_SEQUENCE_LSTM in TFLM's integer 8x8->16 scheme.

int8 input, weights and hidden state, int32 biases, an int16 cell state with a
power-of-two scale, and int16 gates: each gate is the input fully-connected
(with the bias) plus the recurrent one (without), both requantized to Q3.12 and
saturated to int16 separately, then summed with saturation and passed through
the table sigmoid (the table tanh for the cell gate). Then

    cell   = sat16(forget * cell >> 15) + sat16(input * cell_gate * 2^-30 / cell_scale)
    hidden = sat8(tanh(cell) * output_gate * 2^-30 / hidden_scale + hidden_zp)

with TFLM's rounding at every product. The hidden and cell state are variable
tensors: they are read from and written back to `ctx.state`, so consecutive
invocations carry them and a reset restores zero cell state and the hidden zero
point. The input contribution of every time step is computed up front (it does
not depend on the state); only the recurrent part loops over time.

`prepare_lstm` and `eval_lstm` are public: the tuned LSTM kernels (issue 6) take
their requantization constants from `prepare_lstm` and are verified against
`eval_lstm`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autotune.model.graph import Tensor
from autotune.reference.fixedpoint import (
    checked_log2,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    wrap_int32,
)
from autotune.reference.ops.activations import sigmoid_int16, tanh_int16
from autotune.reference.registry import OpContext, reference_op

GATES = ("input", "forget", "cell", "output")  # TFLite's order of weights and biases
INPUT_WEIGHTS = (1, 2, 3, 4)
RECURRENT_WEIGHTS = (5, 6, 7, 8)
PEEPHOLE_WEIGHTS = (9, 10, 11)
BIASES = (12, 13, 14, 15)
PROJECTION = (16, 17)
HIDDEN_STATE = 18
CELL_STATE = 19
LAYER_NORM = (20, 21, 22, 23)

GATE_SCALE = 2.0**-12  # gate pre-activations are Q3.12
ACTIVATION_SCALE = 2.0**-15  # sigmoid/tanh outputs are Q0.15


@dataclass(frozen=True)
class LstmParams:
    """Everything TFLM's Prepare derives for one integer LSTM layer.

    Per-gate arrays are in GATES order. Multipliers and shifts follow
    QuantizeMultiplier (value = m * 2^(shift - 31)).
    """

    batch: int
    time_steps: int
    input_size: int
    units: int
    time_major: bool
    input_zero_point: int
    hidden_zero_point: int
    input_weight_zero_points: tuple[int, int, int, int]
    recurrent_weight_zero_points: tuple[int, int, int, int]
    input_multiplier: np.ndarray  # (4,) input FC -> Q3.12
    input_shift: np.ndarray
    recurrent_multiplier: np.ndarray  # (4,) recurrent FC -> Q3.12
    recurrent_shift: np.ndarray
    cell_scale_power: int  # cell scale = 2^cell_scale_power
    forget_cell_multiplier: tuple[int, int]  # forget (Q0.15) x cell -> cell
    input_cell_multiplier: tuple[int, int]  # input (Q0.15) x cell gate (Q0.15) -> cell
    hidden_multiplier: tuple[int, int]  # tanh(cell) (Q0.15) x output (Q0.15) -> hidden
    cell_clip: int  # quantized |cell| limit; 0 means no clipping


def _f32(x: float) -> float:
    return float(np.float32(x))


def _weight(ctx: OpContext, i: int) -> Tensor:
    t = ctx.input(i)
    assert t is not None
    return t


def check_lstm(ctx: OpContext) -> str | None:
    """The subset TFLM's integer kernel runs: no CIFG, peephole, projection or layer norm."""
    layer = ctx.layer
    if len(layer.inputs) != 24:
        return f"expected 24 inputs, got {len(layer.inputs)}"
    names = {9: "peephole", 10: "peephole", 11: "peephole", 16: "projection", 17: "projection"}
    names.update({i: "layer normalization" for i in LAYER_NORM})
    for i, what in names.items():
        if ctx.input(i) is not None:
            return f"{what} weights (input {i}) are not supported"
    if ctx.input(1) is None or ctx.input(5) is None:
        return "CIFG (coupled input and forget gates, no input gate weights) is not supported"
    x, y = ctx.input(0), ctx.output(0)
    if x is None:
        return "input is required"
    for t in (x, y):
        if t.dtype != "int8":
            kind = "float" if t.dtype.startswith("float") else t.dtype
            return f"{kind} tensor '{t.name}' ({t.dtype}); the integer LSTM needs int8 activations"
    hidden, cell = ctx.input(HIDDEN_STATE), ctx.input(CELL_STATE)
    if hidden is None or cell is None:
        return "hidden and cell state tensors are required"
    if hidden.dtype != "int8" or cell.dtype != "int16":
        return f"state must be int8 hidden and int16 cell, got {hidden.dtype} and {cell.dtype}"
    if not (hidden.variable and cell.variable):
        return "hidden and cell state must be variable tensors"
    for i in (*INPUT_WEIGHTS, *RECURRENT_WEIGHTS, *BIASES):
        t = ctx.input(i)
        if t is None:
            return f"input {i} ({'weights' if i < 12 else 'bias'}) is required"
        want = "int32" if i in BIASES else "int8"
        if t.dtype != want:
            return f"'{t.name}' is {t.dtype}; supported: {want}"
        if t.data is None:
            return f"'{t.name}' is not constant"
        if i not in BIASES and (t.quant is None or t.quant.per_channel):
            return f"weights '{t.name}' must have one per-tensor scale"
    for t in (x, hidden, cell):
        if t.quant is None or t.quant.per_channel:
            return f"'{t.name}' must have one per-tensor scale"
    if cell.zero_point != 0:
        return f"cell state zero point must be 0, got {cell.zero_point}"
    power, _ = checked_log2(cell.scale)
    if not -31 <= 15 + power - 3 <= 13:
        # The tanh of the cell shifts its int16 input by 12 + power in int32 (TFLM and the
        # C alike): beyond these bounds the shift or the product leaves 32 bits.
        return f"cell state scale {cell.scale:g} (2^{power}); supported: 2^-43 to 2^1"
    if len(x.shape) != 3 or len(y.shape) != 3:
        return f"input and output must be 3-D, got {list(x.shape)} and {list(y.shape)}"
    act = ctx.options.get("fused_activation_function", "TANH")
    if act != "TANH":
        # TFLM's cell gate takes only tanh or sigmoid, and the schema cannot express sigmoid.
        return f"cell activation {act}; supported: TANH"
    if float(ctx.options.get("cell_clip", 0.0)) < 0:
        return "cell_clip must not be negative"
    time_major = bool(ctx.options.get("time_major", False))
    batch = x.shape[1] if time_major else x.shape[0]
    units = _weight(ctx, 2).shape[0]
    for i in INPUT_WEIGHTS:
        if _weight(ctx, i).shape != (units, x.shape[2]):
            return f"input weights {i} must be {[units, x.shape[2]]}"
    for i in RECURRENT_WEIGHTS:
        if _weight(ctx, i).shape != (units, units):
            return f"recurrent weights {i} must be {[units, units]}"
    for i in BIASES:
        if _weight(ctx, i).shape != (units,):
            return f"bias {i} must have {units} elements"
    if hidden.size != batch * units or cell.size != batch * units:
        return f"state tensors must hold {batch} x {units} elements"
    if tuple(y.shape) != (x.shape[0], x.shape[1], units):
        return f"output must be {[x.shape[0], x.shape[1], units]}, got {list(y.shape)}"
    return None


def gate_multiplier(input_scale: float, weight_scale: float) -> tuple[int, int]:
    """Fully connected to Q3.12: input and weight scales multiplied in double, as the wheel does.

    (The float32 product of TFLite's GetQuantizedConvolutionMultipler gives other
    multipliers for most non-power-of-two scale pairs, and the wheel disagrees with
    it; tests/reference/test_ops_lstm.py holds a case that tells the two apart.)
    """
    return quantize_multiplier(_f32(input_scale) * _f32(weight_scale) / GATE_SCALE)


def inter_gate_multiplier(scale1: float, scale2: float, out_scale: float) -> tuple[int, int]:
    """CreateInterGateMulParams: (double(s1) * double(s2)) / double(out)."""
    return quantize_multiplier(_f32(scale1) * _f32(scale2) / _f32(out_scale))


def prepare_lstm(ctx: OpContext) -> LstmParams:
    """The constants TFLM's UnidirectionalSequenceLstmPrepare computes for this layer."""
    x, hidden, cell = ctx.input(0), ctx.input(HIDDEN_STATE), ctx.input(CELL_STATE)
    assert x is not None and hidden is not None and cell is not None
    time_major = bool(ctx.options.get("time_major", False))
    in_w = [_weight(ctx, i) for i in INPUT_WEIGHTS]
    rec_w = [_weight(ctx, i) for i in RECURRENT_WEIGHTS]
    in_m = [gate_multiplier(x.scale, w.scale) for w in in_w]
    rec_m = [gate_multiplier(hidden.scale, w.scale) for w in rec_w]
    cell_power, _ = checked_log2(cell.scale)  # TFLM ignores whether it is exact
    clip = float(np.float32(ctx.options.get("cell_clip", 0.0)))
    quantized_clip = 0
    if clip > 0:
        # static_cast<int16_t>(min(max(clip / scale, -32768), 32767)): truncation.
        quantized_clip = int(min(max(clip / _f32(cell.scale), -32768.0), 32767.0))
    return LstmParams(
        batch=x.shape[1] if time_major else x.shape[0],
        time_steps=x.shape[0] if time_major else x.shape[1],
        input_size=x.shape[2],
        units=in_w[0].shape[0],
        time_major=time_major,
        input_zero_point=x.zero_point,
        hidden_zero_point=hidden.zero_point,
        input_weight_zero_points=tuple(w.zero_point for w in in_w),  # type: ignore[arg-type]
        recurrent_weight_zero_points=tuple(w.zero_point for w in rec_w),  # type: ignore[arg-type]
        input_multiplier=np.array([m for m, _ in in_m], dtype=np.int64),
        input_shift=np.array([s for _, s in in_m], dtype=np.int64),
        recurrent_multiplier=np.array([m for m, _ in rec_m], dtype=np.int64),
        recurrent_shift=np.array([s for _, s in rec_m], dtype=np.int64),
        cell_scale_power=cell_power,
        forget_cell_multiplier=inter_gate_multiplier(ACTIVATION_SCALE, cell.scale, cell.scale),
        input_cell_multiplier=inter_gate_multiplier(ACTIVATION_SCALE, ACTIVATION_SCALE, cell.scale),
        hidden_multiplier=inter_gate_multiplier(ACTIVATION_SCALE, ACTIVATION_SCALE, hidden.scale),
        cell_clip=quantized_clip,
    )


def cell_tanh_params(cell_scale_power: int) -> tuple[int, int]:
    """(multiplier, left_shift) for tanh_int16 of the cell state: its scale to Q3.12."""
    left_shift = 15 + cell_scale_power - 3
    if left_shift < 0:
        return 3, -left_shift
    return 0, left_shift


def _tanh_of_cell(cell: np.ndarray, cell_scale_power: int) -> np.ndarray:
    """TFLM's lstm Tanh(): the int16 table tanh with the input shift of the cell scale."""
    return tanh_int16(cell, *cell_tanh_params(cell_scale_power))


def _requantize_int16(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    return np.clip(
        multiply_by_quantized_multiplier(wrap_int32(acc), multiplier, shift), -32768, 32767
    )


def _mul(
    a: np.ndarray, b: np.ndarray, mult: tuple[int, int], zp: int, lo: int, hi: int
) -> np.ndarray:
    """reference_integer_ops::MulElementwise on symmetric int16 inputs."""
    product = a.astype(np.int64) * b.astype(np.int64)
    return np.clip(multiply_by_quantized_multiplier(product, *mult) + zp, lo, hi)


def eval_lstm(
    p: LstmParams,
    x: np.ndarray,
    input_weights: list[np.ndarray],
    recurrent_weights: list[np.ndarray],
    biases: list[np.ndarray],
    hidden: np.ndarray,
    cell: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the whole sequence. Returns (output, new hidden state, new cell state).

    x is the layer input as stored (time- or batch-major); hidden and cell hold
    batch x units values in any shape. Weights and biases are in GATES order.
    TFLM walks batch-major inputs one batch row at a time; rows never interact, so
    stepping all rows together gives the same values.
    """
    units = p.units
    seq = (
        x.reshape(p.time_steps, p.batch, p.input_size)
        if p.time_major
        else (x.reshape(p.batch, p.time_steps, p.input_size).transpose(1, 0, 2))
    )
    # Stack the four gates along the unit axis: column g * units + j is unit j of gate g.
    w_in = np.concatenate(
        [
            w.astype(np.float64) - zp
            for w, zp in zip(input_weights, p.input_weight_zero_points, strict=True)
        ]
    )
    w_rec = np.concatenate(
        [
            w.astype(np.float64) - zp
            for w, zp in zip(recurrent_weights, p.recurrent_weight_zero_points, strict=True)
        ]
    )
    bias = np.concatenate([b.astype(np.int64) for b in biases])
    in_mult = np.repeat(p.input_multiplier, units)
    in_shift = np.repeat(p.input_shift, units)
    rec_mult = np.repeat(p.recurrent_multiplier, units)
    rec_shift = np.repeat(p.recurrent_shift, units)

    # Input FC for all steps at once; float64 sums of int8 x int8 products are exact.
    centered = seq.astype(np.float64) - p.input_zero_point
    acc_in = (centered @ w_in.T).astype(np.int64) + bias
    gates_in = _requantize_int16(acc_in, in_mult, in_shift)  # (T, B, 4U)

    h = hidden.reshape(p.batch, units).astype(np.int64)
    c = cell.reshape(p.batch, units).astype(np.int64)
    out = np.empty((p.time_steps, p.batch, units), dtype=np.int8)
    w_rec_t = w_rec.T
    for t in range(p.time_steps):
        acc_rec = ((h - p.hidden_zero_point).astype(np.float64) @ w_rec_t).astype(np.int64)
        pre = np.clip(gates_in[t] + _requantize_int16(acc_rec, rec_mult, rec_shift), -32768, 32767)
        i_gate = sigmoid_int16(pre[:, :units]).astype(np.int64)
        f_gate = sigmoid_int16(pre[:, units : 2 * units]).astype(np.int64)
        # The cell gate's tanh takes Q3.12 directly (TFLM passes cell_state_scale_power -12).
        c_gate = tanh_int16(pre[:, 2 * units : 3 * units]).astype(np.int64)
        o_gate = sigmoid_int16(pre[:, 3 * units :]).astype(np.int64)
        c = _mul(f_gate, c, p.forget_cell_multiplier, 0, -32768, 32767)
        c = np.clip(
            c + _mul(i_gate, c_gate, p.input_cell_multiplier, 0, -32768, 32767), -32768, 32767
        )
        if p.cell_clip > 0:
            c = np.clip(c, -p.cell_clip, p.cell_clip)
        h = _mul(_tanh_of_cell(c, p.cell_scale_power), o_gate, p.hidden_multiplier,
                 p.hidden_zero_point, -128, 127)  # fmt: skip
        out[t] = h
    output = out if p.time_major else out.transpose(1, 0, 2)
    return output, h.astype(np.int8), c.astype(np.int16)


@reference_op("UNIDIRECTIONAL_SEQUENCE_LSTM", check=check_lstm)
def unidirectional_sequence_lstm(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    p = prepare_lstm(ctx)
    layer = ctx.layer
    h_index, c_index = layer.inputs[HIDDEN_STATE], layer.inputs[CELL_STATE]
    h_t, c_t = ctx.graph.tensors[h_index], ctx.graph.tensors[c_index]

    def arg(i: int) -> np.ndarray:
        a = args[i]
        assert a is not None
        return a

    hidden = ctx.state.get(h_index, args[HIDDEN_STATE])
    cell = ctx.state.get(c_index, args[CELL_STATE])
    assert hidden is not None and cell is not None
    output, h, c = eval_lstm(
        p,
        arg(0),
        [arg(i) for i in INPUT_WEIGHTS],
        [arg(i) for i in RECURRENT_WEIGHTS],
        [arg(i) for i in BIASES],
        hidden,
        cell,
    )
    ctx.state[h_index] = h.reshape(h_t.shape)
    ctx.state[c_index] = c.reshape(c_t.shape)
    return [output]


def effective_bias(
    weights: np.ndarray, bias: np.ndarray | None, input_zp: int, weight_zp: int
) -> np.ndarray:
    """The constant part of sum_k (x_k - input_zp)(w_jk - weight_zp) + bias_j, wrapped to int32.

    What is left at run time is sum_k x_k w_jk - weight_zp * sum_k x_k; the C adds
    the pieces with int32 wrap-around, so the total wraps exactly as the reference's.
    """
    w = weights.astype(np.int64)
    depth = w.shape[1]
    const = -input_zp * w.sum(axis=1) + depth * input_zp * weight_zp
    if bias is not None:
        const = const + bias.astype(np.int64)
    return wrap_int32(const)

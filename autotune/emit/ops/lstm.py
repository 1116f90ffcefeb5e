"""C for UNIDIRECTIONAL_SEQUENCE_LSTM in TFLM's int8x8_16 scheme: the baseline kernel.

Every constant comes from the reference's prepare_lstm (multipliers, shifts, cell
clip, cell scale power) and its int16 activation helpers, so this C and
autotune.reference.ops.lstm cannot drift apart. The zero points are folded into
the biases at generation time, as TFLM's Prepare does with its "effective
biases": for the input product sum((x - xzp)(w - wzp)) + bias the constant part
bias - xzp * sum(w) + K * xzp * wzp goes into one int32 per unit, and only
wzp * sum(x) is left for run time when a weight zero point is not 0.

The generated function loops over time steps and batch rows: the four gates'
input and recurrent matrix-vector products (requantized to Q3.12 separately and
added with saturation, into int16 scratch), then the elementwise cell update that
writes the new cell and hidden state in place and the output row. Tuned kernels
(issue 6) start from this structure.
"""

from __future__ import annotations

import numpy as np

from autotune.codegen import c_array
from autotune.emit.layer_code import LayerCode, layer_io, op_emitter
from autotune.emit.ops.activations import check_int16_scaling, checked, render_op
from autotune.model.graph import Graph, Layer
from autotune.reference.ops.activations import int16_input_scaling
from autotune.reference.ops.lstm import (
    BIASES,
    CELL_STATE,
    GATES,
    HIDDEN_STATE,
    INPUT_WEIGHTS,
    RECURRENT_WEIGHTS,
    LstmParams,
    cell_tanh_params,
    check_lstm,
    effective_bias,
    prepare_lstm,
)


def _gate_constants(p: LstmParams, gate: int, recurrent: bool) -> dict[str, int]:
    mult = p.recurrent_multiplier if recurrent else p.input_multiplier
    shift = p.recurrent_shift if recurrent else p.input_shift
    zps = p.recurrent_weight_zero_points if recurrent else p.input_weight_zero_points
    return {"multiplier": int(mult[gate]), "shift": int(shift[gate]), "weight_zp": int(zps[gate])}


@op_emitter("UNIDIRECTIONAL_SEQUENCE_LSTM")
def unidirectional_sequence_lstm(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked(graph, layer, check_lstm)
    p = prepare_lstm(ctx)
    inputs, outputs, state = layer_io(graph, layer)
    hidden_index, cell_index = layer.inputs[HIDDEN_STATE], layer.inputs[CELL_STATE]
    assert state == [hidden_index, cell_index]  # the calling convention orders them by input

    def data(i: int) -> np.ndarray:
        t = ctx.input(i)
        assert t is not None and t.data is not None
        return t.data

    w_in = [data(i).reshape(p.units, p.input_size) for i in INPUT_WEIGHTS]
    w_rec = [data(i).reshape(p.units, p.units) for i in RECURRENT_WEIGHTS]
    biases = [data(i).reshape(p.units) for i in BIASES]
    in_bias = [
        effective_bias(w, b, p.input_zero_point, zp)
        for w, b, zp in zip(w_in, biases, p.input_weight_zero_points, strict=True)
    ]
    rec_bias = [
        effective_bias(w, None, p.hidden_zero_point, zp)
        for w, zp in zip(w_rec, p.recurrent_weight_zero_points, strict=True)
    ]
    gates = [
        {
            "name": name,
            "input": _gate_constants(p, g, recurrent=False),
            "recurrent": _gate_constants(p, g, recurrent=True),
        }
        for g, name in enumerate(GATES)
    ]

    # Gate activations take Q3.12; the cell's tanh takes the cell scale (reference helpers).
    gate_multiplier, gate_shift = int16_input_scaling(0, 0)
    cell_multiplier, cell_shift = int16_input_scaling(*cell_tanh_params(p.cell_scale_power))
    what = f"cell state scale 2^{p.cell_scale_power}"
    check_int16_scaling(graph, layer, cell_multiplier, cell_shift, what)
    arrays = [
        "/* Input weights, [gate][unit][input] in TFLite's gate order (input, forget, cell, output). */",
        c_array("int8_t", "input_weights", np.concatenate(w_in).reshape(-1)),
        "/* Recurrent weights, [gate][unit][unit]. */",
        c_array("int8_t", "recurrent_weights", np.concatenate(w_rec).reshape(-1)),
        "/* bias - input_zp * row sum (+ K * input_zp * weight_zp): zero points folded in. */",
        c_array("int32_t", "input_bias", np.concatenate(in_bias), per_line=8),
    ]
    has_rec_bias = any(np.any(b != 0) for b in rec_bias)
    if has_rec_bias:
        arrays += [
            "/* -hidden_zp * row sum (+ units * hidden_zp * weight_zp) of the recurrent weights. */",
            c_array("int32_t", "recurrent_bias", np.concatenate(rec_bias), per_line=8),
        ]
    forget_m, forget_s = p.forget_cell_multiplier
    input_m, input_s = p.input_cell_multiplier
    hidden_m, hidden_s = p.hidden_multiplier
    source = render_op(
        "ops/lstm.c.j2",
        graph,
        layer,
        [
            f"{p.time_steps} steps x {p.batch} batch, {p.input_size} inputs -> {p.units} units, "
            f"{'time' if p.time_major else 'batch'}-major; cell scale 2^{p.cell_scale_power}, "
            f"cell clip {p.cell_clip or 'off'}.",
            "The state (hidden, cell) is updated in place and persists across calls.",
        ],
        fn=function,
        p=p,
        gates=gates,
        arrays="\n".join(arrays),
        has_rec_bias=has_rec_bias,
        input_sum=any(p.input_weight_zero_points),
        hidden_sum=any(p.recurrent_weight_zero_points),
        gate_scaling=(gate_multiplier, gate_shift),
        cell_scaling=(cell_multiplier, cell_shift),
        forget_cell=(forget_m, forget_s),
        input_cell=(input_m, input_s),
        hidden_mul=(hidden_m, hidden_s),
    )
    macs = p.time_steps * p.batch * 4 * p.units * (p.input_size + p.units)
    return LayerCode(
        function,
        source,
        inputs,
        outputs,
        state=state,
        scratch_bytes=4 * p.units * 2,
        description=f"baseline, {macs} MACs",
    )

"""UNIDIRECTIONAL_SEQUENCE_LSTM (integer 8x8->16) against the tflite-micro interpreter."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from autotune.errors import UnsupportedOpError
from autotune.model.graph import Graph, Layer
from autotune.model.tflite_import import load_model, parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.reference.executor import Interpreter
from autotune.reference.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from autotune.reference.ops.lstm import gate_multiplier, prepare_lstm
from autotune.reference.registry import OpContext
from tests.conftest import assert_matches_oracle, extreme_inputs, seeded_inputs, shared_model


@dataclass(frozen=True)
class LstmCase:
    """A synthetic LSTM layer; weight scales are drawn so gates span about +-gate_range."""

    batch: int = 1
    steps: int = 5
    n_in: int = 6
    units: int = 4
    time_major: bool = False
    cell_clip: float = 0.0
    in_q: tuple[float, int] = (0.05, 3)
    hidden_q: tuple[float, int] = (1 / 128, -2)
    cell_power: int = -11
    gate_range: float = 6.0
    activation: str = "TANH"
    omit: tuple[int, ...] = ()  # optional inputs to leave out
    extra: dict[int, np.ndarray] = field(default_factory=dict)  # optional inputs to add
    per_channel: bool = False


def lstm_model(case: LstmCase, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    in_scale, _ = case.in_q
    h_scale, _ = case.hidden_q
    x_shape = (
        (case.steps, case.batch, case.n_in)
        if case.time_major
        else (case.batch, case.steps, case.n_in)
    )
    x = b.tensor("x", x_shape, "int8", *case.in_q)
    w_in = case.gate_range / (127 * in_scale * 127 * np.sqrt(case.n_in)) * rng.uniform(0.5, 2, 4)
    w_rec = case.gate_range / (127 * h_scale * 127 * np.sqrt(case.units)) * rng.uniform(0.5, 2, 4)
    ins: list[int] = [x]
    for g in range(8):
        cols = case.n_in if g < 4 else case.units
        data = rng.integers(-127, 128, (case.units, cols)).astype(np.int8)
        scale = (w_in if g < 4 else w_rec)[g % 4]
        if case.per_channel:
            ins.append(b.constant(f"w{g}", data, scale * rng.uniform(0.5, 1.5, case.units), 0))
        else:
            ins.append(b.constant(f"w{g}", data, scale, 0))
    ins += [-1, -1, -1]
    for g in range(4):
        bias_scale = in_scale * w_in[g]
        limit = int(2.0 / bias_scale)  # biases up to about +-2
        data = rng.integers(-limit, limit + 1, case.units).astype(np.int32)
        ins.append(b.constant(f"b{g}", data, bias_scale, 0))
    ins += [-1, -1]
    ins.append(b.tensor("h", (case.batch, case.units), "int8", *case.hidden_q, variable=True))
    ins.append(
        b.tensor("c", (case.batch, case.units), "int16", 2.0**case.cell_power, 0, variable=True)
    )
    ins += [-1, -1, -1, -1]
    for i in case.omit:
        ins[i] = -1
    for i, data in case.extra.items():
        ins[i] = b.constant(f"extra{i}", data, 0.01, 0)
    y_shape = (x_shape[0], x_shape[1], case.units)
    y = b.tensor("y", y_shape, "int8", *case.hidden_q)
    b.op(
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        ins,
        [y],
        fused_activation_function=case.activation,
        cell_clip=case.cell_clip,
        proj_clip=0.0,
        time_major=case.time_major,
    )
    b.inputs(x)
    b.outputs(y)
    return b.build()


def standard_calls(model: bytes) -> list[list[np.ndarray]]:
    g = parse_model(model)
    calls = [seeded_inputs(g, seed) for seed in range(3)]
    return [*calls, extreme_inputs(g, "min"), extreme_inputs(g, "max")]


CASES = {
    "basic": LstmCase(),
    "batch2": LstmCase(batch=2, steps=7),
    "time_major_batch3": LstmCase(batch=3, steps=4, time_major=True),
    "time_major_batch1": LstmCase(steps=6, time_major=True, n_in=3, units=9),
    "clip": LstmCase(cell_clip=0.5, gate_range=10.0),
    "clip_truncates": LstmCase(cell_clip=1.2345, cell_power=-13),
    "cell_q0_15": LstmCase(cell_power=-15, gate_range=12.0),  # tanh(cell) input shifts right
    "cell_coarse": LstmCase(cell_power=-8, cell_clip=3.0),  # tanh(cell) input shifts left
    "saturating_gates": LstmCase(gate_range=40.0, steps=8),
    "wide": LstmCase(batch=2, steps=10, n_in=40, units=16),
    "input_zp_min": LstmCase(in_q=(1 / 256, -128), hidden_q=(0.0071, 0)),
    "hidden_zp": LstmCase(hidden_q=(0.0093, 17), in_q=(0.3, -40)),
    "long": LstmCase(steps=60, n_in=8, units=12),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_lstm_matches_tflm(name: str) -> None:
    for seed in range(2):
        model = lstm_model(CASES[name], seed)
        assert assert_matches_oracle(model, standard_calls(model)) == "tflite-micro"


@pytest.mark.parametrize("name", ["basic", "time_major_batch3", "batch2", "clip", "hidden_zp"])
def test_lstm_state_carries_across_calls(name: str) -> None:
    model = lstm_model(CASES[name], seed=5)
    g = parse_model(model)
    calls = [seeded_inputs(g, s) for s in range(4)] + [extreme_inputs(g, "max")] * 2
    assert assert_matches_oracle(model, calls, stateful=True) == "tflite-micro"


def test_state_is_written_back_and_reset() -> None:
    model = lstm_model(CASES["batch2"], seed=1)
    g = parse_model(model)
    interp = Interpreter(g)
    x = seeded_inputs(g, 0)
    first = interp.invoke(x)[0]
    h_index, c_index = g.layers[0].inputs[18], g.layers[0].inputs[19]
    # The hidden state after the call is the output's last step.
    assert np.array_equal(interp.state[h_index], first[:, -1, :])
    assert interp.state[c_index].dtype == np.int16 and np.any(interp.state[c_index] != 0)
    second = interp.invoke(x)[0]
    assert not np.array_equal(first, second)  # the state moved on
    interp.reset()
    assert np.all(interp.state[h_index] == -2) and np.all(interp.state[c_index] == 0)
    assert np.array_equal(interp.invoke(x)[0], first)


def test_prepare_derives_tflm_constants() -> None:
    g = parse_model(lstm_model(LstmCase(cell_clip=1.2345, cell_power=-13)))
    p = prepare_lstm(OpContext(g, g.layers[0]))
    assert p.cell_scale_power == -13
    assert p.cell_clip == int(1.2345 * 2**13)  # truncated, not rounded
    assert p.forget_cell_multiplier == (1 << 30, -14)  # exactly 2^-15
    assert p.input_cell_multiplier == (1 << 30, -16)  # 2^-30 / 2^-13 = 2^-17
    assert (p.batch, p.time_steps, p.input_size, p.units) == (1, 5, 6, 4)


def test_gate_multiplier_uses_the_double_product_of_scales() -> None:
    """The wheel multiplies input and weight scales in double: with the float32 product
    these cell-gate biases land one Q3.12 step away, which the hidden state shows."""
    in_scale, w_scale = 0.0731, 4.5599344e-11  # a pair whose two products round apart
    double = gate_multiplier(in_scale, w_scale)
    single = quantize_multiplier(float(np.float32(in_scale) * np.float32(w_scale)) / 2**-12)
    assert double != single
    # Biases just past the rounding boundary of each Q3.12 value k + 1/2 (|k| < 29).
    biases = []
    for k in range(-28, 28):
        centre = (k + 0.5) * 2.0 ** (31 - double[1]) / double[0]
        for acc in range(int(centre) - 2, int(centre) + 3):
            if multiply_by_quantized_multiplier(acc, *double) != multiply_by_quantized_multiplier(
                acc, *single
            ):
                biases.append(acc)
                break
    units = len(biases)
    assert units > 40
    b = ModelBuilder()
    x = b.tensor("x", (1, 1, 1), "int8", in_scale, 0)
    scales = [1e-3, 1e-3, w_scale, 1e-3] + [1e-3] * 4
    ins = [x]
    for g, scale in enumerate(scales):
        shape = (units, 1) if g < 4 else (units, units)
        ins.append(b.constant(f"w{g}", np.zeros(shape, np.int8), scale, 0))
    ins += [-1, -1, -1]
    # Input and output gates saturate open, the forget gate is irrelevant at step one.
    gate_biases = [np.full(units, 10**6), np.zeros(units), np.array(biases), np.full(units, 10**6)]
    for g, bias in enumerate(gate_biases):
        ins.append(b.constant(f"b{g}", bias.astype(np.int32), in_scale * scales[g], 0))
    ins += [-1, -1]
    ins.append(b.tensor("h", (1, units), "int8", 2**-14, 0, variable=True))
    ins.append(b.tensor("c", (1, units), "int16", 2**-15, 0, variable=True))
    ins += [-1, -1, -1, -1]
    y = b.tensor("y", (1, 1, units), "int8", 2**-14, 0)
    b.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], fused_activation_function="TANH",
         cell_clip=0.0, proj_clip=0.0, time_major=False)  # fmt: skip
    b.inputs(x)
    b.outputs(y)
    model = b.build()
    assert assert_matches_oracle(model, [[np.zeros((1, 1, 1), np.int8)]]) == "tflite-micro"


@pytest.mark.parametrize(
    "case,reason",
    [
        (LstmCase(omit=(1, 5)), "CIFG"),
        (LstmCase(extra={10: np.ones(4, np.int16)}), "peephole"),
        (LstmCase(extra={16: np.ones((4, 4), np.int8)}), "projection"),
        (LstmCase(extra={21: np.ones(4, np.int16)}), "layer normalization"),
        (LstmCase(activation="RELU"), "cell activation RELU"),
        (LstmCase(per_channel=True), "per-tensor scale"),
        # Fuzzer mutant 2814 (seed 2028): lstm_weather's cell scale became 1e-30 (2^-100),
        # and the tanh input shift of 88 overflowed (OverflowError, exit 70).
        (LstmCase(cell_power=-100), r"cell state scale .*\(2\^-100\)"),
        (LstmCase(cell_power=-44), r"cell state scale .*\(2\^-44\)"),
        (LstmCase(cell_power=2), r"cell state scale 4 \(2\^2\)"),
    ],
)
def test_unsupported_variants_are_rejected(case: LstmCase, reason: str) -> None:
    with pytest.raises(UnsupportedOpError, match=reason):
        Interpreter(parse_model(lstm_model(case)))


def test_float_lstm_is_rejected() -> None:
    g = parse_model(lstm_model(LstmCase()))
    g.tensors[g.layers[0].inputs[0]] = replace(g.tensors[g.layers[0].inputs[0]], dtype="float32")
    with pytest.raises(UnsupportedOpError, match="float"):
        Interpreter(g)


# ------------------------------------------------ the LSTM layers of the shared models


def single_layer_model(g: Graph, layer: Layer) -> bytes:
    """One layer of a real model as a model of its own, tensors and quantization unchanged."""
    b = ModelBuilder()
    index: dict[int, int] = {}

    def add(i: int) -> int:
        if i < 0:
            return -1
        if i not in index:
            t = g.tensors[i]
            scale = None if t.quant is None else t.quant.scale
            zp = None if t.quant is None else t.quant.zero_point
            if t.data is not None:
                index[i] = b.constant(t.name, t.data, scale, zp)
            else:
                index[i] = b.tensor(t.name, t.shape, t.dtype, scale, zp, variable=t.variable)
        return index[i]

    ins = [add(i) for i in layer.inputs]
    outs = [add(i) for i in layer.outputs]
    options = {k: v for k, v in layer.options.items() if v is not None}
    b.op(layer.op, ins, outs, [add(i) for i in layer.intermediates], **options)
    b.inputs(ins[0])
    b.outputs(outs[0])
    return b.build()


LSTM_MODELS = [
    "trained_lstm_int8.tflite",
    "micro_speech_lstm.tflite",
    "lstm_weather_24x7_u32.tflite",
    "lstm_textgen_100x64_u128.tflite",
    "bilstm_50x16_u32.tflite",
    "seed_conv1d_lstm_800x2.tflite",
    "dtln_noise_suppression.tflite",
]


@pytest.mark.models
@pytest.mark.parametrize("name", LSTM_MODELS)
def test_lstm_layers_of_shared_models(name: str) -> None:
    g = load_model(shared_model(name))
    layers = [layer for layer in g.layers if layer.op == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert layers
    for layer in layers:
        model = single_layer_model(g, layer)
        calls = standard_calls(model)
        assert assert_matches_oracle(model, calls) == "tflite-micro"
        assert assert_matches_oracle(model, calls, stateful=True) == "tflite-micro"

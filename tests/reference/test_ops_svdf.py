"""SVDF (int8 input and output) against tflite-micro, for both of TFLM's state types:
int16 time weights with an int16 state, and int8 time weights with an int8 state (the
keyword benchmark's), over consecutive calls (state carried) and fresh ones, at rank 1
and 2, with state zero points and scales that stress the float effective scales."""

from __future__ import annotations

import numpy as np
import pytest

from autotune.errors import UnsupportedOpError
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.reference.executor import Interpreter, run_model
from tests.conftest import assert_matches_oracle, seeded_inputs

# Time weights type -> (weights range, time scale, state scale, state zero point).
TIME = {
    "int16": (9000, 3e-5, 0.002, 0),
    "int8": (127, 0.0149, 0.807, -50),
}


def add_svdf(
    b: ModelBuilder,
    x: int,
    n_input: int,
    in_q: tuple[float, int],
    out_q: tuple[float, int],
    time: str = "int8",
    batch: int = 1,
    filters: int = 8,
    memory: int = 5,
    rank: int = 1,
    bias: bool = True,
    act: str = "NONE",
    seed: int = 8,
    state_q: tuple[float, int] | None = None,
    name: str = "",
) -> int:
    """One SVDF layer reading tensor x; returns its output tensor."""
    rng = np.random.default_rng(seed)
    span, wt_scale, state_scale, state_zp = TIME[time]
    state_scale, state_zp = state_q or (state_scale, state_zp)
    del in_q  # the input tensor carries its own quantization
    wf = b.constant(
        f"{name}wf", rng.integers(-127, 128, (filters, n_input)).astype(np.int8), 0.0092, 0
    )
    wt = b.constant(
        f"{name}wt", rng.integers(-span, span + 1, (filters, memory)).astype(time), wt_scale, 0
    )
    units = filters // rank
    ins = [x, wf, wt]
    if bias:
        values = rng.integers(-900, 900, units).astype(np.int32)
        ins.append(
            b.constant(
                f"{name}bias", values, float(np.float32(state_scale) * np.float32(wt_scale)), 0
            )
        )
    else:
        ins.append(-1)
    state = b.tensor(
        f"{name}state", (batch, filters * memory), time, state_scale, state_zp, variable=True
    )
    ins.append(state)
    y = b.tensor(f"{name}y", (batch, units), "int8", *out_q)
    b.op("SVDF", ins, [y], rank=rank, fused_activation_function=act)
    return y


def svdf(batch: int = 1, n_input: int = 10, **kwargs) -> bytes:
    b = ModelBuilder()
    in_q = (0.05, -2)
    x = b.tensor("x", (batch, n_input), "int8", *in_q)
    out_q = kwargs.pop("out_q", (0.03, 4) if kwargs.get("time", "int8") == "int16" else (0.2, -128))
    y = add_svdf(b, x, n_input, in_q, out_q, batch=batch, **kwargs)
    b.inputs(x)
    b.outputs(y)
    return b.build()


CASES = {
    "int16-rank1": {"time": "int16"},
    "int16-rank2-batch2": {"time": "int16", "batch": 2, "rank": 2},
    "int16-relu": {"time": "int16", "act": "RELU"},
    "int8-rank1": {"time": "int8"},
    "int8-rank2-batch2": {"time": "int8", "batch": 2, "rank": 2, "memory": 3},
    "int8-relu-keyword-like": {"time": "int8", "act": "RELU", "n_input": 96, "filters": 16},
    # A state zero point at the top of the range: the clamp after adding it bites.
    "int8-state-zp-high": {"time": "int8", "state_q": (0.05, 100), "memory": 4},
    "int16-state-zp": {"time": "int16", "state_q": (0.002, -300)},
}


@pytest.mark.parametrize("stateful", [True, False], ids=["state-carried", "reset-each"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_matches_tflite_micro(case: dict, stateful: bool) -> None:
    model = svdf(**case)
    graph = parse_model(model)
    calls = [seeded_inputs(graph, s) for s in range(6)]
    assert assert_matches_oracle(model, calls, stateful=stateful, isolated=True) == "tflite-micro"
    assert np.unique(run_model(graph, calls[0])[0]).size > 2


def test_state_changes_the_result() -> None:
    # The same input twice: the second call sees the first one's feature in its memory.
    graph = parse_model(svdf(time="int8"))
    interp = Interpreter(graph)
    x = seeded_inputs(graph, 3)
    first, second = interp.invoke(x)[0], interp.invoke(x)[0]
    assert not np.array_equal(first, second)
    interp.reset()
    assert np.array_equal(interp.invoke(x)[0], first)


@pytest.mark.parametrize("seed", range(4))
def test_effective_scales_as_tflm_rounds_them(seed: int) -> None:
    # Random scales: TFLM forms each effective scale in float before widening it, and
    # a multiplier one LSB off shows in some outputs.
    rng = np.random.default_rng(100 + seed)
    scale = lambda lo, hi: float(np.exp(rng.uniform(np.log(lo), np.log(hi))))  # noqa: E731
    model = svdf(
        time="int8",
        state_q=(scale(0.05, 2.0), int(rng.integers(-60, 60))),
        out_q=(scale(0.01, 0.5), int(rng.integers(-128, 0))),
        memory=6,
        filters=12,
        seed=seed,
    )
    graph = parse_model(model)
    calls = [seeded_inputs(graph, s) for s in range(8)]
    assert assert_matches_oracle(model, calls, stateful=True, isolated=True) == "tflite-micro"


def test_without_bias_is_refused_as_tflite_micro_cannot_run_it() -> None:
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(SVDF\).*bias is required"):
        Interpreter(parse_model(svdf(time="int16", bias=False)))


def tiny_svdf(state_dtype: str, state_scale: float, bias_scale: float) -> bytes:
    """An SVDF with int8 time weights (scale 0.01) whose state and bias vary."""
    b = ModelBuilder()
    x = b.tensor("x", (1, 4), "int8", 0.05, 0)
    wf = b.constant("wf", np.ones((2, 4), np.int8), 0.01, 0)
    wt = b.constant("wt", np.ones((2, 3), np.int8), 0.01, 0)
    bias = b.constant("bias", np.zeros(2, np.int32), bias_scale, 0)
    state = b.tensor("state", (1, 6), state_dtype, state_scale, 0, variable=True)
    y = b.tensor("y", (1, 2), "int8", 0.03, 0)
    b.op("SVDF", [x, wf, wt, bias, state], [y], rank=1)
    b.inputs(x)
    b.outputs(y)
    return b.build()


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        # TFLM would read an int16 state through int8 pointers.
        (tiny_svdf("int16", 0.002, 2e-5), "state 'state' is int16"),
        # TFLM's Prepare checks the bias scale against state x time weights scales.
        (tiny_svdf("int8", 0.8, 0.5), "bias scale 0.5"),
    ],
    ids=["mixed-types", "bias-scale"],
)
def test_what_tflm_cannot_run_is_refused(model: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedOpError, match=rf"op 0 \(SVDF\).*{reason}"):
        Interpreter(parse_model(model))


def keyword_like(batch: int = 1) -> bytes:
    """TFLM's keyword benchmark in small: an int16 input quantized to int8, an SVDF with
    int8 time weights, FULLY_CONNECTED, an SVDF with int16 time weights at rank 2,
    FULLY_CONNECTED, SOFTMAX to int16 and QUANTIZE to int32. The first SVDF's output is
    a model output too, so that its values are compared and not only the softmax's."""
    rng = np.random.default_rng(21)
    b = ModelBuilder("keyword-like")
    audio = b.tensor("audio", (batch, 24), "int16", 0.000625, 0)
    x = b.tensor("x", (batch, 24), "int8", 0.0592, -128)
    b.op("QUANTIZE", [audio], [x])
    s1 = add_svdf(b, x, 24, (0.0592, -128), (0.2362, -128), time="int8", batch=batch,
                  filters=16, memory=4, act="RELU", seed=1, name="a_")  # fmt: skip

    def dense(src: int, n_in: int, n_out: int, in_scale: float, out_q: tuple, name: str) -> int:
        w = b.constant(f"{name}w", rng.integers(-127, 128, (n_out, n_in)).astype(np.int8), 0.006, 0)
        bias = b.constant(
            f"{name}b",
            rng.integers(-2000, 2000, n_out).astype(np.int32),
            float(np.float32(in_scale) * np.float32(0.006)),
            0,
        )
        y = b.tensor(f"{name}y", (batch, n_out), "int8", *out_q)
        b.op("FULLY_CONNECTED", [src, w, bias], [y])
        return y

    f1 = dense(s1, 16, 8, 0.2362, (0.434, -7), "fc1_")
    s2 = add_svdf(b, f1, 8, (0.434, -7), (0.0798, -128), time="int16", batch=batch,
                  filters=12, memory=3, rank=2, seed=2, name="b_")  # fmt: skip
    logits = dense(s2, 6, 3, 0.0798, (0.07, 2), "fc2_")
    probs = b.tensor("probs", (batch, 3), "int16", 1.0 / 65536, -32768)
    b.op("SOFTMAX", [logits], [probs], beta=1.0)
    out = b.tensor("out", (batch, 3), "int32", 1.0 / 32768, 0)
    b.op("QUANTIZE", [probs], [out])
    b.inputs(audio)
    b.outputs(s1, out)
    return b.build()


@pytest.mark.parametrize("stateful", [True, False], ids=["state-carried", "reset-each"])
def test_keyword_like_graph_matches_tflite_micro(stateful: bool) -> None:
    model = keyword_like(batch=2)
    graph = parse_model(model)
    calls = [seeded_inputs(graph, s) for s in range(6)]
    assert assert_matches_oracle(model, calls, stateful=stateful, isolated=True) == "tflite-micro"
    features, out = run_model(graph, calls[0])
    assert np.unique(features).size > 4 and np.unique(out).size > 2

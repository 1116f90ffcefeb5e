"""SOFTMAX, LOGISTIC and TANH against the tflite-micro interpreter, and gemmlowp's pieces."""

from __future__ import annotations

import numpy as np
import pytest

from autotune.errors import UnsupportedOpError
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.reference import gemmlowp
from autotune.reference.executor import Interpreter
from autotune.reference.gemmlowp import get_reciprocal
from tests.conftest import assert_matches_oracle, extreme_inputs, seeded_inputs

ALL_INT8 = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)


def unary_model(
    op: str,
    shape: tuple[int, ...],
    dtype: str,
    in_q: tuple[float, int],
    out_q: tuple[float, int],
    out_dtype: str | None = None,
    **options: float,
) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", shape, dtype, *in_q)
    y = b.tensor("y", shape, out_dtype or dtype, *out_q)
    b.op(op, [x], [y], **options)
    b.inputs(x)
    b.outputs(y)
    return b.build()


def standard_calls(model: bytes, extra: list[np.ndarray] | None = None) -> list[list[np.ndarray]]:
    """Three seeded random inputs, all -128 and all 127 (plus any given arrays)."""
    g = parse_model(model)
    calls = [seeded_inputs(g, seed) for seed in range(3)]
    calls += [extreme_inputs(g, "min"), extreme_inputs(g, "max")]
    return calls + [[a] for a in extra or []]


# ------------------------------------------------------------------ gemmlowp


def test_exp_on_negative_values_tracks_exp() -> None:
    # Q5.26 inputs from -31 to 0: the fixed-point exp is within a few Q0.31 ulps of exp().
    raw = np.linspace(-31 * 2**26, 0, 4001).astype(np.int64)
    got = gemmlowp.exp_on_negative_values(raw, 5) / 2**31
    want = np.exp(raw / 2**26)
    assert np.max(np.abs(got - want)) < 5e-7  # gemmlowp: a 4th-order polynomial
    assert gemmlowp.exp_on_negative_values(np.array([0]), 5)[0] == 2**31 - 1


def test_logistic_and_tanh_track_float() -> None:
    raw = np.linspace(-15 * 2**27, 15 * 2**27, 3001).astype(np.int64)
    x = raw / 2**27
    assert np.max(np.abs(gemmlowp.logistic(raw, 4) / 2**31 - 1 / (1 + np.exp(-x)))) < 5e-7
    assert np.max(np.abs(gemmlowp.tanh(raw, 4) / 2**31 - np.tanh(x))) < 5e-7
    assert gemmlowp.logistic(np.array([0]), 4)[0] == 2**30
    assert gemmlowp.tanh(np.array([0]), 4)[0] == 0


def test_reciprocal_normalizes_the_sum() -> None:
    # 1 / x for x in Q12.19: raw reciprocal in Q0.31 scaled by 2^-num_bits_over_unit.
    sums = np.array([2**19, 3 * 2**19, 100 * 2**19 + 12345, 511 * 2**19])
    raw, bits = get_reciprocal(sums, 12)
    approx = raw / 2**31 / 2.0**bits
    assert np.allclose(approx, 2**19 / sums, rtol=1e-7)


def test_saturating_shift_saturates() -> None:
    x = np.array([2**29, -(2**29), 2**28, -(2**28)], dtype=np.int64)
    got = gemmlowp.saturating_rounding_multiply_by_pot(x, 2)
    assert got.tolist() == [2**31 - 1, -(2**31), 2**30, -(2**30)]


# ------------------------------------------------------------------ LOGISTIC / TANH int8


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize(
    "scale,zero_point",
    [(0.1, 0), (0.02, -5), (1 / 256, -128), (0.5, 100), (0.0012, 3), (3.0, 0), (20.0, 1)],
)
def test_int8_logistic_tanh_whole_range(op: str, scale: float, zero_point: int) -> None:
    out_q = (1 / 256, -128) if op == "LOGISTIC" else (1 / 128, 0)
    model = unary_model(op, (1, 256), "int8", (scale, zero_point), out_q)
    assert assert_matches_oracle(model, standard_calls(model, [ALL_INT8])) == "tflite-micro"


def test_int8_logistic_ignores_the_output_scale_like_tflm() -> None:
    model = unary_model("LOGISTIC", (2, 3, 5), "int8", (0.07, 9), (0.01, -128))
    assert assert_matches_oracle(model, standard_calls(model)) == "tflite-micro"


def test_int8_logistic_rejects_other_output_zero_point() -> None:
    model = unary_model("LOGISTIC", (1, 8), "int8", (0.1, 0), (1 / 256, 0))
    with pytest.raises(UnsupportedOpError, match="zero point must be -128"):
        Interpreter(parse_model(model))


# ------------------------------------------------------------------ LOGISTIC / TANH int16


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("scale", [2**-12, 2**-11, 2**-10, 2**-15, 2**-8, 1e-4, 3e-3])
def test_int16_logistic_tanh_whole_range(op: str, scale: float) -> None:
    # 65536 values in calls of 1024 (the oracle's default arena is small).
    chunks = np.arange(-32768, 32768, dtype=np.int16).reshape(64, 1, 1024)
    model = unary_model(op, (1, 1024), "int16", (scale, 0), (2**-15, 0))
    calls = [[c] for c in chunks]
    assert assert_matches_oracle(model, calls) == "tflite-micro"


def test_int16_logistic_rejects_non_power_of_two_output() -> None:
    model = unary_model("TANH", (1, 8), "int16", (2**-12, 0), (1e-4, 0))
    with pytest.raises(UnsupportedOpError, match="2\\^-15"):
        Interpreter(parse_model(model))


# ------------------------------------------------------------------ SOFTMAX


@pytest.mark.parametrize(
    "scale,zero_point,beta,shape",
    [
        (0.1, 0, 1.0, (2, 10)),
        (1 / 256, -128, 1.0, (1, 10)),
        (0.5, 3, 1.0, (3, 16)),
        (2.0, -7, 3.0, (1, 8)),  # large scale: most differences fall below diff_min
        (40.0, 0, 1.0, (1, 5)),  # beta * scale * 2^26 clamps at 2^31 - 1
        (0.01, 5, 0.5, (2, 100)),
        (1e-4, 0, 1.0, (1, 7)),  # tiny scale: exps all close to one
        (0.2, 1, 1.0, (1, 300)),
        (0.05, 0, 2.0, (2, 3, 6)),  # softmax over the last of three axes
    ],
)
@pytest.mark.parametrize("out_dtype", ["int8", "int16"])
def test_softmax(
    scale: float, zero_point: int, beta: float, shape: tuple[int, ...], out_dtype: str
) -> None:
    out_q = (1 / 256, -128) if out_dtype == "int8" else (1 / 65536, -32768)
    model = unary_model(
        "SOFTMAX", shape, "int8", (scale, zero_point), out_q, out_dtype=out_dtype, beta=beta
    )
    assert assert_matches_oracle(model, standard_calls(model)) == "tflite-micro"


def test_softmax_ties_and_single_winner() -> None:
    model = unary_model("SOFTMAX", (3, 6), "int8", (0.3, 0), (1 / 256, -128), beta=1.0)
    rows = np.array(
        [
            [127, 127, 127, 127, 127, 127],
            [127, -128, -128, -128, -128, -128],
            [5, 5, 4, 4, 3, -128],
        ],
        dtype=np.int8,
    )
    assert assert_matches_oracle(model, [[rows]]) == "tflite-micro"


def test_softmax_rejects_wrong_output_quantization() -> None:
    model = unary_model("SOFTMAX", (1, 4), "int8", (0.1, 0), (1 / 128, -128), beta=1.0)
    with pytest.raises(UnsupportedOpError, match="scale 1/256"):
        Interpreter(parse_model(model))


def test_softmax_output_sums_to_one() -> None:
    model = unary_model("SOFTMAX", (4, 20), "int8", (0.1, 0), (1 / 256, -128), beta=1.0)
    g = parse_model(model)
    x = seeded_inputs(g, 7)
    out = Interpreter(g).invoke(x)[0]
    probs = (out.astype(np.int64) + 128) / 256
    assert np.all(np.abs(probs.sum(axis=1) - 1.0) < 20 / 256)
    real = np.exp(0.1 * x[0].astype(np.float64))
    assert np.allclose(probs, real / real.sum(axis=1, keepdims=True), atol=1 / 256)


@pytest.mark.parametrize("depth", [10, 1000])
def test_softmax_below_tflm_range_is_uniform(depth: int) -> None:
    """beta x input scale too small for TFLM's fixed point (TFLM and TFLite's reference
    kernels abort preparing it, as in mobilenet_v2_0.3_80): every input is equivalent,
    so every probability is 1/depth. TFLite's optimized kernel is the only oracle left."""
    model = unary_model("SOFTMAX", (1, depth), "int8", (7.8e-9, -1), (1.0 / 256, -128), beta=1.0)
    calls = standard_calls(model)
    oracle = assert_matches_oracle(model, calls, isolated=True, allow_optimized=True)
    assert oracle == "litert-optimized"
    out = Interpreter(parse_model(model)).invoke(calls[0])[0]
    assert len(set(out.ravel().tolist())) == 1


def test_softmax_below_range_on_a_rounding_boundary_is_rejected() -> None:
    # 1/depth / (1/256) = 0.5 exactly: the 4 ppm spread decides the rounding.
    model = unary_model("SOFTMAX", (1, 512), "int8", (7.8e-9, 0), (1.0 / 256, -128), beta=1.0)
    with pytest.raises(UnsupportedOpError, match="rounding boundary"):
        Interpreter(parse_model(model))

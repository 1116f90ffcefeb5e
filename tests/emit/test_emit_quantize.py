"""The C of QUANTIZE and DEQUANTIZE against the reference: every type pair it accepts,
the rounding and saturation corners of float -> int (written without libm), in place,
and on the targets (hardware float on Cortex-M4, libgcc's soft float on M0 and RV32)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.emit.layer_code import EMITTERS
from autotune.model.tflite_import import parse_model
from tests.emit.test_emit_shape_ops import TARGETS, Calls, check_on_host, check_on_target
from tests.reference.test_ops_quantize import (
    DEQUANTIZE,
    FROM_FLOAT,
    REQUANTIZE,
    float_calls,
    integer_calls,
    unary_model,
)

SHAPE = (2, 50)


def rounding_corners(scale: float) -> Calls:
    """Floats whose quotient by scale sits where a hand-written round can go wrong."""
    s = np.float32(scale)
    below_half = np.nextafter(np.float32(0.5), np.float32(0))  # 0.49999997
    quotients = np.array(
        [
            below_half,
            -below_half,
            0.5,
            -0.5,
            1.5,
            -2.5,
            2**23 - 0.5,  # the last float with a fraction
            -(2**23) + 0.5,
            2**23 + 1,  # already integral
            2**31 - 128,  # the largest float below 2^31: fits an int32
            -(2**31),  # fits, exactly INT32_MIN
            2**31,  # does not fit: INT32_MIN, then the zero point wraps it
            1e-45,
            -1e-45,
        ],
        np.float32,
    )
    values = np.concatenate(
        [
            quotients * s,
            np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-38], np.float32),
        ]
    )
    return [[np.resize(values.astype(np.float32), SHAPE)]]


@pytest.mark.parametrize("case", REQUANTIZE.values(), ids=REQUANTIZE.keys())
def test_requantize(case: tuple, tmp_path: Path) -> None:
    in_dtype, out_dtype, in_q, out_q = case
    model = unary_model("QUANTIZE", in_dtype, out_dtype, in_q, out_q)
    check_on_host(model, tmp_path, integer_calls(in_dtype, SHAPE))


@pytest.mark.parametrize("case", FROM_FLOAT.values(), ids=FROM_FLOAT.keys())
def test_quantize_float(case: tuple, tmp_path: Path) -> None:
    out_dtype, (scale, zero_point) = case
    model = unary_model("QUANTIZE", "float32", out_dtype, None, (scale, zero_point))
    calls = float_calls(scale, zero_point, SHAPE) + rounding_corners(scale)
    check_on_host(model, tmp_path, calls)


@pytest.mark.parametrize("zero_point", [-128, 0, 127])
def test_out_of_range_quotients_wrap_like_the_reference(zero_point: int, tmp_path: Path) -> None:
    # INT32_MIN + a positive zero point stays negative (-> -128); a negative one wraps
    # around to a large positive value (-> 127): the reference's int32 arithmetic.
    model = unary_model("QUANTIZE", "float32", "int8", None, (0.5, zero_point))
    check_on_host(model, tmp_path, rounding_corners(0.5))


@pytest.mark.parametrize("case", DEQUANTIZE.values(), ids=DEQUANTIZE.keys())
def test_dequantize(case: tuple, tmp_path: Path) -> None:
    in_dtype, in_q = case
    model = unary_model("DEQUANTIZE", in_dtype, "float32", in_q, None)
    check_on_host(model, tmp_path, integer_calls(in_dtype, SHAPE))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_dequantize_with_an_extreme_scale(tmp_path: Path) -> None:
    # Products that overflow to infinity and that are subnormal: still one rounding.
    for n, scale in enumerate((3e36, 1e-42)):
        model = unary_model("DEQUANTIZE", "int8", "float32", (scale, 0), None)
        check_on_host(model, tmp_path / str(n), integer_calls("int8", SHAPE))


def test_in_place_when_the_output_is_not_wider() -> None:
    cases = {
        ("QUANTIZE", "int8", "int8"): True,
        ("QUANTIZE", "int16", "int8"): True,
        ("QUANTIZE", "float32", "int8"): True,
        ("QUANTIZE", "int8", "int16"): False,
        ("DEQUANTIZE", "int8", "float32"): False,
    }
    for (op, src, dst), inplace in cases.items():
        in_q = None if src == "float32" else (0.05, 0)
        out_q = None if dst == "float32" else (0.07, 0)
        graph = parse_model(unary_model(op, src, dst, in_q, out_q))
        code = EMITTERS[op](graph, graph.layers[0], "fn")
        assert code.inplace == ([(0, 1)] if inplace else []), (op, src, dst)


def test_generated_code_needs_no_libm(tmp_path: Path) -> None:
    lib = check_on_host(
        unary_model("QUANTIZE", "float32", "int8", None, (0.0371, -128)),
        tmp_path,
        rounding_corners(0.0371),
    )
    source = lib.sources[0].read_text()
    assert "#include <math.h>" not in source
    assert not any(f in source for f in ("roundf(", "lroundf(", "floorf(", "nearbyintf("))


ON_TARGETS = {
    "from-float-int8": (unary_model("QUANTIZE", "float32", "int8", None, (0.0371, -7)), "float"),
    "from-float-int16": (unary_model("QUANTIZE", "float32", "int16", None, (0.001, 0)), "float"),
    "dequantize-int8": (unary_model("DEQUANTIZE", "int8", "float32", (0.0371, 12), None), "int8"),
    "int16-to-int8": (unary_model("QUANTIZE", "int16", "int8", (0.0004, 0), (0.1, -3)), "int16"),
    "int16-to-int32": (
        unary_model("QUANTIZE", "int16", "int32", (1.0, 3), (1e-6, 2_000_000_000)),
        "int16",
    ),
}


@pytest.mark.toolchain
@pytest.mark.parametrize("target", TARGETS)
def test_on_targets(target: str, tmp_path: Path) -> None:
    for name, (model, kind) in ON_TARGETS.items():
        if kind == "float":
            scale = parse_model(model).output_tensors[0].scale
            calls = float_calls(scale, 0, SHAPE)[3:] + rounding_corners(scale)
        else:
            calls = integer_calls(kind, SHAPE)[3:]
        check_on_target(model, target, tmp_path / name, calls)

"""SOFTMAX, LOGISTIC and TANH as emitted C, bit-exact with the reference executor.

The helpers of at_fixedpoint.h are first checked one by one against the
reference's gemmlowp functions over wide ranges of raw values (host gcc); then
single-op models go through emit_library and run_on_host over many corners, and
a few models through run_on_target on cortex-m4, cortex-m0 and rv32imc.
"""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np
import pytest

from autotune.emit.library import Library, emit_library
from autotune.emit.verify import run_on_host, run_on_target
from autotune.errors import UnsupportedOpError
from autotune.model.graph import Graph
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins, toolchain
from autotune.reference import gemmlowp
from autotune.reference.executor import Interpreter
from autotune.reference.fixedpoint import (
    INT32_MAX,
    INT32_MIN,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from autotune.reference.ops.activations import sigmoid_int16, tanh_int16
from autotune.tune.template import INCLUDE_DIR
from tests.conftest import extreme_inputs, seeded_inputs

Calls = list[list[np.ndarray]]

# ---------------------------------------------------------------- at_fixedpoint.h itself

_SHIM = """
#include <stdint.h>
#include "at_fixedpoint.h"

#define MAP1(name, expr) \\
    void name(const int32_t *a, int32_t *out, int32_t n, int32_t k) \\
    { for (int32_t i = 0; i < n; ++i) { (void)k; out[i] = (expr); } }
#define MAP2(name, expr) \\
    void name(const int32_t *a, const int32_t *b, int32_t *out, int32_t n) \\
    { for (int32_t i = 0; i < n; ++i) { out[i] = (expr); } }

MAP2(t_mul, at_fp_mul(a[i], b[i]))
MAP2(t_rounding_divide, at_fp_rounding_divide(a[i], b[i]))
MAP2(t_rounding_divide_wide, at_fp_rounding_divide_wide(a[i], b[i]))
MAP2(t_mul_pot, at_fp_mul_pot(a[i], b[i]))
MAP1(t_exp, at_fp_exp_on_negative_values(a[i], k))
MAP1(t_one_over, at_fp_one_over_one_plus_x(a[i]))
MAP1(t_sigmoid, at_fp_sigmoid_s16(a[i]))
MAP1(t_tanh, at_fp_tanh_s16(a[i]))
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    work = tmp_path_factory.mktemp("fixedpoint")
    src, lib = work / "shim.c", work / "shim.so"
    src.write_text(_SHIM)
    cmd = ["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"]
    subprocess.run(
        [*cmd, "-I", str(INCLUDE_DIR), str(src), "-o", str(lib)],
        check=True,
        capture_output=True,
        text=True,
    )
    return ctypes.CDLL(str(lib))


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return a.ctypes.data_as(ctypes.c_void_p)


def _map1(lib: ctypes.CDLL, name: str, a: np.ndarray, k: int = 0) -> np.ndarray:
    a = np.ascontiguousarray(a, np.int32)
    out = np.zeros_like(a)
    getattr(lib, name)(_ptr(a), _ptr(out), a.size, k)
    return out.astype(np.int64)


def _map2(lib: ctypes.CDLL, name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.ascontiguousarray(a, np.int32), np.ascontiguousarray(b, np.int32)
    out = np.zeros_like(a)
    getattr(lib, name)(_ptr(a), _ptr(b), _ptr(out), a.size)
    return out.astype(np.int64)


def _raw(rng: np.random.Generator, n: int, lo: int = INT32_MIN, hi: int = INT32_MAX) -> np.ndarray:
    """Random raw values plus the corners of the range."""
    corners = [lo, lo + 1, hi - 1, hi, 0, -1, 1]
    corners = [c for c in corners if lo <= c <= hi]
    return np.concatenate([rng.integers(lo, hi + 1, n, dtype=np.int64), corners])


def test_basic_operations_match_gemmlowp(shim: ctypes.CDLL) -> None:
    rng = np.random.default_rng(1)
    a = _raw(rng, 20000)
    b = np.concatenate([_raw(rng, 20000 - 7), [INT32_MIN] * 7])
    assert np.array_equal(_map2(shim, "t_mul", a, b), saturating_rounding_doubling_high_mul(a, b))
    exps = rng.integers(0, 32, a.size)
    assert np.array_equal(
        _map2(shim, "t_rounding_divide", a, exps), rounding_divide_by_pot(a, exps)
    )
    wide = rng.integers(0, 63, a.size)
    assert np.array_equal(
        _map2(shim, "t_rounding_divide_wide", a, wide), rounding_divide_by_pot(a, wide)
    )
    pots = rng.integers(-31, 31, a.size)
    want = np.zeros_like(a)
    for e in np.unique(pots):
        chosen = pots == e
        want[chosen] = gemmlowp.saturating_rounding_multiply_by_pot(a[chosen], int(e))
    assert np.array_equal(_map2(shim, "t_mul_pot", a, pots), want)


@pytest.mark.parametrize("integer_bits", [0, 1, 4, 5, 6, 12])
def test_exp_on_negative_values_matches_gemmlowp(shim: ctypes.CDLL, integer_bits: int) -> None:
    rng = np.random.default_rng(integer_bits)
    a = _raw(rng, 50000, INT32_MIN, 0)
    got = _map1(shim, "t_exp", a, integer_bits)
    assert np.array_equal(got, gemmlowp.exp_on_negative_values(a, integer_bits))


def test_one_over_one_plus_x_matches_gemmlowp(shim: ctypes.CDLL) -> None:
    a = _raw(np.random.default_rng(2), 50000, 0, INT32_MAX)
    got = _map1(shim, "t_one_over", a)
    assert np.array_equal(got, gemmlowp.one_over_one_plus_x_for_x_in_0_1(a))


def test_int16_sigmoid_and_tanh_match_over_every_table_entry(shim: ctypes.CDLL) -> None:
    # v runs past the saturation point of both (255 * 512), so every table entry is read.
    v = np.arange(-140000, 140001, dtype=np.int64)
    # multiplier 1, shift 0: the reference applies no rescaling, as the C helper.
    assert np.array_equal(_map1(shim, "t_sigmoid", v), sigmoid_int16(v, 1, 0).astype(np.int64))
    assert np.array_equal(_map1(shim, "t_tanh", v), tanh_int16(v, 1, 0).astype(np.int64))


# ---------------------------------------------------------------- single-op models


def unary_model(
    op: str,
    shape: tuple[int, ...],
    dtype: str,
    in_q: tuple[float, int],
    out_q: tuple[float, int],
    out_dtype: str | None = None,
    **options: object,
) -> bytes:
    b = ModelBuilder(f"{op} test")
    x = b.tensor("x", shape, dtype, *in_q)
    y = b.tensor("y", shape, out_dtype or dtype, *out_q)
    b.op(op, [x], [y], **options)
    b.inputs(x)
    b.outputs(y)
    return b.build()


def check_host(model: bytes, calls: Calls, work: Path) -> Graph:
    """emit_library + run_on_host must equal the reference on every call."""
    graph = parse_model(model)
    library = emit_library(graph, plugins.get_target("cortex-m4"), work / "model")
    got = run_on_host(library, graph, calls)
    interp = Interpreter(graph)
    for n, (inputs, outputs) in enumerate(zip(calls, got, strict=True)):
        interp.reset()
        for k, (want, have) in enumerate(zip(interp.invoke(inputs), outputs, strict=True)):
            diff = int((want != have).sum())
            assert diff == 0, f"call {n} output {k}: {diff} of {want.size} elements differ"
    return graph


def standard_calls(model: bytes) -> Calls:
    graph = parse_model(model)
    return [
        seeded_inputs(graph, 1),
        seeded_inputs(graph, 2),
        extreme_inputs(graph, "min"),
        extreme_inputs(graph, "max"),
    ]


SOFTMAX_CASES = [
    # (input scale, zero point, beta, shape, output dtype)
    (0.1, 3, 1.0, (3, 10), "int8"),
    (1.0 / 16, -128, 1.0, (1, 1), "int8"),
    (0.5, 0, 0.5, (2, 5, 7), "int8"),  # diff_min above -255: far values are dropped
    (1.0, -5, 1.0, (4, 33), "int8"),
    (0.004, 10, 2.0, (4, 100), "int8"),  # every difference is used
    (0.02, 0, 1.0, (1, 1000), "int8"),  # long rows sum far past one
    (0.05, 0, 1.0, (2, 12), "int16"),
    (0.25, 7, 0.7, (3, 40), "int16"),
]


@pytest.mark.parametrize(("scale", "zp", "beta", "shape", "out_dtype"), SOFTMAX_CASES)
def test_softmax_on_host(
    tmp_path: Path, scale: float, zp: int, beta: float, shape: tuple[int, ...], out_dtype: str
) -> None:
    out_q = (1.0 / 256, -128) if out_dtype == "int8" else (1.0 / 65536, -32768)
    model = unary_model("SOFTMAX", shape, "int8", (scale, zp), out_q, out_dtype, beta=beta)
    calls = standard_calls(model)
    rng = np.random.default_rng(3)
    # A few values far above the rest, so that rows mix used and dropped differences.
    peaked = rng.integers(-128, -60, shape).astype(np.int8)
    peaked.reshape(-1, shape[-1])[:, 0] = 127
    check_host(model, [*calls, [peaked]], tmp_path)


def test_softmax_rejects_rows_whose_sum_can_overflow(tmp_path: Path) -> None:
    model = unary_model("SOFTMAX", (1, 4096), "int8", (0.1, 0), (1.0 / 256, -128), beta=1.0)
    with pytest.raises(UnsupportedOpError, match="4096"):
        emit_library(parse_model(model), plugins.get_target("cortex-m4"), tmp_path)


INT8_CASES = [(0.004, 0), (0.05, 3), (0.1, -128), (0.7, 127), (8.0, -20)]


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize(("scale", "zp"), INT8_CASES)
def test_int8_logistic_tanh_every_input(tmp_path: Path, op: str, scale: float, zp: int) -> None:
    out_q = (1.0 / 256, -128) if op == "LOGISTIC" else (1.0 / 128, 0)
    model = unary_model(op, (2, 128), "int8", (scale, zp), out_q)
    every = np.arange(-128, 128, dtype=np.int64).astype(np.int8).reshape(2, 128)
    check_host(model, [[every]], tmp_path)


INT16_SCALES = [2.0**-12, 2.0**-11, 2.0**-15, 1e-4, 1.3e-3, 0.02, 5e-10]


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("scale", INT16_SCALES)
def test_int16_logistic_tanh_every_input(tmp_path: Path, op: str, scale: float) -> None:
    model = unary_model(op, (256, 256), "int16", (scale, 0), (2.0**-15, 0))
    every = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16).reshape(256, 256)
    check_host(model, [[every]], tmp_path)


def test_rejected_layer_names_the_reason(tmp_path: Path) -> None:
    model = unary_model("LOGISTIC", (4,), "int8", (0.1, 0), (1.0 / 256, 0))
    with pytest.raises(UnsupportedOpError, match="zero point must be -128"):
        emit_library(parse_model(model), plugins.get_target("cortex-m4"), tmp_path)


# ---------------------------------------------------------------- on the targets


def assert_warning_free(library: Library, target: str, work: Path) -> None:
    """Every layer source compiles with -Wall -Wextra -Werror for the target."""
    for source in library.sources:
        if source.name.startswith("layer"):
            out = work / f"{source.stem}.o"
            toolchain.compile_object(
                plugins.get_target(target),
                source,
                out,
                extra_cflags=["-Wall", "-Wextra", "-Werror"],
                include_dirs=[library.directory],
            )


def chain_model() -> bytes:
    """LOGISTIC -> TANH -> SOFTMAX -> TANH on int8, plus an int16 LOGISTIC beside them.

    The middle layers run in place (the planner gives the output its input's storage)."""
    b = ModelBuilder("activation chain")
    x = b.tensor("x", (3, 24), "int8", 0.06, 5)
    a = b.tensor("a", (3, 24), "int8", 1.0 / 256, -128)
    t = b.tensor("t", (3, 24), "int8", 1.0 / 128, 0)
    s = b.tensor("s", (3, 24), "int8", 1.0 / 256, -128)
    y = b.tensor("y", (3, 24), "int8", 1.0 / 128, 0)
    b.op("LOGISTIC", [x], [a])
    b.op("TANH", [a], [t])
    b.op("SOFTMAX", [t], [s], beta=1.5)
    b.op("TANH", [s], [y])
    x16 = b.tensor("x16", (2, 50), "int16", 3e-4, 0)
    y16 = b.tensor("y16", (2, 50), "int16", 2.0**-15, 0)
    b.op("LOGISTIC", [x16], [y16])
    b.inputs(x, x16)
    b.outputs(y, y16)
    return b.build()


@pytest.mark.toolchain
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0", "rv32imc"])
def test_chain_on_target(tmp_path: Path, target: str) -> None:
    model = chain_model()
    graph = parse_model(model)
    library = emit_library(graph, plugins.get_target(target), tmp_path / "model")
    in_place = [n for n in library.plan.notes if "computed over" in n]
    assert len(in_place) == 2, library.plan.notes  # TANH and SOFTMAX over their inputs
    assert_warning_free(library, target, tmp_path)
    calls = standard_calls(model)
    run = run_on_target(library, graph, plugins.get_target(target), calls)
    interp = Interpreter(graph)
    for inputs, got in zip(calls, run.outputs, strict=True):
        interp.reset()
        for want, have in zip(interp.invoke(inputs), got, strict=True):
            assert np.array_equal(want, have)


def test_c_sigmoid_tables_are_the_reference_table() -> None:
    """The int16 sigmoid table is written out in the C headers (they are copied into every
    library as they are); they must hold exactly the reference's values."""
    import itertools
    import re

    from autotune.reference.ops.activations import SIGMOID_TABLE_U16
    from autotune.tune.template import INCLUDE_DIR

    def table(header: str, name: str) -> list[int]:
        text = (INCLUDE_DIR / header).read_text()
        body = text.split(name, 1)[1].split("{", 1)[1].split("}", 1)[0]
        return [int(v, 0) for v in re.findall(r"0x[0-9a-fA-F]+|\d+", body)]

    ref = [int(v) for v in SIGMOID_TABLE_U16]
    assert table("at_fixedpoint.h", "at_sigmoid_table_u16[256]") == ref
    # at_lstm.h packs each entry as slope u[i+1] - u[i] (0 for the last) in bits 16-31 and
    # u[i] - 32767 in bits 0-15.
    pairs = table("at_lstm.h", "at_lstm_sigmoid_pairs[256]")
    slopes = [b - a for a, b in itertools.pairwise(ref)] + [0]
    assert [p & 0xFFFF for p in pairs] == [(u - 32767) & 0xFFFF for u in ref]
    assert [p >> 16 for p in pairs] == slopes

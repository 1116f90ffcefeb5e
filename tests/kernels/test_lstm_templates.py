"""UNIDIRECTIONAL_SEQUENCE_LSTM templates: every point of the space is TFLM's LSTM, bit for bit.

Random points of the space run on the host (portable C, output and the persistent
state over two consecutive calls) and on cortex-m0, cortex-m4 (the SMLAD paths) and
rv32imc in the emulator. The fast exact forms of at_lstm.h are checked against the
reference over their whole input domain.
"""

from __future__ import annotations

import ctypes
import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from autotune.kernels.lstm import TEMPLATES, LstmTemplate, lay_out, row_blocks
from autotune.model.graph import Graph, Quantization
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins
from autotune.reference.executor import Interpreter
from autotune.reference.fixedpoint import multiply_by_quantized_multiplier
from autotune.reference.ops.activations import int16_input_scaling, sigmoid_int16, tanh_int16
from autotune.reference.ops.lstm import cell_tanh_params, effective_bias
from autotune.tune.space import Point
from autotune.tune.spec import KernelSpec, build_spec
from autotune.tune.template import INCLUDE_DIR, Rendered
from autotune.tune.variant import Evaluator
from tests.kernels.hostc import (
    HOST,
    WARNINGS,
    assert_cross_compiles_clean,
    compile_host_library,
)
from tests.kernels.test_depthwise_templates import (
    CROSS,
    chosen_points,
    emulator_or_skip,
    quick_checks,
    random_points,
)
from tests.reference.test_ops_lstm import LstmCase, lstm_model

LSTM = TEMPLATES[0]
HIDDEN_STATE, CELL_STATE = 18, 19

CASES = {
    "u4-f6-s5": LstmCase(),
    "u8-f5-s7-batch2": LstmCase(batch=2, steps=7, n_in=5, units=8),
    "u9-f3-s4-time-major-batch2": LstmCase(batch=2, steps=4, n_in=3, units=9, time_major=True),
    "u16-f20-s6-clip": LstmCase(steps=6, n_in=20, units=16, cell_clip=0.5, gate_range=10.0),
    "u32-f12-s1": LstmCase(steps=1, n_in=12, units=32),
    "u12-f7-s12-hidden-zp": LstmCase(
        steps=12, n_in=7, units=12, hidden_q=(0.0093, 17), in_q=(0.3, -40)
    ),
    # Saturating gates, a Q0.15 cell and a clip of 32767 (its own code path).
    "u6-f4-s8-saturating-clip-max": LstmCase(
        steps=8, n_in=4, units=6, cell_power=-15, gate_range=40.0, cell_clip=1.0
    ),
    "u5-f9-s3-coarse-cell-time-major": LstmCase(
        steps=3, n_in=9, units=5, time_major=True, cell_power=-8, cell_clip=3.0
    ),
}


def case_spec(name: str) -> tuple[Graph, KernelSpec]:
    graph = parse_model(lstm_model(CASES[name], seed=sorted(CASES).index(name)))
    spec = build_spec(graph, graph.layers[0])
    assert spec is not None
    return graph, spec


def run_with_state(
    kernels: list[Rendered], spec: KernelSpec, calls: list[np.ndarray], work: Path
) -> list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Compile every kernel into one shared library; run each on consecutive calls from the
    reset state. Returns per kernel, per call: (output, hidden state, cell state)."""
    lib = compile_host_library(kernels, work, "lstm")
    (h_type, h_count, h_reset), (c_type, c_count, c_reset) = spec.state
    assert (h_type, c_type) == ("int8", "int16")
    results = []
    for k in kernels:
        hidden = np.full(h_count, h_reset, np.int8)
        cell = np.full(c_count, c_reset, np.int16)
        scratch = np.zeros(max(4, k.scratch_bytes), np.int8)
        runs = []
        for x in calls:
            out = np.zeros(spec.output_size, np.int8)
            args = [np.ascontiguousarray(a).ctypes.data_as(ctypes.c_void_p) for a in (x, out)]
            state = [a.ctypes.data_as(ctypes.c_void_p) for a in (hidden, cell, scratch)]
            getattr(lib, k.function)(*args, *state)
            runs.append((out, hidden.copy(), cell.copy()))
        results.append(runs)
    return results


def reference_runs(
    graph: Graph, calls: list[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The reference executor over consecutive calls, the state carried along."""
    interp = Interpreter(graph)
    layer = graph.layers[0]
    out = []
    for x in calls:
        y = interp.invoke([x])
        assert isinstance(y, list)
        out.append(
            (
                y[0].reshape(-1),
                interp.state[layer.inputs[HIDDEN_STATE]].reshape(-1),
                interp.state[layer.inputs[CELL_STATE]].reshape(-1),
            )
        )
    return out


def two_calls(graph: Graph, seed: int) -> list[np.ndarray]:
    """A seeded random input, then random extremes (-128 or 127) that saturate the gates."""
    rng = np.random.default_rng(seed)
    shape = graph.input_tensors[0].shape
    return [
        rng.integers(-128, 128, shape).astype(np.int8),
        np.where(rng.random(shape) < 0.5, -128, 127).astype(np.int8),
    ]


# --------------------------------------------------------------------------- spec


def test_spec_carries_structure_values_and_state() -> None:
    graph, spec = case_spec("u8-f5-s7-batch2")
    assert spec.op == "UNIDIRECTIONAL_SEQUENCE_LSTM"
    assert spec.dims == {"batches": 2, "steps": 7, "features": 5, "units": 8, "time_major": 0}
    assert spec.flags == {"cell_clip": False}
    assert spec.state == [("int8", 16, -2), ("int16", 16, 0)]  # hidden zero point, zero cell
    assert spec.input_sizes == [2 * 7 * 5] and spec.output_size == 2 * 7 * 8
    w = spec.consts["input_weights"].reshape(32, 5)
    zp = graph.tensors[graph.layers[0].inputs[0]].zero_point
    assert np.array_equal(spec.consts["input_bias"], effective_bias(w, spec.consts["bias"], zp, 0))
    _, other = case_spec("u9-f3-s4-time-major-batch2")
    assert other.dims["time_major"] == 1 and other.workload_key() != spec.workload_key()
    assert "7 steps x 2 batch" in spec.describe()


def test_weight_zero_points_are_left_to_the_emitter() -> None:
    graph, _ = case_spec("u4-f6-s5")
    w = graph.tensors[graph.layers[0].inputs[6]]
    assert w.quant is not None
    w.quant = Quantization(w.quant.scale, np.array([3], np.int64))
    assert build_spec(graph, graph.layers[0]) is None


# --------------------------------------------------------------------------- host


@pytest.mark.parametrize("case", CASES)
def test_random_points_bit_exact_on_host(case: str, tmp_path: Path) -> None:
    graph, spec = case_spec(case)
    calls = two_calls(graph, seed=3)
    want = reference_runs(graph, calls)
    out0 = want[0][0]
    assert np.count_nonzero((out0 > -128) & (out0 < 127)) > out0.size // 4, "test data saturates"
    points = chosen_points(LSTM, spec, HOST, 2, 6, seed=sorted(CASES).index(case))
    kernels = [LSTM.render(spec, HOST, p, f"lstm_{i}") for i, p in enumerate(points)]
    for kernel, runs in zip(kernels, run_with_state(kernels, spec, calls, tmp_path), strict=True):
        for n, (got, expected) in enumerate(zip(runs, want, strict=True)):
            for what, g, w in zip(("output", "hidden", "cell"), got, expected, strict=True):
                assert np.array_equal(g, w), (case, n, what, kernel.params)
    assert len(kernels) >= 7


# --------------------------------------------------------------------------- emulator

EMULATED = {
    "cortex-m4": ["u16-f20-s6-clip", "u9-f3-s4-time-major-batch2"],
    "cortex-m0": ["u8-f5-s7-batch2"],
    "rv32imc": ["u12-f7-s12-hidden-zp"],
}


def dsp_points(spec: KernelSpec, target: object) -> list[Point]:
    """Both DSP weight packings, gates fused and separate, with and without blocking."""
    space = LSTM.space(spec, target)  # type: ignore[arg-type]
    base = {**space.baseline(), "mode": "fused", "simd": "dsp"}
    points = [
        {**base, "wpack": "int8", "gates": "separate", "block_u": 2, "block_t": 4, "unroll": 2},
        {**base, "wpack": "int16", "gates": "fused", "cell_update": "unit", "xproj": "all"},
    ]
    return [p for p in points if space.check(p) is None]


@pytest.mark.parametrize("target_name", EMULATED)
def test_points_bit_exact_in_emulator(target_name: str, tmp_path: Path) -> None:
    runner = emulator_or_skip()
    target = plugins.get_target(target_name)
    if shutil.which(target.toolchain.cc) is None:
        pytest.skip(f"{target.toolchain.cc} not installed")
    measured = 0
    for case in EMULATED[target_name]:
        graph, spec = case_spec(case)
        evaluator = Evaluator(spec, target, quick_checks(graph), tmp_path / case, runner)
        points = chosen_points(LSTM, spec, target, 2, 1, seed=measured)
        if target.has("dsp"):
            points += dsp_points(spec, target)
        for point in points:
            m = evaluator.evaluate(LSTM, point)
            assert m.ok, (case, point, m.status, m.reason)
            measured += 1
    assert measured >= 4


def test_dsp_suggestion_beats_the_reference_step_on_cortex_m4(tmp_path: Path) -> None:
    runner = emulator_or_skip()
    target = plugins.get_target("cortex-m4")
    if shutil.which(target.toolchain.cc) is None:
        pytest.skip(f"{target.toolchain.cc} not installed")
    graph, spec = case_spec("u16-f20-s6-clip")
    evaluator = Evaluator(spec, target, quick_checks(graph), tmp_path, runner)
    base = evaluator.evaluate(LSTM, LSTM.space(spec, target).baseline())
    tip = LSTM.suggestions(spec, target)[0]
    assert tip["simd"] == "dsp" and tip["wpack"] == "int16"
    best = evaluator.evaluate(LSTM, tip)
    assert base.ok and best.ok, (base.reason, best.reason)
    assert base.cycles and best.cycles
    assert best.cycles * 3 < base.cycles


CROSS_ALL = {**CROSS, "cortex-m0": ["-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft"]}


@pytest.mark.parametrize("target_name", CROSS_ALL)
def test_generated_code_is_warning_free(target_name: str, tmp_path: Path) -> None:
    target = plugins.get_target(target_name)
    cc = shutil.which(target.toolchain.cc)
    if cc is None:
        pytest.skip(f"{target.toolchain.cc} not installed")
    sources = []
    for case in ("u9-f3-s4-time-major-batch2", "u6-f4-s8-saturating-clip-max"):
        _, spec = case_spec(case)
        points = chosen_points(LSTM, spec, target, 3, 3, seed=len(sources))
        if target.has("dsp"):
            points += dsp_points(spec, target)
        for point in points:
            src = tmp_path / f"lstm_{len(sources)}.c"
            src.write_text(LSTM.render(spec, target, point, "at_layer").source)
            sources.append(str(src))
    assert_cross_compiles_clean(cc, CROSS_ALL[target_name], sources, tmp_path)
    assert len(sources) >= 8


# --------------------------------------------------------------------------- exact fast forms

EXHAUSTIVE_C = r"""
#include <stdint.h>
#include <stdio.h>
#include "at_fixedpoint.h"
#include "at_lstm.h"

/* argv: output file, then (multiplier, shift) pairs of cell-state rescalings. */
int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "wb");
    for (int32_t x = -32768; x <= 32767; ++x) {
        int16_t v[2] = {(int16_t)at_lstm_sigmoid_q3_12(x), (int16_t)at_lstm_tanh(3 * x)};
        fwrite(v, sizeof v, 1, f);
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        const int32_t m = atoi(argv[i]), s = atoi(argv[i + 1]);
        for (int32_t x = -32768; x <= 32767; ++x) {
            const int16_t v = (int16_t)at_lstm_tanh(at_fp_scale_int16(x, m, s));
            fwrite(&v, sizeof v, 1, f);
        }
    }
    fclose(f);
    return 0;
}
"""


def _host_program(source: str, work: Path, defines: tuple[str, ...] = ()) -> Path:
    src = work / "prog.c"
    src.write_text(source.replace("#include <stdio.h>", "#include <stdio.h>\n#include <stdlib.h>"))
    exe = work / "prog"
    proc = subprocess.run(
        ["gcc", "-O2", *WARNINGS, *defines, "-I", str(INCLUDE_DIR), "-o", str(exe), str(src)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[:3000]
    return exe


def test_lean_activations_equal_tflite_over_the_whole_int16_domain(tmp_path: Path) -> None:
    x = np.arange(-32768, 32768, dtype=np.int64)
    scalings = []
    for power in range(-20, 0):
        m, s = int16_input_scaling(*cell_tanh_params(power))
        if all(-(2**31) <= v * m + ((1 << (s - 1)) if s else 0) < 2**31 for v in (-32768, 32767)):
            scalings.append((power, m, s))
    assert len(scalings) >= 15
    exe = _host_program(EXHAUSTIVE_C, tmp_path)
    out = tmp_path / "values.bin"
    args = [str(a) for _, m, s in scalings for a in (m, s)]
    subprocess.run([str(exe), str(out), *args], check=True)
    values = np.fromfile(out, np.int16)
    gates = values[: 2 * x.size].reshape(-1, 2)
    assert np.array_equal(gates[:, 0], sigmoid_int16(x))
    assert np.array_equal(gates[:, 1], tanh_int16(x))
    cells = values[2 * x.size :].reshape(len(scalings), x.size)
    for (power, _, _), got in zip(scalings, cells, strict=True):
        assert np.array_equal(got, tanh_int16(x, *cell_tanh_params(power))), power


REQUANT_C = r"""
#include <stdint.h>
#include <stdio.h>
#include "at_lstm.h"

/* stdin: lines "acc mult k e"; stdout: at_lstm_requant of each. */
int main(void)
{
    long acc, mult, k, e;
    while (scanf("%ld %ld %ld %ld", &acc, &mult, &k, &e) == 4) {
        printf("%ld\n", (long)at_lstm_requant((int32_t)acc, (int32_t)mult, (int32_t)k, (int32_t)e));
    }
    return 0;
}
"""


@pytest.mark.parametrize("path", ["int64", "armv6m"])
def test_fused_requantization_is_tflm_rounding(path: str, tmp_path: Path) -> None:
    """Random and tie-making accumulators below 2^30, every shift, with offsets; the
    Armv6-M form (16-bit partial products) is plain C, so the host runs it too."""
    rng = np.random.default_rng(11)
    rows = []
    for e in range(1, 32):
        for mult in (1 << 30, int(rng.integers(1 << 30, 1 << 31)), 1518500250):
            offset = int(rng.integers(-128, 128)) if 9 <= e <= 22 else 0  # |k| < 2^30
            accs = rng.integers(-(2**30) + 1, 2**30, 40)
            # With mult = 2^30 the high product is acc / 2: acc = (2n + 1) 2^e puts it
            # exactly halfway between two results of the final division.
            odd = 2 * rng.integers(-50, 50, 6) + 1
            ties = [int(n) << e for n in odd] if mult == 1 << 30 else []
            extremes = [0, 1, -1, 2**30 - 1, -(2**30) + 1]
            for acc in [*accs.tolist(), *(t for t in ties if abs(t) < 2**30), *extremes]:
                k = (1 << (e - 1)) + offset * (1 << e)
                rows.append((int(acc), mult, k, e, offset))
    defines = ("-D__ARM_ARCH_6M__",) if path == "armv6m" else ()
    exe = _host_program(REQUANT_C, tmp_path, defines)
    stdin = "\n".join(f"{a} {m} {k} {e}" for a, m, k, e, _ in rows)
    proc = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True)
    got = np.array([int(v) for v in proc.stdout.split()], np.int64)
    acc = np.array([r[0] for r in rows], np.int64)
    mult = np.array([r[1] for r in rows], np.int64)
    shift = -np.array([r[3] for r in rows], np.int64)
    want = multiply_by_quantized_multiplier(acc, mult, shift) + np.array([r[4] for r in rows])
    assert np.array_equal(got, want)


def test_lean_table_is_tflites_table() -> None:
    """The packed tables in at_lstm.h are TFLite's sigmoid table with its rounding folded in."""
    from autotune.reference.ops.activations import SIGMOID_TABLE_U16

    text = (INCLUDE_DIR / "at_lstm.h").read_text()
    u = np.asarray(SIGMOID_TABLE_U16, np.int64)
    slope = np.append(np.diff(u), 0)
    for name, low in (("sigmoid", u - 32767), ("tanh", 2 * (u - 32768) + 1)):
        body = text.split(f"at_lstm_{name}_pairs[256]")[1].split("};")[0]
        words = [int(w.rstrip("u"), 16) for w in body.split("{")[1].replace(",", " ").split()]
        assert np.array_equal(np.array(words), low | slope << 16), name


# --------------------------------------------------------------------------- space


def test_weight_layouts_follow_the_row_blocks() -> None:
    w = np.arange(8 * 6).reshape(8, 6) % 251 - 125  # 2 units x 4 gates, K = 6
    blocks = row_blocks(2, fused=True, block=1)
    assert blocks == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert row_blocks(3, fused=False, block=2)[:3] == [[0, 1], [2], [3, 4]]
    main, tail, per_row, trow = lay_out(w, blocks, "int8")
    assert per_row == 6 and trow == 0 and main[:4].tolist() == w[[0, 2, 4, 6], 0].tolist()
    words, tail, per_row, trow = lay_out(w, blocks, "dsp16")
    assert per_row == 4 and trow == 0  # one group of 4, then the overlapping last group
    lo = (words.astype(np.int64) & 0xFFFF).astype(np.int16)
    hi = (words.astype(np.int64) >> 16).astype(np.int16)
    assert (lo[0], hi[0], lo[1], hi[1]) == (w[0, 0], w[0, 2], w[0, 1], w[0, 3])
    # The overlap group covers k = 2..5 with k = 2, 3 zeroed: words 8, 9 of row 0.
    assert (lo[8], hi[8], lo[9], hi[9]) == (0, w[0, 4], 0, w[0, 5])
    _bytes8, tail, per_row, trow = lay_out(w[:, :3], blocks, "dsp8")
    assert per_row == 0 and trow == 3 and tail[:4].tolist() == w[[0, 2, 4, 6], 0].tolist()


def test_space_constraints_and_suggestions() -> None:
    _, spec = case_spec("u16-f20-s6-clip")
    m4 = plugins.get_target("cortex-m4")
    space = LSTM.space(spec, m4)
    base = space.baseline()
    assert base["mode"] == "reference" and space.check(base) is None
    assert space.check({**base, "simd": "dsp"}) is not None  # the reference takes no SIMD
    fused = {**base, "mode": "fused"}
    assert space.check({**fused, "gates": "fused", "block_u": 4}) is not None  # 16 accumulators
    assert space.check({**fused, "xblock_u": 4, "block_t": 4}) is not None  # 4 rows x 4 steps
    assert space.check({**fused, "gates": "fused", "block_t": 4}) is None  # 1 row x 4 steps
    assert space.check({**fused, "cell_update": "unit"}) is not None  # needs fused gates
    assert space.check({**fused, "wpack": "int16"}) is not None  # int16 is the DSP layout
    assert space.check({**fused, "gates": "fused", "block_u": 2, "simd": "dsp"}) is None
    for target_name in ("cortex-m4", "cortex-m0", "rv32imc"):
        target = plugins.get_target(target_name)
        for case in CASES:
            _, s = case_spec(case)
            tips = LSTM.suggestions(s, target)
            assert tips and all(LSTM.space(s, target).check(p) is None for p in tips)
            assert (tips[0]["simd"] == "dsp") == target.has("dsp")
            assert all(p["mode"] == "fused" for p in tips)
    assert "dsp" not in next(p for p in LSTM.space(spec, HOST).params if p.name == "simd").choices


def test_scratch_holds_the_projected_steps() -> None:
    _, spec = case_spec("u8-f5-s7-batch2")
    space = LSTM.space(spec, HOST)
    base = space.baseline()
    assert LSTM.scratch_bytes(spec, HOST, base) == 5 * 8 * 2  # TFLM's buffers, one row
    fused = {**base, "mode": "fused", "block_t": 2}
    assert LSTM.scratch_bytes(spec, HOST, fused) == 2 * 2 * 4 * 8 * 2
    assert LSTM.scratch_bytes(spec, HOST, {**fused, "xproj": "all"}) == 7 * 2 * 4 * 8 * 2


def test_every_space_choice_is_reachable() -> None:
    _, spec = case_spec("u16-f20-s6-clip")
    space = LSTM.space(spec, plugins.get_target("cortex-m4"))
    names = [p.name for p in space.params]
    seen: dict[str, set] = {n: set() for n in names}
    for values in itertools.product(*(p.choices for p in space.params)):
        point = dict(zip(names, values, strict=True))
        if space.check(point) is None:
            for k, v in point.items():
                seen[k].add(v)
    assert all(seen[p.name] == set(p.choices) for p in space.params)
    assert isinstance(LSTM, LstmTemplate)
    assert len(random_points(space, 20, seed=1)) == 20

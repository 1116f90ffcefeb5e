"""Calibrate a part preset's memory parameters against a board's DWT cycle counts.

A fixed set of microbenchmarks, each built to stress one part of the memory system
(loads from SRAM and from flash, sequential and one per cache line; taken branches;
SMLAD chains; straight-line code that fits the instruction cache and code that does
not; a tuned convolution layer), is run on the board (``cycles (board, DWT)``) and
through the timing model of the part. The model's cycles are linear in the free
parameters (every ``Memory.wait_states`` and ``Cache.miss_penalty``: hits and misses
do not depend on what a miss costs), so each benchmark's sensitivity to each
parameter is a finite difference of the model, and the parameters are the
non-negative least-squares fit of the board's counts, plus one constant per run (the
cycles between the debugger's resume and the first instruction), rounded to whole
cycles. The result is written as a calibrated preset (the ``load_part_file`` JSON
format: overrides on top of the built-in preset) that ``--part FILE`` loads.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autotune.errors import AutotuneError
from autotune.platform import harness, toolchain
from autotune.platform.target import Target

Params = dict[str, int]  # "memories.flash.wait_states" -> value
Predict = Callable[[Params], dict[str, float]]  # parameters -> cycles per benchmark
INTERCEPT = "overhead per run"


class CalibrationError(AutotuneError):
    """Calibration cannot run or its data is unusable (names the benchmark or parameter)."""


_HEAD = '#include "autotune_harness.h"\n\n'
_LOOP = 16  # repetitions inside each benchmark, so per-run overhead is small

# name -> (what it stresses, C source); each defines autotune_main.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "sram_loads": (
        "word loads from SRAM, 4 KiB, stride 4",
        _HEAD
        + "AUTOTUNE_BUFFER(int32_t, sram_table, 1024);\n"
        + "AUTOTUNE_BUFFER(int32_t, result, 1);\n"
        + "void autotune_main(void)\n{\n    int32_t acc = 0;\n"
        + f"    for (int32_t r = 0; r < {_LOOP}; ++r) {{\n"
        + "        for (int32_t i = 0; i < 1024; i += 8) {\n"
        + "            const volatile int32_t *p = sram_table + i;\n"
        + "            acc += p[0] + p[1] + p[2] + p[3] + p[4] + p[5] + p[6] + p[7];\n"
        + "        }\n    }\n    result[0] = acc;\n}\n",
    ),
    "flash_loads_sequential": (
        "word loads from flash, 16 KiB, stride 4 (every word of every line)",
        _HEAD
        + "static const int32_t flash_table[4096] = {1, 2, 3};\n"
        + "AUTOTUNE_BUFFER(int32_t, result, 1);\n"
        + "void autotune_main(void)\n{\n    int32_t acc = 0;\n"
        + "    for (int32_t r = 0; r < 2; ++r) {\n"
        + "        for (int32_t i = 0; i < 4096; i += 8) {\n"
        + "            const volatile int32_t *p = flash_table + i;\n"
        + "            acc += p[0] + p[1] + p[2] + p[3] + p[4] + p[5] + p[6] + p[7];\n"
        + "        }\n    }\n    result[0] = acc;\n}\n",
    ),
    "flash_loads_strided": (
        "word loads from flash, 32 KiB, stride 64 (one per line of any cache)",
        _HEAD
        + "static const int32_t flash_table[8192] = {1, 2, 3};\n"
        + "AUTOTUNE_BUFFER(int32_t, result, 1);\n"
        + "void autotune_main(void)\n{\n    int32_t acc = 0;\n"
        + f"    for (int32_t r = 0; r < {_LOOP}; ++r) {{\n"
        + "        for (int32_t i = 0; i < 8192; i += 128) {\n"
        + "            const volatile int32_t *p = flash_table + i;\n"
        + "            acc += p[0] + p[16] + p[32] + p[48] + p[64] + p[80] + p[96] + p[112];\n"
        + "        }\n    }\n    result[0] = acc;\n}\n",
    ),
    "taken_branches": (
        "a chain of 64 taken branches, each over one instruction",
        _HEAD
        + "void autotune_main(void)\n{\n"
        + f"    for (int32_t r = 0; r < {_LOOP * 4}; ++r) {{\n"
        + '        __asm__ volatile(".rept 64\\n\\tb 1f\\n\\tnop\\n1:\\n\\t.endr");\n'
        + "    }\n}\n",
    ),
    "smlad_chain": (
        "a dependent chain of 128 SMLADs (DSP cores; 512 bytes of code)",
        _HEAD
        + "AUTOTUNE_BUFFER(int32_t, result, 1);\n"
        + "void autotune_main(void)\n{\n    int32_t acc = 0, a = 0x00030002, b = 0x00050004;\n"
        + f"    for (int32_t r = 0; r < {_LOOP * 2}; ++r) {{\n"
        + '        __asm__ volatile(".rept 128\\n\\tsmlad %0, %1, %2, %0\\n\\t.endr"'
        + ' : "+r"(acc) : "r"(a), "r"(b));\n'
        + "    }\n    result[0] = acc;\n}\n",
    ),
    "code_small": (
        "512 bytes of straight-line code run 64 times (fits any instruction cache)",
        _HEAD
        + "__attribute__((noinline)) static void body(void)\n{\n"
        + '    __asm__ volatile(".rept 256\\n\\tadds r0, r0, #1\\n\\t.endr" ::: "r0", "cc");\n}\n'
        + "void autotune_main(void)\n{\n"
        + "    for (int32_t r = 0; r < 64; ++r) {\n        body();\n    }\n}\n",
    ),
    "code_large": (
        "16 KiB of straight-line code run 8 times (larger than the caches)",
        _HEAD
        + "__attribute__((noinline)) static void body(void)\n{\n"
        + '    __asm__ volatile(".rept 8192\\n\\tadds r0, r0, #1\\n\\t.endr" ::: "r0", "cc");\n}\n'
        + "void autotune_main(void)\n{\n"
        + "    for (int32_t r = 0; r < 8; ++r) {\n        body();\n    }\n}\n",
    ),
}
CONV_BENCHMARK = "tuned_conv"


def benchmark_names(target: Target) -> list[str]:
    """The benchmarks that apply to ``target`` (SMLAD needs the DSP extension)."""
    names = [n for n in BENCHMARKS if n != "smlad_chain" or target.has("dsp")]
    return [*names, CONV_BENCHMARK]


def build_benchmarks(target: Target, work: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Compile every benchmark (or ``names``) for ``target`` into its own ELF."""
    elfs = {}
    for name in names or benchmark_names(target):
        out = work / name
        out.mkdir(parents=True, exist_ok=True)
        if name == CONV_BENCHMARK:
            elfs[name] = _conv_elf(target, out)
            continue
        src = out / f"{name}.c"
        src.write_text(BENCHMARKS[name][1])
        elfs[name] = toolchain.build_elf(
            target, [src], out, include_dirs=[harness.harness_dir()]
        ).elf
    return elfs


def _conv_elf(target: Target, out: Path) -> Path:
    """A 3x3 convolution (16x16x8 -> 16x16x16) with its first suggested fast variant."""
    from autotune.emit.library import emit_library, quick_choices
    from autotune.emit.verify import build_for_target
    from autotune.model.tflite_import import parse_model
    from autotune.model.tflite_writer import ModelBuilder

    rng = np.random.default_rng(3)
    b = ModelBuilder("calibration: one tuned convolution")
    x = b.tensor("x", (1, 16, 16, 8), "int8", 0.05, 0)
    w = b.constant("w", rng.integers(-127, 128, (16, 3, 3, 8)).astype(np.int8), 0.01, 0, axis=0)
    bias = b.constant("b", rng.integers(-500, 500, 16).astype(np.int32), 0.0005, 0)
    y = b.tensor("y", (1, 16, 16, 16), "int8", 0.1, -128)
    b.op(
        "CONV_2D",
        [x, w, bias],
        [y],
        padding="SAME",
        stride_w=1,
        stride_h=1,
        dilation_w_factor=1,
        dilation_h_factor=1,
        fused_activation_function="RELU",
    )
    b.inputs(x)
    b.outputs(y)
    graph = parse_model(b.build())
    library = emit_library(graph, target, out / "model", quick_choices(graph, target))
    return build_for_target(library, graph, target, 1).elf


def measure(
    runner: Any,
    target: Target,
    elfs: Mapping[str, Path],
    report: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Each benchmark's cycles on ``runner`` (a board: ``cycles (board, DWT)``);
    ``report(name, cycles)`` after each one (progress)."""
    out = {}
    for name, elf in elfs.items():
        run = runner.run(elf, target, budget=200_000_000)
        if run.cycles is None:
            why = run.extra.get("cycles_note", "the runner counted no cycles")
            raise CalibrationError(f"benchmark {name}: {why}; calibration needs a cycle count")
        out[name] = int(run.cycles)
        if report is not None:
            report(name, out[name])
    return out


# ------------------------------------------------------------------------------ the fit


@dataclass(frozen=True)
class Linear:
    """Each benchmark's model cycles as ``base + sum(per_unit[p] * value[p])``."""

    base: dict[str, float]
    per_unit: dict[str, dict[str, float]]  # benchmark -> parameter -> cycles per unit

    @property
    def params(self) -> list[str]:
        names: dict[str, None] = {}
        for row in self.per_unit.values():
            names.update(dict.fromkeys(row))
        return list(names)

    def predict(self, values: Mapping[str, float], overhead: float = 0.0) -> dict[str, float]:
        return {
            bench: self.base[bench]
            + overhead
            + sum(self.per_unit[bench].get(p, 0.0) * v for p, v in values.items())
            for bench in self.base
        }


def linearize(predict: Predict, params: list[str]) -> Linear:
    """The model's sensitivity to each parameter, by finite differences from all zeros."""
    zero = dict.fromkeys(params, 0)
    base = predict(zero)
    per_unit: dict[str, dict[str, float]] = {b: {} for b in base}
    for p in params:
        moved = predict({**zero, p: 1})
        for bench, cycles in moved.items():
            per_unit[bench][p] = cycles - base[bench]
    return Linear(base, per_unit)


@dataclass(frozen=True)
class Fit:
    values: dict[str, int]  # parameter -> fitted value (whole cycles)
    overhead: float  # cycles per run the model does not contain (resume, breakpoint)
    measured: dict[str, int]
    predicted: dict[str, float]
    unconstrained: list[str]  # parameters no benchmark is sensitive to (left as they were)

    @property
    def errors(self) -> dict[str, float]:
        """Relative error per benchmark: (predicted - measured) / measured."""
        return {b: (self.predicted[b] - m) / m for b, m in self.measured.items()}

    def as_json(self) -> dict[str, Any]:
        return {
            "values": self.values,
            INTERCEPT: round(self.overhead, 1),
            "benchmarks": {
                b: {
                    "measured": m,
                    "predicted": round(self.predicted[b]),
                    "error": round(self.errors[b], 5),
                }
                for b, m in self.measured.items()
            },
            "unconstrained": self.unconstrained,
        }


def fit(measured: Mapping[str, int], model: Linear) -> Fit:
    """Non-negative least squares of the parameters (and a per-run constant), rounded.

    Relative errors are what is minimised (each row divided by its measurement), so a
    long benchmark does not drown the short ones.
    """
    missing = sorted(set(model.base) - set(measured))
    if missing:
        raise CalibrationError(f"no measurement for benchmark(s) {', '.join(missing)}")
    benches = list(model.base)
    for b in benches:
        if measured[b] <= 0:
            raise CalibrationError(f"benchmark {b}: measured {measured[b]} cycles")
    params = [p for p in model.params if any(model.per_unit[b].get(p) for b in benches)]
    unconstrained = [p for p in model.params if p not in params]
    cols = [*params, INTERCEPT]
    a = np.array(
        [[model.per_unit[b].get(p, 0.0) for p in params] + [1.0] for b in benches], dtype=float
    )
    y = np.array([measured[b] - model.base[b] for b in benches], dtype=float)
    w = 1.0 / np.array([measured[b] for b in benches], dtype=float)
    solution = _nnls(a * w[:, None], y * w, free=[len(cols) - 1])
    values = {p: round(float(v)) for p, v in zip(params, solution[:-1], strict=True)}
    # With the parameters rounded, the constant is refitted on its own.
    rest = y - a[:, :-1] @ np.array([values[p] for p in params], dtype=float)
    overhead = float(np.sum(rest * w * w) / np.sum(w * w))
    predicted = model.predict(values, overhead)
    return Fit(values, overhead, dict(measured), predicted, unconstrained)


def _nnls(a: np.ndarray, y: np.ndarray, free: list[int]) -> np.ndarray:
    """Least squares with every column >= 0 except ``free`` (active-set, small problems)."""
    active = list(range(a.shape[1]))
    while True:
        x = np.zeros(a.shape[1])
        if active:
            x[active] = np.linalg.lstsq(a[:, active], y, rcond=None)[0]
        negative = [i for i in active if i not in free and x[i] < 0]
        if not negative:
            return x
        active.remove(min(negative, key=lambda i: x[i]))


# ---------------------------------------------------------------------- the preset file


def calibrated_preset(
    base_part: str, version: int, values: Params, fitted: Fit, source: str
) -> dict:
    """The ``load_part_file`` JSON: the fitted values as overrides of the built-in preset."""
    caches: dict[str, dict[str, int]] = {}
    memories: dict[str, dict[str, int]] = {}
    for path, value in values.items():
        kind, name, field_name = _split(path)
        (caches if kind == "caches" else memories).setdefault(name, {})[field_name] = value
    # Named after its values, so two calibrations never share a label (or DB rows).
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:6]
    return {
        "base": base_part,
        "name": f"{base_part}-cal-{digest}",
        "version": version,
        "calibrated_from": source,
        "caches": caches,
        "memories": memories,
        "fit": fitted.as_json(),
    }


def _split(path: str) -> tuple[str, str, str]:
    kind, _, rest = path.partition(".")
    name, _, field_name = rest.rpartition(".")
    if kind not in ("caches", "memories") or not name or not field_name:
        raise CalibrationError(
            f"parameter {path!r} is not caches.NAME.FIELD or memories.NAME.FIELD"
        )
    return kind, name, field_name


def part_parameters(part: Any) -> Params:
    """The free parameters of a preset and their current values."""
    out: Params = {}
    for cache in part.caches:
        out[f"caches.{cache.name}.miss_penalty"] = int(cache.miss_penalty)
    for memory in part.memories:
        if memory.kind != "sram" or memory.wait_states:
            out[f"memories.{memory.name}.wait_states"] = int(memory.wait_states)
    return out


def parts_registry() -> Any:
    """The part-preset registry (``autotune.platform.parts``)."""
    try:
        from autotune.platform import parts
    except ImportError as exc:
        raise CalibrationError(
            "this build has no part presets (autotune.platform.parts): nothing to calibrate"
        ) from exc
    return parts


def model_predictor(
    target: Target, part_name: str, elfs: Mapping[str, Path], work: Path
) -> Predict:
    """Run every benchmark through the timing model of ``part_name`` with given parameters."""
    parts = parts_registry()
    from autotune.platform import plugins

    runner = plugins.get_runner(target.runner)
    count = 0

    def predict(values: Params) -> dict[str, float]:
        nonlocal count
        count += 1
        caches: dict[str, dict[str, int]] = {}
        memories: dict[str, dict[str, int]] = {}
        for path, value in values.items():
            kind, name, field_name = _split(path)
            (caches if kind == "caches" else memories).setdefault(name, {})[field_name] = value
        file = work / f"trial{count}.json"
        file.write_text(json.dumps({"base": part_name, "caches": caches, "memories": memories}))
        timed = parts.apply_part(target, parts.load_part_file(file, plugins.get_parts()))
        return {
            n: float(runner.run(elf, timed, budget=200_000_000).cycles) for n, elf in elfs.items()
        }

    return predict


def calibrate(
    board: Any,
    target: Target,
    part_name: str,
    work: Path | None = None,
    names: list[str] | None = None,
    report: Callable[[str, int], None] | None = None,
) -> tuple[dict[str, Any], Fit]:
    """Measure the benchmarks on ``board``, fit ``part_name``'s parameters, return the preset."""
    from autotune.platform import plugins

    parts_registry()
    part = plugins.get_part(part_name)
    with tempfile.TemporaryDirectory(prefix="autotune-calibrate-") as tmp:
        root = Path(work or tmp)
        elfs = build_benchmarks(target, root, names)
        measured = measure(board, target, elfs, report)
        params = part_parameters(part)
        model = linearize(model_predictor(target, part.name, elfs, root), list(params))
    fitted = fit(measured, model)
    values = {**params, **fitted.values}
    preset = calibrated_preset(
        part.name,
        part.version + 1,
        values,
        fitted,
        f"{board.name} runner, {len(measured)} benchmarks",
    )
    return preset, fitted

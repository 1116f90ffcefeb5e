"""The running half of the conformance kit: build, link, run and verify on a target.

The static checks (conformance.py) say whether a target is well formed; these say
whether it works: a probe program that needs the compiler's runtime helpers (libgcc:
count leading zeros, 64-bit division and shifts) links with the target's flags and
runs on its runner with the right results; the runner's instruction counts over a
loop of known trip counts are exact (the same for the same input, growing by the
same amount for every iteration) and agree with every other runner that executes the
target; and every kernel template that applies is rendered, built, run and verified
bit-exact on at least one layer of the conformance models.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autotune.errors import AutotuneError
from autotune.platform import plugins, toolchain
from autotune.platform.runner import Runner
from autotune.platform.target import Target

if TYPE_CHECKING:
    from autotune.tune.template import KernelTemplate

#: Trip counts of the probe loop; counts must grow by the same step for each step.
TRIPS = (10, 50, 90)

PROBE_C = r"""/* autotune conformance probe: runtime helpers and a loop of known trip count. */
#include <stdint.h>

#include "autotune_harness.h"

AUTOTUNE_BUFFER(int32_t, at_args, 4);
AUTOTUNE_BUFFER(int32_t, at_results, 6);

__attribute__((noinline)) static int32_t probe_spin(int32_t n)
{
    int32_t acc = 0;
    for (int32_t i = 0; i < n; ++i) {
        acc += i ^ (acc >> 1);
        __asm__ volatile("" : "+r"(acc));
    }
    return acc;
}

void autotune_main(void)
{
    const uint32_t u = (uint32_t)at_args[1];
    const int64_t wide = ((int64_t)at_args[2] << 20) + at_args[1];
    at_results[0] = probe_spin(at_args[0]);
    at_results[1] = __builtin_clz(u | 1u);
    at_results[2] = (int32_t)(wide / (int64_t)at_args[3]);
    at_results[3] = (int32_t)(wide % (int64_t)at_args[3]);
    at_results[4] = at_args[2] / at_args[3];
    at_results[5] = (int32_t)((uint64_t)wide >> (u & 31u));
}
"""


def _c_div(a: int, b: int) -> int:
    """C's truncating integer division."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def probe_expected(n: int, u: int, a: int, d: int) -> list[int]:
    """What PROBE_C computes for at_args = (n, u, a, d), as int32 values."""
    acc = 0
    for i in range(n):
        acc = _i32(acc + (i ^ (acc >> 1)))
    wide = (a << 20) + u
    q = _c_div(wide, d)
    unsigned_wide = wide & (2**64 - 1)
    return [
        acc,
        32 - (u | 1).bit_length(),
        _i32(q),
        _i32(wide - q * d),
        _c_div(a, d),
        _i32(unsigned_wide >> (u & 31)),
    ]


def _i32(x: int) -> int:
    return ((x + 2**31) % 2**32) - 2**31


@dataclass
class Probe:
    problems: list[str]
    counts: dict[str, list[int]]  # runner name -> instructions per trip count


def _run_probe(target: Target, runner: Runner, elf: Path, n: int) -> tuple[list[int], int | None]:
    args = np.array([n, 0x00F0_1234, -7_654_321, 97], np.int32)
    run = runner.run(elf, target, inputs={"at_args": args.tobytes()}, outputs={"at_results": 24})
    got = np.frombuffer(run.outputs["at_results"], np.int32).tolist()
    want = probe_expected(n, int(args[1]), int(args[2]), int(args[3]))
    if got != want:
        raise AutotuneError(f"probe results {got} differ from the expected {want}")
    return got, run.instructions


def check_probe(target: Target, work: Path) -> Probe:
    """Build the probe (compile and link), run it, and check the runner's counts."""
    src = work / "probe.c"
    src.write_text(PROBE_C)
    try:
        build = toolchain.build_elf(target, [src], work / "probe", name="probe")
    except toolchain.CompileError as exc:
        return Probe([f"the probe program does not {exc.stage}: {exc.first_error}"], {})
    except AutotuneError as exc:
        return Probe([f"the probe program cannot be built: {exc}"], {})
    runner = plugins.get_runner(target.runner)
    if not runner.capabilities.executes or runner.supports(target) or runner.available():
        return Probe([], {})  # reported by the static checks, or size-only by design
    problems: list[str] = []
    counts: dict[str, list[int]] = {}
    executors = [runner] + [
        r
        for r in plugins.get_runners().values()
        if r is not runner
        and r.capabilities.executes
        and r.capabilities.counts_instructions
        and not r.capabilities.exclusive
        and r.available() is None
        and r.supports(target) is None
    ]
    for r in executors:
        try:
            got = [_run_probe(target, r, build.elf, n)[1] for n in (*TRIPS, TRIPS[1])]
        except AutotuneError as exc:
            problems.append(f"runner '{r.name}' cannot run the probe program: {exc}")
            continue
        if not r.capabilities.counts_instructions:
            continue
        if any(c is None for c in got):
            problems.append(f"runner '{r.name}' says it counts instructions but returned none")
            continue
        c0, c1, c2, again = got
        if again != c1:
            problems.append(f"runner '{r.name}' counts {c1} and then {again} for the same run")
        elif not (c1 - c0 == c2 - c1 > 0):
            problems.append(
                f"runner '{r.name}' counts {c0}, {c1}, {c2} instructions for {TRIPS} loop "
                "iterations: not the same step per iteration"
            )
        counts[r.name] = [c0, c1, c2]
    if len({tuple(v) for v in counts.values()}) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in counts.items())
        problems.append(f"runners disagree on the probe's instruction counts: {listed}")
    return Probe(problems, counts)


@cache
def conformance_layers() -> tuple:
    """(graph, layer index, spec) of every tunable layer of the conformance models."""
    from autotune.examples import quickstart_model
    from autotune.model.tflite_import import parse_model
    from autotune.tune.spec import build_spec

    found = []
    for blob in (quickstart_model(), _binary_model(), _svdf_model()):
        graph = parse_model(blob)
        for layer in graph.layers:
            spec = build_spec(graph, layer)
            if spec is not None:
                found.append((graph, layer.index, spec))
    return tuple(found)


def _binary_model() -> bytes:
    """ADD, MAX_POOL_2D, a 1x3 convolution and a same-size 3x3 one (the in-place ring
    template's case), which the quick-start model does not have."""
    from autotune.model.tflite_writer import ModelBuilder

    rng = np.random.default_rng(11)
    b = ModelBuilder("autotune conformance: add, 1x3 and 3x3 convolutions and max pool")
    x1 = b.tensor("x1", (1, 6, 6, 4), "int8", 0.05, 3)
    x2 = b.tensor("x2", (1, 6, 6, 4), "int8", 0.04, -2)
    a = b.tensor("sum", (1, 6, 6, 4), "int8", 0.08, 1)
    s = b.tensor("conv", (1, 6, 6, 4), "int8", 0.5, -3)
    s3 = b.tensor("conv3x3", (1, 6, 6, 4), "int8", 0.5, 2)
    y = b.tensor("pooled", (1, 3, 3, 4), "int8", 0.5, -3)
    b.op("ADD", [x1, x2], [a], fused_activation_function="NONE")
    w_scale = np.full(4, 0.01, np.float32)
    b_scales = {"w": 0.08, "w3": 0.5}  # the input scale of each convolution
    # A 1x3 then a 3x3 SAME convolution, each per-channel quantized.
    for name, kernel, src, dst in (("w", (1, 3), a, s), ("w3", (3, 3), s, s3)):
        shape = (4, *kernel, 4)
        w = b.constant(name, rng.integers(-127, 128, shape).astype(np.int8), w_scale, 0, axis=0)
        bias = rng.integers(-500, 500, 4).astype(np.int32)
        bias_scale = (np.float32(b_scales[name]) * w_scale).astype(np.float32)
        bi = b.constant(f"b{name[1:]}", bias, bias_scale, 0)
        b.op(
            "CONV_2D",
            [src, w, bi],
            [dst],
            padding="SAME",
            stride_h=1,
            stride_w=1,
            dilation_h_factor=1,
            dilation_w_factor=1,
            fused_activation_function="NONE",
        )
    b.op(
        "MAX_POOL_2D",
        [s3],
        [y],
        padding="VALID",
        stride_h=2,
        stride_w=2,
        filter_height=2,
        filter_width=2,
        fused_activation_function="NONE",
    )
    b.inputs(x1, x2)
    b.outputs(y)
    return b.build()


def _svdf_model() -> bytes:
    """One SVDF with int8 time weights and an int8 state (TFLM's keyword benchmark's kind)."""
    from autotune.model.tflite_writer import ModelBuilder

    rng = np.random.default_rng(12)
    b = ModelBuilder("autotune conformance: svdf")
    x = b.tensor("x", (1, 16), "int8", 0.05, -2)
    wf = b.constant("wf", rng.integers(-127, 128, (8, 16)).astype(np.int8), 0.0092, 0)
    wt = b.constant("wt", rng.integers(-127, 128, (8, 4)).astype(np.int8), 0.0149, 0)
    bias_scale = float(np.float32(0.807) * np.float32(0.0149))  # state x time, as TFLM checks
    bias = b.constant("bias", rng.integers(-900, 900, 8).astype(np.int32), bias_scale, 0)
    state = b.tensor("state", (1, 32), "int8", 0.807, -50, variable=True)
    y = b.tensor("y", (1, 8), "int8", 0.2, -128)
    b.op("SVDF", [x, wf, wt, bias, state], [y], rank=1, fused_activation_function="NONE")
    b.inputs(x)
    b.outputs(y)
    return b.build()


def check_kernels(
    target: Target,
    work: Path,
    templates: Iterable[KernelTemplate] | None = None,
    notes: Callable[[str], None] | None = None,
) -> list[str]:
    """Render, build, run and verify each applicable template's baseline on one layer."""
    from autotune.tune.variant import CheckSet, Evaluator

    runner = plugins.get_runner(target.runner)
    runs = (
        runner.capabilities.executes and runner.supports(target) is None and not runner.available()
    )
    problems: list[str] = []
    for template in templates if templates is not None else plugins.get_kernels().values():
        fits = [
            (g, i, s)
            for g, i, s in conformance_layers()
            if s.op == template.op and template.applies(s, target)
        ]
        if not fits:
            if notes is not None:
                notes(f"template {template.name}: no conformance layer fits it on {target.name}")
            continue
        graph, index, spec = fits[0]
        checks = CheckSet.for_layer(graph, index)
        evaluator = Evaluator(spec, target, checks, work / template.name, runner)
        evaluator.executes = runs
        point = template.space(spec, target).baseline()
        m = evaluator.evaluate(template, point)
        if not m.ok:
            problems.append(
                f"kernel {template.name} ({spec.op}, layer {index} of the conformance "
                f"models) {m.status}: {m.reason}"
            )
    return problems


def check_running(
    target: Target,
    templates: Iterable[KernelTemplate] | None = None,
    notes: Callable[[str], None] | None = None,
) -> list[str]:
    """Every way ``target`` fails to build, link, run or verify; empty when it works."""
    if not toolchain.toolchain_available(target):
        tc = target.toolchain
        return [f"compiler {tc.cc} not installed (apt-get install {tc.debian_package})"]
    with tempfile.TemporaryDirectory(prefix="autotune-conformance-") as tmp:
        work = Path(tmp)
        problems = check_probe(target, work).problems
        problems += check_kernels(target, work, templates, notes)
    return problems

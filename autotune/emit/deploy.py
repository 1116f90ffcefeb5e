"""Emit the library for a tuned model and prove it: whole-model runs on the target's
simulator, bit-exact with the reference, with flash and RAM read from the ELF."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotune import __version__
from autotune.db import ResultsDB
from autotune.emit.buildfiles import write_build_files
from autotune.emit.library import Choice, Library, compile_flags, emit_library, layer_function
from autotune.emit.verify import TargetRun, build_for_target, run_on_target
from autotune.errors import AutotuneError
from autotune.model.arrays import check_calls, extreme_inputs
from autotune.model.graph import Graph
from autotune.platform import plugins, toolchain
from autotune.platform.elf import read_elf, read_stack_usage
from autotune.platform.target import Target
from autotune.reference.executor import Interpreter
from autotune.reference.oracle import tflm_arena


class DeploymentMismatch(AutotuneError):
    """The emitted library computed something other than the reference: a bug, never a result."""


@dataclass
class Deployment:
    library: Library
    verified_calls: int
    stateful_calls: int
    instructions: int | None
    cycles: int | None
    cycles_label: str
    clock_mhz: float
    flash: dict[str, int]
    ram: dict[str, int]
    size_tool: dict[str, int] | None
    stack_exact: bool
    arena_bytes: int
    tflm_arena: dict[str, int] | None
    layers: list[dict[str, Any]] = field(default_factory=list)
    differ: list[dict[str, Any]] = field(default_factory=list)  # layers off their tuning by >1%

    @property
    def milliseconds(self) -> float | None:
        return None if self.cycles is None else self.cycles / (self.clock_mhz * 1000.0)

    def as_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.library.directory),
            "name": self.library.name,
            "entry_point": self.library.entry_point,
            "verified_calls": self.verified_calls,
            "stateful_calls": self.stateful_calls,
            "bit_exact": self.verified_calls > 0,
            "instructions": self.instructions,
            "cycles": self.cycles,
            "metric": self.cycles_label or "instructions (exact)",
            "clock_mhz": self.clock_mhz,
            "milliseconds": None if self.milliseconds is None else round(self.milliseconds, 4),
            "flash": self.flash,
            "ram": self.ram,
            "size_tool": self.size_tool,
            "stack_exact": self.stack_exact,
            "arena_bytes": self.arena_bytes,
            "tflm_arena": self.tflm_arena,
            "layers": self.layers,
            "layers_differing": [
                {k: e[k] for k in ("index", "op", "cycles", "isolated_cycles", "difference")}
                for e in self.differ
            ],
        }


def with_baseline(tuned: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The tuned library's JSON with the baseline library's run and the speedup between them."""
    out = dict(tuned)
    out["baseline"] = {
        k: base[k] for k in ("directory", "instructions", "cycles", "milliseconds", "flash", "ram")
    }
    ok = base["cycles"] and tuned["cycles"]
    out["speedup"] = round(base["cycles"] / tuned["cycles"], 3) if ok else None
    return out


def failed_deployment(out_dir: Path, error: str, failure: str = "not bit-exact") -> dict[str, Any]:
    """What the report says of a library that failed its build ("not built") or its
    whole-model check ("not bit-exact"); it is removed."""
    return {
        "directory": str(Path(out_dir) / "model"),
        "bit_exact": False,
        "verified_calls": 0,
        "failure": failure,
        "error": error,
    }


def expected_outputs(
    graph: Graph, calls: list[list[np.ndarray]], reset_each: bool
) -> list[list[np.ndarray]]:
    interp = Interpreter(graph)
    want = []
    for call in calls:
        if reset_each:
            interp.reset()
        got = interp.invoke(call)
        assert isinstance(got, list)
        want.append(got)
    return want


def compare_outputs(got: list[list[np.ndarray]], want: list[list[np.ndarray]], what: str) -> None:
    for n, (g_call, w_call) in enumerate(zip(got, want, strict=True)):
        for k, (g, w) in enumerate(zip(g_call, w_call, strict=True)):
            if not np.array_equal(g, w):
                diff = np.abs(g.astype(np.int64) - w.astype(np.int64))
                raise DeploymentMismatch(
                    f"{what}: call {n} output {k}: {int((diff > 0).sum())} of {diff.size} values "
                    f"differ from the reference (max {int(diff.max())} LSB)"
                )


def _harness_flash(image, harness_objects) -> dict[str, int]:
    """Flash bytes per class taken by the symbols the harness objects define."""
    names: set[str] = set()
    for obj in harness_objects:
        names.update(sym.name for sym in read_elf(obj).symbols)
    out = {"code": 0, "rodata": 0, "data": 0}
    for sym in image.symbol_sizes():
        if sym.name in names and sym.section_kind in out:
            out[sym.section_kind] += sym.size
    return out


def agreement(
    layers: list[dict[str, Any]], isolated: Mapping[int, int], tolerance: float = 0.01
) -> list[dict[str, Any]]:
    """Each tuned layer's cycles inside the library against its isolated measurement.

    Adds ``isolated_cycles`` and ``difference`` (library / isolated - 1) to the layer
    entries and returns the layers that differ by more than ``tolerance``.
    """
    differ = []
    for entry in layers:
        want = isolated.get(entry["index"])
        if not want or not entry["function"]:
            continue
        entry["isolated_cycles"] = want
        entry["difference"] = round(entry["cycles"] / want - 1.0, 5)
        if abs(entry["difference"]) > tolerance:
            differ.append(entry)
    return differ


def _size_tool(target: Target, elf: Path) -> dict[str, int] | None:
    tool = target.toolchain.size or target.toolchain.cc.removesuffix("gcc") + "size"
    if shutil.which(tool) is None:
        return None
    done = subprocess.run([tool, "-B", str(elf)], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    text, data, bss = (int(v) for v in done.stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def deploy(
    graph: Graph,
    target: Target,
    out_dir: Path,
    choices: dict[int, Choice],
    clock_mhz: float | None = None,
    seed: int = 0,
    checks: int = 3,
    db: ResultsDB | None = None,
    isolated: Mapping[int, int] | None = None,
    name: str | None = None,
) -> Deployment:
    """Emit, build, run and measure; a library already verified (same sources, target
    toolchain and checks, per the results DB) is written again but not re-run.

    ``isolated`` (layer index -> the cycles its variant was measured with alone) is
    compared with each layer's cycles inside the library (``Deployment.differ``)."""
    library = emit_library(graph, target, Path(out_dir) / "model", choices, name)
    write_build_files(library, target)  # the deliverable: CMake, Make and Zephyr files
    key = _verification_key(library, target, seed, checks)
    cached = db.artifact(key) if db is not None else None
    if cached is not None:
        result = Deployment(
            library=library, **cached, clock_mhz=float(clock_mhz or target.default_clock_mhz)
        )
    else:
        result = _verify_and_measure(graph, target, library, seed, checks, clock_mhz)
        if db is not None:
            record = {
                k: v for k, v in vars(result).items() if k not in ("library", "clock_mhz", "differ")
            }
            db.store_artifact(key, "deployment", record)
    if isolated and result.cycles is not None:
        result.differ = agreement(result.layers, isolated)
    return result


def _verification_key(library: Library, target: Target, seed: int, checks: int) -> str:
    h = hashlib.sha256()
    h.update(toolchain.fingerprint(target).key().encode())
    # The runner: a library verified on the simulator is not verified on a board.
    h.update(f"{seed}:{checks}:{__version__}:{target.runner}".encode())
    h.update(target.cycle_model.encode())  # the core model and the part it was timed on
    for path in sorted(library.sources) + sorted(library.headers):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(repr(sorted(compile_flags(library, target).items())).encode())
    h.update(Path(__file__).read_bytes())  # how it is verified and measured
    return h.hexdigest()


def _verify_and_measure(
    graph: Graph,
    target: Target,
    library: Library,
    seed: int,
    checks: int,
    clock_mhz: float | None,
) -> Deployment:
    if not plugins.get_runner(target.runner).capabilities.executes:
        # Nothing executes here: build it, read its sizes, and say it is unverified.
        build = build_for_target(library, graph, target, 1)
        return _measured(graph, target, library, build, None, 0, 0, clock_mhz)

    # The measured run: one invocation, profiled per layer function.
    first = check_calls(graph, seed, 1)
    run = run_on_target(library, graph, target, first, reset_each=True)
    compare_outputs(run.outputs, expected_outputs(graph, first, True), f"{target.name} whole model")

    # More fresh invocations: the other random inputs and the extremes.
    extremes = [extreme_inputs(graph, end) for end in ("min", "max")]
    calls = [*check_calls(graph, seed + 1, max(0, checks - 1)), *extremes]
    more = run_on_target(library, graph, target, calls, reset_each=True)
    compare_outputs(
        more.outputs, expected_outputs(graph, calls, True), f"{target.name} whole model"
    )
    stateful = 0
    if library.state_bytes:
        seq = check_calls(graph, seed + 3, 5)
        carried = run_on_target(library, graph, target, seq, reset_each=False)
        compare_outputs(
            carried.outputs, expected_outputs(graph, seq, False), f"{target.name} stateful calls"
        )
        stateful = len(seq)

    return _measured(graph, target, library, run.build, run, 1 + len(calls), stateful, clock_mhz)


def _measured(
    graph: Graph,
    target: Target,
    library: Library,
    build: toolchain.BuildResult,
    run: TargetRun | None,
    verified: int,
    stateful: int,
    clock_mhz: float | None,
) -> Deployment:
    """Flash, RAM and stack from the ELF; cycles and the per-layer split from the run."""
    image = read_elf(build.elf)
    sizes = image.sizes
    symbols = {s.name: s.size for s in image.symbol_sizes()}
    io_bytes = sum(size for name, size in symbols.items() if name.startswith(("at_in", "at_out")))
    state_bytes = sum(size for name, size in symbols.items() if name.startswith("state"))
    arena_sym = symbols.get("arena", 0)
    stack = read_stack_usage(build.stack_usage).worst_case(library.entry_point)
    # The harness (startup, autotune_main, memcpy/memset stand-ins, the I/O buffers'
    # initial values) is reported apart: flash is the library's own.
    harness = _harness_flash(image, build.objects[len(library.sources) :])
    flash = {
        "code": sizes.code - harness["code"],
        "weights": sizes.rodata - harness["rodata"],
        "data_init": sizes.data - harness["data"],
        "total": sizes.flash - sum(harness.values()),
        "harness": sum(harness.values()),
    }
    reserved = sum(sec.size for sec in image.sections if sec.name == ".stack")
    library_ram = sizes.data + sizes.bss - io_bytes - reserved
    ram = {
        "arena": arena_sym,
        "state": state_bytes,
        "io_buffers": io_bytes,
        "stack_reserved": reserved,
        "other": library_ram - arena_sym - state_bytes,
        "total": library_ram,
        "stack_needed": stack.bytes,
    }
    layers = []
    for layer in graph.layers:
        fn = layer_function(layer, library.name)
        # Inclusive: a kernel's calls into libgcc helpers are part of its time, as they
        # were when its variant was measured alone.
        counts = run.inclusive.get(fn) if run is not None else None
        layers.append(
            {
                "index": layer.index,
                "op": layer.op,
                "function": fn if counts else None,
                "instructions": counts[0] if counts else 0,
                "cycles": counts[1] if counts else 0,
                "code_bytes": symbols.get(fn, 0),
            }
        )
    return Deployment(
        library=library,
        verified_calls=verified,
        stateful_calls=stateful,
        instructions=run.instructions if run is not None else None,
        cycles=run.cycles if run is not None else None,
        cycles_label=run.cycles_label if run is not None else "code size only",
        clock_mhz=float(clock_mhz or target.default_clock_mhz),
        flash=flash,
        ram=ram,
        size_tool=_size_tool(target, build.elf),
        stack_exact=stack.exact,
        arena_bytes=library.plan.arena_bytes,
        tflm_arena=tflm_arena(graph.path) if graph.path else None,
        layers=layers,
    )

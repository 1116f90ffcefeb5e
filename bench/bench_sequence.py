"""Sequence models: whole-model baseline vs tuned cycles, per target, in one run.

    python bench/bench_sequence.py [--targets cortex-m4,cortex-m7,rv32imc] [--trials N]
                                   [--models NAME ...] [--db URL] [--json FILE]

For each model and target it tunes the model (the same search as `autotune MODEL
--target T`, results kept in the results DB), then emits, builds and runs the whole
model twice on the target's simulator: once with every tunable layer at its baseline
(the reference-style loop of its template; layers without templates run the emitted C)
and once with the tuned variants. Both libraries are checked bit-exact with autotune's
reference on random and extreme inputs (and over consecutive calls where the model keeps
state) before any figure is printed. Speedups are ratios of two measurements made by the
same simulator and cycle model in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autotune.db import ResultsDB
from autotune.emit.deploy import Deployment, deploy
from autotune.emit.library import Choice, baseline_choices
from autotune.errors import AutotuneError
from autotune.model.stats import layer_macs
from autotune.platform import plugins
from autotune.tune.pipeline import Events, TuneOptions, tune_model
from autotune.tune.search import Outcome

MODELS = [
    "seed_conv1d_lstm_800x2",
    "lstm_weather_24x7_u32",
    "lstm_textgen_100x64_u128",
    "bilstm_50x16_u32",
    "trained_lstm_int8",
    "micro_speech_lstm",
    "dtln_noise_suppression",
]
TARGETS = ["cortex-m4", "cortex-m7", "rv32imc"]
MODELS_DIR = Path(
    os.environ.get("AUTOTUNE_MODELS", Path(__file__).resolve().parents[2] / "shared" / "models")
)


@dataclass
class Row:
    """One model on one target: both whole-model runs and what they cost."""

    model: str
    target: str
    macs: int
    metric: str  # what the cycle figures are, e.g. "cycles (model cortex-m4 v3)"
    baseline_cycles: int | None
    tuned_cycles: int | None
    baseline_instructions: int | None  # exact
    tuned_instructions: int | None
    speedup: float | None
    baseline_cycles_per_mac: float | None
    tuned_cycles_per_mac: float | None
    tuned_ms: float | None  # tuned cycles at clock_mhz
    clock_mhz: float
    flash_bytes: int  # the tuned ELF: code + weights + initialised data
    baseline_flash_bytes: int
    ram_bytes: int  # the tuned library: arena + state + worst-case stack of invoke()
    verified_calls: int  # fresh invocations checked bit-exact, per library
    stateful_calls: int  # consecutive calls checked with state carried over
    tuned_layers: int
    measured_variants: int
    seconds: float
    baseline: dict[str, Any]
    tuned: dict[str, Any]


class Progress(Events):
    """One line on stderr per workload searched: the run can take long."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.count = 0
        self.done = 0

    def workloads(self, count: int, budget: int) -> None:
        self.count = count
        print(f"[{self.label}] {count} workloads, {budget} trials each", file=sys.stderr)

    def workload_done(self, key: str, outcome: Outcome) -> None:
        self.done += 1
        best = outcome.best.cycles if outcome.best is not None else None
        base = outcome.baseline.cycles if outcome.baseline is not None else None
        note = "cached" if outcome.cached else f"{outcome.measured} measured"
        print(
            f"[{self.label}] workload {self.done}/{self.count} {key[:8]}: "
            f"baseline {base} -> best {best} ({note})",
            file=sys.stderr,
        )


def model_path(name: str, models_dir: Path) -> Path:
    """A model name from the shared folder (with or without .tflite), or a path."""
    direct = Path(name)
    if direct.suffix == ".tflite" and direct.exists():
        return direct
    path = models_dir / (name if name.endswith(".tflite") else f"{name}.tflite")
    if not path.exists():
        raise AutotuneError(f"model {name!r} not found (looked for {path})")
    return path


def _ratio(a: int | None, b: int | None, digits: int = 3) -> float | None:
    return round(a / b, digits) if a and b else None


def _ram(d: Deployment) -> int:
    return d.ram["arena"] + d.ram["state"] + d.ram["stack_needed"]


def bench_one(path: Path, target_name: str, args: argparse.Namespace, work: Path) -> Row:
    """Tune, then run the whole model with baseline and with tuned choices."""
    start = time.perf_counter()
    target = plugins.get_target(target_name)
    label = f"{path.stem} {target.name}"
    db_url, seed = args.db_url, args.seed
    options = TuneOptions(
        target.name,
        trials=args.trials,
        jobs=args.jobs,
        db_url=db_url,
        seed=seed,
        flash_limit=args.flash_limit,
    )
    run = tune_model(path, options, Progress(label))
    unsupported = [layer.note for layer in run.layers if layer.status == "unsupported"]
    if unsupported:
        raise AutotuneError(f"{path.name}: {'; '.join(unsupported)}")
    graph = run.graph
    tuned = {
        layer.index: Choice(layer.best.template, json.loads(layer.best.params))
        for layer in run.layers
        if layer.best is not None
    }
    db = ResultsDB(db_url)
    print(f"[{label}] whole model, baseline layers", file=sys.stderr)
    base = deploy(
        graph, target, work / "baseline", baseline_choices(graph, target), seed=seed, db=db
    )
    print(f"[{label}] whole model, tuned layers", file=sys.stderr)
    best = deploy(graph, target, work / "tuned", tuned, seed=seed, db=db)
    macs = sum(layer_macs(graph, layer) for layer in graph.layers)
    return Row(
        model=path.stem,
        target=target.name,
        macs=macs,
        metric=best.cycles_label,
        baseline_cycles=base.cycles,
        tuned_cycles=best.cycles,
        baseline_instructions=base.instructions,
        tuned_instructions=best.instructions,
        speedup=_ratio(base.cycles, best.cycles, 2),
        baseline_cycles_per_mac=_ratio(base.cycles, macs, 2),
        tuned_cycles_per_mac=_ratio(best.cycles, macs, 2),
        tuned_ms=None if best.milliseconds is None else round(best.milliseconds, 3),
        clock_mhz=best.clock_mhz,
        flash_bytes=best.flash["total"],
        baseline_flash_bytes=base.flash["total"],
        ram_bytes=_ram(best),
        verified_calls=min(base.verified_calls, best.verified_calls),
        stateful_calls=min(base.stateful_calls, best.stateful_calls),
        tuned_layers=len(tuned),
        measured_variants=run.measured,
        seconds=round(time.perf_counter() - start, 1),
        baseline=base.as_json(),
        tuned=best.as_json(),
    )


def _n(v: float | None, fmt: str = ",") -> str:
    return "-" if v is None else format(v, fmt)


def table(rows: list[Row]) -> str:
    """One line per model and target; every figure says what it is."""
    head = (
        f"{'model':<26} {'target':<10} {'MACs':>11} {'baseline cycles':>16} "
        f"{'tuned cycles':>14} {'speedup':>8} {'cyc/MAC base':>12} {'cyc/MAC tuned':>13} "
        f"{'tuned instr (exact)':>20} {'tuned ms':>14} {'flash B':>9} {'RAM B':>7}  cycles from"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        source = r.metric.removeprefix("cycles (").removesuffix(")")
        lines.append(
            f"{r.model:<26} {r.target:<10} {r.macs:>11,} {_n(r.baseline_cycles):>16} "
            f"{_n(r.tuned_cycles):>14} {_n(r.speedup, '.2f') + 'x':>8} "
            f"{_n(r.baseline_cycles_per_mac, '.2f'):>12} {_n(r.tuned_cycles_per_mac, '.2f'):>13} "
            f"{_n(r.tuned_instructions):>20} {_n(r.tuned_ms, '.3f') + ' @' + format(r.clock_mhz, 'g'):>14} "
            f"{r.flash_bytes:>9,} {r.ram_bytes:>7,}  {source}"
        )
    lines += [
        "",
        "cycles: per inference (one fresh invocation), from each target's cycle model "
        "(`cycles from`), not a board measurement; instructions are exact (emulator).",
        "speedup = baseline cycles / tuned cycles, both measured in this run; "
        "cyc/MAC = whole-model cycles / the model's MACs (LSTM, conv and dense layers); "
        "tuned ms = tuned cycles at the target's typical clock (@ MHz).",
        "baseline: every tunable layer at its template's reference-style loop, other ops "
        "the emitted C; both libraries verified bit-exact with the reference.",
        "flash B: the tuned ELF (code + weights + initialised data, test harness included); "
        "RAM B: the tuned library's arena + LSTM state + worst-case stack of invoke().",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help="comma-separated target names or aliases"
    )
    parser.add_argument("--trials", type=int, default=20, help="variants measured per workload")
    parser.add_argument(
        "--models", nargs="+", default=MODELS, help="model names in --models-dir, or paths"
    )
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--db", dest="db_url", metavar="URL", help="results DB (SQLAlchemy URL)")
    parser.add_argument("--jobs", type=int, default=1, help="workloads tuned in parallel")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--flash-limit",
        type=float,
        metavar="X",
        help="per layer, tuned code + constants at most X times the baseline's (as autotune)",
    )
    parser.add_argument("--json", type=Path, help="also write every row (and both runs) here")
    parser.add_argument("--out", type=Path, help="keep the emitted libraries in this folder")
    args = parser.parse_args(argv)
    try:
        if args.trials < 1 or args.jobs < 1:
            raise AutotuneError("--trials and --jobs must be at least 1")
        if args.flash_limit is not None and args.flash_limit <= 0:
            raise AutotuneError("--flash-limit must be above 0")
        targets = [t.strip() for t in args.targets.split(",") if t.strip()]
        if not targets:
            raise AutotuneError("--targets names no target")
        for name in targets:
            plugins.get_target(name)  # an unknown name fails before any work
        paths = [model_path(m, args.models_dir) for m in args.models]
        rows, failures = run_all(paths, targets, args)
    except AutotuneError as exc:
        print(f"bench_sequence: error: {exc}", file=sys.stderr)
        return 2
    print(table(rows))
    for failure in failures:
        print(f"FAILED (no figures): {failure}")
    if args.json:
        report = {"rows": [asdict(r) for r in rows], "failures": failures}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failures else 0


def run_all(
    paths: list[Path], targets: list[str], args: argparse.Namespace
) -> tuple[list[Row], list[str]]:
    """Every model on every target; a pair that fails (a library that is not bit-exact,
    a toolchain or template error) is reported, and the others still run."""
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="autotune-bench-seq-") as tmp:
        root = args.out or Path(tmp)
        for path in paths:
            for target in targets:
                work = root / path.stem / target
                try:
                    row = bench_one(path, target, args, work)
                except Exception as exc:  # reported; the other pairs still run
                    kind = "" if isinstance(exc, AutotuneError) else f"{type(exc).__name__}: "
                    failures.append(f"{path.stem} on {target}: {kind}{exc}")
                    print(f"[{path.stem} {target}] FAILED: {kind}{exc}", file=sys.stderr)
                    continue
                print(
                    f"[{row.model} {row.target}] {row.metric}: baseline "
                    f"{_n(row.baseline_cycles)} -> tuned {_n(row.tuned_cycles)} "
                    f"({_n(row.speedup, '.2f')}x) in {row.seconds} s",
                    file=sys.stderr,
                )
                rows.append(row)
    return rows, failures


if __name__ == "__main__":
    sys.exit(main())

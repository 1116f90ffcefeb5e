"""Arena against tflite-micro's: each model's least-RAM library, built and run bit-exact.

    python bench/bench_arena.py [--target cortex-m4] [--models NAME ...] [--json FILE]

For each model, the library of `library.small_choices` (per tunable layer the variant
that computes in place where the data flow allows, else the least scratch, and residual
blocks computed row by row (emit/fuse.py); no search, so its cycles are not the point)
is emitted, built and run on the target's simulator,
checked bit-exact with the reference (fresh calls, the extremes, and five stateful
calls for LSTM models), and its arena + state (from the ELF) set against
tflite-micro's whole arena for the same model (`reference.oracle.tflm_arena`: the
tflite_micro wheel's RecordingMicroAllocator, total = head (planned tensors, the
model's input and output among them) + tail (persistent)). The baseline library's
planned arena is listed too, and the model's input and output bytes, which autotune
leaves in the caller's buffers and tflite-micro keeps in its arena.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from autotune.emit.deploy import deploy
from autotune.emit.library import baseline_choices, layer_code, small_choices
from autotune.emit.planner import plan_memory
from autotune.model.tflite_import import load_model
from autotune.platform import plugins

MODELS = [
    "kws_ref_model",
    "vww_96_int8",
    "pretrainedResnet_quant",
    "lstm_weather_24x7_u32",
    "trained_lstm_int8",
    "micro_speech_lstm",
    "bilstm_50x16_u32",
    "lstm_textgen_100x64_u128",
    "seed_conv1d_lstm_800x2",
    "dtln_noise_suppression",
    "gru_unrolled_20x8_u32",
]


def bench_one(path: Path, target_name: str, work: Path) -> dict:
    target = plugins.get_target(target_name)
    graph = load_model(path)
    base = baseline_choices(graph, target)
    codes = [
        layer_code(graph, layer, target, base.get(layer.index), render=False)
        for layer in graph.layers
    ]
    started = time.perf_counter()
    result = deploy(graph, target, work / path.stem, small_choices(graph, target), checks=1)
    tflm = result.tflm_arena
    ours = result.ram["arena"] + result.ram["state"]
    return {
        "model": path.stem,
        "baseline_arena": plan_memory(graph, codes).arena_bytes,
        "arena": result.ram["arena"],
        "state": result.ram["state"],
        "io_bytes": sum(graph.tensors[t].nbytes for t in {*graph.inputs, *graph.outputs}),
        "tflm": tflm,
        "ratio": round(ours / tflm["total"], 3) if tflm else None,
        "verified_calls": result.verified_calls,
        "stateful_calls": result.stateful_calls,
        "seconds": round(time.perf_counter() - started),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cortex-m4")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument(
        "--models-dir", default=os.environ.get("AUTOTUNE_MODELS", "../shared/models")
    )
    parser.add_argument("--json", type=Path, help="write the rows here as well")
    args = parser.parse_args(argv)
    rows = []
    print(
        "| model | baseline arena | arena + state (in place) | tflite-micro total | ratio | I/O (caller's) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-arena-") as work:
        for name in args.models:
            path = Path(args.models_dir) / f"{name}.tflite"
            if not path.exists():
                print(f"{name}: {path} not present", file=sys.stderr)
                continue
            row = bench_one(path, args.target, Path(work))
            rows.append(row)
            tflm = row["tflm"]["total"] if row["tflm"] else None
            print(
                f"| {name} | {row['baseline_arena']:,} | {row['arena'] + row['state']:,} "
                f"| {tflm if tflm is None else format(tflm, ',')} | {row['ratio']} "
                f"| {row['io_bytes']:,} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

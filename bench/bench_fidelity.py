"""Fidelity of the timing model: baseline libraries of the MLPerf Tiny models timed on a
part preset (NUCLEO-L4R5ZI by default) next to the published board figures for TFLM's
reference kernels on that board.

    python bench/bench_fidelity.py [--part nucleo-l4r5zi] [--models KWS,VWW,IC,AD] [--json out.json]

For each model the baseline library (every layer at its template's baseline point,
which follows TFLM's reference loops but bakes shapes into constants) runs once,
whole, under the core-only model and under the part; the table gives instructions
(exact), instructions per MAC, cycles and cycles per instruction under both, the
part's latency in ms and the published latency. The two stacks differ in code, so
the bench also counts a loop written the way TFLM's reference conv reads its data
(shapes at run time, a 4-D offset computed per access) on a KWS pointwise layer:
instructions per MAC of both loops, so a gap can be split into code and model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autotune.emit.library import baseline_choices, emit_library, layer_function
from autotune.emit.verify import run_on_target
from autotune.model.stats import layer_macs
from autotune.model.tflite_import import load_model
from autotune.platform import plugins, toolchain
from autotune.platform.emulator import run_elf
from autotune.platform.parts import apply_part

MODELS = {
    "KWS": "kws_ref_model.tflite",
    "VWW": "vww_96_int8.tflite",
    "IC": "pretrainedResnet_quant.tflite",
    "AD": "ad01_int8.tflite",
}
# MLPerf Tiny v0.5, TFLM reference kernels on NUCLEO-L4R5ZI (Cortex-M4, 120 MHz), median
# latency in ms (shared/models/README.md).
PUBLISHED_TFLM_MS = {"KWS": 181.9, "VWW": 600.6, "IC": 704.2, "AD": 10.05}

# A pointwise conv in the style of TFLM's reference kernel: every shape is read at run
# time and every access computes its 4-D offset. Written for this bench from the
# kernel's semantics (NHWC int8, per-channel requantization), not copied.
_REFERENCE_STYLE_CONV = r"""
#include <stdint.h>
#include "autotune_harness.h"

typedef struct { int32_t d[4]; } shape4;

static inline int32_t offset4(const shape4 *s, int32_t a, int32_t b, int32_t c, int32_t e)
{
    return ((a * s->d[1] + b) * s->d[2] + c) * s->d[3] + e;
}

static int32_t requant(int32_t acc, int32_t mult, int32_t shift)
{
    int64_t wide = (int64_t)acc * (int64_t)mult;
    int32_t total = 31 - shift;
    return (int32_t)((wide + ((int64_t)1 << (total - 1))) >> total);
}

AUTOTUNE_BUFFER(int32_t, at_shapes, 12);   /* input, filter, output shapes (run time) */
AUTOTUNE_BUFFER(int8_t, at_in0, %(in_bytes)d);
AUTOTUNE_BUFFER(int8_t, at_filter, %(f_bytes)d);
AUTOTUNE_BUFFER(int32_t, at_bias, %(oc)d);
AUTOTUNE_BUFFER(int32_t, at_mult, %(oc)d);
AUTOTUNE_BUFFER(int32_t, at_shift, %(oc)d);
AUTOTUNE_BUFFER(int8_t, at_out, %(out_bytes)d);
AUTOTUNE_BUFFER(int32_t, at_offsets, 2);    /* input offset, output offset */

void conv_reference_style(const shape4 *is, const int8_t *in, const shape4 *fs,
                          const int8_t *filter, const shape4 *os, int8_t *out);

void conv_reference_style(const shape4 *is, const int8_t *in, const shape4 *fs,
                          const int8_t *filter, const shape4 *os, int8_t *out)
{
    const int32_t in_off = at_offsets[0], out_off = at_offsets[1];
    for (int32_t y = 0; y < os->d[1]; ++y) {
        for (int32_t x = 0; x < os->d[2]; ++x) {
            for (int32_t oc = 0; oc < os->d[3]; ++oc) {
                int32_t acc = 0;
                for (int32_t fy = 0; fy < fs->d[1]; ++fy) {
                    for (int32_t fx = 0; fx < fs->d[2]; ++fx) {
                        const int32_t iy = y + fy, ix = x + fx;
                        if (iy < 0 || iy >= is->d[1] || ix < 0 || ix >= is->d[2]) {
                            continue;
                        }
                        for (int32_t ic = 0; ic < is->d[3]; ++ic) {
                            const int32_t v = in[offset4(is, 0, iy, ix, ic)];
                            const int32_t w = filter[offset4(fs, oc, fy, fx, ic)];
                            acc += w * (v + in_off);
                        }
                    }
                }
                acc = requant(acc + at_bias[oc], at_mult[oc], at_shift[oc]) + out_off;
                acc = acc < -128 ? -128 : (acc > 127 ? 127 : acc);
                out[offset4(os, 0, y, x, oc)] = (int8_t)acc;
            }
        }
    }
}

void autotune_main(void)
{
    const shape4 *s = (const shape4 *)at_shapes;
    conv_reference_style(&s[0], at_in0, &s[1], at_filter, &s[2], at_out);
}
"""


def reference_style_loop(target, work: Path, opt: str) -> dict[str, float]:
    """Instructions per MAC of the reference-style conv on KWS's pointwise shape
    (25x5x64 -> 64, 1x1), with ``opt``; also its cycles per MAC under ``target``."""
    h, w, c, oc = 25, 5, 64, 64
    src = work / f"refconv{opt}.c"
    src.write_text(
        _REFERENCE_STYLE_CONV
        % {"in_bytes": h * w * c, "f_bytes": oc * c, "oc": oc, "out_bytes": h * w * oc}
    )
    elf = toolchain.build_elf(target, [src], work / f"refconv{opt}", opt=opt).elf
    shapes = np.array([1, h, w, c, oc, 1, 1, c, 1, h, w, oc], np.int32)
    rng = np.random.default_rng(0)
    inputs = {
        "at_shapes": shapes.tobytes(),
        "at_in0": rng.integers(-128, 128, h * w * c).astype(np.int8).tobytes(),
        "at_filter": rng.integers(-127, 128, oc * c).astype(np.int8).tobytes(),
        "at_mult": np.full(oc, 1 << 30, np.int32).tobytes(),
        "at_shift": np.full(oc, -8, np.int32).tobytes(),
        "at_offsets": np.array([128, -128], np.int32).tobytes(),
    }
    macs = h * w * c * oc
    run = run_elf(elf, target, inputs, {"at_out": h * w * oc}, budget=100_000_000)
    return {
        "opt": opt,
        "instructions_per_mac": round(run.instructions / macs, 3),
        "cycles_per_mac": round((run.cycles or 0) / macs, 3),
        "metric": run.cycles_label,
    }


def measure_model(name: str, path: Path, target, timed, work: Path) -> dict[str, object]:
    graph = load_model(path)
    library = emit_library(graph, target, work / name / "model", baseline_choices(graph, target))
    rng = np.random.default_rng(0)
    call = [
        rng.integers(np.iinfo(t.dtype).min, np.iinfo(t.dtype).max + 1, t.shape).astype(t.dtype)
        for t in graph.input_tensors
    ]
    macs = sum(layer_macs(graph, layer) for layer in graph.layers)
    row: dict[str, object] = {"model": name, "macs": macs}
    for key, tgt in (("core", target), ("part", timed)):
        started = time.perf_counter()
        run = run_on_target(library, graph, tgt, [call])
        row[key] = {
            "metric": run.cycles_label,
            "instructions": run.instructions,
            "cycles": run.cycles,
            "cpi": round(run.cycles / run.instructions, 3),
            "seconds": round(time.perf_counter() - started, 1),
        }
        if key == "part":  # per op kind: instructions and cycles per MAC
            per_op: dict[str, list[int]] = {}
            for layer in graph.layers:
                n = layer_macs(graph, layer)
                got = run.inclusive.get(layer_function(layer))
                if got and n:
                    slot = per_op.setdefault(layer.op, [0, 0, 0])
                    slot[0] += n
                    slot[1] += got[0]
                    slot[2] += got[1]
            row["per_op"] = {
                op: {
                    "macs": v[0],
                    "instructions_per_mac": round(v[1] / v[0], 2),
                    "cycles_per_mac": round(v[2] / v[0], 2),
                }
                for op, v in per_op.items()
            }
        print(
            f"  {name} {key}: {run.instructions:,} instructions, {run.cycles:,} {run.cycles_label}"
        )
    row["instructions_per_mac"] = round(row["part"]["instructions"] / macs, 2)  # type: ignore[index]
    ms = row["part"]["cycles"] / (timed.default_clock_mhz * 1000.0)  # type: ignore[index]
    row["model_ms"] = round(ms, 1)
    row["published_ms"] = PUBLISHED_TFLM_MS[name]
    row["model_over_published"] = round(ms / PUBLISHED_TFLM_MS[name], 3)
    # What the board's cycles per instruction would be if it ran this baseline's count.
    board_cycles = PUBLISHED_TFLM_MS[name] * timed.default_clock_mhz * 1000.0
    row["published_cycles"] = round(board_cycles)
    row["published_cycles_per_mac"] = round(board_cycles / macs, 2)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "models")
    )
    parser.add_argument("--part", default="nucleo-l4r5zi")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    part = plugins.get_part(args.part)
    target = plugins.get_target(part.core)
    timed = apply_part(target, part)
    rows = []
    with tempfile.TemporaryDirectory(prefix="autotune-fidelity-") as tmp:
        work = Path(tmp)
        loops = [reference_style_loop(timed, work, opt) for opt in ("-O2", "-Os")]
        for name in args.models.split(","):
            path = Path(args.models_dir) / MODELS[name]
            if not path.exists():
                print(f"skip {name}: {path} not present", file=sys.stderr)
                continue
            print(f"{name}: baseline library, core-only and {part.name}", flush=True)
            rows.append(measure_model(name, path, target, timed, work))

    print()
    print(f"Baseline libraries on {part.name} ({timed.cycle_model}) vs TFLM reference on the board")
    print()
    print(
        "| model | MACs | instr (exact) | instr/MAC | core-only cycles | CPI | "
        f"{part.name} cycles | CPI | model ms | published ms | model / published |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        c, p = r["core"], r["part"]
        print(
            f"| {r['model']} | {r['macs']:,} | {p['instructions']:,} | {r['instructions_per_mac']} "
            f"| {c['cycles']:,} | {c['cpi']} | {p['cycles']:,} | {p['cpi']} | {r['model_ms']} "
            f"| {r['published_ms']} | {r['model_over_published']} |"
        )
    print()
    for r in rows:
        ops = ", ".join(
            f"{op} {v['instructions_per_mac']} instr/MAC {v['cycles_per_mac']} cyc/MAC"
            for op, v in r["per_op"].items()
        )
        print(f"- {r['model']} per op ({part.name}): {ops}")
    for loop in loops:
        print(
            f"- reference-style conv loop (runtime shapes, KWS 1x1 25x5x64->64, {loop['opt']}): "
            f"{loop['instructions_per_mac']} instr/MAC, {loop['cycles_per_mac']} cycles/MAC "
            f"({loop['metric']})"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"part": part.name, "metric": timed.cycle_model, "rows": rows,
                        "reference_style_loops": loops}, indent=2) + "\n"
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

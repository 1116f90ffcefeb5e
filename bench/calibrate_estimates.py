"""Measure the per-op figures `autotune estimate` falls back on (no DB results yet).

For each target, the two example models autotune ships are emitted twice (every
layer at its baseline, and at the first suggested variant, i.e. untuned but fast)
and run whole on the target's simulator; per op the cycles per MAC (or per output
element for ops without MACs) and the code bytes per layer are written to
autotune/tune/estimates.json with the metric, tool version and date.

    python bench/calibrate_estimates.py [--targets cortex-m4,cortex-m0,...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from autotune import __version__
from autotune.emit.deploy import deploy
from autotune.emit.library import baseline_choices, quick_choices
from autotune.errors import AutotuneError
from autotune.examples import autoencoder_model, quickstart_model
from autotune.model.stats import layer_macs
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins
from autotune.tune.estimate import ESTIMATES_FILE

DEFAULT_TARGETS = "cortex-m0,cortex-m3,cortex-m4,cortex-m7,cortex-m33,rv32imc,cortex-a53"


def _per_unit(graph, layer) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    macs = layer_macs(graph, layer)
    if macs:
        return macs, "mac"
    return sum(graph.tensors[t].size for t in layer.outputs), "element"


def calibrate(target_name: str, work: Path) -> dict[str, dict[str, float | str]]:
    target = plugins.get_target(target_name)
    samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    units: dict[str, str] = {}
    for model_name, model in (("kws", quickstart_model()), ("ad", autoencoder_model())):
        graph = parse_model(model, f"{model_name}.tflite")
        for kind, choices in (
            ("baseline", baseline_choices(graph, target)),
            ("first_guess", quick_choices(graph, target)),
        ):
            try:
                d = deploy(graph, target, work / f"{model_name}-{kind}", choices, name=model_name)
            except AutotuneError as exc:  # a variant that does not build here: say so, go on
                print(f"{target_name}: {model_name} {kind}: {exc}", file=sys.stderr)
                continue
            functions = {entry["index"]: entry for entry in d.layers}
            for layer in graph.layers:
                entry = functions[layer.index]
                if not entry["function"]:
                    continue
                count, unit = _per_unit(graph, layer)
                units[layer.op] = unit
                samples[layer.op][f"{kind}_cycles_per_{unit}"].append(entry["cycles"] / count)
                samples[layer.op][f"{kind}_code_bytes"].append(entry["code_bytes"])
    out: dict[str, dict[str, float | str]] = {}
    for op, values in samples.items():
        out[op] = {"unit": units[op]}
        for key, vals in values.items():
            # code bytes: the function alone (its constants are the layer's weights)
            value = statistics.median(vals)
            out[op][key.replace(f"_per_{units[op]}", "_per_unit")] = (
                round(value) if key.endswith("code_bytes") else round(value, 3)
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=DEFAULT_TARGETS)
    args = parser.parse_args()
    table = json.loads(ESTIMATES_FILE.read_text()) if ESTIMATES_FILE.exists() else {}
    table.setdefault("targets", {})
    table["about"] = (
        "Per-op figures measured by bench/calibrate_estimates.py on the example models "
        "(baseline and first-guess variants, whole library on the simulator); "
        "`autotune estimate` uses them where the results DB has nothing for a layer."
    )
    with tempfile.TemporaryDirectory(prefix="autotune-calibrate-") as tmp:
        for name in args.targets.split(","):
            target = plugins.get_target(name)
            print(f"{name}: measuring", file=sys.stderr, flush=True)
            table["targets"][name] = {  # written after each target: a failure keeps the rest
                "metric": plugins.metric_label(target),
                "tool_version": __version__,
                "date": time.strftime("%Y-%m-%d"),
                "ops": calibrate(name, Path(tmp) / name),
            }
            ESTIMATES_FILE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {ESTIMATES_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

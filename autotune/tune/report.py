"""The outputs of a tuning run: each layer's C source, report.json and report.md."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from autotune import __version__
from autotune.db import Trial
from autotune.emit.library import layer_file
from autotune.tune import report_html
from autotune.tune.model_choice import write_front_plot
from autotune.tune.numbers import fmt as _n
from autotune.tune.pipeline import LayerResult, ModelRun, templates_for
from autotune.tune.template import INCLUDE_DIR

SCHEMA_VERSION = 1


def _metrics(t: Trial | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "cycles": t.cycles,
        "instructions": t.instructions,
        "code_bytes": t.code_bytes,
        "rodata_bytes": t.rodata_bytes,
        "stack_bytes": t.stack_bytes,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _per_mac(v: int | None, macs: int) -> float | None:
    return round(v / macs, 3) if v is not None and macs else None


def layer_function(r: LayerResult) -> str:
    return f"at_layer{r.index:02d}_{r.op.lower()}"


def layer_json(r: LayerResult, source: str | None) -> dict[str, Any]:
    tuned = _metrics(r.best)
    if tuned is not None and r.best is not None:
        tuned["template"] = r.best.template
        tuned["params"] = json.loads(r.best.params)
    base = r.baseline
    best = r.best
    return {
        "index": r.index,
        "op": r.op,
        "macs": r.macs,
        "status": r.status,
        "note": r.note,
        "shape": r.spec.describe() if r.spec else "",
        "workload_key": r.spec.workload_key() if r.spec else None,
        "bit_exact": r.bit_exact,
        "cache_hit": r.cache_hit,
        "baseline": _metrics(base),
        "tuned": tuned,
        "speedup": _ratio(base.cycles, best.cycles) if base and best else None,
        "cycles_per_mac": _per_mac(best.cycles, r.macs) if best else None,
        "instructions_per_mac": _per_mac(best.instructions, r.macs) if best else None,
        "source": source,
        "failures": r.failures,
    }


def totals(layers: list[dict[str, Any]]) -> dict[str, Any]:
    tuned = [entry for entry in layers if entry["tuned"] and entry["baseline"]]

    def total(kind: str, field: str) -> int | None:
        values = [entry[kind][field] for entry in tuned]
        return sum(values) if values and all(v is not None for v in values) else None

    tuned_macs = sum(entry["macs"] for entry in tuned)
    base_cycles, tuned_cycles = total("baseline", "cycles"), total("tuned", "cycles")
    base_instr, tuned_instr = total("baseline", "instructions"), total("tuned", "instructions")
    return {
        "macs": sum(entry["macs"] for entry in layers),
        "tuned_layers": len(tuned),
        "tuned_macs": tuned_macs,
        "baseline_cycles": base_cycles,
        "tuned_cycles": tuned_cycles,
        "speedup": _ratio(base_cycles, tuned_cycles),
        "baseline_instructions": base_instr,
        "tuned_instructions": tuned_instr,
        "instruction_speedup": _ratio(base_instr, tuned_instr),
        "cycles_per_mac": _per_mac(tuned_cycles, tuned_macs),
        "instructions_per_mac": _per_mac(tuned_instr, tuned_macs),
        "baseline_cycles_per_mac": _per_mac(base_cycles, tuned_macs),
    }


def write_outputs(
    run: ModelRun,
    out_dir: Path,
    json_path: Path | None = None,
    deployment: dict[str, Any] | None = None,
    library_name: str | None = None,
) -> dict[str, Any]:
    """Write the reports. With library_name, each tuned layer's source is its file in
    the library (DIR/model/); without (no library), each tuned layer's source is
    rendered on its own into DIR/kernels/."""
    out_dir.mkdir(parents=True, exist_ok=True)
    kernels_dir = out_dir / "kernels"
    if library_name is None:
        kernels_dir.mkdir(exist_ok=True)
        shutil.copy(INCLUDE_DIR / "at_nn.h", kernels_dir / "at_nn.h")
    layers = []
    for r in run.layers:
        source = None
        if r.best is not None and r.spec is not None and library_name is not None:
            source = f"model/{layer_file(r.index, r.op, library_name)}"
        elif r.best is not None and r.spec is not None:
            template = next(t for t in templates_for(r.op) if t.name == r.best.template)
            rendered = template.render(
                r.spec, run.target, json.loads(r.best.params), layer_function(r)
            )
            path = kernels_dir / f"layer{r.index:02d}_{r.op.lower()}.c"
            path.write_text(rendered.source)
            source = str(path.relative_to(out_dir))
        layers.append(layer_json(r, source))
    selection = None
    if run.choice is not None:
        selection = run.choice.as_json()
        title = f"{Path(run.graph.path).name} on {run.target.name}"
        plot = write_front_plot(run.choice, out_dir / "front.png", run.metric, title)
        selection["plot"] = plot.name if plot else None
    report = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "autotune", "version": __version__},
        "model": run.graph.path,
        "model_sha256": run.graph.sha256,
        "target": run.target.name,
        "toolchain": run.context.toolchain,
        "target_fingerprint": run.context.target_fingerprint,
        "runner": run.context.runner,
        "metric": run.metric,
        "instructions_metric": "instructions (exact)",
        "measured_variants": run.measured,
        "layers": layers,
        "totals": totals(layers),
        "selection": selection,
        "deployment": deployment,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(markdown(report))
    plot = (selection or {}).get("plot")
    front = out_dir / plot if plot else None
    (out_dir / "report.html").write_text(report_html.render(report, front))
    return report


def markdown(report: dict[str, Any]) -> str:
    t = report["totals"]
    size_only = report["metric"] == "code size only"
    lines = [
        f"# autotune report: {Path(report['model']).name} on {report['target']}",
        "",
        f"- model: `{report['model']}` (sha256 {report['model_sha256'][:16]})",
        f"- target: {report['target']}, toolchain {report['toolchain']}, runner {report['runner']}",
    ]
    if size_only:
        lines.append(
            f"- **{report['target']} cannot be executed here**: variants are ranked by code size "
            "only and are not verified on the target"
        )
    elif t["tuned_layers"] and t["tuned_cycles"] is None and t["tuned_instructions"] is None:
        lines.append(
            f"- cycles would be **{report['metric']}**, but runner {report['runner']} counted "
            "neither cycles nor instructions (QEMU has no cycle counter): variants are ranked by "
            "code size; every one was run and verified bit-exact"
        )
    else:
        lines.append(f"- cycles are **{report['metric']}**; instructions are exact counts")
    d = report.get("deployment")
    if d and d["cycles"] is not None and d.get("baseline"):
        b = d["baseline"]
        lines.append(
            f"- **the library, one inference: {_n(d['cycles'])} cycles, {d['milliseconds']:.3f} ms "
            f"at {d['clock_mhz']:g} MHz; baseline library {_n(b['cycles'])}; speedup "
            f"{_n(d['speedup'])}x**; flash {_n(d['flash']['total'])} B (baseline "
            f"{_n(b['flash']['total'])} B), RAM {_n(d['ram']['total'])} B"
        )
    lines += [f"- variants measured in this run: {report['measured_variants']}", ""]
    if size_only:
        lines += [
            "| # | op | shape | MACs | baseline code bytes | tuned code bytes | template and parameters |",
            "|---:|---|---|---:|---:|---:|---|",
        ]
    else:
        lines += [
            "| # | op | shape | MACs | baseline cycles | tuned cycles | speedup | cycles/MAC "
            "| instr/MAC | code bytes | template and parameters |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
    for layer in report["layers"]:
        base, tuned = layer["baseline"], layer["tuned"]
        if tuned is None:
            note = layer["note"] or layer["status"]
            blanks = " |" * (2 if size_only else 6)
            lines.append(
                f"| {layer['index']} | {layer['op']} | | {_n(layer['macs'] or None)} |{blanks} {note} |"
            )
            continue
        params = ", ".join(f"{k}={v}" for k, v in tuned["params"].items())
        hit = " (cached)" if layer["cache_hit"] else ""
        head = f"| {layer['index']} | {layer['op']} | {layer['shape']} | {_n(layer['macs'])} "
        if size_only:
            lines.append(
                head + f"| {_n(base and base['code_bytes'])} | {_n(tuned['code_bytes'])} "
                f"| {tuned['template']}: {params}{hit} |"
            )
            continue
        lines.append(
            head
            + f"| {_n(base and base['cycles'])} | {_n(tuned['cycles'])} | {_n(layer['speedup'])}x "
            f"| {_n(layer['cycles_per_mac'])} | {_n(layer['instructions_per_mac'])} "
            f"| {_n(tuned['code_bytes'])} | {tuned['template']}: {params}{hit} |"
        )
    if not size_only:
        lines += [
            f"| | **sum (tuned layers, each measured alone)** | | {_n(t['tuned_macs'])} "
            f"| {_n(t['baseline_cycles'])} "
            f"| {_n(t['tuned_cycles'])} | {_n(t['speedup'])}x | {_n(t['cycles_per_mac'])} "
            f"| {_n(t['instructions_per_mac'])} | | |",
            "",
        ]
    if not t["tuned_layers"]:
        lines.append("No layer was tuned: every layer runs its baseline (see the notes).")
    if report.get("selection"):
        lines += selection_markdown(report["selection"], report["metric"])
    lines += failures_markdown(report["layers"])
    if report.get("deployment"):
        lines += deployment_markdown(report["deployment"], report["layers"])
        if report["deployment"].get("latency"):
            lines += latency_markdown(report["deployment"]["latency"])
    lines.append("")
    return "\n".join(lines)


def latency_markdown(lat: dict[str, Any]) -> list[str]:
    """Min/max over inputs per layer and for the model; the input-dependent layers named."""
    model = lat["model"]
    names = ", ".join(lat["inputs"])
    dependent = lat["input_dependent_layers"]
    lines = [
        "",
        "## Latency over inputs",
        "",
        f"The library run whole on {len(lat['inputs'])} inputs ({names}); {lat['metric']}.",
        "",
        f"- one inference: min **{_n(model['min'])}**, max **{_n(model['max'])}** "
        f"({_n(model['max'] - model['min'])} apart)",
    ]
    if model["bound"] > model["max"]:
        lines.append(
            f"- with each layer's slowest crafted input (layer run alone): up to "
            f"{_n(model['bound'])} (an estimate: the sum, not a whole-model run)"
        )
    if dependent is None:
        lines.append(
            "- the runner does not profile per layer: which layers depend on their input "
            "is not known from this run"
        )
        return lines
    if dependent:
        named = ", ".join(f"{d['index']} ({d['op']})" for d in dependent)
        lines.append(f"- layers whose time depends on their input: {named}")
    else:
        lines.append("- no layer's time depends on its input on these inputs")
    lines += [
        "",
        "| # | op | min | max | input-dependent | alone, crafted inputs: min - max |",
        "|---:|---|---:|---:|---|---:|",
    ]
    for x in lat["layers"]:
        alone = f"{_n(x['alone_min'])} - {_n(x['alone_max'])}" if x["alone"] else ""
        lines.append(
            f"| {x['index']} | {x['op']} | {_n(x['min'])} | {_n(x['max'])} | "
            f"{'yes' if x['input_dependent'] else 'no'} | {alone} |"
        )
    crafted = sorted({name for x in lat["layers"] for name in x["alone"]})
    if crafted:
        lines += [
            "",
            "Crafted inputs (each layer cut out and run alone): " + "; ".join(crafted) + ".",
        ]
    return lines


def selection_markdown(sel: dict[str, Any], metric: str) -> list[str]:
    """The whole-model choice: budgets, where it sits on the front, what was rejected."""
    lines = ["", "## The choice of variants", ""]
    budgets = [
        f"{label} {_n(sel[key])}{unit}"
        for key, label, unit in (
            ("flash_budget", "flash", " B"),
            ("ram_budget", "RAM", " B"),
            ("cycle_budget", "cycles", ""),
        )
        if sel[key] is not None
    ]
    lines.append(
        f"- minimizes **{sel['objective']}**"
        + (f" within {', '.join(budgets)}" if budgets else " (no budget)")
        + f": tuned layers {_n(sel['cycles'])} {metric} (baseline {_n(sel['baseline_cycles'])}, "
        f"fastest verified mix {_n(sel['fastest_cycles'])})"
    )
    for text in sel.get("defaults", []):
        lines.append(f"- by default (no budget given): {text}")
    if sel["flash"] is not None:
        lines.append(
            f"- the chosen library, built: flash {_n(sel['flash'])} B, arena + state "
            f"{_n(sel['ram'])} B (baseline library flash {_n(sel['baseline_flash'])} B)"
        )
    if sel["front"]:
        lines.append(
            f"- the model's front has {len(sel['front'])} points, from "
            f"{_n(sel['front'][0]['flash'])} B / {_n(sel['front'][0]['cycles'])} cycles to "
            f"{_n(sel['front'][-1]['flash'])} B / {_n(sel['front'][-1]['cycles'])} cycles"
            + (f" (plot: `{sel['plot']}`)" if sel.get("plot") else "")
        )
    for text in sel["forced"]:
        lines.append(f"- {text}")
    for r in sel["rejected"]:
        lines.append(
            f"- layer {r['layer']}: {r['template']} {r['params']} rejected (not bit-exact on "
            f"this layer's values: {r['reason']}); the next best was checked"
        )
    for f in sel.get("fused", []):
        a, b, c = f["layers"]
        lines.append(
            f"- layers {a}, {b} and {c} run row by row in layer {c}'s function (their two "
            f"intermediate tensors out of the arena): {_n(round(f['cycles']))} {f['metric']}, flash "
            f"{_n(f['flash'])} B, scratch {_n(f['scratch'])} B"
        )
    for sh in sel.get("shared", []):
        which = ", ".join(map(str, sh["layers"]))
        lines.append(
            f"- layers {which} run {'one function' if sh['ok'] else 'their own copies'} of "
            f"{sh['template']} {sh['params']}: {sh['reason']}"
        )
    return lines


def failures_markdown(layers: list[dict[str, Any]]) -> list[str]:
    """Why variants failed, per layer: counts by kind and the first message of each."""
    rows = [(entry, entry.get("failures") or {}) for entry in layers]
    rows = [(entry, f) for entry, f in rows if f]
    if not rows:
        return []
    lines = [
        "",
        "## Why variants failed",
        "",
        "| # | op | failure | variants | first message |",
        "|---:|---|---|---:|---|",
    ]
    for entry, failures in rows:
        for kind, info in sorted(failures.items()):
            first = str(info["first"]).replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {entry['index']} | {entry['op']} | {kind} | {info['count']} | {first} |"
            )
    return lines


def deployment_markdown(d: dict[str, Any], layers: list[dict[str, Any]]) -> list[str]:
    lines = ["", f"## The library: `{d['directory']}`", ""]
    if d.get("error"):
        return [
            *lines,
            (
                f"**FAILED**: the library could not be built ({d['error']}); it was removed."
                if d.get("failure") == "not built"
                else f"**FAILED**: the whole-model check found the library not bit-exact "
                f"({d['error']}); it was removed and must not be used."
            ),
        ]
    flash, ram = d["flash"], d["ram"]
    if not d["verified_calls"]:
        lines += [
            f"One entry point, `{d['entry_point']}()`, compiled for the target. It was not run: "
            "there is no executor for this target here, so it is not verified on the target and "
            "has no cycle figures.",
            "",
        ]
    else:
        lines += [
            f"One entry point, `{d['entry_point']}()`, compiled for the target and run on it "
            f"(the report's runner): bit-exact with the reference on {d['verified_calls']} fresh invocations"
            + (
                f" and {d['stateful_calls']} consecutive stateful ones"
                if d["stateful_calls"]
                else ""
            )
            + ".",
            "",
        ]
    if d["cycles"] is not None:
        lines.append(
            f"- one inference: **{_n(d['cycles'])} {d['metric']}**, "
            f"{d['milliseconds']:.3f} ms at {d['clock_mhz']:g} MHz"
            + (f"; {_n(d['instructions'])} instructions (exact)" if d["instructions"] else "")
        )
    elif d["instructions"] is not None:
        lines.append(f"- one inference: {_n(d['instructions'])} instructions (exact)")
    lines.append(
        f"- flash {_n(flash['total'])} bytes (the library's own): code {_n(flash['code'])}, "
        f"weights and tables {_n(flash['weights'])}, initialised data {_n(flash['data_init'])}; "
        f"the test harness adds {_n(flash.get('harness'))} bytes, not counted"
    )
    lines.append(
        f"- RAM {_n(ram['total'])} bytes (the library's own): arena {_n(ram['arena'])}, state "
        f"{_n(ram['state'])}, other {_n(ram['other'])}; not counted: the harness's input/output "
        f"buffers {_n(ram['io_buffers'])} and stack reserve {_n(ram['stack_reserved'])}; the "
        f"library's worst-case stack is {_n(ram['stack_needed'])} bytes"
        f"{'' if d['stack_exact'] else ' (bound not exact)'}"
    )
    if d["size_tool"]:
        st = d["size_tool"]
        lines.append(
            f"- the toolchain's `size`: text {_n(st['text'])}, data {_n(st['data'])}, bss {_n(st['bss'])}"
        )
    tflm = d["tflm_arena"]
    if tflm:
        lines.append(
            f"- arena: {_n(d['arena_bytes'])} bytes planned by autotune (activations and scratch; "
            f"inputs and outputs stay in the caller's buffers) vs tflite-micro's "
            f"{_n(tflm['total'])} ({_n(tflm['head'])} tensors + {_n(tflm['tail'])} persistent)"
        )
    else:
        lines.append(f"- arena: {_n(d['arena_bytes'])} bytes (tflite-micro cannot load this model)")
    for b in d.get("linux", []):
        lines.append(
            f"- embedded Linux ({b['triplet']}): `{b['static']}`, `{b['shared']}`, "
            f"`{b['pkgconfig']}`"
        )
    total = sum(entry["cycles"] for entry in d["layers"]) or 1
    if not any(entry["function"] for entry in d["layers"]):
        return lines
    lines += [
        "",
        "Per layer inside the library (with the helpers each calls), against the same layer's "
        "variant measured alone when it was tuned:",
        "",
        "| # | op | cycles | share | tuned alone | difference |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for entry in d["layers"]:
        if entry["function"]:
            alone = entry.get("isolated_cycles")
            diff = f"{entry['difference']:+.2%}" if alone else ""
            lines.append(
                f"| {entry['index']} | {entry['op']} | {_n(entry['cycles'])} | "
                f"{100.0 * entry['cycles'] / total:.1f}% | {_n(alone)} | {diff} |"
            )
    differ = d.get("layers_differing") or []
    if differ:
        lines.append("")
        lines.append(
            "Layers whose time in the library differs from their tuning measurement by more "
            "than 1%: "
            + "; ".join(f"{e['index']} ({e['op']}) {e['difference']:+.2%}" for e in differ)
            + ". A workload is measured on the first of its layers: that layer's weights and "
            "its input in the model's measured run; where a kernel's time depends on its "
            "data (rounding, clamping or requantization branches), another layer sharing "
            "the workload takes other paths, and with caches so does a kernel at another "
            "address."
        )
    elif any(e.get("isolated_cycles") for e in d["layers"]):
        lines += ["", "Every tuned layer runs within 1% of its tuning measurement."]
    del layers
    return lines

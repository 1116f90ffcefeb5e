"""report.html: the report for people, one self-contained file (inline SVG charts, no
scripts, nothing fetched), rendered from the same dict as report.json."""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

from autotune.tune.numbers import fmt as _n  # numbers as report.md writes them

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.note { color: #555; font-size: 0.9em; } figure { margin: 1em 0; } svg { max-width: 100%; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog: the SVG sits inside HTML


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: the report is written, never shown
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text stays text (searchable, small)
    return plt


def _layer_bars(report: dict[str, Any]) -> str | None:
    """Baseline against tuned cycles, one pair of bars per tuned layer."""
    rows = [entry for entry in report["layers"] if entry["tuned"] and entry["baseline"]]
    if not rows or report["metric"] == "code size only":
        return None
    plt = _pyplot()
    labels = [f"{r['index']} {r['op']}" for r in rows]
    base = [r["baseline"]["cycles"] or 0 for r in rows]
    tuned = [r["tuned"]["cycles"] or 0 for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], base, height=0.4, label="baseline", color="#bbbbbb")
    ax.barh([i - 0.2 for i in y], tuned, height=0.4, label="tuned", color="#1f77b4")
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(report["metric"])
    ax.legend(fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    return _svg(fig)


def _share(deployment: dict[str, Any] | None) -> str | None:
    """Each layer's share of the whole library's measured inference."""
    if not deployment:
        return None
    rows = [entry for entry in deployment["layers"] if entry.get("function") and entry["cycles"]]
    total = sum(entry["cycles"] for entry in rows)
    if not rows or not total:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.2))
    shares = [100.0 * entry["cycles"] / total for entry in rows]
    ax.barh(range(len(rows)), shares, color="#ff7f0e")
    ax.set_yticks(range(len(rows)), [f"{e['index']} {e['op']}" for e in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"% of one inference ({deployment['metric']}, the library as built)")
    ax.grid(True, axis="x", alpha=0.3)
    return _svg(fig)


def _layer_table(report: dict[str, Any]) -> list[str]:
    size_only = report["metric"] == "code size only"
    unit = "code bytes" if size_only else "cycles"
    head = ["#", "op", "shape", "MACs", f"baseline {unit}", f"tuned {unit}", "speedup"]
    head += ["code bytes", "variant"]
    left = {"op", "shape", "variant"}
    out = [
        "<table>",
        "<tr>" + "".join(f"<th{' class=l' if h in left else ''}>{h}</th>" for h in head) + "</tr>",
    ]
    for r in report["layers"]:
        base, tuned = r["baseline"], r["tuned"]
        key = "code_bytes" if size_only else "cycles"
        if tuned:
            params = ", ".join(f"{k}={v}" for k, v in tuned["params"].items())
            variant = f"{tuned['template']}: {params}"
        else:
            variant = r["note"] or r["status"]
        cells = [
            _n(r["index"]),
            f'<td class="l">{_e(r["op"])}</td>',
            f'<td class="l">{_e(r["shape"])}</td>',
            _n(r["macs"] or None),
            _n(base and base[key]),
            _n(tuned and tuned[key]),
            f"{r['speedup']:.2f}x" if r["speedup"] else "-",
            _n(tuned and tuned["code_bytes"]),
            f'<td class="l">{_e(variant)}</td>',
        ]
        out.append(
            "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells) + "</tr>"
        )
    out.append("</table>")
    return out


def _failures(report: dict[str, Any]) -> list[str]:
    rows = [(r, r.get("failures") or {}) for r in report["layers"]]
    rows = [(r, f) for r, f in rows if f]
    if not rows:
        return ["<p>No variant failed: every measured variant compiled, ran and was bit-exact.</p>"]
    out = [
        "<table>",
        '<tr><th>#</th><th class="l">op</th><th class="l">failure</th><th>variants</th>'
        '<th class="l">first message</th></tr>',
    ]
    for r, failures in rows:
        for kind, info in sorted(failures.items()):
            out.append(
                f"<tr><td>{r['index']}</td><td class='l'>{_e(r['op'])}</td>"
                f"<td class='l'>{_e(kind)}</td><td>{_n(info['count'])}</td>"
                f"<td class='l'>{_e(info['first'])}</td></tr>"
            )
    out.append("</table>")
    return out


def _deployment(d: dict[str, Any]) -> list[str]:
    out = [f"<h2>The library: <code>{_e(d['directory'])}</code></h2>", "<ul>"]
    if d["verified_calls"]:
        out.append(
            f"<li>bit-exact with the reference on {d['verified_calls']} fresh invocations"
            + (f" and {d['stateful_calls']} stateful ones" if d["stateful_calls"] else "")
            + "</li>"
        )
    else:
        out.append("<li>compiled, not run (no executor for this target here): not verified</li>")
    if d["cycles"] is not None:
        out.append(
            f"<li>one inference: <b>{_n(d['cycles'])} {_e(d['metric'])}</b>, "
            f"{d['milliseconds']:.3f} ms at {d['clock_mhz']:g} MHz</li>"
        )
    latency = d.get("latency")
    if latency:
        model = latency["model"]
        dependent = ", ".join(
            f"{x['index']} ({x['op']})" for x in latency["input_dependent_layers"]
        )
        out.append(
            f"<li>latency over {len(latency['inputs'])} inputs: min <b>{_n(model['min'])}</b>, "
            f"max <b>{_n(model['max'])}</b> {_e(latency['metric'])}; "
            + (
                f"input-dependent layers: {_e(dependent)}"
                if dependent
                else "no layer's time depends on its input on these inputs"
            )
            + "</li>"
        )
    flash, ram = d["flash"], d["ram"]
    out.append(
        f"<li>flash {_n(flash['total'])} B: code {_n(flash['code'])}, weights "
        f"{_n(flash['weights'])}, initialised data {_n(flash['data_init'])}</li>"
    )
    out.append(
        f"<li>arena {_n(d['arena_bytes'])} B"
        + (f" (tflite-micro: {_n(d['tflm_arena']['total'])} B)" if d["tflm_arena"] else "")
        + f", state {_n(ram['state'])} B, worst-case stack {_n(ram['stack_needed'])} B</li>"
    )
    for b in d.get("linux", []):
        out.append(
            f"<li>embedded Linux ({_e(b['triplet'])}): <code>{_e(b['static'])}</code>, "
            f"<code>{_e(b['shared'])}</code>, <code>{_e(b['pkgconfig'])}</code></li>"
        )
    out.append("</ul>")
    return out


def render(report: dict[str, Any], front_plot: Path | None = None) -> str:
    name = Path(report["model"]).name
    t = report["totals"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>autotune report: {_e(name)} on {_e(report['target'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>autotune report: {_e(name)} on {_e(report['target'])}</h1>",
        f"<p class='note'>model <code>{_e(report['model'])}</code>; toolchain "
        f"{_e(report['toolchain'])}; runner {_e(report['runner'])}; cycles are "
        f"<b>{_e(report['metric'])}</b>; {report['measured_variants']} variants measured "
        "in this run.</p>",
    ]
    if t["tuned_cycles"] is not None:
        parts.append(
            f"<p>Tuned layers: {t['tuned_layers']}, baseline {_n(t['baseline_cycles'])} &rarr; "
            f"tuned {_n(t['tuned_cycles'])} ({_n(t['speedup'])}x), sums of the layers measured "
            "alone.</p>"
        )
    if report.get("deployment"):
        parts += _deployment(report["deployment"])
    bars = _layer_bars(report)
    if bars:
        parts += [
            "<h2>Baseline and tuned, per layer</h2>",
            f'<figure id="chart-layers">{bars}</figure>',
        ]
    share = _share(report.get("deployment"))
    if share:
        parts += [
            "<h2>Where one inference spends its time</h2>",
            f'<figure id="chart-share">{share}</figure>',
        ]
    if front_plot is not None and front_plot.is_file():
        parts += [
            "<h2>Cycles against flash</h2>",
            f'<figure id="chart-front"><img src="{_e(front_plot.name)}" alt="front"></figure>',
        ]
    parts += ["<h2>Layers</h2>", *_layer_table(report)]
    parts += ["<h2>Why variants failed</h2>", *_failures(report)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

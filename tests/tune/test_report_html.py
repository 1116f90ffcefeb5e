"""report.md's table and report.html: rendered from a report dict, opened in Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from autotune.tune import report_html
from autotune.tune.report import markdown, totals

METRIC = "cycles (model cortex-m4 v1)"


def _metrics(cycles: int) -> dict[str, Any]:
    return {
        "cycles": cycles,
        "instructions": cycles - 10,
        "code_bytes": 300,
        "rodata_bytes": 64,
        "stack_bytes": 16,
    }


def _layer(index: int, op: str, tuned: bool, failures: dict[str, Any] | None = None) -> dict:
    return {
        "index": index,
        "op": op,
        "macs": 1000 * (index + 1),
        "status": "tunable" if tuned else "not-tuned",
        "note": "" if tuned else "runs TFLM's reference semantics; no template",
        "shape": "10x6x16 -> 10x6x16" if tuned else "",
        "workload_key": f"k{index}",
        "bit_exact": tuned,
        "cache_hit": False,
        "baseline": _metrics(9000 + index) if tuned else None,
        "tuned": {**_metrics(3000 + index), "template": "t", "params": {"a": 1, "opt": "-O2"}}
        if tuned
        else None,
        "speedup": 3.0 if tuned else None,
        "cycles_per_mac": 3.0 if tuned else None,
        "instructions_per_mac": 2.9 if tuned else None,
        "source": None,
        "failures": failures or {},
    }


def _report(layers: list[dict], deployment: dict | None = None) -> dict[str, Any]:
    return {
        "model": "/m/kws.tflite",
        "model_sha256": "0" * 64,
        "target": "cortex-m4",
        "toolchain": "arm-none-eabi-gcc 12.2.1",
        "runner": "unicorn",
        "metric": METRIC,
        "measured_variants": 7,
        "layers": layers,
        "totals": totals(layers),
        "deployment": deployment,
    }


def _deployment(layers: list[dict]) -> dict[str, Any]:
    return {
        "directory": "/out/model",
        "name": "kws",
        "entry_point": "kws_invoke",
        "verified_calls": 5,
        "stateful_calls": 0,
        "instructions": 20000,
        "cycles": 25000,
        "metric": METRIC,
        "clock_mhz": 120.0,
        "milliseconds": 0.2083,
        "flash": {"code": 2000, "weights": 4000, "data_init": 8, "total": 6008},
        "ram": {
            "arena": 1952,
            "state": 0,
            "io_buffers": 0,
            "stack_reserved": 0,
            "other": 0,
            "total": 1952,
            "stack_needed": 136,
        },
        "size_tool": None,
        "stack_exact": True,
        "arena_bytes": 1952,
        "tflm_arena": {"total": 5248, "head": 1920, "tail": 3328},
        "latency": {
            "metric": METRIC,
            "inputs": ["random", "all min", "all max"],
            "model": {"min": 24990, "max": 25120, "cycles": {}, "bound": 25120},
            "input_dependent_layers": [{"index": 2, "op": "CONV_2D"}],
            "layers": [],
        },
        "layers": [
            {
                "index": e["index"],
                "op": e["op"],
                "function": f"kws_layer{e['index']:02d}",
                "instructions": 100,
                "cycles": 1000 * (e["index"] + 1),
                "code_bytes": 300,
            }
            for e in layers
        ],
    }


FAILURES = {
    "compile": {"count": 3, "first": "error: 'x' undeclared | in a pipe"},
    "mismatch": {"count": 1, "first": "check input 0: 2 of 160 values differ"},
}


def _cells(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line)) - 1


def test_markdown_rows_have_the_header_s_cells_and_failures_are_listed() -> None:
    layers = [_layer(0, "CONV_2D", True, FAILURES), _layer(1, "SOFTMAX", False)]
    text = markdown(_report(layers))
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = _cells(table[0])
    for line in table[: 2 + len(layers) + 1]:  # the layer table, with its total row
        assert _cells(line) == header, line
    assert "## Why variants failed" in text
    assert "| 0 | CONV_2D | compile | 3 | error: 'x' undeclared \\| in a pipe |" in text
    assert "| 0 | CONV_2D | mismatch | 1 | check input 0" in text


def test_markdown_with_no_tuned_layer_claims_no_verification() -> None:
    text = markdown(_report([_layer(0, "SOFTMAX", False)]))
    assert "Every tuned layer was verified" not in text
    assert "No layer was tuned" in text


def test_html_has_the_charts_and_tables() -> None:
    layers = [_layer(i, "CONV_2D", True) for i in range(3)] + [_layer(3, "SOFTMAX", False)]
    layers[1]["failures"] = FAILURES
    page = report_html.render(_report(layers, _deployment(layers)))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    bars = page[page.index('id="chart-layers"') : page.index('id="chart-share"')]
    assert bars.count("<svg") == 1
    for label in ("0 CONV_2D", "1 CONV_2D", "2 CONV_2D", "baseline", "tuned"):
        assert label in bars
    assert "SOFTMAX" not in bars  # untuned layers have no bars
    assert 'id="chart-share"' in page and "the library as built" in page
    assert "check input 0: 2 of 160 values differ" in page and "<td>3</td>" in page
    assert "min <b>24,990</b>, max <b>25,120</b>" in page and "2 (CONV_2D)" in page
    assert "<script" not in page  # self-contained, nothing to run or fetch
    assert "&lt;" not in page.split("<body>")[0]


def test_html_opens_in_headless_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (scripts/setup.sh installs it)")
    layers = [_layer(i, "CONV_2D", True) for i in range(3)]
    page = tmp_path / "report.html"
    page.write_text(report_html.render(_report(layers, _deployment(layers))))
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000, run.stderr[-2000:]
    # The rendered DOM has both charts as SVG (Chromium parsed them, not only the file).
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.stdout.count("<svg") == 2, dom.stderr[-2000:]
    assert 'id="chart-layers"' in dom.stdout and 'id="chart-share"' in dom.stdout

"""A short seeded run of bench/fuzz_import.py: every mutant ends clean (result or rejection)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import MODELS

ROOT = Path(__file__).resolve().parents[1]
SHARED = (
    "hello_world_int8.tflite",
    "micro_speech_quantized.tflite",
    "kws_ref_model.tflite",
    "trained_lstm_int8.tflite",
    "str_ww_ref_model.tflite",
)


def test_two_hundred_mutants_end_in_a_result_or_a_clean_rejection(tmp_path) -> None:
    present = [name for name in SHARED if (MODELS / name).exists()]
    out = tmp_path / "fuzz.json"
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "fuzz_import.py"),
        "--mutants",
        "200",
        "--seed",
        "11",
        "--example",
        "--progress",
        "0",
        "--json",
        str(out),
        "--models-dir",
        str(MODELS),
        "--models",
        *present,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    result = json.loads(out.read_text())
    counts = result["counts"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sum(counts.values()) == 200
    assert counts["internal"] == counts["memory"] == counts["hang"] == counts["crash"] == 0
    # The mutations reach past the importer: both outcomes are well represented.
    assert counts["ok"] >= 20 and counts["rejected"] >= 50, counts
    assert {"import", "reference"} <= set(result["rejected_at"]), result["rejected_at"]

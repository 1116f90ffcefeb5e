"""The results shipped in results_db/: every line is valid, they are found for the README's
example on cortex-m4 (a first run measures nothing), and another toolchain misses cleanly."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from autotune.db import ResultsDB, TrialKey
from autotune.db.exchange import read_file, shipped_files
from autotune.db.schema import KEY_COLUMNS
from autotune.db.store import SHIPPED
from autotune.examples import quickstart_model
from autotune.platform import plugins, toolchain

FILES = list(shipped_files())


def test_the_shipped_files_are_valid() -> None:
    names = {f.name for f in FILES}
    assert {"quickstart_cortex-m4.jsonl", "kws_ref_model_cortex-m4.jsonl"} <= names
    for f in FILES:
        read = read_file(f)
        assert read.rows and not read.rejected, (f, read.rejected[:3])


def stale_templates(name: str, target: str = "cortex-m4") -> set[str]:
    """Templates whose sources, or the target's cycle model, changed since the shipped
    file `name` was measured."""
    current = {name: t.content_hash() for name, t in plugins.get_kernels().items()}
    model = plugins.get_target(target).cycle_model
    return {
        row["template"]
        for f in FILES
        if f.name == name
        for row in read_file(f).rows
        if current.get(row["template"]) != row["template_hash"] or row["cycle_model"] != model
    }


def test_another_toolchain_misses_cleanly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    row = read_file(FILES[0]).rows[0]
    key = TrialKey(*(row[k] for k in KEY_COLUMNS))
    db = ResultsDB(f"sqlite:///{tmp_path / 'r.sqlite'}", (SHIPPED,))
    assert db.trials(key)
    with caplog.at_level(logging.WARNING, logger="autotune.db"):
        assert db.trials(replace(key, target_fingerprint="gcc-13-elsewhere")) == []
    assert not caplog.records


@pytest.mark.toolchain
def test_a_first_run_of_the_readme_example_measures_nothing(tmp_path: Path) -> None:
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("arm-none-eabi-gcc not installed")
    stale = stale_templates("quickstart_cortex-m4.jsonl")
    if stale:
        pytest.skip(
            f"results_db/quickstart_cortex-m4.jsonl predates changes to {sorted(stale)} "
            "(their sources or the cycle model): "
            "run scripts/refresh_results_db.sh"
        )
    model = tmp_path / "quickstart.tflite"
    model.write_bytes(quickstart_model())
    env = {**os.environ, "AUTOTUNE_SHIPPED": "1", "XDG_DATA_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autotune",
            str(model),
            "--target",
            "cortex-m4",
            "--trials",
            "12",
            "--out",
            str(tmp_path / "tuned"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "tuned" / "report.json").read_text())
    assert report["measured_variants"] == 0
    assert report["deployment"]["bit_exact"]
    assert all(x["bit_exact"] for x in report["layers"] if x["tuned"])

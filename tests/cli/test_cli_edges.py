"""The command line's edges: paths checked before work, one --json, one version key,
unknown commands named, exact output paths, honest .npy errors, in-memory DBs refused,
unsupported ops grouped the same way by `reference` and `tune`, Ctrl-C with --jobs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from autotune.examples import quickstart_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins, toolchain
from tests.cli.test_cli_basics import assert_one_line_error, autotune


def need_toolchain(target: str = "cortex-m4") -> None:
    if not toolchain.toolchain_available(plugins.get_target(target)):
        pytest.skip(f"no toolchain for {target}")


def _fc_model(path: Path) -> Path:
    rng = np.random.default_rng(2)
    b = ModelBuilder()
    x = b.tensor("x", (1, 16), "int8", 0.5, 1)
    w = b.constant("w", rng.integers(-127, 128, (8, 16)).astype(np.int8), 0.02, 0)
    bias = b.constant("b", rng.integers(-99, 99, 8).astype(np.int32), 0.01, 0)
    y = b.tensor("y", (1, 8), "int8", 0.25, -3)
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    b.inputs(x)
    b.outputs(y)
    path.write_bytes(b.build())
    return path


def _unsupported_model(path: Path) -> Path:
    """Three layers of an op the reference lacks, between two it has."""
    b = ModelBuilder()
    t = [b.tensor(f"t{i}", (1, 8), "int8", 0.1, 0) for i in range(6)]
    b.op("TANH", [t[0]], [t[1]])
    for i in (1, 2, 3):
        b.op("SQUARED_DIFFERENCE", [t[i], t[i]], [t[i + 1]])
    b.op("TANH", [t[4]], [t[5]])
    b.inputs(t[0])
    b.outputs(t[5])
    path.write_bytes(b.build())
    return path


def test_unknown_command_is_named(tmp_path: Path) -> None:
    model = _fc_model(tmp_path / "m.tflite")
    result = autotune("inspct", str(model))
    assert result.returncode == 2
    assert_one_line_error(result, "unknown command 'inspct'", "did you mean 'inspect'")
    # A model path is still the main job (and a missing one says so).
    assert_one_line_error(autotune(str(tmp_path / "nope.tflite")), "no such file")


def test_reference_writes_exactly_the_path_given(tmp_path: Path) -> None:
    model = _fc_model(tmp_path / "m.tflite")
    x = tmp_path / "x.npy"
    np.save(x, np.arange(16, dtype=np.int8).reshape(1, 16))
    out = tmp_path / "y.out"
    result = autotune("reference", str(model), "-i", str(x), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.is_file() and not (tmp_path / "y.out.npy").exists()
    assert f"wrote {out}" in result.stderr
    assert np.load(out).shape == (1, 8)


def test_reference_into_a_missing_folder_is_a_clean_error_before_running(tmp_path: Path) -> None:
    model = _fc_model(tmp_path / "m.tflite")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 16), np.int8))
    result = autotune("reference", str(model), "-i", str(x), "-o", str(tmp_path / "no" / "y.npy"))
    assert result.returncode == 2
    assert_one_line_error(result, "--output", "does not exist")
    folder = autotune("reference", str(model), "-i", str(x), "-o", str(tmp_path))
    assert_one_line_error(folder, "is a folder")


def test_text_npy_is_not_called_pickled(tmp_path: Path) -> None:
    model = _fc_model(tmp_path / "m.tflite")
    text = tmp_path / "x.npy"
    text.write_text("1 2 3 4\n")
    result = autotune("reference", str(model), "-i", str(text), "-o", str(tmp_path / "y.npy"))
    assert_one_line_error(result, "x.npy", "not a numpy .npy file")
    assert "pickle" not in result.stderr
    pickled = tmp_path / "p.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    result = autotune("reference", str(model), "-i", str(pickled), "-o", str(tmp_path / "y.npy"))
    assert_one_line_error(result, "p.npy", "pickled")


def test_unwritable_out_fails_before_any_work(tmp_path: Path) -> None:
    model = _fc_model(tmp_path / "m.tflite")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    db = tmp_path / "r.sqlite"
    for out in (blocker, blocker / "sub"):
        start = time.monotonic()
        result = autotune(str(model), "--out", str(out), "--db", f"sqlite:///{db}")
        assert result.returncode == 2
        assert_one_line_error(result, "--out", str(out))
        assert time.monotonic() - start < 30
    assert not db.exists()  # nothing was measured (or even opened)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_db_is_refused(tmp_path: Path, url: str) -> None:
    model = _fc_model(tmp_path / "m.tflite")
    result = autotune(str(model), "--db", url, "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert_one_line_error(result, "in-memory", "keeps nothing")


def test_unsupported_ops_grouped_the_same_by_reference_and_tune(tmp_path: Path) -> None:
    model = _unsupported_model(tmp_path / "u.tflite")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 8), np.int8))
    ref = autotune("reference", str(model), "-i", str(x), "-o", str(tmp_path / "y.npy"))
    assert ref.returncode == 3  # as tune's: the model has layers autotune cannot execute
    assert_one_line_error(ref, "SQUARED_DIFFERENCE x3 (ops 1, 2, 3) are not supported")
    need_toolchain()
    tuned = autotune(
        str(model), "--db", f"sqlite:///{tmp_path / 'r.sqlite'}", "--out", str(tmp_path / "o")
    )
    assert tuned.returncode == 3
    ref_line = ref.stderr.strip().split(": ", 2)[-1]
    tune_line = tuned.stderr.strip().splitlines()[-1]
    assert tune_line.endswith(ref_line), (tune_line, ref_line)


def test_json_is_one_flag_with_one_version_key(tmp_path: Path) -> None:
    need_toolchain()
    model = _fc_model(tmp_path / "m.tflite")
    inspected = json.loads(autotune("inspect", str(model), "--json").stdout)
    targets = json.loads(autotune("targets", "--json", "-t", "cortex-m4").stdout)
    # --json before other options, as `autotune M --json --trials 1` is typed.
    result = autotune(
        str(model),
        "--json",
        "--trials",
        "1",
        "--no-library",
        "--db",
        f"sqlite:///{tmp_path / 'r.sqlite'}",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == json.loads((tmp_path / "o" / "report.json").read_text())
    for doc in (inspected, targets, report):
        assert doc["schema_version"] == 1 and "schema" not in doc


def test_ctrl_c_with_jobs_prints_no_traceback(tmp_path: Path) -> None:
    need_toolchain()
    model = tmp_path / "q.tflite"
    model.write_bytes(quickstart_model())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autotune",
            str(model),
            "--jobs",
            "2",
            "--trials",
            "40",
            "--db",
            f"sqlite:///{tmp_path / 'r.sqlite'}",
            "--out",
            str(tmp_path / "o"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    # Wait until the workers are measuring, then Ctrl-C the whole foreground group as a
    # terminal does.
    deadline = time.monotonic() + 180
    from autotune.db import ResultsDB, Trial

    db = ResultsDB(f"sqlite:///{tmp_path / 'r.sqlite'}")

    def count() -> int:
        with db.session() as s:
            return s.query(Trial).count()

    while count() < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    import os

    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == "autotune: interrupted"

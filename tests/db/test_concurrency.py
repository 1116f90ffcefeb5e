"""Many processes on one results DB: eight tuning runs of one model at once, on SQLite and
on PostgreSQL, all succeed, choose the same variants and never measure one variant twice;
a server that never answers is a clear error within the configured timeout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from autotune.db import DatabaseError, ResultsDB, Trial
from autotune.platform import plugins, toolchain
from tests.db.models import small_model

PROCESSES = 8


@pytest.mark.toolchain
def test_eight_processes_tune_one_model_on_one_fresh_db(db_url: str, tmp_path: Path) -> None:
    if not toolchain.toolchain_available(plugins.get_target("cortex-m4")):
        pytest.skip("arm-none-eabi-gcc not installed")
    model = tmp_path / "two_convs.tflite"
    model.write_bytes(small_model())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autotune",
                str(model),
                "--target",
                "cortex-m4",
                "--trials",
                "3",
                "--db",
                db_url,
                "--out",
                str(tmp_path / f"out{i}"),
                "--no-library",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for i in range(PROCESSES)
    ]
    reports = []
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
        reports.append(json.loads((tmp_path / f"out{len(reports)}" / "report.json").read_text()))
    chosen = [
        [(x["tuned"] or {}).get("template") for x in r["layers"]]
        + [(x["tuned"] or {}).get("params") for x in r["layers"]]
        for r in reports
    ]
    assert all(c == chosen[0] for c in chosen) and chosen[0][0] is not None
    with ResultsDB(db_url).session() as s:
        rows = s.scalar(select(func.count()).select_from(Trial))
    # Every variant measured by any process is one row: none was measured twice.
    assert sum(r["measured_variants"] for r in reports) == rows
    assert rows >= 2 * 3


class Silent:
    def __init__(self, port: int, held: list[socket.socket]) -> None:
        self.port = port
        self.held = held  # connections accepted so far


@pytest.fixture
def silent_server() -> Iterator[Silent]:
    """A TCP port that accepts connections and never says anything."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield Silent(int(listener.getsockname()[1]), held)
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        listener.close()


def test_an_unresponsive_server_is_an_error_within_the_timeout(
    silent_server: Silent, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg")
    monkeypatch.setenv("AUTOTUNE_DB_TIMEOUT", "3")
    url = f"postgresql://team:secret@127.0.0.1:{silent_server.port}/results"
    start = time.monotonic()
    with pytest.raises(DatabaseError) as info:
        ResultsDB(url)
    assert time.monotonic() - start < 3 + 5
    message = str(info.value)
    assert "127.0.0.1" in message and "secret" not in message and "\n" not in message


def test_the_cli_says_so_in_one_line_and_ctrl_c_works(
    silent_server: Silent, tmp_path: Path
) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://team@127.0.0.1:{silent_server.port}/results"
    model = tmp_path / "m.tflite"
    model.write_bytes(small_model())
    args = [sys.executable, "-m", "autotune", str(model), "--db", url, "--out", str(tmp_path)]
    env = {**os.environ, "AUTOTUNE_DB_TIMEOUT": "2"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    lines = [x for x in done.stderr.splitlines() if x.startswith("autotune:")]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "results DB" in lines[0] and "Traceback" not in done.stderr
    # A long timeout: Ctrl-C still ends the wait at once.
    env["AUTOTUNE_DB_TIMEOUT"] = "600"
    before = len(silent_server.held)
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while len(silent_server.held) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(silent_server.held) > before, "autotune never connected"
    time.sleep(1)  # now waiting for the server's answer
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err, err

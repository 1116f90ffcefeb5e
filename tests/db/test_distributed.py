"""Distributed tuning on a real PostgreSQL: four `autotune worker` processes share each
workload's Optuna study; one is killed with SIGKILL in the middle of a measurement; the
others finish every workload's budget, nothing is left running, and collecting the model
afterwards measures nothing and emits a bit-exact library."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from autotune.db import ResultsDB
from autotune.db.schema import Claim, Job
from autotune.platform import plugins, toolchain
from tests.db.models import small_model
from tests.db.pgserver import PostgresServer

BUDGET = 5


@pytest.mark.toolchain
def test_four_workers_one_killed(postgres_server: PostgresServer, tmp_path: Path) -> None:
    if not toolchain.toolchain_available(plugins.get_target("cortex-m4")):
        pytest.skip("arm-none-eabi-gcc not installed")
    import optuna
    from optuna.trial import TrialState

    from autotune.tune.distributed import optuna_storage

    url = postgres_server.new_database()
    model = tmp_path / "two_convs.tflite"
    model.write_bytes(small_model())
    env = {**os.environ, "AUTOTUNE_HEARTBEAT": "2", "AUTOTUNE_CLAIM_STALE": "8"}

    def autotune(*args: str) -> list[str]:
        return [sys.executable, "-m", "autotune", *args]

    sub = subprocess.run(
        autotune(
            "submit", str(model), "--target", "cortex-m4", "--trials", str(BUDGET), "--db", url
        ),
        capture_output=True,
        text=True,
        env=env,
    )
    assert sub.returncode == 0, sub.stderr
    workers = [
        subprocess.Popen(
            autotune("worker", "--db", url, "--exit-when-idle"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    victim = workers[0]
    db = ResultsDB(url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until the victim holds a claim: it is measuring
        with db.session() as s:
            owners = [c.owner for c in s.scalars(select(Claim))]
        if any(f":{victim.pid}:" in o for o in owners):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the worker never started measuring")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    for w in workers[1:]:
        _, err = w.communicate(timeout=900)
        assert w.returncode == 0, err

    with db.session() as s:
        jobs = list(s.scalars(select(Job)))
    assert len(jobs) == 2 and all(j.state == "done" for j in jobs)
    storage = optuna_storage(url)
    failed = 0
    for job in jobs:
        study = optuna.load_study(study_name=job.study, storage=storage)
        done = study.get_trials(states=(TrialState.COMPLETE,))
        assert len({tuple(sorted(t.params.items())) for t in done}) >= BUDGET
        assert not study.get_trials(states=(TrialState.RUNNING,))
        failed += len(study.get_trials(states=(TrialState.FAIL,)))
    assert failed <= 1  # at most the killed worker's in-flight trial

    collect = subprocess.run(
        autotune(
            str(model),
            "--target",
            "cortex-m4",
            "--trials",
            str(BUDGET),
            "--db",
            url,
            "--out",
            str(tmp_path / "out"),
        ),
        capture_output=True,
        text=True,
        env=env,
    )
    assert collect.returncode == 0, collect.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["measured_variants"] == 0
    assert report["deployment"]["bit_exact"] and report["deployment"]["verified_calls"] >= 3

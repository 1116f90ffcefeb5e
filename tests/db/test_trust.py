"""Tamper tests: a shared DB row holds parameters and measurements, never code and never a
verdict that ships. Rows outside the template's space are ignored with a warning; forged
verifications cannot make a variant that is not bit-exact ship; a malformed row never stops
a run."""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from autotune.db import Artifact, ResultsDB, Trial, TrialKey, Verification
from autotune.examples import quickstart_model
from autotune.kernels.conv2d import Conv2DGeneral
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins, toolchain
from autotune.tune import pipeline
from autotune.tune.search import Outcome, StudyContext, known_trials, trial_key
from autotune.tune.space import Space
from autotune.tune.spec import build_spec
from tests.db.models import small_model

INJECTED = "*/ int autotune_evil(void) { return 42; } /*"


def conv_graph() -> Any:
    return parse_model(small_model())


def test_space_check_is_strict() -> None:
    s = Space()
    s.add("unroll", [1, 2, 4], 1)
    s.add("fold", [False, True], False)
    assert s.check({"unroll": 2, "fold": True}) is None
    assert "unknown parameter" in (s.check({"unroll": 2, "fold": True, "x": INJECTED}) or "")
    assert s.check({"unroll": True, "fold": True})  # True == 1 in Python, not here
    assert s.check({"unroll": 2.0, "fold": True})
    assert s.check({"unroll": 2, "fold": 1})
    assert s.check({"unroll": 2})  # missing


def forge(db: ResultsDB, key: TrialKey, params: str, **fields: Any) -> None:
    row = {
        **vars(key),
        "params": params,
        "target": "cortex-m4",
        "toolchain": "gcc",
        "workload": "{}",
        "status": "ok",
        "reason": "",
        "cycles": 1,
        "instructions": 1,
        "code_bytes": 1,
        "is_baseline": False,
        "tool_version": "0",
        "host": "elsewhere",
        "created": 0.0,
        "seconds": 0.0,
        **fields,
    }
    with db.session() as s:
        s.execute(insert(Trial.__table__).values(row))


def test_rows_outside_the_space_are_ignored_with_a_warning(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    graph = conv_graph()
    spec = build_spec(graph, graph.layers[0])
    assert spec is not None
    target = plugins.get_target("cortex-m4")
    ctx = StudyContext(target, "fp", "gcc", "unicorn", "cortex-m4 v1")
    template = Conv2DGeneral()
    key = trial_key(spec, template, ctx)
    base = template.space(spec, target).baseline()
    db = ResultsDB(db_url)
    db.record(key, base, "ok", target="cortex-m4", toolchain="gcc", workload="{}", cycles=500)
    bad = {
        "code in an extra parameter": json.dumps({**base, "x": INJECTED}),
        "a path where a choice belongs": json.dumps({**base, "opt": "-include/etc/passwd"}),
        "a bool for an int": json.dumps({**base, "unroll": True}),
        "not JSON": "{not json",
        "JSON but not an object": "[1, 2]",
    }
    for params in bad.values():
        forge(db, key, params)
    forge(db, key, json.dumps({**base, "opt": "-O3"}, sort_keys=True), cycles=-5)
    forge(db, key, json.dumps({**base, "opt": "-Os"}, sort_keys=True), status="bit-exact!")
    with caplog.at_level(logging.WARNING, logger="autotune.db"):
        known = known_trials(db, spec, [template], ctx)
    assert [t.cycles for t in known.values()] == [500]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 7, warnings
    assert all("ignored" in w and "conv2d_general" in w for w in warnings)
    assert any("unknown parameter 'x'" in w for w in warnings)
    assert any("cycles=-5" in w for w in warnings)


class Broken(Conv2DGeneral):
    """The general convolution with its output zero point off by one: never bit-exact."""

    def context(self, spec: Any, target: Any, params: Any) -> dict[str, Any]:
        scalars = {**spec.scalars, "output_offset": spec.scalars["output_offset"] + 1}
        return {**super().context(spec, target, params), "s": scalars}


@pytest.mark.toolchain
def test_forged_verifications_cannot_ship_a_variant_that_is_not_bit_exact(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("arm-none-eabi-gcc not installed")
    graph = conv_graph()
    layer = graph.layers[0]
    spec = build_spec(graph, layer)
    assert spec is not None
    ctx = pipeline.study_context(target)
    db = ResultsDB(db_url)

    def choose(template: Conv2DGeneral) -> pipeline.LayerResult:
        monkeypatch.setattr(pipeline, "templates_for", lambda op: [template])
        key = trial_key(spec, template, ctx)
        point = template.space(spec, target).baseline()
        db.record(key, point, "ok", target=target.name, toolchain="gcc", workload="{}", cycles=1)
        trial = db.trial(key, point)
        assert trial is not None
        # Forged verdicts: a token sealed by another machine, and a made-up one.
        monkeypatch.setenv("AUTOTUNE_MACHINE_KEY", str(tmp_path / "other.key"))
        elsewhere = db._verification(trial, spec.values_hash())
        monkeypatch.delenv("AUTOTUNE_MACHINE_KEY")
        with db.session() as s:
            for token in (elsewhere, secrets.token_hex(32)):
                s.add(Verification(token=token, created=0.0))
        result = pipeline.LayerResult(layer.index, layer.op, 0, "tunable", spec=spec)
        run = pipeline.ModelRun(graph, target, ctx, "cycles", layers=[result])
        outcome = Outcome(best=None, baseline=None, measured=0, cached=True)
        options = pipeline.TuneOptions(target.name)
        choice = pipeline._choose_all(
            run, {spec.workload_key(): outcome}, db, tmp_path / "w", options
        )
        assert choice is not None
        result.note += " ".join(r.reason for r in choice.rejected)
        return result

    broken = choose(Broken())
    assert broken.best is None and not broken.bit_exact and broken.status == "not-tuned"
    assert "outputs differ" in broken.note
    sound = choose(Conv2DGeneral())  # the same forged verdicts on a sound variant: re-verified
    assert sound.best is not None and sound.bit_exact and sound.verified_now


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autotune", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.toolchain
def test_a_tampered_db_never_renders_code_nor_stops_a_run(tmp_path: Path) -> None:
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("arm-none-eabi-gcc not installed")
    model = tmp_path / "quickstart.tflite"
    model.write_bytes(quickstart_model())
    url = f"sqlite:///{tmp_path / 'team.sqlite'}"

    def tune(out: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        done = run_cli(
            str(model),
            "--target",
            "cortex-m4",
            "--trials",
            "3",
            "--db",
            url,
            "--out",
            out,
            cwd=tmp_path,
        )
        report = tmp_path / out / "report.json"
        return done, json.loads(report.read_text()) if report.exists() else {}

    first, before = tune("a")
    assert first.returncode == 0, first.stderr
    db = ResultsDB(url)
    with db.session() as s:
        rows = list(s.scalars(select(Trial)))
    # A team member's DB: code and paths in parameters, malformed JSON, forged counts,
    # and a forged whole-model record, on every workload the model has.
    for row in {(r.workload_key, r.template): r for r in rows}.values():
        key = TrialKey(
            *(
                getattr(row, k)
                for k in (
                    "target_fingerprint",
                    "workload_key",
                    "template",
                    "template_hash",
                    "runner",
                    "cycle_model",
                )
            )
        )
        good = json.loads(row.params)
        forge(db, key, json.dumps({**good, "x": INJECTED}))
        forge(db, key, json.dumps({**good, "opt": '-O2"\n#include "/etc/passwd'}))
        forge(db, key, "{broken")
    with db.session() as s:
        s.execute(update(Artifact).values(value=json.dumps({"cycles": 1, "verified_calls": 9})))
    second, after = tune("b")
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr and "ignored" in second.stderr
    sources = "".join(p.read_text() for p in (tmp_path / "b").rglob("*.[ch]"))
    assert "autotune_evil" not in sources and "passwd" not in sources
    chosen = [(x["tuned"] or {}).get("params") for x in before["layers"]]
    assert [(x["tuned"] or {}).get("params") for x in after["layers"]] == chosen
    assert after["measured_variants"] == 0
    # The forged whole-model record was not believed: the library ran again, for real.
    assert after["deployment"]["bit_exact"] and after["deployment"]["verified_calls"] >= 3
    assert after["deployment"]["cycles"] == before["deployment"]["cycles"] > 1

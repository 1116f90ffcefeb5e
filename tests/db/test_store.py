"""The results DB: what keys a result, persistence, idempotent writes, machine-sealed
verdicts, and that a changed input misses the cache. On SQLite and on PostgreSQL."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update

from autotune.db import (
    Artifact,
    Claim,
    DatabaseError,
    ResultsDB,
    TrialKey,
    Verification,
    default_db_url,
)
from autotune.platform import plugins, toolchain
from autotune.tune import template as template_module

KEY = TrialKey("fp0", "wk0", "conv2d_general", "hash0", "unicorn", "cortex-m4 v1")


def record(db: ResultsDB, key: TrialKey, cycles: int, params: dict | None = None) -> int:
    trial = db.record(
        key,
        params or {"block": 1},
        "ok",
        target="cortex-m4",
        toolchain="gcc 12",
        workload="{}",
        cycles=cycles,
        instructions=cycles,
        values_hash="v0",
    )
    return trial.id


def test_trials_persist_across_connections(db_url: str) -> None:
    record(ResultsDB(db_url), KEY, 100)
    again = ResultsDB(db_url).trials(KEY)
    assert [t.cycles for t in again] == [100]
    assert again[0].tool_version and again[0].host and again[0].created > 0


def test_counts_beyond_32_bits(db_url: str) -> None:
    record(ResultsDB(db_url), KEY, 5_000_000_000)
    assert [t.cycles for t in ResultsDB(db_url).trials(KEY)] == [5_000_000_000]


def test_every_key_field_separates_results(db_url: str) -> None:
    db = ResultsDB(db_url)
    record(db, KEY, 100)
    for field in (
        "target_fingerprint",
        "workload_key",
        "template",
        "template_hash",
        "runner",
        "cycle_model",
    ):
        assert db.trials(replace(KEY, **{field: "other"})) == [], field
    assert len(db.trials(KEY)) == 1


def test_same_point_is_kept_once_and_drop_forgets(db_url: str) -> None:
    db = ResultsDB(db_url)
    first = record(db, KEY, 100)
    assert record(db, KEY, 90) == first  # idempotent: the point keeps its first row
    record(db, KEY, 80, {"block": 2})
    assert sorted(t.cycles for t in db.trials(KEY)) == [80, 100]
    trial = db.trial(KEY, {"block": 1})
    assert trial is not None and trial.id == first
    assert db.is_verified(trial, "v0") and not db.is_verified(trial, "v1")
    assert db.drop(KEY) == 2 and db.trials(KEY) == []


def test_verdicts_count_only_on_the_machine_that_made_them(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ResultsDB(db_url)
    monkeypatch.setenv("AUTOTUNE_MACHINE_KEY", str(tmp_path / "a.key"))
    record(db, KEY, 100)
    trial = db.trial(KEY, {"block": 1})
    assert trial is not None and db.is_verified(trial, "v0")
    db.store_artifact("k", "deployment", {"cycles": 5})
    assert db.artifact("k") == {"cycles": 5}
    # Forged in the shared DB: a changed value keeps its old seal.
    with db.session() as s:
        s.execute(update(Artifact).where(Artifact.key == "k").values(value='{"cycles": 1}'))
    assert db.artifact("k") is None
    db.store_artifact("k", "deployment", {"cycles": 5})
    # The same DB seen from another machine: nothing it holds is a verdict there.
    monkeypatch.setenv("AUTOTUNE_MACHINE_KEY", str(tmp_path / "b.key"))
    assert not db.is_verified(trial, "v0")
    assert db.artifact("k") is None
    with db.session() as s:  # nor is any token someone put in the table
        s.add(Verification(token="0" * 64, created=0.0))
    assert not db.is_verified(trial, "v0")


def test_claims_exclude_others_until_their_owner_goes_silent(db_url: str) -> None:
    db = ResultsDB(db_url)
    assert db.claim("p1", "s", "me", stale=60)
    assert not db.claim("p1", "s", "you", stale=60)
    assert db.live_claims("s", 60) == 1 and db.live_claims("s", 60, exclude_owner="me") == 0
    db.release("p1", "you")  # not theirs to release
    assert db.live_claims("s", 60) == 1
    with db.session() as s:  # the owner died an hour ago
        s.execute(update(Claim).values(heartbeat=time.time() - 3600))
    assert db.live_claims("s", 60) == 0
    assert db.claim("p1", "s", "you", stale=60)
    db.release("p1", "you")
    assert db.live_claims("s", 60) == 0


def test_unusable_url_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatabaseError, match="results DB"):
        ResultsDB(f"sqlite:///{blocker}/sub/r.sqlite")
    with pytest.raises(DatabaseError):
        ResultsDB("nosuchdialect://x")
    with pytest.raises(DatabaseError, match="in-memory database keeps nothing"):
        ResultsDB("sqlite://")
    with pytest.raises(DatabaseError, match="not a database URL"):
        ResultsDB("results.sqlite")


def test_default_path_is_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AUTOTUNE_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_url() == f"sqlite:///{tmp_path / 'autotune' / 'results.sqlite'}"
    monkeypatch.setenv("AUTOTUNE_DB", "sqlite:///elsewhere.sqlite")
    assert default_db_url() == "sqlite:///elsewhere.sqlite"


def test_compiler_flags_change_the_target_fingerprint() -> None:
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("arm-none-eabi-gcc not installed")
    plain = toolchain.fingerprint(target).key()
    assert toolchain.fingerprint(target).key() == plain
    assert toolchain.fingerprint(target, extra_cflags=["-funroll-loops"]).key() != plain
    assert toolchain.fingerprint(target, opt="-O3").key() != plain
    other = plugins.get_target("cortex-m7")
    assert toolchain.fingerprint(other).key() != plain


def test_editing_a_template_changes_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotune.kernels.conv2d import Conv2DGeneral

    copy = tmp_path / "kernels"
    shutil.copytree(template_module.KERNELS_DIR, copy)
    monkeypatch.setattr(Conv2DGeneral, "directory", copy)
    template_module._content_hash.cache_clear()
    before = Conv2DGeneral().content_hash()
    main = copy / Conv2DGeneral.main_file
    main.write_text(main.read_text() + "\n/* edited */\n")
    template_module._content_hash.cache_clear()
    after = Conv2DGeneral().content_hash()
    template_module._content_hash.cache_clear()
    assert before != after

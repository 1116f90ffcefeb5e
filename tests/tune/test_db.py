"""The results DB: what keys a result, persistence, and that a changed input misses the cache."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from autotune.platform import plugins, toolchain
from autotune.tune import template as template_module
from autotune.tune.db import DatabaseError, ResultsDB, TrialKey, default_db_url

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


def test_trials_persist_across_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    record(ResultsDB(url), KEY, 100)
    again = ResultsDB(url).trials(KEY)
    assert [t.cycles for t in again] == [100]
    assert again[0].tool_version and again[0].host and again[0].created > 0


def test_every_key_field_separates_results(tmp_path: Path) -> None:
    db = ResultsDB(f"sqlite:///{tmp_path / 'r.sqlite'}")
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


def test_same_point_is_replaced_and_drop_forgets(tmp_path: Path) -> None:
    db = ResultsDB(f"sqlite:///{tmp_path / 'r.sqlite'}")
    record(db, KEY, 100)
    trial_id = record(db, KEY, 90)
    record(db, KEY, 80, {"block": 2})
    assert sorted(t.cycles for t in db.trials(KEY)) == [80, 90]
    assert db.is_verified(trial_id, "v0") and not db.is_verified(trial_id, "v1")
    assert db.drop(KEY) == 2 and db.trials(KEY) == []


def test_unusable_url_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatabaseError, match="results DB"):
        ResultsDB(f"sqlite:///{blocker}/sub/r.sqlite")
    with pytest.raises(DatabaseError):
        ResultsDB("nosuchdialect://x")


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

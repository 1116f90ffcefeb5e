"""Exchange and layering: export, import, merge, stats and prune; read-only sources under
the read-write DB. Every imported line is checked; a run after an import measures nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autotune.db import ResultsDB, TrialKey
from autotune.db.exchange import FORMAT, VERSION
from autotune.tune.pipeline import templates_for
from autotune.tune.search import WorkloadSearch
from tests.tune.test_resume import FakeEvaluator, _fc_spec

KEY = TrialKey("fp0", "wk0", "conv2d_general", "hash0", "unicorn", "cortex-m4 v1")


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autotune", *args], capture_output=True, text=True, input=stdin
    )


def add(db: ResultsDB, cycles: int, params: dict, key: TrialKey = KEY) -> None:
    db.record(
        key,
        params,
        "ok",
        target="cortex-m4",
        toolchain="gcc 12",
        workload="{}",
        cycles=cycles,
        instructions=cycles,
        code_bytes=100,
    )


class MustNotMeasure(FakeEvaluator):
    def evaluate(self, template, point):  # type: ignore[no-untyped-def]
        raise AssertionError(f"measured {template.name} {point} although the DB held it")


def search(db: ResultsDB, evaluator: FakeEvaluator) -> WorkloadSearch:
    from autotune.platform import plugins
    from autotune.tune.search import StudyContext

    spec = _fc_spec()
    ctx = StudyContext(plugins.get_target("cortex-m4"), "fp", "gcc", "unicorn", "m4 v1")
    return WorkloadSearch(spec, templates_for(spec.op), ctx, db, evaluator, 3)  # type: ignore[arg-type]


def test_export_then_import_into_an_empty_db_is_all_cache_hits(db_url: str, tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    first = search(ResultsDB(source), FakeEvaluator()).run(12)
    assert first.measured >= 10
    exported = cli("db", "export", "--all", "--db", source)
    assert exported.returncode == 0, exported.stderr
    path = tmp_path / "results.jsonl"
    path.write_text(exported.stdout)
    head = json.loads(exported.stdout.splitlines()[0])
    assert head["format"] == FORMAT and head["version"] == VERSION
    done = cli("db", "import", str(path), "--db", db_url, "--json")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["added"] == len(exported.stdout.splitlines()) - 1 and counts["rejected"] == 0
    again = search(ResultsDB(db_url), MustNotMeasure()).run(12)
    assert again.measured == 0 and again.best is not None and first.best is not None
    assert (again.best.template, again.best.params) == (first.best.template, first.best.params)


def test_import_checks_every_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    add(ResultsDB(url), 100, {"block": 1})
    lines = cli("db", "export", "--db", url).stdout.splitlines()
    good = json.loads(lines[1])
    bad = [
        "{not json",
        json.dumps([1, 2]),
        json.dumps({**good, "params": {"x": "*/ evil(); /*" * 10}}),  # longer than any choice
        json.dumps({**good, "params": '{"block": 1}'}),
        json.dumps({**good, "cycles": -1}),
        json.dumps({**good, "cycles": "12"}),
        json.dumps({**good, "status": "verified"}),
        json.dumps({**good, "template": "x" * 65}),
        json.dumps({k: v for k, v in good.items() if k != "workload_key"}),
        json.dumps({**good, "is_baseline": "yes"}),
    ]
    changed = json.dumps({**good, "params": {"block": 2}, "cycles": 90})
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([lines[0], *bad, changed, lines[1]]) + "\n")
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    done = cli("db", "import", str(path), "--db", other, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "source": str(path),
        "read": 12,
        "added": 2,
        "already_present": 0,
        "rejected": 10,
    }
    assert done.stderr.count("ignored") == 10 and "line 2 ignored: not JSON" in done.stderr
    assert sorted(t.cycles for t in ResultsDB(other).trials(KEY)) == [90, 100]
    # Importing it again adds nothing.
    assert json.loads(cli("db", "import", str(path), "--db", other, "--json").stdout)["added"] == 0
    # A file that is not an export at all: one line, exit 2.
    (tmp_path / "x.jsonl").write_text(lines[1] + "\n")
    wrong = cli("db", "import", str(tmp_path / "x.jsonl"), "--db", other)
    assert wrong.returncode == 2 and "not an autotune results file" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_read_only_sources_are_layered_in_order(tmp_path: Path) -> None:
    team = f"sqlite:///{tmp_path / 'team.sqlite'}"
    add(ResultsDB(team), 50, {"block": 1})
    add(ResultsDB(team), 70, {"block": 3})
    export = tmp_path / "shipped.jsonl"
    export.write_text(cli("db", "export", "--db", team).stdout)
    mine = ResultsDB(f"sqlite:///{tmp_path / 'mine.sqlite'}")
    add(mine, 60, {"block": 1})
    layered = ResultsDB(mine.url, (team, str(export), "postgresql://nobody@127.0.0.1:1/x"))
    seen = {t.params: t.cycles for t in layered.trials(KEY)}
    # Mine first (block 1 = 60, not the team's 50); the team's block 3 once.
    assert seen == {'{"block":1}': 60, '{"block":3}': 70}
    add(layered, 80, {"block": 2})  # a miss is written to the read-write DB only
    assert len(ResultsDB(team).trials(KEY)) == 2 and len(mine.trials(KEY)) == 2


def test_merge_stats_and_prune(db_url: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    add(ResultsDB(db_url), 100, {"block": 1})
    add(ResultsDB(other), 90, {"block": 2})
    add(ResultsDB(other), 95, {"block": 1})  # the same point: kept as it is here
    done = cli("db", "merge", other, "--db", db_url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == 1
    assert sorted(t.cycles for t in ResultsDB(db_url).trials(KEY)) == [90, 100]
    stats = json.loads(cli("db", "stats", "--db", db_url, "--json").stdout)
    assert stats["trials"] == 2 and stats["targets"] == {"cortex-m4": {"ok": 2}}
    # conv2d_general's sources are not "hash0": those trials can never hit again.
    pruned = cli("db", "prune", "--db", db_url)
    assert pruned.returncode == 0 and "removed 2 trials" in pruned.stdout, pruned.stderr
    assert ResultsDB(db_url).trials(KEY) == []


@pytest.mark.parametrize("command", [["stats"], ["export"]])
def test_an_unreachable_db_is_one_line(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "autotune", "db", *command, "--db", "postgresql://u@127.0.0.1:1/x"],
        capture_output=True,
        text=True,
    )
    lines = [x for x in done.stderr.splitlines() if x.startswith("autotune:")]
    assert done.returncode == 2 and len(lines) == 1 and "results DB" in lines[0], done.stderr

"""A search stopped any number of times and resumed makes the same choice as one that ran
straight through with the same seed: the study is a function of the seed and of the
measured set, not of the interruption points."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from autotune.db import ResultsDB, canonical_params
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins
from autotune.tune.pipeline import templates_for
from autotune.tune.search import StudyContext, WorkloadSearch
from autotune.tune.spec import build_spec
from autotune.tune.variant import Measurement


def _fc_spec():
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    x = b.tensor("x", (1, 64), "int8", 0.5, 1)
    w = b.constant("w", rng.integers(-127, 128, (32, 64)).astype(np.int8), 0.02, 0)
    bias = b.constant("b", rng.integers(-99, 99, 32).astype(np.int32), 0.01, 0)
    y = b.tensor("y", (1, 32), "int8", 0.25, -3)
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    b.inputs(x)
    b.outputs(y)
    graph = parse_model(b.build())
    return build_spec(graph, graph.layers[0])


class Killed(Exception):
    """Stands in for the process being killed in the middle of a measurement."""


class FakeEvaluator:
    """Deterministic 'measurements' (a hash of the point), no compiler needed; can die."""

    def __init__(self, die_after: int | None = None) -> None:
        self.calls = 0
        self.die_after = die_after

    def evaluate(self, template, point) -> Measurement:
        if self.die_after is not None and self.calls >= self.die_after:
            raise Killed
        self.calls += 1
        digest = hashlib.sha256(f"{template.name}{canonical_params(point)}".encode()).digest()
        cycles = 1000 + int.from_bytes(digest[:2], "little")
        if digest[2] < 40:  # some variants fail, as real ones do
            return Measurement("mismatch", "1 element differs")
        return Measurement("ok", cycles=cycles, instructions=cycles, code_bytes=200 + digest[3])


def _search(db: ResultsDB, evaluator: FakeEvaluator, seed: int) -> WorkloadSearch:
    spec = _fc_spec()
    target = plugins.get_target("cortex-m4")
    ctx = StudyContext(target, "fp-test", "gcc test", "unicorn", "cortex-m4 test")
    return WorkloadSearch(spec, templates_for(spec.op), ctx, db, evaluator, seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("kills", [[3], [1, 4, 9], [5, 3, 2]])
def test_resume_after_kills_chooses_what_an_uninterrupted_run_chooses(
    tmp_path: Path, kills: list[int]
) -> None:
    budget, seed = 16, 5
    straight_db = ResultsDB(f"sqlite:///{tmp_path / 'straight.sqlite'}")
    straight = _search(straight_db, FakeEvaluator(), seed).run(budget)

    db = ResultsDB(f"sqlite:///{tmp_path / 'killed.sqlite'}")
    for die_after in kills:
        with pytest.raises(Killed):
            _search(db, FakeEvaluator(die_after), seed).run(budget)
    resumed = _search(db, FakeEvaluator(), seed).run(budget)

    assert straight.best is not None and resumed.best is not None
    assert (resumed.best.template, resumed.best.params) == (
        straight.best.template,
        straight.best.params,
    )
    search = _search(db, FakeEvaluator(), seed)
    measured = set(search.known())
    assert measured == set(_search(straight_db, FakeEvaluator(), seed).known())
    # The resumed run only measured what the interrupted runs had not.
    assert straight.measured == budget
    assert resumed.measured == budget - sum(kills)


def test_a_finished_search_measures_nothing_more(tmp_path: Path) -> None:
    db = ResultsDB(f"sqlite:///{tmp_path / 'r.sqlite'}")
    _search(db, FakeEvaluator(), 2).run(10)
    again = FakeEvaluator()
    outcome = _search(db, again, 2).run(10)
    assert again.calls == 0 and outcome.measured == 0


def test_a_template_added_after_the_search_is_tried(tmp_path: Path) -> None:
    """The DB already holds the budget for the workload, but a template that appeared
    since (a plugin, a new version) has never been measured: its suggested points are."""
    db = ResultsDB(f"sqlite:///{tmp_path / 'r.sqlite'}")
    rng = np.random.default_rng(2)
    b = ModelBuilder()
    x = b.tensor("x", (1, 6, 6, 4), "int8", 0.5, 1)
    w = b.constant("w", rng.integers(-127, 128, (4, 3, 3, 4)).astype(np.int8), [0.02] * 4, 0)
    bias = b.constant("b", rng.integers(-99, 99, 4).astype(np.int32), [0.01] * 4, 0)
    y = b.tensor("y", (1, 6, 6, 4), "int8", 0.25, -3)
    b.op("CONV_2D", [x, w, bias], [y], padding="SAME", stride_h=1, stride_w=1)
    b.inputs(x)
    b.outputs(y)
    graph = parse_model(b.build())
    spec = build_spec(graph, graph.layers[0])
    target = plugins.get_target("cortex-m4")
    ctx = StudyContext(target, "fp-test", "gcc test", "unicorn", "cortex-m4 test")
    templates = [t for t in templates_for(spec.op) if t.applies(spec, target)]
    first = WorkloadSearch(spec, templates[:1], ctx, db, FakeEvaluator(), 2)  # type: ignore[arg-type]
    assert first.run(10).measured == 10
    again = FakeEvaluator()
    assert WorkloadSearch(spec, templates[:1], ctx, db, again, 2).run(10).measured == 0  # type: ignore[arg-type]
    added = WorkloadSearch(spec, templates, ctx, db, again, 2)  # type: ignore[arg-type]
    openers = [n for n, _ in added.suggested() if n != templates[0].name]
    assert openers, "a second conv template with suggestions is needed for this test"
    outcome = added.run(10)
    assert outcome.measured > 0
    measured = {name for name, _ in added.known()}
    assert set(openers) <= measured
    # And once they are in, nothing more is measured.
    assert WorkloadSearch(spec, templates, ctx, db, FakeEvaluator(), 2).run(10).measured == 0  # type: ignore[arg-type]

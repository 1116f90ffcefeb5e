"""Latency over inputs: min/max per layer and for the model, input-dependent layers named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from autotune.emit import latency
from autotune.emit.latency import CRAFTERS, cached_latency, measure_latency, model_inputs
from autotune.emit.library import emit_library, quick_choices
from autotune.examples import quickstart_model
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins, toolchain
from autotune.platform.emulator import UnicornRunner
from autotune.platform.hookspecs import hookimpl
from autotune.platform.runner import RunnerCapabilities
from autotune.reference.ops.activations import softmax_params
from autotune.tune.report import latency_markdown


def test_model_inputs_are_random_and_the_extremes() -> None:
    graph = parse_model(quickstart_model())
    cases = model_inputs(graph, 0)
    assert list(cases) == ["random", "all min", "all max"]
    assert (cases["all min"][0] == -128).all() and (cases["all max"][0] == 127).all()
    assert len(np.unique(cases["random"][0])) > 100


def test_softmax_crafted_rows_take_the_slow_and_the_fast_path() -> None:
    b = ModelBuilder("two softmaxes")
    wide = b.tensor("wide", (2, 10), "int8", 0.25, 0)  # diff_min within the int8 range
    narrow = b.tensor("narrow", (2, 10), "int8", 0.01, 0)  # every difference is in range
    ys = [b.tensor(f"y{i}", (2, 10), "int8", 1.0 / 256, -128) for i in range(2)]
    b.op("SOFTMAX", [wide], [ys[0]], beta=1.0)
    b.op("SOFTMAX", [narrow], [ys[1]], beta=1.0)
    b.inputs(wide, narrow)
    b.outputs(*ys)
    graph = parse_model(b.build())
    for layer in graph.layers:
        x = graph.tensors[layer.inputs[0]]
        _, _, diff_min = softmax_params(x.scale, 1.0)
        cases = CRAFTERS["SOFTMAX"](graph, layer)
        row = cases["softmax slow path (equal row)"][0]
        assert (row == row.max()).all()  # every difference 0: every exp, the slowest one
        fast = cases.get("softmax fast path (one-hot row)")
        if diff_min > -255:
            assert fast is not None
            diffs = fast[0].astype(int) - fast[0].max(axis=-1, keepdims=True)
            assert ((diffs < diff_min).sum(axis=-1) == 9).all()  # all but the maximum
        else:
            assert fast is None  # no input reaches below diff_min: there is no fast path
    assert {
        softmax_params(graph.tensors[x.inputs[0]].scale, 1.0)[2] > -255 for x in graph.layers
    } == {
        True,
        False,
    }


@pytest.mark.toolchain
@pytest.mark.parametrize("target_name", ["cortex-m4", "cortex-m0"])
def test_quickstart_latency_names_the_input_dependent_layers(
    tmp_path: Path, target_name: str
) -> None:
    target = plugins.get_target(target_name)
    if not toolchain.toolchain_available(target):
        pytest.skip(f"no toolchain for {target_name}")
    graph = parse_model(quickstart_model())
    choices = quick_choices(graph, target)
    library = emit_library(graph, target, tmp_path / "model", choices)
    lat = measure_latency(graph, target, library, choices, tmp_path / "work")
    assert lat is not None
    js = lat.as_json()
    assert js["metric"].startswith(f"cycles (model {target_name} ")
    by_op = {x.op: x for x in lat.layers}
    # Softmax skips the exponential of values far below the row maximum.
    soft = by_op["SOFTMAX"]
    assert soft.depends_on_input
    slow = soft.alone["softmax slow path (equal row)"]
    assert slow >= soft.high and slow > soft.alone["whole-model random input"]
    # The whole-model figure per input is the sum of what ran: layers are part of it.
    for name, total in lat.totals.items():
        assert total > sum(x.cycles[name] for x in lat.layers)
    assert js["model"]["min"] <= js["model"]["max"] <= js["model"]["bound"]
    dependent = {d["index"] for d in js["input_dependent_layers"]}
    assert dependent == {
        x.index for x in lat.layers if x.low != x.high or len(set(x.alone.values())) > 1
    }
    if target_name == "cortex-m4":
        # Thumb-2 convolutions are branch-free over data: the same time on every input.
        assert not any(x.depends_on_input for x in lat.layers if x.op == "CONV_2D")
    text = "\n".join(latency_markdown(js))
    assert "## Latency over inputs" in text and f"{soft.index} (SOFTMAX)" in text


@pytest.mark.toolchain
def test_latency_is_measured_once_per_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("no arm toolchain")
    graph = parse_model(quickstart_model())
    library = emit_library(graph, target, tmp_path / "model", {})
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first = cached_latency(graph, target, library, {}, tmp_path, 0, db)
    assert first is not None and first["model"]["max"] > 0

    def fail(*_a: object, **_k: object) -> None:
        raise AssertionError("measured again")

    monkeypatch.setattr(latency, "measure_latency", fail)
    assert cached_latency(graph, target, library, {}, tmp_path, 0, db) == first


class _TotalsOnly(UnicornRunner):
    """Counts cycles like the emulator but, like a board, profiles nothing per function."""

    name = "totals-only"
    capabilities = RunnerCapabilities(executes=True, counts_cycles=True)


class _TotalsPlugin:
    @hookimpl
    def register_runners(self, register) -> None:
        register(_TotalsOnly())


@pytest.mark.toolchain
def test_without_a_per_layer_profile_no_layer_is_called_constant(tmp_path: Path) -> None:
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("no arm toolchain")
    plugins.register_plugin(_TotalsPlugin(), "totals")
    try:
        totals = dataclasses.replace(target, runner="totals-only")
        graph = parse_model(quickstart_model())
        library = emit_library(graph, totals, tmp_path / "model", {})
        lat = measure_latency(graph, totals, library, {}, tmp_path / "work")
    finally:
        plugins.unregister_plugin("totals")
    assert lat is not None and not lat.per_layer and lat.layers == []
    js = lat.as_json()
    assert js["input_dependent_layers"] is None  # unknown, not "none"
    assert js["model"]["min"] < js["model"]["max"]  # the softmax still shows in the totals
    text = "\n".join(latency_markdown(js))
    assert "not known" in text and "no layer's time depends" not in text

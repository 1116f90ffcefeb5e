"""A whole-model run's instruction budget grows with the model: a fixed 2e9 stopped the
baseline library of MobileNetV2 at 224x224 (300 M MACs) on cortex-a53 after the whole
tuning run, although nothing was wrong with it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from autotune.emit import latency, verify
from autotune.examples import quickstart_model
from autotune.model.stats import inference_work
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins


def big_conv() -> bytes:
    """One 3x3 convolution over 256x256x64: 2.4 G MACs, 37 KB of weights."""
    b = ModelBuilder("big conv")
    x = b.tensor("x", (1, 256, 256, 64), "int8", 0.05, 0)
    w = b.constant("w", np.ones((64, 3, 3, 64), np.int8), scale=[0.01] * 64, zero_point=[0] * 64)
    bias = b.constant("b", np.zeros(64, np.int32), scale=[0.0005] * 64, zero_point=[0] * 64)
    y = b.tensor("y", (1, 256, 256, 64), "int8", 0.1, 0)
    b.op("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    b.inputs(x)
    b.outputs(y)
    return b.build()


class Stop(Exception):
    pass


def recording_runner(budgets: list[int]) -> Any:
    def run(elf: Any, target: Any, **kwargs: Any) -> Any:
        budgets.append(kwargs["budget"])
        raise Stop

    return SimpleNamespace(run=run, capabilities=SimpleNamespace(profiles_functions=False))


@pytest.fixture
def budgets(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    runner = recording_runner(seen)
    build = SimpleNamespace(elf="unused")
    monkeypatch.setattr(verify, "build_for_target", lambda *a, **k: build)
    monkeypatch.setattr(latency, "build_for_target", lambda *a, **k: build)
    monkeypatch.setattr(plugins, "get_runner", lambda name: runner)
    return seen


def test_the_budget_of_a_large_model_covers_every_mac(budgets: list[int]) -> None:
    graph = parse_model(big_conv())
    macs, elements = inference_work(graph)
    assert macs == 256 * 256 * 64 * 9 * 64 and elements == 256 * 256 * 64
    target = plugins.get_target("cortex-a53")
    x = np.zeros((1, 256, 256, 64), np.int8)
    for calls in (1, 5):
        with pytest.raises(Stop):
            verify.run_on_target(SimpleNamespace(), graph, target, [[x]] * calls)
    with pytest.raises(Stop):
        latency._runs(SimpleNamespace(), graph, target, {"random": [x]})
    one, five, profiled = budgets
    assert one >= verify.PER_MAC * macs > 2_000_000_000  # 64 instructions a MAC at least
    assert five >= 5 * verify.PER_MAC * macs  # one run of five inferences
    assert profiled == one


def test_a_small_model_keeps_the_floor(budgets: list[int]) -> None:
    graph = parse_model(quickstart_model())
    target = plugins.get_target("cortex-m4")
    x = np.zeros(graph.tensors[graph.inputs[0]].shape, np.int8)
    with pytest.raises(Stop):
        verify.run_on_target(SimpleNamespace(), graph, target, [[x]])
    assert budgets == [verify.MIN_BUDGET]  # a runaway program still stops within minutes

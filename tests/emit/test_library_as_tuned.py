"""The library is the tuned code flag for flag: each tuned layer, compiled with the
options its variant was measured with, runs inside the whole model within 1% of
its isolated measurement (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.emit.deploy import agreement, deploy
from autotune.emit.library import layer_file, quick_choices
from autotune.examples import quickstart_model
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins, toolchain
from autotune.platform.parts import apply_part
from autotune.tune.spec import build_spec
from autotune.tune.variant import CheckSet, Evaluator

# Optimisation levels given to the tuned layers in turn, so that a library that
# compiled every file alike could not agree with all of them.
LEVELS = ("-Os", "-O3", "-O2")


@pytest.mark.parametrize(
    "target_name", ["cortex-m0", "cortex-m4", "cortex-m7", "rv32imc", "cortex-m4@stm32l4r5"]
)
def test_layers_in_the_library_take_their_tuned_cycles(target_name: str, tmp_path: Path) -> None:
    # On a part with caches a kernel's time also depends on where its code and constants
    # sit: functions and constant arrays start on cache lines in both builds.
    core, _, part = target_name.partition("@")
    target = apply_part(plugins.get_target(core), plugins.get_part(part) if part else None)
    if not toolchain.toolchain_available(target):
        pytest.skip(f"no toolchain for {target_name}")
    graph = parse_model(quickstart_model())
    choices = quick_choices(graph, target)
    assert len(choices) >= 4
    isolated: dict[int, int] = {}
    runner = plugins.get_runner(target.runner)
    for n, (index, choice) in enumerate(sorted(choices.items())):
        if graph.layers[index].op not in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"):
            # The tiny FC (170 cycles) is within 2 cycles of call glue, which is over 1%:
            # it shows in the report instead (test_agreement_names_the_layer_that_differs).
            # The pool's rounding branch depends on its data: it agrees because it is
            # measured on its model input.
            continue
        spec = build_spec(graph, graph.layers[index])
        template = plugins.get_kernel(choice.template)
        choice.params["opt"] = LEVELS[n % len(LEVELS)]
        assert template.space(spec, target).check(choice.params) is None
        checks = CheckSet.for_layer(graph, index)
        m = Evaluator(spec, target, checks, tmp_path / f"l{index}", runner).evaluate(
            template, choice.params
        )
        assert m.ok and m.cycles, m.reason
        isolated[index] = m.cycles

    result = deploy(graph, target, tmp_path / "lib", choices, isolated=isolated)
    cmake = (result.library.directory / "CMakeLists.txt").read_text()
    for index, choice in choices.items():
        name = layer_file(index, graph.layers[index].op, result.library.name)
        source = next(p for p in result.library.sources if p.name == name)
        assert result.library.opt_for(source) == choice.params["opt"]
        # The emitted build files compile the file as it was measured.
        opts = cmake.split(f'{name} PROPERTIES\n    COMPILE_OPTIONS "', 1)[1].split(";", 1)[0]
        assert opts == choice.params["opt"]
    assert len(isolated) == 6
    tuned = [e for e in result.layers if e["index"] in isolated]
    assert all("isolated_cycles" in e for e in tuned)
    assert result.differ == [], [
        (e["index"], e["op"], e["cycles"], e["isolated_cycles"]) for e in result.differ
    ]
    report = result.as_json()
    assert report["layers_differing"] == []
    # The flash figure is the library's own: the harness is counted apart.
    assert report["flash"]["harness"] > 0
    assert report["flash"]["total"] + report["flash"]["harness"] > report["flash"]["total"]


def test_agreement_names_the_layer_that_differs() -> None:
    layers = [
        {"index": 0, "op": "CONV_2D", "function": "f0", "cycles": 1000},
        {"index": 1, "op": "DEPTHWISE_CONV_2D", "function": "f1", "cycles": 1300},
        {"index": 2, "op": "SOFTMAX", "function": "f2", "cycles": 50},
    ]
    differ = agreement(layers, {0: 995, 1: 1000})
    assert [e["index"] for e in differ] == [1]
    assert differ[0]["difference"] == pytest.approx(0.3)
    assert layers[0]["difference"] == pytest.approx(1000 / 995 - 1, abs=1e-5)
    assert "isolated_cycles" not in layers[2]

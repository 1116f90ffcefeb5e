"""SVDF template: every point of its space is TFLM's SVDF, bit for bit, over calls that
carry the state (the library keeps it) and after a reset.

Points run as whole single-op libraries: the portable paths on the host, the SMLAD
paths on cortex-m4 (in the keyword-like graph, both state types in one library).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.emit.library import Choice, emit_library
from autotune.emit.verify import run_on_host, run_on_target
from autotune.kernels.svdf import TEMPLATES
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins, toolchain
from autotune.tune.spec import build_spec
from tests.emit.test_emit_activations import assert_warning_free
from tests.emit.test_emit_lstm import assert_same, expected
from tests.emit.test_emit_svdf import calls_for
from tests.kernels.test_depthwise_templates import chosen_points
from tests.reference.test_ops_svdf import CASES, keyword_like, svdf

SVDF = TEMPLATES[0]
M4 = "cortex-m4"

HOST_CASES = {
    **CASES,
    "int8-odd-input-block-tail": {"time": "int8", "n_input": 7, "filters": 11, "memory": 5},
    "int16-rank3-odd": {"time": "int16", "n_input": 13, "filters": 9, "rank": 3, "memory": 2},
}


def check_points(graph, points, target: str, tmp_path: Path, on_target: bool) -> None:
    """Each point (one per SVDF layer) as a library: fresh and stateful calls."""
    t = plugins.get_target(target)
    layers = [layer.index for layer in graph.layers if layer.op == "SVDF"]
    calls = calls_for(graph, 5)
    for n, point in enumerate(points):
        choices = {i: Choice(SVDF.name, point) for i in layers}
        library = emit_library(graph, t, tmp_path / f"p{n}", choices)
        assert all(f"Template: {SVDF.name}" in library.codes[i].source for i in layers)
        if on_target:
            assert_warning_free(library, target, tmp_path / f"p{n}")
        for reset_each in (False, True):
            if on_target:
                got = run_on_target(library, graph, t, calls, reset_each=reset_each).outputs
            else:
                got = run_on_host(library, graph, calls, reset_each=reset_each)
            try:
                assert_same(expected(graph, calls, reset_each), got)
            except AssertionError as exc:
                raise AssertionError(f"{point} (reset_each={reset_each}): {exc}") from None


@pytest.mark.parametrize("case", HOST_CASES.values(), ids=HOST_CASES.keys())
def test_points_on_host(case: dict, tmp_path: Path) -> None:
    graph = parse_model(svdf(**case))
    spec = build_spec(graph, graph.layers[0])
    assert spec is not None and SVDF.applies(spec, plugins.get_target(M4))
    # The host runs the portable C: every point without SIMD.
    points = [
        p
        for p in chosen_points(SVDF, spec, plugins.get_target(M4), 4, 6, seed=len(str(case)))
        if p["simd"] == "none"
    ]
    assert {p["mode"] for p in points} == {"direct", "blocked"}
    check_points(graph, points, M4, tmp_path, on_target=False)


@pytest.mark.toolchain
def test_dsp_points_on_cortex_m4(tmp_path: Path) -> None:
    target = plugins.get_target(M4)
    if not toolchain.toolchain_available(target):
        pytest.skip(f"{target.toolchain.cc} is not installed")
    graph = parse_model(keyword_like())
    spec = build_spec(graph, graph.layers[1])
    assert spec is not None and spec.flags["state"] == "int8"
    space = SVDF.space(spec, target)
    base = {**space.baseline(), "mode": "blocked", "simd": "dsp", "shift": "words"}
    points = [
        {**base, "block_f": 4, "unroll": 1, "opt": "-O2"},
        {**base, "block_f": 2, "unroll": 2, "opt": "-O3"},
        {**base, "block_f": 1, "unroll": 1, "shift": "elements", "opt": "-Os"},
    ]
    assert all(space.check(p) is None for p in points)
    check_points(graph, points, M4, tmp_path, on_target=True)


def test_the_baseline_is_the_op_emitters_c() -> None:
    from autotune.emit.layer_code import EMITTERS

    graph = parse_model(svdf(time="int8"))
    spec = build_spec(graph, graph.layers[0])
    assert spec is not None
    target = plugins.get_target(M4)
    base = SVDF.render(spec, target, SVDF.space(spec, target).baseline(), "svdf0")
    emitted = EMITTERS["SVDF"](graph, graph.layers[0], "svdf0").source

    def body(source: str) -> str:  # the header comments differ; tidy_c re-indents
        return " ".join(source[source.index("#include <stdint.h>") :].split())

    assert body(base.source) == body(emitted)

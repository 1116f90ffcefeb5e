"""docs/plugins.md's template and timing-model walk-throughs are real code: the template
is built, run and verified bit-exact on a target, and the model times a real run."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from autotune.platform import plugins, toolchain
from autotune.platform.conformance_run import PROBE_C, check_kernels, conformance_layers
from autotune.platform.emulator import run_elf

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def section(title: str) -> str:
    text = DOCS.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.DOTALL)


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    plugins.reset()
    yield
    plugins.reset()


def need(cc: str) -> None:
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")


def test_the_template_walkthrough_runs_bit_exact(
    fresh: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = section("A kernel template")
    (code,) = blocks(text, "python")
    (jinja,) = blocks(text, "c")
    package = tmp_path / "my_templates"
    package.mkdir()
    (package / "__init__.py").write_text(code)
    (package / "maxpool_rows.c.j2").write_text(jinja)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_templates

    try:
        plugins.register_plugin(my_templates, "my_templates")
        template = plugins.get_kernel("maxpool_rows")
        assert any(s.op == "MAX_POOL_2D" for _, _, s in conformance_layers())
        target = plugins.get_target("cortex-m4")
        need(target.toolchain.cc)
        notes: list[str] = []
        assert check_kernels(target, tmp_path / "work", [template], notes.append) == []
        assert notes == []  # it was run and verified, not skipped
    finally:
        sys.modules.pop("my_templates", None)


def test_the_timing_model_walkthrough_times_a_run(fresh: None, tmp_path: Path) -> None:
    (code,) = blocks(section("A timing model"), "python")
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/plugins.md (timing model)", "exec"), namespace)
    plugin = type(
        "DocTiming", (), {"register_cycle_models": staticmethod(namespace["register_cycle_models"])}
    )
    plugins.register_plugin(plugin, "doc_timing")
    m4 = plugins.get_target("cortex-m4")
    need(m4.toolchain.cc)
    target = dataclasses.replace(m4, cycle_model="m4-flash-ws1 v1")
    assert plugins.metric_label(target) == "cycles (model m4-flash-ws1 v1)"
    src = tmp_path / "probe.c"
    src.write_text(PROBE_C)
    elf = toolchain.build_elf(target, [src], tmp_path / "build", name="probe").elf
    args = np.array([20, 5, 7, 3], np.int32).tobytes()
    run = run_elf(elf, target, inputs={"at_args": args}, outputs={"at_results": 24})
    assert run.cycles_label == "cycles (model m4-flash-ws1 v1)"
    assert run.instructions is not None and run.cycles is not None
    assert run.instructions < run.cycles <= 5 * run.instructions

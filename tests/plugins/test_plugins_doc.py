"""docs/plugins.md's examples are real: the Cortex-M55 package tunes bit-exact on its QEMU
board, the runner snippet runs, and the MIPS walk-through quotes the package verbatim."""

from __future__ import annotations

import json
import re
import shutil
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autotune.cli.main import main
from autotune.platform import plugins, toolchain
from tests.kernels.test_fc_templates import fc_model
from tests.plugins.conftest import MIPS_PACKAGE

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
QEMU = "qemu-system-arm"


def section(title: str) -> str:
    """The text of the ``## title...`` section, up to the next ``## `` heading."""
    text = DOCS.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.DOTALL)


def load(code: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(code, f"docs/plugins.md ({name})", "exec"), module.__dict__)
    return module


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    plugins.reset()
    yield
    plugins.reset()


def needs(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")


def test_mips_walkthrough_quotes_the_package() -> None:
    text = section("A new ISA")
    sources = {p: p.read_text() for p in (MIPS_PACKAGE / "autotune_mips").glob("*.py")}
    for block in blocks(text, "python"):
        assert any(block in source for source in sources.values()), block[:200]
    pyproject = (MIPS_PACKAGE / "pyproject.toml").read_text()
    for block in blocks(text, "toml"):
        assert block in pyproject, block


def test_runner_snippet_counts_like_the_emulator(fresh: None, tmp_path: Path) -> None:
    needs(QEMU, "arm-none-eabi-gcc")
    (code,) = blocks(section("A runner"), "python")
    module = load(code, "board_plugin")
    plugins.register_plugin(module, "board")
    board = plugins.get_runner("qemu-mps2-an386")
    target = plugins.get_target("cortex-m4")
    src = tmp_path / "main.c"
    src.write_text(
        '#include <stdint.h>\n#include "autotune_harness.h"\n'
        "AUTOTUNE_BUFFER(int8_t, at_in0, 64);\nAUTOTUNE_BUFFER(int32_t, at_out, 4);\n"
        "void autotune_main(void)\n{\n"
        "    for (int32_t u = 0; u < 4; u++) {\n        int32_t a = 0;\n"
        "        for (int32_t k = 0; k < 16; k++) {\n"
        "            a += at_in0[u * 16 + k] * (k - 7);\n        }\n"
        "        at_out[u] = a;\n    }\n}\n"
    )
    elf = toolchain.build_elf(target, [src], tmp_path / "build").elf
    x = (np.arange(64) * 37 % 256 - 128).astype(np.int8)
    io: dict[str, Any] = {"inputs": {"at_in0": x.tobytes()}, "outputs": {"at_out": 16}}
    on_board = board.run(elf, target, **io)
    emulated = plugins.get_runner("unicorn").run(elf, target, **io)
    want = (x.reshape(4, 16).astype(np.int32) * (np.arange(16) - 7)).sum(axis=1)
    assert np.frombuffer(on_board.outputs["at_out"], np.int32).tolist() == want.tolist()
    # Two independent executors of the same machine code agree on every instruction.
    assert on_board.instructions == emulated.instructions
    assert on_board.cycles is None and board.metric_label(target) == "instructions (exact)"


def test_m55_example_tunes_bit_exact_on_its_board(fresh: None, tmp_path: Path) -> None:
    needs(QEMU, "arm-none-eabi-gcc")
    code = blocks(DOCS.read_text(), "python")[0]  # "An external plugin package"
    plugins.register_plugin(load(code, "autotune_m55"), "m55")
    target = plugins.get_target("m55")
    assert target.name == "cortex-m55" and target.runner == "qemu-mps3-an547"
    model = tmp_path / "fc.tflite"
    model.write_bytes(fc_model((1, 24), 8, activation="RELU"))
    out = tmp_path / "m55"
    main(
        [
            str(model),
            "--target",
            "m55",
            "--trials",
            "2",
            "--db",
            f"sqlite:///{tmp_path / 'results.sqlite'}",
            "--out",
            str(out),
        ]
    )
    report = json.loads((out / "report.json").read_text())
    assert report["metric"] == "instructions (exact)"
    (layer,) = [layer for layer in report["layers"] if layer.get("tuned")]
    assert layer["bit_exact"] and layer["tuned"]["instructions"] > 0
    deployment = report["deployment"]
    assert deployment["bit_exact"] is True and deployment["instructions"] > 0
    assert deployment.get("cycles") is None


def test_m55_example_passes_the_conformance_probe(fresh: None, tmp_path: Path) -> None:
    """Its board runs the probe with exact, stepwise counts; qemu-user, whose A-profile
    CPU lacks Armv8.1-M's loop instructions, no longer claims to run it."""
    needs(QEMU, "arm-none-eabi-gcc")
    from autotune.platform.conformance_run import check_probe

    code = blocks(DOCS.read_text(), "python")[0]
    plugins.register_plugin(load(code, "autotune_m55"), "m55")
    target = plugins.get_target("m55")
    assert plugins.get_runner("qemu").supports(target)  # a reason: no qemu-user for it
    probe = check_probe(target, tmp_path)
    assert probe.problems == []
    assert list(probe.counts) == ["qemu-mps3-an547"]

"""The MIPS example plugin registered in-process: its target builds, runs and is timed
through the same hooks as the built-in families, and its template is bit-exact.

The end-to-end path (pip install into a fresh venv, the CLI) is in
test_mips_package.py; these tests exercise the pieces directly and quickly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from autotune_mips import plugin as mips_plugin
from autotune_mips.madd import TEMPLATES, MaddDot

from autotune.examples import quickstart_model
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins, toolchain
from autotune.platform.emulator import EmulatorFault
from autotune.tune.spec import build_spec
from autotune.tune.variant import CheckSet, Evaluator
from tests.kernels.test_fc_templates import fc_model

CC = "mipsel-linux-gnu-gcc"


@pytest.fixture
def mips(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plugin loaded next to the built-ins, and gone afterwards."""
    if shutil.which(CC) is None:
        pytest.skip(f"{CC} not installed (apt-get install gcc-mipsel-linux-gnu)")
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    plugins.reset()
    plugins.register_plugin(mips_plugin, "mips")
    yield
    plugins.reset()


def build(tmp_path: Path, body: str) -> Path:
    src = tmp_path / "main.c"
    src.write_text('#include <stdint.h>\n#include "autotune_harness.h"\n' + body)
    target = plugins.get_target("pic32mz")
    return toolchain.build_elf(target, [src], tmp_path / "build").elf


def run(elf: Path, **kwargs):
    target = plugins.get_target("pic32mz")
    return plugins.get_runner(target.runner).run(elf, target, **kwargs)


def test_registered_through_the_hooks(mips: None) -> None:
    target = plugins.get_target("pic32mz")
    assert plugins.get_target("microaptiv") is target
    assert plugins.target_plugin("pic32mz") == "mips"
    assert plugins.isa_of(target).name == "mips32r2-el"
    assert plugins.get_cycle_model(target.cycle_model).name == "microaptiv v1"
    names = {t.name for t in plugins.get_kernels().values()}
    assert {"mips_madd_fully_connected", "mips_madd_conv_2d"} <= names


def test_kseg0_program_runs_and_is_counted(mips: None, tmp_path: Path) -> None:
    # Code at 0x9D000000 and data at 0x80000000 (kseg0), as PIC32MZ programs are linked.
    elf = build(
        tmp_path,
        """
AUTOTUNE_BUFFER(int32_t, at_in0, 8);
AUTOTUNE_BUFFER(int32_t, at_out, 2);
void autotune_main(void)
{
    int64_t acc = 0;
    int32_t q = 0;
    for (int32_t i = 0; i < 8; i++) {
        acc += (int64_t)at_in0[i] * at_in0[7 - i];
        q += at_in0[i] / 3;
    }
    at_out[0] = (int32_t)(acc >> 8);
    at_out[1] = q;
}
""",
    )
    x = np.array([7, -300, 1 << 20, -5, 123456, 9, -(1 << 24), 77], np.int32)
    result = run(elf, inputs={"at_in0": x.tobytes()}, outputs={"at_out": 8})
    acc = int(np.sum(x.astype(np.int64) * x[::-1].astype(np.int64)))
    q = sum(int(v / 3) for v in x.tolist())  # C division truncates toward zero
    assert np.frombuffer(result.outputs["at_out"], np.int32).tolist() == [
        ((acc >> 8) + 2**31) % 2**32 - 2**31,
        q,
    ]
    assert result.instructions > 8 * 5
    assert result.cycles is not None and result.cycles >= result.instructions
    assert result.cycle_model == "microaptiv v1"


def test_unaligned_load_is_a_fault_with_its_reason(mips: None, tmp_path: Path) -> None:
    elf = build(
        tmp_path,
        """
AUTOTUNE_BUFFER(uint8_t, at_in0, 8);
AUTOTUNE_BUFFER(int32_t, at_out, 1);
void autotune_main(void)
{
    /* The offset comes from the input, so the compiler cannot use LWL/LWR. */
    at_out[0] = *(volatile int32_t *)(at_in0 + 4 + at_in0[0]);
}
""",
    )
    with pytest.raises(EmulatorFault, match="AdEL"):
        run(elf, inputs={"at_in0": bytes([1])}, outputs={"at_out": 4})


def test_long_straight_line_code_runs(mips: None, tmp_path: Path) -> None:
    # 600 dependent adds in one basic block (Unicorn 2.1's MIPS engine crashed on
    # blocks this long before the emulator passed it an instruction count).
    adds = "\n".join(f"    x = x * 3 + at_in0[{i % 4}];" for i in range(600))
    elf = build(
        tmp_path,
        "AUTOTUNE_BUFFER(int32_t, at_in0, 4);\nAUTOTUNE_BUFFER(int32_t, at_out, 1);\n"
        "void autotune_main(void)\n{\n    int32_t x = 1;\n" + adds + "\n    at_out[0] = x;\n}\n",
    )
    x = np.array([3, -1, 4, 1], np.int32)
    want = 1
    for i in range(600):
        want = (want * 3 + int(x[i % 4]) + 2**31) % 2**32 - 2**31
    result = run(elf, inputs={"at_in0": x.tobytes()}, outputs={"at_out": 4})
    assert np.frombuffer(result.outputs["at_out"], np.int32)[0] == want


def evaluator(model: bytes, op: str, tmp_path: Path) -> tuple[Evaluator, object]:
    graph = parse_model(model)
    layer = next(layer for layer in graph.layers if layer.op == op)
    spec = build_spec(graph, layer)
    target = plugins.get_target("pic32mz")
    checks = CheckSet.for_layer(graph, layer.index)
    runner = plugins.get_runner(target.runner)
    return Evaluator(spec, target, checks, tmp_path, runner), spec


@pytest.mark.parametrize(
    "case",
    [
        dict(in_shape=(1, 40), units=12, activation="RELU"),
        dict(in_shape=(4, 17), units=5, per_channel=True),
        dict(in_shape=(2, 33), units=7, filter_zp=3),  # int16 weights in the table
    ],
    ids=["relu", "per-channel-batch4", "filter-offset"],
)
def test_madd_fully_connected_is_bit_exact(mips: None, tmp_path: Path, case: dict) -> None:
    ev, spec = evaluator(fc_model(**case), "FULLY_CONNECTED", tmp_path)
    template = TEMPLATES[0]
    target = plugins.get_target("pic32mz")
    assert template.applies(spec, target)
    points = [
        {"chunk": 4, "weights": "table", "opt": "-O2"},  # several chunks, partial sums
        {"chunk": 16, "weights": "table", "opt": "-Os"},
        {"chunk": 8, "weights": "immediate", "opt": "-O2"},
    ]
    for point in points:
        m = ev.evaluate(template, point)
        assert m.status == "ok", (point, m.reason)
        assert m.cycles and m.metric_label == "cycles (model microaptiv v1)"


def test_madd_pointwise_conv_beats_the_portable_template(mips: None, tmp_path: Path) -> None:
    # The quick-start model's second 1x1 convolution (16 -> 16 channels over 10x6).
    graph = parse_model(quickstart_model())
    pointwise = [layer for layer in graph.layers if layer.op == "CONV_2D"][1]
    spec = build_spec(graph, pointwise)
    target = plugins.get_target("pic32mz")
    ev = Evaluator(
        spec,
        target,
        CheckSet.for_layer(graph, pointwise.index),
        tmp_path,
        plugins.get_runner(target.runner),
    )
    template = TEMPLATES[1]
    assert template.applies(spec, target)
    madd = ev.evaluate(template, {"chunk": 16, "weights": "immediate", "opt": "-O2"})
    assert madd.status == "ok", madd.reason
    portable = [
        t
        for t in plugins.get_kernels().values()
        if t.op == "CONV_2D" and not isinstance(t, MaddDot) and t.applies(spec, target)
    ]
    best = None
    for t in portable:
        for point in [t.space(spec, target).baseline(), *t.suggestions(spec, target)[:1]]:
            m = ev.evaluate(t, point)
            if m.status == "ok" and (best is None or m.cycles < best):
                best = m.cycles
    assert best is not None and madd.cycles < best


def test_madd_applies_only_to_pointwise_conv_on_mips(mips: None) -> None:
    graph = parse_model(quickstart_model())
    convs = [layer for layer in graph.layers if layer.op == "CONV_2D"]
    first = build_spec(graph, convs[0])  # 3x3, stride 2
    pointwise = build_spec(graph, convs[1])
    assert not TEMPLATES[1].applies(first, plugins.get_target("pic32mz"))
    assert not TEMPLATES[1].applies(pointwise, plugins.get_target("cortex-m4"))


def test_exception_names_the_block_that_raised_it(mips: None, tmp_path: Path) -> None:
    # Unicorn's MIPS CPU reports the exception vector (or 0) as the PC: the fault names
    # the running basic block in the target's flash instead.
    elf = build(
        tmp_path,
        """
AUTOTUNE_BUFFER(int32_t, at_out, 1);
void autotune_main(void)
{
    at_out[0] = 1;
    __asm__ volatile("break");
}
""",
    )
    with pytest.raises(EmulatorFault, match=r"break \(exception 18\)") as info:
        run(elf, outputs={"at_out": 4})
    flash = plugins.get_target("pic32mz").memory[0]
    assert flash.origin <= info.value.pc < flash.origin + flash.length

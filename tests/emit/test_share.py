"""Share what is the same: layers of one shape and variant run ONE function (their
constants passed in), constants several layers read are stored once; the library stays
bit-exact, and the ELF holds each shared function and constant exactly once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

from autotune.emit import share
from autotune.emit.deploy import deploy
from autotune.emit.library import baseline_choices, emit_library, quick_choices
from autotune.emit.verify import build_for_target
from autotune.examples import quickstart_model
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins, toolchain

TARGET = "cortex-m4"


def _target():
    target = plugins.get_target(TARGET)
    if not toolchain.toolchain_available(target):
        pytest.skip(f"no toolchain for {TARGET} (Debian package gcc-arm-none-eabi)")
    return target


def _symbols(lib, graph, target) -> list[str]:
    """Every symbol of the library built for the target (as the deployment builds it)."""
    elf = build_for_target(lib, graph, target, 1).elf
    with elf.open("rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        return [s.name for s in table.iter_symbols()]


def test_same_shape_layers_run_one_function_bit_exact(tmp_path: Path) -> None:
    """The quick-start DS-CNN has two depthwise and two 1x1 layers of one shape each."""
    target = _target()
    graph = parse_model(quickstart_model())
    choices = quick_choices(graph, target)
    shared = {i: dataclasses.replace(c, share=True) for i, c in choices.items()}
    result = deploy(graph, target, tmp_path / "lib", shared)  # raises unless bit-exact
    lib = result.library
    files = sorted(p.name for p in lib.sources if "_shared" in p.name)
    assert len(files) == 2, files  # one for layers 1 and 3, one for layers 2 and 4
    names = _symbols(result.library, graph, target)
    for f in files:
        assert names.count(f.removesuffix(".c")) == 1
    # Every layer keeps its own entry point and its own constants.
    for index in (1, 2, 3, 4):
        fn = next(
            c.function
            for c in lib.codes
            if c.function.endswith(f"layer{index:02d}_" + graph.layers[index].op.lower())
        )
        assert names.count(fn) == 1
    header = lib.header.read_text()
    assert header.count(f"struct {lib.name}_shared0_data {{") == 1

    # Unshared, each of the four layers carries its own copy of the code: more flash.
    alone = deploy(graph, target, tmp_path / "alone", choices)
    assert not any("_shared" in p.name for p in alone.library.sources)
    assert result.as_json()["flash"]["code"] < alone.as_json()["flash"]["code"]


def _rnn_like_model() -> bytes:
    """Three FULLY_CONNECTED layers reading the same weights and bias (an unrolled RNN's
    steps), each with its own output quantization."""
    rng = np.random.default_rng(3)
    b = ModelBuilder()
    w = b.constant("w", rng.integers(-127, 128, (16, 16)).astype(np.int8), 0.02, 0)
    bias = b.constant("b", rng.integers(-300, 300, 16).astype(np.int32), 0.02 * 0.05, 0)
    x = b.tensor("x", (1, 16), "int8", 0.05, 2)
    h = x
    for step, (scale, zp) in enumerate(((0.07, -3), (0.09, 4), (0.06, 0))):
        out = b.tensor(f"h{step}", (1, 16), "int8", scale, zp)
        b.op("FULLY_CONNECTED", [h, w, bias], [out])
        h = out
    b.inputs(x)
    b.outputs(h)
    return b.build()


def test_weights_read_by_several_layers_are_stored_once(tmp_path: Path) -> None:
    target = _target()
    graph = parse_model(_rnn_like_model())
    for name, choices in (
        ("base", baseline_choices(graph, target)),
        ("quick", quick_choices(graph, target)),
    ):
        result = deploy(graph, target, tmp_path / name, choices)  # raises unless bit-exact
        lib = result.library
        consts = next(p for p in lib.sources if p.name.endswith("_constants.c"))
        stored = share.arrays(consts.read_text().replace("\nconst ", "\nstatic const "))
        # The weights (256 B in whatever layout the variant uses) and the bias: once.
        assert sum(a.nbytes for a in stored) >= 256 + 64, [a.name for a in stored]
        names = _symbols(result.library, graph, target)
        for a in stored:
            assert names.count(a.name) == 1
        for src in lib.sources:
            if "_layer" in src.name:
                own = share.arrays(src.read_text())
                assert all(a.nbytes < 256 for a in own), (src.name, [a.name for a in own])


def test_no_sharing_where_the_code_differs(tmp_path: Path) -> None:
    """Layers whose code differs (here: other output offsets baked into the code) keep
    their own functions even when allowed to share; the library is bit-exact."""
    target = _target()
    graph = parse_model(_rnn_like_model())
    choices = {
        i: dataclasses.replace(c, share=True) for i, c in baseline_choices(graph, target).items()
    }
    lib = emit_library(graph, target, tmp_path / "lib", choices)
    assert not any("_shared" in p.name for p in lib.sources)


def test_shared_form_of_a_source() -> None:
    source = (
        "/*\n * Layer 1\n */\n#include <stdint.h>\n\n#define OFF (3)\n\n"
        "static const int32_t BIAS[2] __attribute__((aligned(4))) = {\n    1, 2,\n};\n\n"
        "static const int8_t W[4] __attribute__((aligned(4))) = {\n    1, 2, 3, 4,\n};\n\n"
        "void f1(const int8_t *restrict input, int8_t *restrict output, void *restrict s)\n"
        "{\n    output[0] = (int8_t)(W[input[0] & 3] + BIAS[1] + OFF);\n}\n"
    )
    other = (
        source.replace("1, 2, 3, 4", "4, 3, 2, 1").replace("f1", "f2").replace("Layer 1", "Layer 2")
    )
    assert share.normalized(source, "f1") == share.normalized(other, "f2")
    assert share.normalized(source, "f1") != share.normalized(other.replace("(3)", "(4)"), "f2")
    assert share.shared_bytes([source, other]) == 8  # BIAS is the same, W is not
    # Steps of an unrolled RNN reading two weight tensors in turn: 4 sources hold 2
    # distinct W and 1 BIAS, 48 bytes stored as 16, so each source past the first saves
    # (48 - 16) / 3 = 10 (the first two alone would promise 8 + 0 per further source).
    steps = [source, other, source.replace("f1", "f3"), other.replace("f2", "f4")]
    assert share.shared_bytes(steps) == (4 * 12 - 16) // 3
    fn = share.shared_function(source, "f1", "m_shared0", "two layers")
    assert fn is not None
    assert "W[4]" not in fn.source and "at_data->W" in fn.source
    assert "void m_shared0(const int8_t *restrict input" in fn.source
    stub = fn.stub(other, "f2")
    assert "4, 3, 2, 1" in stub and "m_shared0(input, output, s, &at_data);" in stub
    # An array read outside the function cannot be passed in.
    helper = source.replace("#define OFF (3)", "#define OFF (3)\n#define FIRST (W[0])")
    assert share.shared_function(helper, "f1", "m_shared0", "") is None
    texts, consts = share.dedupe_arrays([source, other], "m")
    assert len(consts.definitions) == 1 and "m_c0" in texts[0] and "m_c0" in texts[1]
    assert "BIAS" not in texts[0].split("void f1")[1]

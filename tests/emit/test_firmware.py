"""The library as a firmware engineer uses it: named libraries, build files, one image.

Two different models emitted as `kws` and `ad` are built by CMake (examples/firmware)
into one mps2-an386 image that qemu-system-arm runs; its printed outputs must equal the
reference. The emitted sources must compile with -Wall -Wextra -Wmissing-prototypes
-Werror, and a DSP layer compiled for a core without DSP must stop at one #error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from autotune.emit.buildfiles import write_build_files
from autotune.emit.library import Library, compile_flags, default_name, emit_library, quick_choices
from autotune.errors import AutotuneError
from autotune.examples import autoencoder_model, quickstart_model
from autotune.model.graph import Graph
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins
from autotune.reference.executor import Interpreter

FIRMWARE = Path(__file__).resolve().parents[2] / "examples" / "firmware"
# Semihosting output on stdout (with -nographic QEMU writes it to the terminal).
QEMU_ARGS = [
    *("-M", "mps2-an386", "-display", "none", "-monitor", "none", "-serial", "none"),
    *("-chardev", "stdio,id=sh", "-semihosting-config", "enable=on,target=native,chardev=sh"),
]
WARNINGS = ["-Wall", "-Wextra", "-Wmissing-prototypes", "-Wshadow", "-Werror"]


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/setup.sh installs it)")


def _emit(tmp: Path, name: str, model: bytes, target: str = "cortex-m4") -> tuple[Graph, Library]:
    graph = parse_model(model, str(tmp / f"{name}_model.tflite"))
    t = plugins.get_target(target)
    library = emit_library(graph, t, tmp / name / "model", quick_choices(graph, t), name)
    write_build_files(library, t)
    return graph, library


def _pattern(graph: Graph, step: int, offset: int) -> np.ndarray:
    """main.c's fill(): byte i is (i * step + offset) mod 256 as a signed byte."""
    t = graph.input_tensors[0]
    raw = (np.arange(t.size, dtype=np.int64) * step + offset) % 256
    return raw.astype(np.uint8).view(np.int8).reshape(t.shape)


def test_names_prefix_every_symbol_file_and_macro(tmp_path: Path) -> None:
    _, lib = _emit(tmp_path, "kws", quickstart_model())
    assert lib.entry_point == "kws_invoke"
    names = sorted(p.name for p in lib.directory.iterdir() if p.is_file())
    for n in names:
        assert n.startswith(("kws", "at_")) or n in ("CMakeLists.txt",), n
    assert "at_lstm.h" not in names  # no LSTM in this model
    assert not list(lib.directory.parent.glob("kernels")), "one copy of each source only"
    header = lib.header.read_text()
    assert "#ifndef KWS_H" in header and "KWS_ARENA_BYTES" in header
    assert "AUTOTUNE_MODEL" not in header
    for src in lib.sources:
        text = src.read_text()
        # Every external function of the library is declared in the public header.
        for fn in re.findall(r"^(?:int|void) (\w+)\(", text, re.MULTILINE):
            assert fn.startswith("kws_") and f" {fn}(" in header, (src.name, fn)
        # No Python dict or repr syntax in generated comments.
        assert not re.search(r"\{'\w+':", text), src.name


def test_default_and_bad_names(tmp_path: Path) -> None:
    assert default_name("/x/kws_ref_model.tflite") == "kws_ref_model"
    assert default_name("vww-96 int8.tflite") == "vww_96_int8"
    assert default_name("1st.tflite") == "m_1st"
    assert default_name("") == "model"
    with pytest.raises(AutotuneError, match="not a C identifier"):
        _emit(tmp_path, "bad-name", quickstart_model())


def test_sources_compile_warning_free_and_wrong_core_stops_once(tmp_path: Path) -> None:
    _need("arm-none-eabi-gcc")
    target = plugins.get_target("cortex-m4")
    _, lib = _emit(tmp_path, "kws", quickstart_model())
    dsp_files = 0
    for src, flags in compile_flags(lib, target).items():
        cmd = ["arm-none-eabi-gcc", *flags, *WARNINGS, "-c", str(src), "-o", str(tmp_path / "x.o")]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0 and not done.stderr, (src.name, done.stderr)
        # The same source for a Cortex-M0 (no DSP extension).
        m0 = ["arm-none-eabi-gcc", "-mcpu=cortex-m0", "-mthumb", "-O2", "-ffreestanding"]
        done = subprocess.run(
            [*m0, "-c", str(src), "-o", str(tmp_path / "y.o")], capture_output=True, text=True
        )
        errors = [ln for ln in done.stderr.splitlines() if ": error:" in ln]
        if done.returncode:
            dsp_files += 1
            assert len(errors) == 1 and "__ARM_FEATURE_DSP" in errors[0], done.stderr
    assert dsp_files >= 3  # the quick variants of conv, depthwise and FC use the DSP path


def test_two_models_link_into_one_image_and_match_the_reference(tmp_path: Path) -> None:
    _need("arm-none-eabi-gcc", "cmake", "qemu-system-arm")
    kws_graph, kws = _emit(tmp_path, "kws", quickstart_model())
    ad_graph, ad = _emit(tmp_path, "ad", autoencoder_model())
    build = tmp_path / "build"
    subprocess.run(
        [
            "cmake",
            "-S",
            str(FIRMWARE),
            "-B",
            str(build),
            f"-DCMAKE_TOOLCHAIN_FILE={FIRMWARE / 'arm-none-eabi.cmake'}",
            f"-DKWS_DIR={kws.directory}",
            f"-DAD_DIR={ad.directory}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    built = subprocess.run(
        ["cmake", "--build", str(build), "--verbose"], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    # Each layer file was compiled with its flags from compile_flags() (here: -O2 ...).
    assert re.search(r"-mcpu=cortex-m4 .*-O2 .*kws_layer00_conv_2d\.c", built.stdout)
    run = subprocess.run(
        [
            "qemu-system-arm",
            *QEMU_ARGS,
            "-kernel",
            str(build / "firmware.elf"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
    for name, graph, step, offset in (("kws", kws_graph, 37, 11), ("ad", ad_graph, 101, 3)):
        want = Interpreter(graph).invoke([_pattern(graph, step, offset)])
        assert isinstance(want, list)
        got = np.frombuffer(bytes.fromhex(lines[name].strip()), dtype=np.int8)
        np.testing.assert_array_equal(got, want[0].reshape(-1), err_msg=name)


def test_make_fragment_and_zephyr_module(tmp_path: Path) -> None:
    _need("arm-none-eabi-gcc", "make")
    _, kws = _emit(tmp_path, "kws", quickstart_model())
    _, ad = _emit(tmp_path, "ad", autoencoder_model())
    makefile = tmp_path / "Makefile"
    makefile.write_text(
        f"include {kws.directory}/kws.mk\ninclude {ad.directory}/ad.mk\nall: $(KWS_LIB) $(AD_LIB)\n"
    )
    done = subprocess.run(
        ["make", "-C", str(tmp_path), "all"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "build" / "kws" / "libkws.a").is_file()
    assert (tmp_path / "build" / "ad" / "libad.a").is_file()
    module = (kws.directory / "zephyr" / "module.yml").read_text()
    assert "\nname: kws\nbuild:\n  cmake: zephyr\n  kconfig: zephyr/Kconfig\n" in module
    zephyr = (kws.directory / "zephyr" / "CMakeLists.txt").read_text()
    for src in kws.sources:
        assert f"../{src.name}" in zephyr
    assert "config KWS\n" in (kws.directory / "zephyr" / "Kconfig").read_text()

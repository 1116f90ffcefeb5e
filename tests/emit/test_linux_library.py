"""Embedded Linux: a Cortex-A library as static and shared libraries with pkg-config,
linked into examples/linux/main.c and run under qemu-user, bit-exact with the reference."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from autotune.emit.library import emit_library, quick_choices
from autotune.emit.linux import build_linux
from autotune.examples import quickstart_model
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins
from autotune.reference.executor import Interpreter

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "linux" / "main.c"


@pytest.mark.parametrize("target_name", ["cortex-a53", "cortex-a7"])
def test_linux_libraries_run_bit_exact_under_qemu_user(tmp_path: Path, target_name: str) -> None:
    target = plugins.get_target(target_name)
    abi = plugins.get_isa(target.isa).linux_abis(target)[0]
    for tool in (abi.cc, abi.qemu, "pkg-config", target.toolchain.cc):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/setup.sh installs it)")
    graph = parse_model(quickstart_model(), str(tmp_path / "kws.tflite"))
    out = tmp_path / "out"
    # Quick variants on both: NEON convolutions, and on cortex-a7 (A32) the depthwise DSP
    # variants whose paired loads once did not assemble there.
    choices = quick_choices(graph, target)
    library = emit_library(graph, target, out / "model", choices, "kws")
    (build,) = build_linux(library, target, out)
    assert build.static.is_file() and build.shared.is_file()
    assert not list(out.glob("linux/*/.objects")), "objects are not left in the output"

    env = {**os.environ, "PKG_CONFIG_PATH": str(build.pkgconfig.parent)}

    def pkg(*args: str) -> list[str]:
        done = subprocess.run(
            ["pkg-config", *args, "kws"], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.split()

    x = (np.arange(graph.input_tensors[0].size) * 37 + 11) % 256
    x = x.astype(np.uint8).view(np.int8).reshape(graph.input_tensors[0].shape)
    want = Interpreter(graph).invoke([x])
    assert isinstance(want, list)
    expected = "kws " + want[0].astype(np.int8).tobytes().hex()

    static_exe, shared_exe = tmp_path / "demo-static", tmp_path / "demo-shared"
    warn = ["-Wall", "-Wextra", "-Werror", *abi.cflags]
    for exe, link in (
        (static_exe, [*pkg("--libs", "--static"), "-static"]),
        (shared_exe, pkg("--libs")),
    ):
        cmd = [abi.cc, *warn, str(EXAMPLE), *pkg("--cflags"), *link, "-o", str(exe)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    for exe in (static_exe, shared_exe):
        run = subprocess.run(
            [
                abi.qemu,
                "-L",
                abi.sysroot,
                "-E",
                f"LD_LIBRARY_PATH={build.static.parent}",
                str(exe),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == expected, exe.name
    # The shared object really is the one the program loads.
    needed = subprocess.run(
        [abi.cc.removesuffix("gcc") + "readelf", "-d", str(shared_exe)],
        capture_output=True,
        text=True,
    )
    assert "libkws.so" in needed.stdout

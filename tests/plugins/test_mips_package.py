"""The out-of-tree MIPS plugin as a user gets it: pip-installed into a fresh virtual
environment, then only autotune's command line.

The venv has no packages of its own; a ``.pth`` file lets it see the environment
running this test (autotune and its dependencies), so pip installs the plugin alone,
offline (``--no-index``), and the plugin is visible to that venv only: the rest of the
suite never loads it. In that venv `autotune targets` lists the plugin's target, the
conformance kit passes on it, and the quick-start model tunes on it with the whole
library verified bit-exact on the simulator.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.conftest import MIPS_PACKAGE

CC = "mipsel-linux-gnu-gcc"


def _parent_site_dirs() -> list[str]:
    """The site-packages directories of the running interpreter (venv and base)."""
    dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    dirs += site.getsitepackages()
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def _can_build_wheels() -> bool:
    """setuptools builds wheels by itself from 70.1 on; before that it needs ``wheel``."""
    import importlib.util

    import setuptools

    version = tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit())
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which(CC) is None:
        pytest.skip(f"{CC} not installed (apt-get install gcc-mipsel-linux-gnu)")
    if not _can_build_wheels():
        pytest.skip(
            "building the example offline needs the test extra 'wheel' (pip install -e '.[test]')"
        )
    root = tmp_path_factory.mktemp("mips-venv")
    env_dir = root / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120
    )
    python = env_dir / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = [f"import site; site.addsitedir({d!r})" for d in _parent_site_dirs()]
    Path(own, "_autotune_parent.pth").write_text("\n".join(lines) + "\n")
    # Build from a copy: setuptools writes its egg-info next to the sources, and the
    # suite imports the example from the source tree (tests/plugins/conftest.py), where
    # that metadata would make the plugin's entry point visible to every test.
    source = shutil.copytree(
        MIPS_PACKAGE, root / "src", ignore=shutil.ignore_patterns("*.egg-info", "build")
    )
    proc = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--root-user-action=ignore",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Installed into the venv, not into the environment running the suite.
    assert list(Path(own).glob("autotune_mips-*.dist-info"))
    return python


def autotune(python: Path, *args: str, cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k != "AUTOTUNE_PLUGINS"}
    proc = subprocess.run(
        [str(python), "-m", "autotune", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"autotune {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_targets_lists_the_plugins_target(venv: Path, tmp_path: Path) -> None:
    listing = json.loads(autotune(venv, "targets", "--json", cwd=tmp_path))
    pic = next(row for row in listing["targets"] if row["name"] == "pic32mz")
    assert pic["plugin"] == "mips"
    assert pic["runner"] == "unicorn" and pic["cycle_model"] == "microaptiv v1"
    # The environment running the suite does not see it.
    here = subprocess.run(
        [sys.executable, "-m", "autotune", "targets", "--json"], capture_output=True, text=True
    )
    assert '"pic32mz"' not in here.stdout


def test_conformance_passes(venv: Path, tmp_path: Path) -> None:
    # Builds, links and runs a probe and every applicable template on pic32mz.
    proc = subprocess.run(
        [str(venv), "-m", "autotune.platform.conformance", "mips"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pic32mz: ok" in proc.stdout and "1 of 1 target(s) conform" in proc.stdout


def test_quickstart_tunes_bit_exact(venv: Path, tmp_path: Path) -> None:
    autotune(venv, "example", "--out", str(tmp_path), cwd=tmp_path)
    out = tmp_path / "pic32mz"
    autotune(
        venv,
        str(tmp_path / "quickstart.tflite"),
        "--target",
        "pic32mz",
        "--trials",
        "4",
        "--db",
        f"sqlite:///{tmp_path / 'results.sqlite'}",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    report = json.loads((out / "report.json").read_text())
    assert report["metric"] == "cycles (model microaptiv v1)"
    tuned = [layer for layer in report["layers"] if layer.get("tuned")]
    assert tuned and all(layer["bit_exact"] for layer in tuned)
    # The plugin's own template wins the pointwise convolutions (1.5x the portable one).
    chosen = {layer["tuned"]["template"] for layer in tuned}
    assert "mips_madd_conv_2d" in chosen
    # The whole-model library ran bit-exact on the simulator.
    deployment = report["deployment"]
    assert deployment["bit_exact"] is True and deployment["verified_calls"] > 0
    assert deployment["metric"] == "cycles (model microaptiv v1)"

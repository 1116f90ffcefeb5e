"""`autotune MODEL --target T` end to end on the quick-start model: tune, verify, cache, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autotune.examples import quickstart_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins, toolchain


def autotune(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autotune", *args], capture_output=True, text=True, cwd=cwd
    )


def need_toolchain(target: str) -> None:
    if not toolchain.toolchain_available(plugins.get_target(target)):
        pytest.skip(f"no toolchain for {target}")


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "quickstart.tflite"
    path.write_bytes(quickstart_model())
    return path


def db_url(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'results.sqlite'}"


def tune(
    model: Path, target: str, tmp: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp / f"out-{target}"
    db = db_url(tmp)
    result = autotune(
        str(model),
        "--target",
        target,
        "--trials",
        "4",
        "--db",
        db,
        "--out",
        str(out),
        *extra,
        cwd=tmp,
    )
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
    return result, report


@pytest.mark.parametrize("target", ["cortex-m4", "rv32imc", "cortex-m0"])
def test_tune_example_then_hit_the_cache(example: Path, tmp_path: Path, target: str) -> None:
    need_toolchain(target)
    first, report = tune(example, target, tmp_path)
    assert first.returncode == 0, first.stderr
    assert report["target"] == target and report["model_sha256"]
    assert report["metric"].startswith("cycles (model ")
    tuned = [layer for layer in report["layers"] if layer["tuned"]]
    assert {layer["op"] for layer in tuned} >= {"CONV_2D"}
    for layer in tuned:
        assert layer["bit_exact"] is True
        assert layer["baseline"]["cycles"] >= layer["tuned"]["cycles"] > 0
        assert layer["tuned"]["instructions"] > 0 and layer["tuned"]["code_bytes"] > 0
        assert (Path(tmp_path / f"out-{target}") / layer["source"]).is_file()
    untuned = [layer for layer in report["layers"] if layer["op"] in ("RESHAPE", "SOFTMAX")]
    assert untuned and all(
        layer["tuned"] is None and layer["baseline"] is None for layer in untuned
    )
    totals = report["totals"]
    assert totals["tuned_cycles"] == sum(layer["tuned"]["cycles"] for layer in tuned)
    assert totals["speedup"] >= 1.0
    assert report["measured_variants"] > 0
    # The whole network, emitted as one library and run on the simulator.
    dep = report["deployment"]
    assert dep["bit_exact"] and dep["verified_calls"] >= 3
    assert dep["cycles"] > 0 and dep["milliseconds"] > 0 and dep["flash"]["weights"] > 0
    out = tmp_path / f"out-{target}"
    assert dep["name"] == "quickstart" and dep["entry_point"] == "quickstart_invoke"
    assert (out / "model" / "quickstart.h").is_file()
    # One copy of each source, and no build products in the user's folder.
    listing = sorted(p.name for p in out.iterdir() if p.name != "front.png")
    assert listing == ["model", "report.html", "report.json", "report.md"]
    page = (out / "report.html").read_text()
    assert 'id="chart-layers"' in page and 'id="chart-share"' in page
    assert ('id="chart-front"' in page) == (out / "front.png").is_file()
    # Without a terminal, one line per finished workload, naming its layers and op.
    done = [line for line in first.stderr.splitlines() if line.startswith("[")]
    assert any("layer 0 CONV_2D: best " in line for line in done), first.stderr
    # ... and the minutes after the search (library, baseline, latency) say what runs.
    log = first.stderr
    assert "emitting the library and running the whole model" in log, log
    assert "running the baseline library" in log and log.count("  done in ") >= 3, log
    assert not list((out / "model").glob("*.o")) and not list((out / "model").glob("*.elf"))

    # Once tuned, `autotune estimate` gives each tuned layer's DB figure, labelled as such.
    est = autotune(
        "estimate",
        str(example),
        "--target",
        target,
        "--db",
        db_url(tmp_path),
        "--json",
        cwd=tmp_path,
    )
    assert est.returncode == 0, est.stderr
    estimated = {e["index"]: e for e in json.loads(est.stdout)["layers"]}
    for layer in tuned:
        assert estimated[layer["index"]]["source"] == "db"
        assert estimated[layer["index"]]["cycles"] == layer["tuned"]["cycles"]
        assert estimated[layer["index"]]["baseline_cycles"] == layer["baseline"]["cycles"]
    # Latency over inputs: the softmax's exponentials depend on its input.
    lat = dep["latency"]
    assert lat["inputs"] == ["random", "all min", "all max"]
    assert lat["model"]["min"] <= lat["model"]["max"] <= lat["model"]["bound"]
    assert "SOFTMAX" in {d["op"] for d in lat["input_dependent_layers"]}
    assert "## Latency over inputs" in (tmp_path / f"out-{target}" / "report.md").read_text()

    second, again = tune(example, target, tmp_path)
    assert second.returncode == 0, second.stderr
    assert again["measured_variants"] == 0
    assert all(layer["cache_hit"] for layer in again["layers"] if layer["tuned"])
    assert again["totals"] == totals

    third, retuned = tune(example, target, tmp_path, "--retune")
    assert third.returncode == 0, third.stderr
    assert retuned["measured_variants"] > 0


def test_emitted_kernels_compile_warning_free(example: Path, tmp_path: Path) -> None:
    need_toolchain("cortex-m4")
    result, report = tune(example, "cortex-m4", tmp_path)
    assert result.returncode == 0, result.stderr
    target = plugins.get_target("cortex-m4")
    out = tmp_path / "out-cortex-m4"
    for layer in report["layers"]:
        if layer["source"]:
            cmd = [
                target.toolchain.cc,
                *target.toolchain.cflags,
                "-O2",
                "-Wall",
                "-Wextra",
                "-Wmissing-prototypes",
                "-Werror",
                "-c",
                str(out / layer["source"]),
                "-o",
                str(tmp_path / "k.o"),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            assert "Generated by autotune" in (out / layer["source"]).read_text()


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("autotune:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_flash_budget_is_met_by_the_library_that_ships(example: Path, tmp_path: Path) -> None:
    """Too small a budget is one line naming the least flash and RAM; a budget the
    search can meet gives a library whose built flash is within it, run bit-exact."""
    need_toolchain("cortex-m4")
    low, _ = tune(example, "cortex-m4", tmp_path, "--flash-budget", "1KiB")
    line = one_line_error(low)
    assert low.returncode == 2
    assert "flash budget 1,024 B cannot be met: the smallest library needs" in line
    smallest = int(line.split("needs ")[1].split(" B")[0].replace(",", ""))
    budget = smallest + 1500
    ok, report = tune(example, "cortex-m4", tmp_path, "--flash-budget", str(budget))
    assert ok.returncode == 0, ok.stderr
    sel = report["selection"]
    assert sel["flash_budget"] == budget and sel["flash"] <= budget
    # What ships is what fits: the deployment's ELF holds the harness's I/O buffers for
    # all its check calls, whose alignment padding (no symbol's) moves by a few bytes.
    assert abs(report["deployment"]["flash"]["total"] - sel["flash"]) <= 16
    assert report["deployment"]["bit_exact"]
    assert sel["cycles"] <= sel["baseline_cycles"]
    assert [p["flash"] for p in sel["front"]] == sorted(p["flash"] for p in sel["front"])
    assert (tmp_path / "out-cortex-m4" / sel["plot"]).is_file()


def test_unknown_target(example: Path, tmp_path: Path) -> None:
    line = one_line_error(autotune(str(example), "--target", "cortex-m44", cwd=tmp_path))
    assert "cortex-m44" in line and "cortex-m4" in line and "rv32imc" in line


def test_missing_model(tmp_path: Path) -> None:
    line = one_line_error(autotune("absent.tflite", "--target", "cortex-m4", cwd=tmp_path))
    assert "absent.tflite" in line and "no such file" in line


def test_unsupported_op_is_named_and_the_rest_is_tuned(tmp_path: Path) -> None:
    need_toolchain("cortex-m4")
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.tensor("x", (1, 4, 4, 8), "int8", 0.05, 0)
    w = b.constant("w", rng.integers(-127, 128, (8, 1, 1, 8)).astype(np.int8), [0.01] * 8, 0)
    bias = b.constant("b", np.zeros(8, np.int32), [0.0005] * 8, 0)
    y = b.tensor("y", (1, 4, 4, 8), "int8", 0.1, 0)
    b.op("CONV_2D", [x, w, bias], [y], padding="VALID", stride_h=1, stride_w=1)
    z = b.tensor("z", (1, 4, 4, 8), "int8", 0.1, 0)
    b.op("SQUARED_DIFFERENCE", [y, y], [z])
    b.inputs(x)
    b.outputs(z)
    model = tmp_path / "odd.tflite"
    model.write_bytes(b.build())
    result, report = tune(model, "cortex-m4", tmp_path)
    line = one_line_error(result)
    assert "op 1 (SQUARED_DIFFERENCE)" in line
    assert report["layers"][0]["tuned"] and report["layers"][0]["bit_exact"]
    assert report["layers"][1]["status"] == "unsupported"


def test_ctrl_c_keeps_what_was_measured(example: Path, tmp_path: Path) -> None:
    import signal
    import time

    from autotune.db import ResultsDB, Trial

    need_toolchain("cortex-m4")
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    db = ResultsDB(url)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autotune",
            str(example),
            "--target",
            "cortex-m4",
            "--trials",
            "30",
            "--db",
            url,
            "--out",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )

    def count() -> int:
        with db.session() as s:
            return s.query(Trial).count()

    deadline = time.monotonic() + 120
    while count() < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    kept = count()
    assert kept >= 3
    # The next run starts from what was kept: fewer new measurements than a fresh run.
    again, _ = tune(example, "cortex-m4", tmp_path)
    assert again.returncode == 0, again.stderr
    assert count() > kept


def test_arc_em_is_tuned_for_code_size_and_says_so(example: Path, tmp_path: Path) -> None:
    need_toolchain("arc-em")
    result, report = tune(example, "arc-em", tmp_path)
    assert result.returncode == 0, result.stderr
    assert report["metric"] == "code size only"
    assert "code size only" in result.stderr
    tuned = [layer for layer in report["layers"] if layer["tuned"]]
    assert tuned and all(layer["tuned"]["cycles"] is None for layer in tuned)
    assert all(layer["tuned"]["code_bytes"] <= layer["baseline"]["code_bytes"] for layer in tuned)
    assert report["deployment"]["verified_calls"] == 0 and not report["deployment"]["bit_exact"]


def test_flash_limit_keeps_every_layer_within_its_budget(example: Path, tmp_path: Path) -> None:
    need_toolchain("cortex-m4")
    result, report = tune(example, "cortex-m4", tmp_path, "--flash-limit", "1.3")
    assert result.returncode == 0, result.stderr

    def flash(entry: dict) -> int:
        return (entry["code_bytes"] or 0) + (entry["rodata_bytes"] or 0)

    tuned = [layer for layer in report["layers"] if layer["tuned"]]
    assert tuned
    for layer in tuned:
        assert flash(layer["tuned"]) <= 1.3 * flash(layer["baseline"]), layer["index"]
    # Without the limit the same DB offers faster, bigger variants for some layer.
    _, free = tune(example, "cortex-m4", tmp_path)
    assert free["totals"]["tuned_cycles"] <= report["totals"]["tuned_cycles"]
    assert any(flash(a["tuned"]) > 1.3 * flash(a["baseline"]) for a in free["layers"] if a["tuned"])

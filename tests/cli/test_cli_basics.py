"""The command line as a user meets it: JSON output, the example, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_model


def autotune(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autotune", *args], capture_output=True, text=True, cwd=cwd
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_inspect_json_kws_totals() -> None:
    result = autotune("inspect", str(shared_model("kws_ref_model.tflite")), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["totals"]["macs"] == 2_656_768
    assert data["totals"]["params"] > 0
    assert [layer["op"] for layer in data["layers"]][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    first = data["layers"][0]
    assert first["macs"] == 320_000 and first["index"] == 0
    weights = first["inputs"][1]
    assert weights["constant"] and weights["quantization"]["per_channel"]
    assert data["inputs"][0]["shape"] == [1, 49, 10, 1]


def test_inspect_table_lists_every_layer_and_totals() -> None:
    result = autotune("inspect", str(shared_model("kws_ref_model.tflite")))
    assert result.returncode == 0, result.stderr
    assert "DEPTHWISE_CONV_2D" in result.stdout and "SOFTMAX" in result.stdout
    assert "2,656,768" in result.stdout


def test_example_then_reference(tmp_path: Path) -> None:
    made = autotune("example", "--out", "ex", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    model, x = tmp_path / "ex" / "quickstart.tflite", tmp_path / "ex" / "input.npy"
    out = tmp_path / "y.npy"
    ran = autotune("reference", str(model), "-i", str(x), "-o", str(out))
    assert ran.returncode == 0, ran.stderr
    y = np.load(out)
    assert y.shape == (1, 4) and y.dtype == np.int8


def test_bad_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    assert_one_line_error(autotune("inspect", str(bad)), "bad.tflite", "not a TensorFlow Lite")
    assert_one_line_error(autotune("inspect", str(tmp_path / "none.tflite")), "no such file")


def test_truncated_model(tmp_path: Path) -> None:
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(shared_model("kws_ref_model.tflite").read_bytes()[:20_000])
    assert_one_line_error(autotune("inspect", str(cut)), "cut.tflite", "truncated")


@pytest.mark.parametrize(
    ("model", "fragments"),
    [
        ("seanet_conv10_int16x8.tflite", ("op 0 (CONV_2D)", "int16")),
        ("seanet_transpose_conv0_int16x8.tflite", ("op 0 (TRANSPOSE_CONV)", "not supported")),
    ],
)
def test_unsupported_models_are_named(
    tmp_path: Path, model: str, fragments: tuple[str, ...]
) -> None:
    path = shared_model(model)
    from autotune.model.tflite_import import load_model

    g = load_model(path)
    x = tmp_path / "x.npy"
    t = g.input_tensors[-1]
    np.save(x, np.zeros(t.shape, dtype=t.dtype))
    args = ["reference", str(path)]
    for _ in g.inputs:
        args += ["-i", str(x)]
    for _ in g.outputs:
        args += ["-o", str(tmp_path / "y.npy")]
    assert_one_line_error(autotune(*args), model, *fragments)


def test_input_of_wrong_shape_or_dtype(tmp_path: Path) -> None:
    autotune("example", "--out", "ex", cwd=tmp_path)
    model = str(tmp_path / "ex" / "quickstart.tflite")
    wrong_shape, wrong_type, not_npy = tmp_path / "s.npy", tmp_path / "t.npy", tmp_path / "n.npy"
    np.save(wrong_shape, np.zeros((1, 20, 12), np.int8))
    np.save(wrong_type, np.zeros((1, 20, 12, 1), np.float32))
    not_npy.write_text("nope")
    out = str(tmp_path / "y.npy")
    assert_one_line_error(
        autotune("reference", model, "-i", str(wrong_shape), "-o", out), "shape [1, 20, 12, 1]"
    )
    assert_one_line_error(
        autotune("reference", model, "-i", str(wrong_type), "-o", out), "must be int8", "float32"
    )
    assert_one_line_error(autotune("reference", model, "-i", str(not_npy), "-o", out), "n.npy")

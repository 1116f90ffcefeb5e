"""`autotune reference MODEL --input X.npy --output Y.npy`: run the bit-exact reference."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from autotune.cli.paths import writable_file
from autotune.errors import InputError
from autotune.model.tflite_import import load_model
from autotune.reference.executor import Interpreter


def _load_npy(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    with p.open("rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise InputError(f"{p}: not a numpy .npy file (no .npy header; save it with numpy.save)")
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise InputError(f"{p}: holds Python objects (pickled), not a plain array") from None
        raise InputError(f"{p}: not a readable .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{p}: not a readable .npy array ({exc})") from None


def _save_npy(path: Path, array: np.ndarray) -> None:
    """Write exactly `path` (numpy.save would append .npy to a name without it)."""
    try:
        with path.open("wb") as f:
            np.save(f, array)
    except OSError as exc:
        raise InputError(f"--output {path}: cannot write ({exc.strerror})") from None


@click.command("reference")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    required=True,
    metavar="X.npy",
    help="Input array (.npy), once per model input, in order.",
)
@click.option(
    "--output",
    "-o",
    "outputs",
    multiple=True,
    required=True,
    metavar="Y.npy",
    help="Where to write each model output (.npy), in order.",
)
def command(model: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
    """Run MODEL once on the given input with autotune's reference (TFLM int8 semantics)."""
    graph = load_model(model)
    if len(inputs) != len(graph.inputs):
        raise InputError(f"{model}: the model has {len(graph.inputs)} inputs, {len(inputs)} given")
    if len(outputs) != len(graph.outputs):
        raise InputError(
            f"{model}: the model has {len(graph.outputs)} outputs, {len(outputs)} --output given"
        )
    targets = [writable_file(Path(p), "--output") for p in outputs]
    arrays = [_load_npy(p) for p in inputs]
    results = Interpreter(graph).invoke(arrays)
    for path, array in zip(targets, results, strict=True):
        _save_npy(path, array)
        click.echo(f"wrote {path}: {'x'.join(map(str, array.shape))} {array.dtype}", err=True)

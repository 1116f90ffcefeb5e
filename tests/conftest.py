"""Shared fixtures: the real-model folder, seeded inputs and the oracle comparison."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from autotune.model.graph import Graph
from autotune.model.tflite_import import parse_model
from autotune.reference.executor import Interpreter
from autotune.reference.oracle import oracle_invoke

# Tests measure what they tune: the results shipped in results_db/ stay out unless a test
# asks for them (set here, so that the autotune processes the tests start inherit it).
os.environ["AUTOTUNE_SHIPPED"] = "0"

# A test run started in the background by a shell without job control inherits an ignored
# SIGINT, and so would every autotune process the Ctrl-C tests start and interrupt (an
# ignored signal survives exec). Catching it here gives those processes the default again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

MODELS = Path(
    os.environ.get("AUTOTUNE_MODELS", Path(__file__).resolve().parents[2] / "shared" / "models")
)


def shared_model(name: str) -> Path:
    """A model from ../shared/models; the test is skipped where the folder is absent."""
    path = MODELS / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def seeded_inputs(graph: Graph, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for t in graph.input_tensors:
        info = np.iinfo(t.dtype)
        out.append(rng.integers(info.min, info.max + 1, t.shape, dtype=np.int64).astype(t.dtype))
    return out


def extreme_inputs(graph: Graph, value: str) -> list[np.ndarray]:
    return [
        np.full(t.shape, getattr(np.iinfo(t.dtype), value), dtype=t.dtype)
        for t in graph.input_tensors
    ]


def assert_matches_oracle(
    model: bytes,
    calls: list[list[np.ndarray]],
    stateful: bool = False,
    isolated: bool = False,
    allow_optimized: bool = False,
) -> str:
    """Run `calls` through autotune's reference and the oracle; every output must be identical.

    stateful=False resets both sides before each call; stateful=True carries
    variable tensors (LSTM state) over from call to call on both sides. isolated runs
    the oracle in a child process (it aborts on some models); allow_optimized admits
    TFLite's optimized kernels where no reference interpreter can run the model.
    """
    graph = parse_model(model)
    oracle, expected = oracle_invoke(model, calls, stateful, isolated, allow_optimized)
    interp = Interpreter(graph)
    for n, (inputs, want) in enumerate(zip(calls, expected, strict=True)):
        if not stateful:
            interp.reset()
        got = interp.invoke(inputs)
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g.dtype == w.dtype and g.shape == w.shape, (
                n,
                k,
                g.dtype,
                w.dtype,
                g.shape,
                w.shape,
            )
            # Bytes compared: a float NaN or -0.0 must be the oracle's too.
            if np.ascontiguousarray(g).tobytes() != np.ascontiguousarray(w).tobytes():
                if g.dtype.kind == "f":
                    raise AssertionError(f"call {n} output {k} differs from {oracle}: {g} != {w}")
                diff = np.abs(g.astype(np.int64) - w.astype(np.int64))
                raise AssertionError(
                    f"call {n} output {k} differs from {oracle}: {int((diff > 0).sum())} of {diff.size} "
                    f"elements, max |diff| {int(diff.max())}"
                )
    return oracle

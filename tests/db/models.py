"""Small models for the DB tests, built by autotune's own writer."""

from __future__ import annotations

import numpy as np

from autotune.model.tflite_writer import ModelBuilder


def small_model() -> bytes:
    """Two convolutions of different shapes: two workloads."""
    rng = np.random.default_rng(7)
    b = ModelBuilder()
    x = b.tensor("x", (1, 6, 6, 4), "int8", 0.05, 1)
    w1 = b.constant("w1", rng.integers(-127, 128, (8, 3, 3, 4)).astype(np.int8), 0.01, 0)
    b1 = b.constant("b1", rng.integers(-300, 300, 8).astype(np.int32), np.full(8, 5e-4), 0)
    y = b.tensor("y", (1, 6, 6, 8), "int8", 0.2, -3)
    b.op("CONV_2D", [x, w1, b1], [y], padding="SAME", stride_h=1, stride_w=1)
    w2 = b.constant("w2", rng.integers(-127, 128, (4, 1, 1, 8)).astype(np.int8), 0.01, 0)
    b2 = b.constant("b2", rng.integers(-300, 300, 4).astype(np.int32), np.full(4, 2e-3), 0)
    z = b.tensor("z", (1, 6, 6, 4), "int8", 0.1, 2)
    b.op("CONV_2D", [y, w2, b2], [z], padding="VALID", stride_h=1, stride_w=1)
    b.inputs(x)
    b.outputs(z)
    return b.build()

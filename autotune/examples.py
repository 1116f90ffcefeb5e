"""The bundled quick-start model: a small keyword-spotting-style DS-CNN, built here.

Weights are seeded random; output scales are chosen from the expected spread of
each layer's accumulator so that activations use the int8 range rather than
saturating. It exists to show the tool working, never to classify anything.
"""

from __future__ import annotations

import math

import numpy as np

from autotune.model.tflite_writer import ModelBuilder

_INT8_STD = 73.6  # standard deviation of a uniform int8 value
_RELU_KEEP = 0.5  # a ReLU keeps about half of the variance-bearing values


class _Net:
    """Tracks the current activation (tensor index, shape, scale, spread) while layers are added."""

    def __init__(
        self,
        b: ModelBuilder,
        rng: np.random.Generator,
        x: int,
        shape: tuple[int, ...],
        scale: float,
    ) -> None:
        self.b, self.rng = b, rng
        self.x, self.shape, self.scale = x, shape, scale
        self.std = _INT8_STD * scale  # real-valued spread of the current activation
        self.n = 0

    def _out(
        self, shape: tuple[int, ...], fan_in: int, w_std: float, relu: bool
    ) -> tuple[int, float]:
        acc_std = math.sqrt(fan_in) * self.std * w_std
        scale = 3.0 * acc_std / (127 if not relu else 255)
        self.n += 1
        zp = -128 if relu else 0
        out = self.b.tensor(f"act{self.n}", shape, "int8", scale, zp)
        self.std = acc_std * (math.sqrt(_RELU_KEEP) if relu else 1.0)
        return out, scale

    def _weights(
        self, shape: tuple[int, ...], channels: int, axis: int
    ) -> tuple[int, int, np.ndarray, float]:
        w_scale = self.rng.uniform(0.004, 0.012, channels).astype(np.float32)
        w = self.rng.integers(-127, 128, shape).astype(np.int8)
        bias_scale = (np.float32(self.scale) * w_scale).astype(np.float32)
        bias = self.rng.integers(-2000, 2000, channels).astype(np.int32)
        wi = self.b.constant(f"w{self.n}", w, w_scale, 0, axis=axis)
        bi = self.b.constant(f"b{self.n}", bias, bias_scale, 0)
        return wi, bi, w_scale, float(np.mean(w_scale)) * _INT8_STD

    def conv(self, cout: int, k: int, stride: int, relu: bool = True) -> None:
        n, h, w, cin = self.shape
        wi, bi, _, w_std = self._weights((cout, k, k, cin), cout, 0)
        shape = (n, -(-h // stride), -(-w // stride), cout)
        out, self.scale = self._out(shape, k * k * cin, w_std, relu)
        self.b.op(
            "CONV_2D",
            [self.x, wi, bi],
            [out],
            padding="SAME",
            stride_h=stride,
            stride_w=stride,
            dilation_h_factor=1,
            dilation_w_factor=1,
            fused_activation_function="RELU" if relu else "NONE",
        )
        self.x, self.shape = out, shape

    def depthwise(self, k: int, relu: bool = True) -> None:
        c = self.shape[3]
        wi, bi, _, w_std = self._weights((1, k, k, c), c, 3)
        out, self.scale = self._out(self.shape, k * k, w_std, relu)
        self.b.op(
            "DEPTHWISE_CONV_2D",
            [self.x, wi, bi],
            [out],
            padding="SAME",
            stride_h=1,
            stride_w=1,
            depth_multiplier=1,
            dilation_h_factor=1,
            dilation_w_factor=1,
            fused_activation_function="RELU" if relu else "NONE",
        )
        self.x = out

    def dense(self, units: int, relu: bool = True) -> None:
        n, depth = self.shape
        wi, bi, _, w_std = self._weights((units, depth), units, 0)
        out, self.scale = self._out((n, units), depth, w_std, relu)
        self.b.op(
            "FULLY_CONNECTED",
            [self.x, wi, bi],
            [out],
            fused_activation_function="RELU" if relu else "NONE",
            keep_num_dims=False,
        )
        self.x, self.shape = out, (n, units)


def autoencoder_model(seed: int = 11) -> bytes:
    """A 1x64 int8 dense autoencoder (64-32-8-32-64), shaped like MLPerf Tiny's anomaly
    detection model but small: a second, different model for multi-model examples."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder("autotune autoencoder example (seeded random weights)")
    x = b.tensor("input", (1, 64), "int8", 0.05, 0)
    net = _Net(b, rng, x, (1, 64), 0.05)
    for units in (32, 8, 32):
        net.dense(units)
    net.dense(64, relu=False)
    b.inputs(x)
    b.outputs(net.x)
    return b.build()


def quickstart_model(seed: int = 7) -> bytes:
    """A 1x20x12x1 int8 DS-CNN: conv, 2 depthwise-separable blocks, pool, dense, softmax."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder("autotune quick-start example (seeded random weights)")
    x = b.tensor("input", (1, 20, 12, 1), "int8", 0.05, 0)
    net = _Net(b, rng, x, (1, 20, 12, 1), 0.05)
    net.conv(16, 3, 2)
    for _ in range(2):
        net.depthwise(3)
        net.conv(16, 1, 1)
    n, h, w, c = net.shape
    pooled = b.tensor("pooled", (n, 1, 1, c), "int8", net.scale, -128)
    b.op(
        "AVERAGE_POOL_2D",
        [net.x],
        [pooled],
        padding="VALID",
        stride_h=h,
        stride_w=w,
        filter_height=h,
        filter_width=w,
        fused_activation_function="NONE",
    )
    shape = b.constant("flat_shape", np.array([1, c], dtype=np.int32))
    flat = b.tensor("flat", (1, c), "int8", net.scale, -128)
    b.op("RESHAPE", [pooled, shape], [flat], new_shape=[1, c])
    net.x, net.shape = flat, (1, c)
    w = rng.integers(-127, 128, (4, c)).astype(np.int8)
    # Logits with a spread of about 1.5 so that the softmax output is not one-hot.
    w_scale = 1.5 / (math.sqrt(c) * net.std * _INT8_STD)
    wi = b.constant("fc_w", w, w_scale, 0)
    bias_scale = np.float32(net.scale) * np.float32(w_scale)
    bi = b.constant("fc_b", rng.integers(-50, 50, 4).astype(np.int32), bias_scale, 0)
    logits_scale = 3.0 * 1.5 / 127
    logits = b.tensor("logits", (1, 4), "int8", logits_scale, 0)
    b.op(
        "FULLY_CONNECTED",
        [flat, wi, bi],
        [logits],
        fused_activation_function="NONE",
        keep_num_dims=False,
    )
    probs = b.tensor("probabilities", (1, 4), "int8", 1.0 / 256, -128)
    b.op("SOFTMAX", [logits], [probs], beta=1.0)
    b.inputs(x)
    b.outputs(probs)
    return b.build()

"""DEPTHWISE_CONV_2D computed in place, channel block by channel block (TinyEngine's way).

Output channel c depends on input channel c only (depth multiplier 1), so the layer
can write its output over its input: a block of channels is first copied, for every
pixel, into a zero-point padded plane in scratch, then the block's outputs are
computed from the plane and stored at their NHWC places, which only ever hold
input channels of this block (already copied) or of blocks already done: the
input may start where the output starts or whole pixels after it. The
arena then needs one buffer for input and output plus a plane of the padded image
per channel of the block, instead of both tensors.

The plane's border holds the input zero point, so every tap contributes
(x + input_offset) * w = 0 outside the image and the input offset folds into the
bias (bias + input_offset * sum of the channel's weights): no bounds checks, the
taps unrolled with constant offsets, TFLM's requantization or, where this layer's
values keep it exact, the fused one of depthwise_requant.j2. Exact in int32: the
same sum in another order, far from overflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autotune.kernels.depthwise import OPT_LEVELS, FastRequant, requant_expr
from autotune.kernels.depthwise import TEMPLATES as DEPTHWISE_TEMPLATES
from autotune.platform.target import Target
from autotune.tune.space import Point, Space
from autotune.tune.spec import KernelSpec
from autotune.tune.template import KernelTemplate, c_array, per_channel_accessor


def plane_shape(spec: KernelSpec) -> tuple[int, int]:
    """Rows and columns of the padded plane: the image and every tap any output reads."""
    d = spec.dims
    rows = max(
        d["pad_top"] + d["in_h"], (d["out_h"] - 1) * d["stride_h"] + (d["k_h"] - 1) * d["dil_h"] + 1
    )
    cols = max(
        d["pad_left"] + d["in_w"],
        (d["out_w"] - 1) * d["stride_w"] + (d["k_w"] - 1) * d["dil_w"] + 1,
    )
    return rows, cols


DEPTHWISE_TILED = DEPTHWISE_TEMPLATES[0]


class DepthwiseInPlace(KernelTemplate):
    """Depthwise convolutions with multiplier 1, output over input, one channel block at
    a time through a padded plane in scratch."""

    name = "depthwise_inplace"
    op = "DEPTHWISE_CONV_2D"
    main_file = "depthwise_inplace.c.j2"
    files = ("depthwise.py", "depthwise_requant.j2")

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        d = spec.dims
        return (
            spec.op == "DEPTHWISE_CONV_2D"
            and d["depth_multiplier"] == 1
            and d["out_h"] * d["out_w"] <= d["in_h"] * d["in_w"]
        )

    def space(self, spec: KernelSpec, target: Target) -> Space:
        c = spec.dims["in_c"]
        s = Space()
        s.add("block_c", [b for b in (1, 2, 4) if c % b == 0], 1, "channels per plane")
        s.add("block_px", [1, 2], 1, "adjacent output pixels per pass")
        s.add("requant", ["ref", "fast"], "ref", "TFLM's requantization, or the fused one")
        s.add("opt", OPT_LEVELS, "-O2", "compiler optimization level")
        fast = self.fast(spec)

        def check(p: Point) -> str | None:
            if p["requant"] == "fast" and isinstance(fast, str):
                return f"requant=fast is not exact for this layer: {fast}"
            return None

        s.require(check)
        return s

    def fast(self, spec: KernelSpec) -> FastRequant | str:
        """The fused requantization (depthwise_requant.j2) of 2 * acc, where exact: the
        accumulator bound is that of the tiled depthwise kernels (the same folded sum)."""
        return DEPTHWISE_TILED.fast(spec)

    def suggestions(self, spec: KernelSpec, target: Target) -> list[Point]:
        space = self.space(spec, target)
        fused = "ref" if isinstance(self.fast(spec), str) else "fast"
        points = [
            {**space.baseline(), "block_c": b, "block_px": px, "requant": fused}
            for b, px in ((1, 2), (2, 2), (4, 1))
        ]
        return [p for p in points if space.check(p) is None]

    def in_place(self, spec: KernelSpec, target: Target, params: Point) -> int:
        # Output channel c may only land on input channel c of some pixel (or outside).
        return spec.dims["in_c"]

    def scratch_bytes(self, spec: KernelSpec, target: Target, params: Point) -> int:
        rows, cols = plane_shape(spec)
        return rows * cols * params["block_c"]

    def context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        w = spec.consts["weights"].astype(np.int64)[0]  # [KH][KW][C]
        bias = spec.consts["bias"].astype(np.int64) + spec.scalars["input_offset"] * w.sum(
            axis=(0, 1)
        )
        bias = ((bias + 2**31) & 0xFFFFFFFF) - 2**31
        per_channel = bool(spec.flags.get("per_channel"))
        mult = per_channel_accessor("MULT", spec.consts["mult"], per_channel)
        shift = per_channel_accessor("SHIFT", spec.consts["shift"], per_channel)
        arrays = [
            "/* Weights [ky][kx][channel], as stored. */",
            c_array("int8_t", "W8", w.reshape(-1)),
            "/* Biases with the input offset folded in: bias + input_offset * sum of weights. */",
            c_array("int32_t", "BIAS", bias),
        ]
        fused = params["requant"] == "fast"
        if mult("0") == "MULT[0]" and not fused:
            arrays.append(c_array("int32_t", "MULT", spec.consts["mult"], per_line=8))
        if shift("0") == "SHIFT[0]" and not fused:
            arrays.append(c_array("int32_t", "SHIFT", spec.consts["shift"]))
        rows, cols = plane_shape(spec)
        store = None
        if fused:
            fr = self.fast(spec)
            assert not isinstance(fr, str)
            cols_q = {"QM": fr.mult, "QK": fr.k, "QE": fr.e}
            uniform = {n: bool(np.all(v == v[0])) for n, v in cols_q.items()}
            arrays += [c_array("int32_t", n, v) for n, v in cols_q.items() if not uniform[n]]
            lo, hi = spec.scalars["act_min"], spec.scalars["act_max"]
            const_e = int(fr.e[0]) if uniform["QE"] else None

            def store(acc: str, c: str) -> str:
                q = [str(int(v[0])) if uniform[n] else f"{n}[{c}]" for n, v in cols_q.items()]
                return requant_expr(f"({acc}) * 2", q, True, target.has("dsp"), lo, hi, const_e)

        return {
            "arrays": "\n".join(arrays),
            "store": store,
            "mult": mult,
            "shift": shift,
            "PH": rows,
            "PW": cols,
            "BC": params["block_c"],
        }


TEMPLATES = [DepthwiseInPlace()]

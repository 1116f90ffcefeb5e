"""CONV_2D templates: general (direct loop or im2col), 1x1 pointwise, and 1xN (Conv1D).

All three share conv2d.c.j2 and its register-blocked dot products. Weights are
re-laid-out here, at generation time: interleaved by output-channel block, and on
DSP cores pre-expanded to the int16 pairs that SMLAD consumes, so the inner loop
only loads and multiplies.

The compact fast 1x1 path keeps int8 weights (no more flash than the reference
loop's) and widens them in the loop with SXTB16; each pixel's inputs are widened
once into scratch (int16 pairs, reused by every output channel), the 2x2 block's
dot product is one inline-assembly loop (13 registers: gcc spills it in C), and the
fused requantization of depthwise_requant.j2 applies where this layer's values
keep it exact, its per-channel values next to the bias in one table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autotune.emit.planner import inplace_shift
from autotune.kernels.depthwise import FastRequant, fast_requant, requant_expr
from autotune.platform.target import Target
from autotune.tune.space import Point, Space
from autotune.tune.spec import KernelSpec
from autotune.tune.template import (
    KernelTemplate,
    c_array,
    pack_int16_pairs,
    per_channel_accessor,
)

OPT_LEVELS = ["-O2", "-O3", "-Os"]


def interleave_rows(rows: np.ndarray, block: int) -> np.ndarray:
    """rows [C][K] -> full blocks of `block` rows stored [K][block]; leftover rows as they are."""
    c, k = rows.shape
    full = c - c % block
    head = rows[:full].reshape(full // block, block, k).transpose(0, 2, 1).reshape(-1)
    return np.concatenate([head, rows[full:].reshape(-1)])


def dsp_weights(rows: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """SMLAD layout: per 4 k, words (k, k+2) and (k+1, k+3) per row, interleaved by block;
    then the K % 4 tail as int8, interleaved the same way."""
    c, k = rows.shape
    k4 = k // 4
    groups = rows[:, : k4 * 4].reshape(c, k4, 4).astype(np.int64)
    even = pack_int16_pairs(groups[..., 0], groups[..., 2])  # [C][K4]
    odd = pack_int16_pairs(groups[..., 1], groups[..., 3])
    words = np.stack([even, odd], axis=-1).reshape(c, k4 * 2)  # [C][K4*2] as (g, half)
    full = c - c % block
    head = words[:full].reshape(full // block, block, k4, 2).transpose(0, 2, 1, 3).reshape(-1)
    packed = np.concatenate([head, words[full:].reshape(-1)]).astype(np.uint32)
    tail = interleave_rows(rows[:, k4 * 4 :], block)
    return packed, tail


def dsp_bytes(rows: np.ndarray, block: int, group: int = 4) -> np.ndarray:
    """int8 weights for the SIMD paths: per `group` k (4 for the DSP path, 16 for NEON),
    the bytes of each row, interleaved by block (the DSP kernel splits them with SXTB16
    as it does the inputs); the K % group tail is separate."""
    c, k = rows.shape
    kg = k // group
    groups = rows[:, : kg * group].reshape(c, kg, group)
    full = c - c % block
    head = groups[:full].reshape(full // block, block, kg, group).transpose(0, 2, 1, 3).reshape(-1)
    return np.concatenate([head, groups[full:].reshape(-1)]).astype(np.int8)


def neon_pairs_exact(rows: np.ndarray) -> bool:
    """Whether two int8 x int8 products may share an int16 lane (VMULL + VMLAL, then one
    pairwise widening add): |x * w| <= 128 * 127 unless a weight is -128."""
    return bool(rows.min(initial=0) > -128)


def folded_bias(spec: KernelSpec, rows: np.ndarray) -> np.ndarray:
    """bias + input_offset * sum(weights): the input offset leaves the inner loop."""
    total = spec.consts["bias"].astype(np.int64) + spec.scalars["input_offset"] * rows.astype(
        np.int64
    ).sum(axis=1)
    return (((total + 2**31) & 0xFFFFFFFF) - 2**31).astype(np.int32)


def _divisors(n: int, options: tuple[int, ...] = (1, 2, 4, 8)) -> list[int]:
    return [u for u in options if n > 0 and n % u == 0] or [1]


class _ConvBase(KernelTemplate):
    op = "CONV_2D"
    main_file = "conv2d.c.j2"
    files = ("dot_block.j2", "depthwise_requant.j2", "depthwise.py")
    modes: tuple[str, ...] = ()

    def fast(self, spec: KernelSpec) -> FastRequant | str:
        """The fused requantization of 2 * acc, where this layer's values keep it exact."""
        rows = np.abs(spec.consts["weights"].astype(np.int64).reshape(spec.dims["out_c"], -1))
        bias = np.abs(spec.consts["bias"].astype(np.int64))
        bound = int(np.max(bias + (abs(spec.scalars["input_offset"]) + 128) * rows.sum(axis=1)))
        return fast_requant(
            spec.consts["mult"], spec.consts["shift"], spec.scalars["output_offset"], bound
        )

    def patch_len(self, spec: KernelSpec) -> int:
        d = spec.dims
        return d["k_h"] * d["k_w"] * d["in_c"]

    def space(self, spec: KernelSpec, target: Target) -> Space:
        k = self.patch_len(spec)
        s = Space()
        s.add("mode", list(self.modes), self.modes[0], "loop structure")
        s.add("block_px", [1, 2, 4], 1, "output pixels computed together")
        s.add("block_oc", [1, 2, 4], 1, "output channels computed together")
        simd = ["none"] + (["dsp"] if target.has("dsp") else [])
        simd += ["neon"] if target.has("neon") and k >= 16 else []
        s.add(
            "simd", simd, "none", "ISA path: dsp = SXTB16 + SMLAD, neon = 16 int8 per VMULL/VMLAL"
        )
        s.add("unroll", sorted(set(_divisors(k) + _divisors(k // 4))), 1, "inner-loop unroll")
        s.add("fold", [False, True], False, "input offset folded into the bias")
        s.add(
            "wbytes",
            [2, 1] if target.has("dsp") else [2],
            2,
            "DSP path: weights as int16 pairs (faster) or int8 (half the flash)",
        )
        s.add("opt", OPT_LEVELS, "-O2", "compiler optimization level")
        widen = [False, True] if target.has("dsp") and self.modes == ("pointwise",) else [False]
        s.add(
            "widen",
            widen,
            False,
            "DSP path: each pixel's inputs split to int16 pairs once, in scratch, and "
            "reused by every output channel",
        )

        s.add(
            "inplace",
            [False, True] if self.modes == ("pointwise",) else [False],
            False,
            "1x1: each pixel block's inputs read (into scratch) before its outputs are "
            "written over them: the output may share the input's storage",
        )
        s.add("requant", ["ref", "fast"], "ref", "TFLM's requantization, or the fused one")
        s.add(
            "asm",
            [False, True] if widen != [False] else [False],
            False,
            "widened DSP path: the dot product as one inline-assembly loop (gcc spills it)",
        )
        fast = self.fast(spec)

        # Arm cores have 13 usable registers, RV32 has 31: RISC-V can hold a 4x4 block.
        max_acc = 16 if target.family == "riscv" else 8

        def check(p: Point) -> str | None:
            if p["mode"] == "direct" and (
                p["block_px"],
                p["block_oc"],
                p["unroll"],
                p["simd"],
                p["fold"],
            ) != (1, 1, 1, "none", False):
                return "the direct loop takes no blocking, unrolling, SIMD or folding"
            if p["simd"] == "dsp":
                if not p["fold"]:
                    return "the DSP path needs the input offset folded into the bias"
                if k // 4 == 0 or (k // 4) % p["unroll"]:
                    return f"unroll {p['unroll']} does not divide {k // 4} groups of 4"
            elif p["simd"] == "neon":
                if not p["fold"]:
                    return "the NEON path needs the input offset folded into the bias"
                if (k // 16) % p["unroll"]:
                    return f"unroll {p['unroll']} does not divide {k // 16} groups of 16"
            elif k % p["unroll"]:
                return f"unroll {p['unroll']} does not divide the patch length {k}"
            if p["wbytes"] == 1 and p["simd"] != "dsp":
                return "int8 weights only change the DSP path"
            if p["widen"] and (p["simd"] != "dsp" or k // 4 == 0):
                return "widened inputs feed the DSP path"
            if p["asm"] and not (
                p["widen"]
                and p["wbytes"] == 1
                and k % 4 == 0
                and (k // 4) % p["unroll"] == 0
                and p["block_px"] * p["block_oc"] + 2 * p["block_px"] <= 8
            ):
                return (
                    "the assembly loop takes widened inputs, int8 weights, K a multiple of 4 "
                    "and at most 8 accumulator and input registers"
                )
            if p["inplace"] and p["widen"] and k % 4:
                return "in place, the widened path must widen the whole pixel (K a multiple of 4)"
            if p["requant"] == "fast":
                if isinstance(fast, str):
                    return f"requant=fast is not exact for this layer: {fast}"
                if p["mode"] == "direct":
                    return "the direct loop keeps TFLM's requantization"
            # NEON accumulates in vector registers: AArch64 has 32 of them (A32: 16 Q).
            limit = 16 if p["simd"] == "neon" and target.word_bits == 64 else max_acc
            if p["block_px"] * p["block_oc"] > limit:
                return f"more than {limit} accumulators spill registers on {target.name}"
            return None

        s.require(check)
        return s

    def suggestions(self, spec: KernelSpec, target: Target) -> list[Point]:
        """Register-blocked points with the offset folded (SIMD where the core has it):
        what usually wins, measured first so that a small budget finds it."""
        space = self.space(spec, target)
        simd = "dsp" if target.has("dsp") else "none"
        points = []
        neon = []  # first: on a NEON core they beat every scalar point
        if target.has("neon"):
            fused = "ref" if isinstance(self.fast(spec), str) else "fast"
            blocks = ((2, 4, 1), (4, 2, 1), (2, 2, 2), (4, 4, 1), (1, 4, 2))
            for block_px, block_oc, unroll in blocks:
                point = {
                    **space.baseline(),
                    "mode": self.modes[-1],
                    "block_px": block_px,
                    "block_oc": block_oc,
                    "simd": "neon",
                    "fold": True,
                    "unroll": unroll,
                    "requant": fused,
                }
                if space.check(point) is None:
                    neon.append(point)
        for block_px, block_oc in ((2, 4), (2, 2), (1, 4)):
            for unroll in (1, 2):
                point = {
                    **space.baseline(),
                    "mode": self.modes[-1],
                    "block_px": block_px,
                    "block_oc": block_oc,
                    "simd": simd,
                    "fold": True,
                    "unroll": unroll,
                }
                if space.check(point) is None:
                    points.append(point)
        points = neon + points[:3]
        if target.has("dsp"):
            # Compact ends of the front: int8 weights widened in the loop (half the flash),
            # and for 1x1, inputs widened once per pixel pair with 2x2 blocks (what fits
            # in the registers).
            for point in list(points[:2]):
                small = {**point, "wbytes": 1, "unroll": 1}
                if space.check(small) is None and small not in points:
                    points.append(small)
            fused = "ref" if isinstance(self.fast(spec), str) else "fast"
            for block_oc, unroll, opt in ((2, 8, "-O3"), (2, 4, "-O2"), (2, 2, "-O2")):
                point = {
                    **space.baseline(),
                    "mode": self.modes[-1],
                    "block_px": 2,
                    "block_oc": block_oc,
                    "simd": "dsp",
                    "fold": True,
                    "unroll": unroll,
                    "wbytes": 1,
                    "widen": True,
                    "asm": True,
                    "requant": fused,
                    "opt": opt,
                }
                if space.check(point) is None:
                    points.append(point)
        # In place (the output over the input: less RAM for a few cycles), where it applies:
        # the widened assembly point's twin early (a small budget still measures it), the
        # first point's last.
        widened = [q for q in points if q.get("widen")][:1]
        twins = [{**q, "inplace": True} for q in [*widened, *points[:1]]]
        twins = [t for t in twins if space.check(t) is None]
        return [*points[:1], *twins[:1], *points[1:], *twins[1:]]

    def pad_right(self, spec: KernelSpec) -> int:
        d = spec.dims
        need = (d["out_w"] - 1) * d["stride_w"] + (d["k_w"] - 1) * d["dil_w"] + 1
        return max(0, need - d["in_w"] - d["pad_left"])

    def in_place(self, spec: KernelSpec, target: Target, params: Point) -> int:
        return 1 if params.get("inplace") else 0

    def in_place_shift(self, spec: KernelSpec, target: Target, params: Point) -> int:
        """A strided 1x1 reads output pixel q's input at pixel (s_h * oy, s_w * ox): blocks
        of pixels are read (into scratch) before written, so the outputs up to pixel q
        must end before the input pixel that q reads begins, for every q; the least input
        start - output start for which that holds (often 0: a strided 1x1 reads ahead)."""
        d = spec.dims
        if (d["stride_h"], d["stride_w"]) == (1, 1):
            return super().in_place_shift(spec, target, params)
        b, oy, ox = np.meshgrid(
            np.arange(d["batches"]), np.arange(d["out_h"]), np.arange(d["out_w"]), indexing="ij"
        )
        q = ((b * d["out_h"] + oy) * d["out_w"] + ox).reshape(-1).astype(np.int64)
        src = (b * d["in_h"] + oy * d["stride_h"]) * d["in_w"] + ox * d["stride_w"]
        need = q * d["out_c"] - src.reshape(-1).astype(np.int64) * d["in_c"]
        return inplace_shift(0, max(0, int(need.max())))

    def scratch_bytes(self, spec: KernelSpec, target: Target, params: Point) -> int:
        d = spec.dims
        if params.get("widen"):
            return params["block_px"] * (self.patch_len(spec) // 4) * 8
        if params.get("inplace"):
            return params["block_px"] * self.patch_len(spec)
        if params["mode"] == "im2col":
            return params["block_px"] * self.patch_len(spec)
        if params["mode"] == "row" and (d["pad_left"] or self.pad_right(spec)):
            return (d["pad_left"] + d["in_w"] + self.pad_right(spec)) * d["in_c"]
        return 0

    def context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        d = spec.dims
        rows = spec.consts["weights"].reshape(d["out_c"], -1)
        per_channel = bool(spec.flags.get("per_channel"))
        mult, shift = spec.consts["mult"], spec.consts["shift"]
        arrays = []
        fold = params["fold"]
        bias = folded_bias(spec, rows) if fold else spec.consts["bias"]
        mult_at = per_channel_accessor("MULT", mult, per_channel)
        shift_at = per_channel_accessor("SHIFT", shift, per_channel)
        fused = self._fused(spec, params, arrays, bias)
        if not any(a.startswith("static const int32_t QP[") for a in arrays):
            arrays.insert(0, c_array("int32_t", "BIAS", bias))
        if fused is None and mult_at("0") == "MULT[0]":
            arrays.append(c_array("int32_t", "MULT", mult, per_line=8))
        if fused is None and shift_at("0") == "SHIFT[0]":
            arrays.append(c_array("int32_t", "SHIFT", shift))
        k = rows.shape[1]
        if params["simd"] == "dsp":
            words, tail = dsp_weights(rows, params["block_oc"])
            if k >= 4 and params["wbytes"] == 2:
                arrays.append(c_array("uint32_t", "W16", words, per_line=6))
            if k >= 4 and params["wbytes"] == 1:
                arrays.append(c_array("int8_t", "W4", dsp_bytes(rows, params["block_oc"])))
            if k % 4:
                arrays.append(c_array("int8_t", "WT", tail))
        elif params["simd"] == "neon":
            bo = params["block_oc"]
            arrays.append(c_array("int8_t", "WN", dsp_bytes(rows, bo, 16)))
            if k % 16:
                arrays.append(c_array("int8_t", "WT", interleave_rows(rows[:, k - k % 16 :], bo)))
        else:
            block = 1 if params["mode"] == "direct" else params["block_oc"]
            arrays.append(c_array("int8_t", "W8", interleave_rows(rows, block)))
        return {
            "arrays": "\n\n".join(arrays),
            "K": self.patch_len(spec),
            "mult": mult_at,
            "shift": shift_at,
            "bias_init": (
                (lambda bo: f"QP[(oc + {bo}) * 4]")
                if any(a.startswith("static const int32_t QP[") for a in arrays)
                else (lambda bo: f"BIAS[oc + {bo}]")
            ),
            "pad_right": self.pad_right(spec),
            "wbytes": params["wbytes"],
            "neon_pair": neon_pairs_exact(rows),
            "widen": bool(params.get("widen")),
            "fused": fused,
            # Start of an output-channel block's DSP weights (rows are K4 groups long).
            "dsp_w": (
                (lambda kk: f"W16 + oc * {kk // 4 * 2}")
                if params["wbytes"] == 2
                else (lambda kk: f"W4 + oc * {kk // 4 * 4}")
            ),
        }

    def _fused(self, spec: KernelSpec, params: Point, arrays: list[str], bias: np.ndarray) -> Any:
        """C of the fused requantization (clamp included) of an output channel, as a
        function of the doubled accumulator and the channel expression. Per-channel
        values sit with the bias in one table QP[oc] = (bias, mult, k, e): one pointer
        instead of four, which the register-starved epilogue would spill."""
        if params.get("requant") != "fast":
            return None
        fr = self.fast(spec)
        assert not isinstance(fr, str)
        cols = {"QM": fr.mult, "QK": fr.k, "QE": fr.e}
        uniform = all(np.all(v == v[0]) for v in cols.values())
        if not uniform:
            table = np.stack([np.asarray(bias, np.int64), fr.mult, fr.k, fr.e], axis=1)
            arrays.append(c_array("int32_t", "QP", table.reshape(-1), per_line=8))
        lo, hi = spec.scalars["act_min"], spec.scalars["act_max"]
        dsp = params["simd"] == "dsp"
        const_e = int(fr.e[0]) if uniform else None

        def fused(acc: str, oc: str) -> str:
            q = [
                str(int(v[0])) if uniform else f"QP[({oc}) * 4 + {i + 1}]"
                for i, v in enumerate(cols.values())
            ]
            return requant_expr(f"({acc})", q, True, dsp, lo, hi, const_e)

        return fused


class Conv2DGeneral(_ConvBase):
    """Any CONV_2D: TFLM's reference loop (the baseline), or im2col + blocked dot products."""

    name = "conv2d_general"
    modes = ("direct", "im2col")

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        return spec.op == "CONV_2D" and spec.dims.get("groups", 1) == 1


class Conv2DPointwise(_ConvBase):
    """1x1 convolutions: every pixel's channel vector is already a contiguous patch."""

    name = "conv2d_pointwise"
    modes = ("pointwise",)

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        d = spec.dims
        return (
            spec.op == "CONV_2D"
            and d.get("groups", 1) == 1
            and d["k_h"] == 1
            and d["k_w"] == 1
            and d["pad_top"] == 0
            and d["pad_left"] == 0
        )


class Conv2D1xN(_ConvBase):
    """Conv1D as converted (kernel height 1): each output's window is a contiguous run of
    the (zero-point padded) input row, so long kernels need no im2col."""

    name = "conv2d_1xn"
    modes = ("row",)

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        d = spec.dims
        return (
            spec.op == "CONV_2D"
            and d.get("groups", 1) == 1
            and d["k_h"] == 1
            and d["dil_w"] == 1
            and d["k_w"] > 1
        )


class Conv2DRing(_ConvBase):
    """Stride-1 convolutions that keep the image size, in place: output row oy is written
    over input rows <= oy, and the kernel-height input rows that later outputs still
    read live in a ring of zero-point padded rows in scratch (a line buffer); patches
    are gathered from the ring as im2col gathers them from the input."""

    name = "conv2d_ring"
    modes = ("ring",)

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        d = spec.dims
        return (
            spec.op == "CONV_2D"
            and d.get("groups", 1) == 1
            and d["k_h"] > 1
            and (d["stride_h"], d["stride_w"], d["dil_h"], d["dil_w"]) == (1, 1, 1, 1)
            and (d["in_h"], d["in_w"]) == (d["out_h"], d["out_w"])
            and d["pad_top"] <= d["k_h"] - 1
        )

    def ring_row(self, spec: KernelSpec) -> int:
        d = spec.dims
        return (d["pad_left"] + d["in_w"] + self.pad_right(spec)) * d["in_c"]

    def in_place(self, spec: KernelSpec, target: Target, params: Point) -> int:
        return 1

    def ring_bytes(self, spec: KernelSpec) -> int:
        """The ring's rows, rounded to a word: the patch buffer follows."""
        return -(-spec.dims["k_h"] * self.ring_row(spec) // 4) * 4

    def scratch_bytes(self, spec: KernelSpec, target: Target, params: Point) -> int:
        return self.ring_bytes(spec) + params["block_px"] * self.patch_len(spec)

    def context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        ctx = super().context(spec, target, params)
        return {**ctx, "ring_row": self.ring_row(spec), "ring_bytes": self.ring_bytes(spec)}


TEMPLATES = [Conv2DGeneral(), Conv2DPointwise(), Conv2D1xN(), Conv2DRing()]

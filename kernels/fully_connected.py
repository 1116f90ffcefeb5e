"""FULLY_CONNECTED template: TFLM's reference loop, or register-blocked dot products.

The blocked variants compute block_u units for block_b batch rows at once, so that
each loaded input serves block_u weights and each loaded weight block_b inputs. The
weights are re-laid-out here: the filter offset (per-tensor weights with a zero
point) is added once, at generation time; the input offset is folded into the bias
(bias + input_offset * sum of the unit's weights); rows are interleaved by unit
block, and on DSP cores pre-expanded to the int16 pairs SMLAD multiplies against
SXTB16-split inputs (two MACs per instruction). The fused requantization of
depthwise_requant.j2 is offered where this layer's values keep it bit-exact.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from autotune.kernels.conv2d import dsp_bytes, dsp_weights, interleave_rows, neon_pairs_exact
from autotune.kernels.depthwise import (
    OPT_LEVELS,
    FastRequant,
    fast_requant,
    requant_expr,
    tidy_c,
)
from autotune.platform.target import Target
from autotune.tune.space import Point, Space
from autotune.tune.spec import KernelSpec
from autotune.tune.template import KernelTemplate, Rendered, c_array

MAX_ACCUMULATORS = 8


def _wrap32(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, np.int64)
    return (((v + 2**31) & 0xFFFFFFFF) - 2**31).astype(np.int64)


class FullyConnected(KernelTemplate):
    """Any int8 FULLY_CONNECTED (per-tensor or per-channel weights, batched rows)."""

    name = "fully_connected"
    op = "FULLY_CONNECTED"
    main_file = "fully_connected.c.j2"
    # The Python helpers it borrows shape its code too, so they key its content hash.
    files = ("depthwise_requant.j2", "depthwise.py", "conv2d.py", "dot_block.j2")

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        return spec.op == "FULLY_CONNECTED"

    def render(self, spec: KernelSpec, target: Target, params: Point, function: str) -> Rendered:
        rendered = super().render(spec, target, params, function)
        return dataclasses.replace(rendered, source=tidy_c(rendered.source))

    def weights(self, spec: KernelSpec) -> np.ndarray:
        """[units][depth] as int64 with the filter offset added (TFLM adds it per MAC)."""
        return spec.consts["weights"].astype(np.int64) + int(spec.scalars["filter_offset"])

    def acc_bound(self, spec: KernelSpec) -> int:
        """|acc| and every partial sum stay below this, folded or not."""
        wsum = np.abs(self.weights(spec)).sum(axis=1)
        bias = np.abs(spec.consts["bias"].astype(np.int64))
        return int(np.max(bias + (abs(spec.scalars["input_offset"]) + 128) * wsum))

    def fast(self, spec: KernelSpec) -> FastRequant | str:
        return fast_requant(
            spec.consts["mult"],
            spec.consts["shift"],
            spec.scalars["output_offset"],
            self.acc_bound(spec),
        )

    def space(self, spec: KernelSpec, target: Target) -> Space:
        d = spec.dims
        s = Space()
        s.add("mode", ["direct", "blocked"], "direct", "TFLM's loop, or blocked dot products")
        # Choices the shape cannot use are left out, so that every choice is reachable.
        simd = ["none"] + (["dsp"] if target.has("dsp") and d["depth"] >= 4 else [])
        w = self.weights(spec)
        int8 = bool(w.min(initial=0) >= -128 and w.max(initial=0) <= 127)
        simd += ["neon"] if target.has("neon") and d["depth"] >= 16 and int8 else []
        s.add(
            "simd",
            simd,
            "none",
            "ISA path: dsp = SXTB16 + SMLAD on int16 pairs, neon = 16 int8 per VMULL/VMLAL",
        )
        s.add("block_u", [u for u in (1, 2, 4) if u <= d["units"]], 1, "units computed together")
        s.add("block_b", [b for b in (1, 2, 4) if b <= d["batches"]], 1, "batch rows together")
        unrolls = [u for u in (1, 2, 4, 8) if u <= d["depth"]]
        s.add("unroll", unrolls, 1, "depth loop unroll (elements; groups of 4 on DSP)")
        s.add("requant", ["ref", "fast"], "ref", "TFLM's requantization, or the fused one")
        s.add("presched", [True, False], True, "compiler scheduling before register allocation")
        s.add("opt", OPT_LEVELS, "-O2", "compiler optimization level")
        fast = self.fast(spec)
        base = s.baseline()

        def check(p: Point) -> str | None:
            if p["mode"] == "direct":
                rest = {k: v for k, v in p.items() if k not in ("mode", "opt")}
                if rest != {k: base[k] for k in rest}:
                    return "the direct loop takes no blocking, unrolling, SIMD or fused requant"
                return None
            if p["requant"] == "fast" and isinstance(fast, str):
                return f"requant=fast is not exact for this layer: {fast}"
            if p["block_u"] * p["block_b"] > MAX_ACCUMULATORS:
                return "more than 8 accumulators spill registers"
            steps = {"dsp": d["depth"] // 4, "neon": d["depth"] // 16}.get(p["simd"], d["depth"])
            if p["unroll"] > max(1, steps):
                return f"unroll {p['unroll']} exceeds the {steps} depth steps"
            return None

        s.require(check)
        return s

    def suggestions(self, spec: KernelSpec, target: Target) -> list[Point]:
        """Expert points: SMLAD with 4 (or 2) units on DSP cores, scalar 4x1 elsewhere."""
        space = self.space(spec, target)
        fast = "ref" if isinstance(self.fast(spec), str) else "fast"
        base = {**space.baseline(), "mode": "blocked", "requant": fast}
        batch = 2 if spec.dims["batches"] > 1 else 1
        points = []
        if target.has("neon"):
            for bu, un in ((4, 1), (2, 2), (4, 2)):
                points.append(
                    {**base, "simd": "neon", "block_u": bu, "block_b": batch, "unroll": un}
                )
        if target.has("dsp"):
            for bu, un in ((4, 2), (2, 4), (4, 1)):
                points.append(
                    {**base, "simd": "dsp", "block_u": bu, "block_b": batch, "unroll": un}
                )
        for bu, un in ((4, 2), (2, 4), (4, 1), (1, 4)):
            points.append({**base, "block_u": bu, "block_b": batch, "unroll": un})
        return [p for p in points if space.check(p) is None]

    def context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        d = spec.dims
        units, depth = d["units"], d["depth"]
        w = self.weights(spec)
        mult = spec.consts["mult"].astype(np.int64)
        shift = spec.consts["shift"].astype(np.int64)
        bias = spec.consts["bias"].astype(np.int64)
        if params["mode"] == "direct":
            arrays = [
                c_array("int8_t", "W8", spec.consts["weights"].reshape(-1)),
                c_array("int32_t", "BIAS", bias),
            ]
            uniform = bool(np.all(mult == mult[0]) and np.all(shift == shift[0]))
            if not uniform:
                arrays.append(c_array("int32_t", "MULT", mult, per_line=8))
                arrays.append(c_array("int32_t", "SHIFT", shift))
            return {
                "arrays": "\n\n".join(arrays),
                "uniform_q": uniform,
                "q0": (int(mult[0]), int(shift[0])),
            }

        fast = params["requant"] == "fast"
        neon = params["simd"] == "neon"
        # The fused requantization takes 2 * acc: doubled weights, except on NEON, whose
        # weights stay int8 (the accumulator is doubled instead).
        scale = 2 if fast and not neon else 1
        io = spec.scalars["input_offset"]
        folded = _wrap32(scale * (bias + io * w.sum(axis=1)))
        wd = w * scale
        fr = self.fast(spec) if fast else None
        qcols = [fr.mult, fr.k, fr.e] if fr is not None else [mult, shift]
        uniform = all(np.all(q == q[0]) for q in qcols)
        arrays = [c_array("int32_t", "BIAS", folded)]
        if not uniform:
            names = ["QM", "QK", "QE"] if fast else ["QM", "QS"]
            for name, q in zip(names, qcols, strict=True):
                arrays.append(c_array("int32_t", name, q, per_line=8))
            qexpr = [f"{name}[u + {{j}}]" for name in names]
        else:
            qexpr = [str(int(q[0])) for q in qcols]
        bu = params["block_u"]
        simd = params["simd"] == "dsp"
        wide = bool(np.abs(wd).max(initial=0) > 127)
        ctype = "int16_t" if wide else "int8_t"
        if neon:
            arrays.append(c_array("int8_t", "WN", dsp_bytes(wd, bu, 16)))
            if depth % 16:
                arrays.append(
                    c_array("int8_t", "WT", interleave_rows(wd[:, depth - depth % 16 :], bu))
                )
        elif simd:
            words, tail = dsp_weights(wd, bu)
            arrays.append(c_array("uint32_t", "W16", words, per_line=6))
            if depth % 4:
                arrays.append(c_array("int16_t", "WT", tail))
        else:
            arrays.append(c_array(ctype, "WB", interleave_rows(wd, bu)))
        lo, hi = spec.scalars["act_min"], spec.scalars["act_max"]
        const_e = int(qcols[2][0]) if fast and uniform else None

        def requant(acc: str, j: int) -> str:
            q = [e.replace("{j}", str(j)) for e in qexpr] + ([""] if not fast else [])
            value = f"({acc} * 2)" if fast and neon else acc
            return requant_expr(value, q, fast, simd, lo, hi, const_e)

        return {
            "arrays": "\n\n".join(arrays),
            "requant": requant,
            "wtype": ctype,
            "neon_pair": neon_pairs_exact(wd) if neon else False,
            "K4": depth // 4,
            "KT": depth % 4,
            "UF": units - units % bu,
            "BF": d["batches"] - d["batches"] % params["block_b"],
        }


TEMPLATES = [FullyConnected()]

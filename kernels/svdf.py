"""SVDF template: TFLM's integer SVDF, bit for bit, with the state kept by the library.

The baseline ("direct") is the op's own C (kernels/ops/svdf.c.j2): TFLM's reference
loops, zero points subtracted per element. The tuned structure ("blocked") computes
the same arithmetic in another order:
- the zero points leave the inner loops: -input_zp * (row sum of the feature weights)
  starts each filter's feature sum, and bias - state_zp * (row sums of the unit's time
  weights) each unit's time sum (int32 sums wrap alike, so the result is the same);
- the feature product is register-blocked over `block_f` filters (each loaded input
  serves block_f weights), through dot_block.j2's scalar or DSP (SXTB16 + SMLAD on
  int16 weight pairs) dot products; an int8 state's time product uses SMLAD too;
- the state moves one element left with word copies instead of element copies.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from autotune.kernels.conv2d import dsp_weights, interleave_rows
from autotune.kernels.depthwise import OPT_LEVELS, tidy_c
from autotune.ops.svdf import c_context
from autotune.platform.target import Target
from autotune.reference.fixedpoint import wrap_int32
from autotune.tune.space import Point, Space
from autotune.tune.spec import KernelSpec
from autotune.tune.template import KernelTemplate, Rendered, c_array


class Svdf(KernelTemplate):
    """Any SVDF the reference runs: int8 or int16 time weights and state, any rank."""

    name = "svdf"
    op = "SVDF"
    main_file = "svdf.c.j2"
    files = ("ops/svdf.c.j2", "dot_block.j2", "conv2d.py", "depthwise.py")

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        return spec.op == "SVDF"

    def render(self, spec: KernelSpec, target: Target, params: Point, function: str) -> Rendered:
        rendered = super().render(spec, target, params, function)
        return dataclasses.replace(rendered, source=tidy_c(rendered.source))

    def input_names(self, spec: KernelSpec) -> tuple[str, ...]:
        return ("in0",)

    def space(self, spec: KernelSpec, target: Target) -> Space:
        d = spec.dims
        k, k4 = d["inputs"], d["inputs"] // 4
        s = Space()
        s.add("mode", ["direct", "blocked"], "direct", "TFLM's loops, or blocked and folded")
        s.add("simd", ["none"] + (["dsp"] if target.has("dsp") and k4 else []), "none",
              "dsp = SXTB16 + SMLAD on int16 weight pairs")  # fmt: skip
        s.add("block_f", [f for f in (1, 2, 4) if f <= d["filters"]], 1, "filters together")
        s.add("unroll", [u for u in (1, 2, 4) if u <= k], 1, "input loop unroll (4s on DSP)")
        s.add("shift", ["elements", "words"], "elements", "how the state moves one step")
        s.add("opt", OPT_LEVELS, "-O2", "compiler optimization level")
        base = s.baseline()

        def check(p: Point) -> str | None:
            if p["mode"] == "direct":
                rest = {key: v for key, v in p.items() if key not in ("mode", "opt")}
                if rest != {key: base[key] for key in rest}:
                    return "the direct loops take no blocking, unrolling, SIMD or word shift"
                return None
            steps = k4 if p["simd"] == "dsp" else k
            if steps % p["unroll"]:
                return f"unroll {p['unroll']} does not divide the {steps} input steps"
            return None

        s.require(check)
        return s

    def suggestions(self, spec: KernelSpec, target: Target) -> list[Point]:
        """Expert points: SMLAD over 4 (or 2) filters on DSP cores, scalar 4 filters elsewhere."""
        space = self.space(spec, target)
        base = {**space.baseline(), "mode": "blocked", "shift": "words"}
        points = []
        if target.has("dsp"):
            points += [
                {**base, "simd": "dsp", "block_f": f, "unroll": u} for f, u in ((4, 1), (2, 2))
            ]
        points += [{**base, "block_f": f, "unroll": u} for f, u in ((4, 1), (2, 2))]
        return [p for p in points if space.check(p) is None]

    def context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        d, sc = spec.dims, spec.scalars
        ctx = c_context(spec)  # the direct mode is the op's own C
        if params["mode"] == "direct":
            return ctx
        wf = spec.consts["weights_feature"].astype(np.int64)
        wt = spec.consts["weights_time"].astype(np.int64)
        bf = params["block_f"]
        feature_bias = wrap_int32(-sc["input_zp"] * wf.sum(axis=1))
        unit_sums = wt.sum(axis=1).reshape(d["units"], d["rank"]).sum(axis=1)
        time_bias = wrap_int32(spec.consts["bias"].astype(np.int64) - sc["state_zp"] * unit_sums)
        arrays = [
            "/* -input_zp * row sum of the feature weights: each filter's starting sum. */",
            c_array("int32_t", "FBIAS", feature_bias, per_line=8),
            "/* bias - state_zp * row sums of the unit's time weights. */",
            c_array("int32_t", "TBIAS", time_bias, per_line=8),
        ]
        dsp = params["simd"] == "dsp"
        if dsp:
            words, tail = dsp_weights(wf, bf)
            arrays += [
                f"/* Feature weights as SMLAD int16 pairs, filters interleaved by {bf}. */",
                c_array("uint32_t", "WF16", words, per_line=6),
            ]
            if d["inputs"] % 4:
                arrays.append(c_array("int8_t", "WFT", tail))
        else:
            arrays += [
                f"/* Feature weights, filters interleaved by {bf}. */",
                c_array("int8_t", "WF8", interleave_rows(wf, bf)),
            ]
        state = str(spec.flags["state"])
        time_dsp = dsp and state == "int8" and d["memory"] >= 4
        if time_dsp:
            words, tail = dsp_weights(wt, 1)
            arrays += ["/* Time weights as SMLAD int16 pairs. */"]
            arrays += [c_array("uint32_t", "WT16", words, per_line=6)] if len(words) else []
            arrays += [c_array("int8_t", "WTT", tail)] if d["memory"] % 4 else []
        else:
            arrays += [c_array(ctx["state_type"], "WT", wt.reshape(-1))]
        total = d["batches"] * d["filters"] * d["memory"]
        item = np.dtype(state).itemsize
        moved = (total - 1) * item  # bytes that move one element left
        return {
            **ctx,
            "tuned_arrays": "\n\n".join(arrays),
            "fbias": lambda j: f"FBIAS[f + {j}]",
            "time_dsp": time_dsp,
            "K4": d["inputs"] // 4,
            "KT": d["inputs"] % 4,
            "M4": d["memory"] // 4,
            "MT": d["memory"] % 4,
            "FF": d["filters"] - d["filters"] % bf,
            "moved": moved,
            "moved_words": moved - moved % 4,
            "item": item,
        }


TEMPLATES = [Svdf()]

"""ADD template (same-shape int8 inputs; broadcasting adds stay with the reference).

TFLM's int8 ADD: each input gets its offset, a left shift of 20 and its own
MultiplyByQuantizedMultiplierSmallerThanOneExp onto a common scale; the sum is
rescaled the same way to the output, offset and clamped. The baseline is that
loop. Every other point computes the same integers by cheaper exact means, all
baked in as constants at generation time:

- input stage `lut`: the whole per-input rescale depends on one int8 value, so
  it becomes a 256-entry table per input;
- input stage `split32`: high_mul((v << 20), m) == v * (m >> 11) + ((v * (m & 2047)
  + 1024) >> 11) for |v| <= 255, two 32-bit multiplies and no 64-bit product
  (Cortex-M0 calls a library routine for those);
- `smmulr` (DSP cores): high_mul(a, m) == SMMULR(2a, m) whenever 2a fits int32,
  which the bounds below guarantee;
- output stage `split32`: the 32x32 high multiply from four 15/16-bit partial
  products, exact for |sum| < 2^28;
- rounding `folded`: RoundingDivideByPOT(x, e) == (x + 2^(e-1) - (x < 0)) >> e, with the
  output offset carried in the same constant (offset * 2^e) where that cannot overflow;
- clamp `ssat` (Thumb-2): one SSAT saturates to int8, and with folded rounding it also
  does the final arithmetic shift.

The bounds each form needs are checked against the actual tables here; a point
whose bound fails is rejected before compiling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autotune.platform.target import Target
from autotune.reference.fixedpoint import (
    multiply_by_quantized_multiplier_smaller_than_one_exp,
    saturating_rounding_doubling_high_mul,
)
from autotune.tune.space import Point, Space
from autotune.tune.spec import KernelSpec
from autotune.tune.template import KernelTemplate, c_array

OPT_LEVELS = ["-O2", "-O3", "-Os"]
SPLIT32_SUM_LIMIT = 1 << 28  # the output split32 high multiply is exact below this |sum|


def input_table(spec: KernelSpec, which: int) -> np.ndarray:
    """Input `which`'s rescaled contribution for every raw int8 value -128..127 (int64)."""
    s = spec.scalars
    v = np.arange(-128, 128, dtype=np.int64) + s[f"input{which}_offset"]
    return multiply_by_quantized_multiplier_smaller_than_one_exp(
        v << s["left_shift"], s[f"input{which}_multiplier"], s[f"input{which}_shift"]
    ).astype(np.int64)


def by_uint8_index(table: np.ndarray) -> np.ndarray:
    """Reorder a table over -128..127 so that it is indexed by the value's byte (uint8)."""
    return np.concatenate([table[128:], table[:128]])


def sum_bound(spec: KernelSpec) -> int:
    """The largest |input1 + input2| contribution the output stage can see."""
    return int(np.abs(input_table(spec, 1)).max() + np.abs(input_table(spec, 2)).max())


def folded_rounding(spec: KernelSpec) -> tuple[bool, bool]:
    """Whether x + 2^(e-1) - (x < 0) cannot overflow int32 in any stage, and whether the output
    stage can also carry output_offset * 2^e into the same add (so it leaves the loop)."""
    s = spec.scalars
    v = np.arange(-128, 128, dtype=np.int64)
    ok = True
    for k in (1, 2):
        shifted = (v + s[f"input{k}_offset"]) << s["left_shift"]
        h = saturating_rounding_doubling_high_mul(shifted, s[f"input{k}_multiplier"])
        e = -s[f"input{k}_shift"]
        ok = ok and (e == 0 or int(np.abs(h).max()) + 2 ** (e - 1) < 1 << 31)
    h_out = sum_bound(spec) * s["output_multiplier"] // (1 << 31) + 1
    e = -s["output_shift"]
    out_ok = e == 0 or h_out + 2 ** (e - 1) < 1 << 31
    offset_ok = e == 0 or h_out + 2 ** (e - 1) + abs(s["output_offset"]) * 2**e < 1 << 31
    return ok and out_ok, ok and out_ok and offset_ok


class Add(KernelTemplate):
    """ADD of two same-shape int8 tensors with TFLM's rescaling."""

    name = "add"
    op = "ADD"
    main_file = "add.c.j2"

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        s = spec.scalars
        return (
            spec.op == "ADD"
            and s["input1_shift"] <= 0
            and s["input2_shift"] <= 0
            and s["output_shift"] <= 0
            and 0 <= s["left_shift"] <= 23  # (x + offset) << L fits int32 for |x + offset| <= 255
        )

    def input_names(self, spec: KernelSpec) -> tuple[str, ...]:
        return ("input1", "input2")

    def in_place(self, spec: KernelSpec, target: Target, params: Point) -> int:
        # Element by element, each read before its output is written (no restrict): the
        # output may be written over either input.
        return 1

    def space(self, spec: KernelSpec, target: Target) -> Space:
        dsp = ["smmulr"] if target.has("dsp") else []
        s = Space()
        s.add("mode", ["reference", "fast"], "reference", "TFLM's loop, or exact rewrites")
        s.add("input", ["mul64", "split32", "lut", *dsp], "mul64", "per-input rescale")
        s.add("output", ["mul64", "split32", *dsp], "mul64", "output high multiply")
        s.add("round", ["generic", "folded"], "generic", "rounding right shifts")
        ssat = ["ssat"] if target.has("thumb2") else []
        s.add("clamp", ["generic", *ssat], "generic", "activation clamp (SSAT on Thumb-2)")
        s.add("unroll", [1, 2, 4, 8], 1, "elements per loop iteration")
        s.add("opt", OPT_LEVELS, "-O2", "compiler optimization level")
        bound = sum_bound(spec)
        folded_ok = folded_rounding(spec)[0]

        def check(p: Point) -> str | None:
            if p["mode"] == "reference":
                if (p["input"], p["output"], p["round"], p["clamp"], p["unroll"]) != (
                    "mul64",
                    "mul64",
                    "generic",
                    "generic",
                    1,
                ):
                    return "the reference loop takes no rewrites or unrolling"
                return None
            shift = spec.scalars["left_shift"]
            if p["input"] == "split32" and shift < 8:
                return f"split32 needs left_shift >= 8 (v * low part < 2^31), not {shift}"
            if p["input"] == "smmulr" and shift > 22:
                return f"v << {shift + 1} overflows SMMULR's operand"
            if p["round"] == "folded" and not folded_ok:
                return "a folded rounding add could overflow int32 for this layer"
            if p["output"] == "split32" and bound >= SPLIT32_SUM_LIMIT:
                return f"|sum| up to {bound} is too large for the split32 output multiply"
            if p["output"] == "smmulr" and 2 * bound >= 1 << 31:
                return f"2 * |sum| up to {2 * bound} overflows SMMULR's operand"
            return None

        s.require(check)
        return s

    def suggestions(self, spec: KernelSpec, target: Target) -> list[Point]:
        """Tables for the inputs and the cheapest exact output multiply the core has."""
        space = self.space(spec, target)
        if target.has("dsp"):
            outputs = ["smmulr", "mul64"]
        elif target.has("mul") and not target.has("mul64"):
            outputs = ["split32", "mul64"]  # e.g. ARMv6-M: a 64-bit product is a libgcc call
        else:
            outputs = ["mul64", "split32"]
        clamp = "ssat" if target.has("thumb2") else "generic"
        points = []
        for output in outputs:
            for unroll in (4, 8):
                p = {
                    **space.baseline(),
                    "mode": "fast",
                    "input": "lut",
                    "output": output,
                    "round": "folded",
                    "clamp": clamp,
                    "unroll": unroll,
                }
                if space.check(p) is None:
                    points.append(p)
        return points[:3]

    def context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        s = spec.scalars
        arrays = []
        doubled = params["output"] == "smmulr"
        if params["mode"] == "fast" and params["input"] == "lut":
            for which in (1, 2):
                table = by_uint8_index(input_table(spec, which)) * (2 if doubled else 1)
                arrays.append(c_array("int32_t", f"LUT{which}", table, per_line=8))
        split = 31 - s["left_shift"]
        inputs = []
        for k in (1, 2):
            mult = s[f"input{k}_multiplier"]
            inputs.append(
                {
                    "k": k,
                    "offset": s[f"input{k}_offset"],
                    "mult": mult,
                    "shift": s[f"input{k}_shift"],
                    "hi": mult >> split,
                    "lo": mult & ((1 << split) - 1),
                }
            )
        out_mult = s["output_multiplier"]
        return {
            "arrays": "\n\n".join(arrays),
            "doubled": doubled,
            "split": split,
            "inputs": inputs,
            "out_hi": out_mult >> 15,
            "out_lo": out_mult & 0x7FFF,
            "sum_bound": sum_bound(spec),
            "fold_offset": folded_rounding(spec)[1],
        }


TEMPLATES = [Add()]

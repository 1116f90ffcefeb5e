"""UNIDIRECTIONAL_SEQUENCE_LSTM templates: TFLM's int8x8_16 LSTM, bit for bit.

The baseline is TFLM's reference structure: per time step eight fully-connected
products (one per gate and source, offsets added per element), each requantized to
Q3.12 and saturated, added with saturation, then the table sigmoid/tanh and the
elementwise cell and hidden updates.

The tuned structure ("fused") computes the same arithmetic in another order:
- the input projection only depends on the input and TFLM requantizes and
  saturates it on its own, so it is computed ahead, as int16 Q3.12, for
  `block_t` steps at a time ("chunk") or for all steps up front ("all"): a
  matrix-matrix product in which every weight load serves `block_t` input rows
  (`xblock_u` units of one gate per block);
- the recurrent product computes either a unit's four gates together (gates
  "fused": one pass over the hidden state feeds all four accumulators, and the
  unit's cell update can follow at once) or `block_u` units of one gate;
- weights are interleaved by row block at generation time, on DSP cores either
  pre-expanded to the int16 pairs SMLAD takes or kept int8 and split by SXTB16;
- the zero points are folded into the biases (TFLM's effective biases);
- exact fast forms (at_lstm.h): the fused requantization wherever the
  accumulator bound proves it exact, and TFLite's table sigmoid/tanh without its
  dead branches (tested over the whole int16 domain).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from autotune.kernels.conv2d import dsp_bytes, neon_pairs_exact
from autotune.kernels.depthwise import OPT_LEVELS, tidy_c
from autotune.platform.target import Target
from autotune.reference.ops.activations import int16_input_scaling
from autotune.tune.space import Point, Space
from autotune.tune.spec import KernelSpec
from autotune.tune.template import KernelTemplate, Rendered, c_array, pack_int16_pairs

OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"
MAX_ACCUMULATORS = 8
GATE_NAMES = ("input", "forget", "cell", "output")


@dataclasses.dataclass(frozen=True)
class Requant:
    """How one requantization is emitted: TFLM's two roundings, or the fused form."""

    mult: int
    shift: int
    fast: bool  # exact here: |acc| < 2^30 and shift <= -1

    @property
    def e(self) -> int:
        return -self.shift


def requant_c(acc: str, q: Requant, offset: int, bits: int, dsp: bool) -> str:
    """C expression: `acc` requantized, plus `offset`, saturated to `bits` (8 or 16)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not q.fast:
        v = f"at_requantize({acc}, {q.mult}, {q.shift})"
        if offset:
            v = f"{v} + ({offset})"
        return f"at_clamp({v}, {lo}, {hi})"
    k = (1 << (q.e - 1)) + offset * (1 << q.e)
    if dsp:
        return f"AT_LSTM_REQUANT_SAT({acc}, {q.mult}, {k}, {q.e}, {bits})"
    return f"at_lstm_sat{bits}(at_lstm_requant({acc}, {q.mult}, {k}, {q.e}))"


def _fits_fast(mult: int, shift: int, bound: int, offset: int = 0) -> bool:
    """The fused requantization is exact for |acc| <= bound (see at_lstm.h)."""
    if mult <= 0 or shift >= 0 or bound >= 2**30:
        return False
    e = -shift
    return abs((1 << (e - 1)) + offset * (1 << e)) < 2**30


def unit_loops(units: int, block: int) -> list[tuple[int, int, int]]:
    """(first, stop, step) of the unit loops: full blocks, then single units."""
    full = units - units % block
    loops = [(0, full, block)] if full else []
    if full < units:
        loops.append((full, units, 1))
    return loops


def row_blocks(units: int, fused: bool, block: int) -> list[list[int]]:
    """Weight rows (gate * units + unit) in the order the kernel walks them, by block.

    fused: a block is `block` units' four gates, rows ordered (unit, gate); otherwise a
    block is `block` units of one gate, gate by gate. Either way a block starting at
    unit j of gate g is preceded by exactly (4j if fused else g * units + j) rows.
    """
    blocks = []
    gates = [None] if fused else list(range(4))
    for g in gates:
        for first, stop, step in unit_loops(units, block):
            for j in range(first, stop, step):
                if g is None:
                    blocks.append([gg * units + j + u for u in range(step) for gg in range(4)])
                else:
                    blocks.append([g * units + j + u for u in range(step)])
    return blocks


def lay_out(
    w: np.ndarray, blocks: list[list[int]], pack: str
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Weights [rows][K] as the dot products read them, block after block.

    pack "int8": [k][row] bytes; "dsp16": per 4 k and row two SMLAD words, (k, k+2) and
    (k+1, k+3); "dsp8": per 4 k and row one word of the four bytes (split by SXTB16 at
    run time); "neon": per 16 k and row 16 bytes, then the K % 16 tail as [k][row]
    bytes. For the DSP packings the K % 4 tail is one more group over the last four
    inputs when K >= 4, else a separate [k][row] byte array.
    Returns (main, tail, elements per row in main, elements per row in tail).
    """
    k = w.shape[1]
    if pack == "neon":
        k16 = k // 16
        main = [dsp_bytes(w[rows], len(rows), 16) for rows in blocks]
        tail = [w[rows][:, 16 * k16 :].T.reshape(-1) for rows in blocks]
        return np.concatenate(main), np.concatenate(tail), 16 * k16, k % 16
    k4 = k // 4 if pack != "int8" else 0
    overlap = pack != "int8" and k >= 4 and k % 4 != 0
    main, tail = [], []
    for rows in blocks:
        m = w[rows].astype(np.int64)  # [R][K]
        if pack == "int8":
            main.append(m.T.reshape(-1))
            continue
        g = m[:, : 4 * k4].reshape(len(rows), k4, 4)
        if overlap:
            # One more group over the last four inputs, k = K-4 .. K-1, whose first
            # 4 - K % 4 weights are 0 (those inputs are already counted): the K % 4 tail
            # in one SMLAD group, without reading past the input row.
            last = m[:, k - 4 :].copy()
            last[:, : 4 - k % 4] = 0
            g = np.concatenate([g, last[:, None, :]], axis=1)
        if pack == "dsp16":
            even = pack_int16_pairs(g[..., 0], g[..., 2])
            odd = pack_int16_pairs(g[..., 1], g[..., 3])
            words = np.stack([even, odd], axis=-1).transpose(1, 0, 2)  # [k4][R][2]
        else:
            b = g.astype(np.int64) & 0xFF
            words = (b[..., 0] | b[..., 1] << 8 | b[..., 2] << 16 | b[..., 3] << 24).T
        main.append(words.reshape(-1))
        if not overlap:
            tail.append(m[:, 4 * k4 :].T.reshape(-1))
    groups = k4 + int(overlap)
    per_row = k if pack == "int8" else (2 * groups if pack == "dsp16" else groups)
    trow = 0 if pack == "int8" or overlap else k - 4 * k4
    joined_tail = np.concatenate(tail) if trow else np.zeros(0, np.int64)
    return np.concatenate(main), joined_tail, per_row, trow


class LstmTemplate(KernelTemplate):
    """Any int8x8_16 UNIDIRECTIONAL_SEQUENCE_LSTM the spec builder accepts."""

    name = "lstm"
    op = OP
    main_file = "lstm.c.j2"
    files = (
        "lstm_dot.j2",
        "dot_block.j2",
        "include/at_lstm.h",
        "include/at_fixedpoint.h",
        "depthwise.py",
        "conv2d.py",
    )

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        return spec.op == OP

    def render(self, spec: KernelSpec, target: Target, params: Point, function: str) -> Rendered:
        rendered = super().render(spec, target, params, function)
        return dataclasses.replace(rendered, source=tidy_c(rendered.source))

    # ------------------------------------------------------------------ space

    def space(self, spec: KernelSpec, target: Target) -> Space:
        d = spec.dims
        s = Space()
        s.add("mode", ["reference", "fused"], "reference", "TFLM's step, or the tuned structure")
        s.add("gates", ["separate", "fused"], "separate", "a unit's four gates in one pass")
        s.add("cell_update", ["pass", "unit"], "pass", "per unit right after its gates, or a pass")
        s.add("block_u", [u for u in (1, 2, 4) if u <= d["units"]], 1, "units per recurrent block")
        xblocks = [u for u in (1, 2, 4, 8) if u <= d["units"]]
        s.add("xblock_u", xblocks, 1, "units (of one gate) per input-projection block")
        s.add("xproj", ["chunk", "all"], "chunk", "input projection per block_t steps or all")
        s.add("block_t", [t for t in (1, 2, 4) if t <= d["steps"]], 1, "steps projected together")
        simd = ["none"] + (["dsp"] if target.has("dsp") else [])
        longest = max(d["features"], d["units"])
        simd += ["neon"] if target.has("neon") and longest >= 16 else []
        s.add("simd", simd, "none", "ISA path: dsp = SXTB16 + SMLAD, neon = VMULL/VMLAL")
        s.add("wpack", ["int8", "int16"], "int8", "DSP weights: int8 split at run time, or int16")
        dsp_groups = max(d["features"], d["units"]) // 4
        unrolls = [u for u in (1, 2, 4) if u <= max(d["features"], d["units"])]
        s.add("unroll", unrolls, 1, "dot-product unroll (elements; groups of 4 on DSP)")
        s.add("requant", ["ref", "fast"], "ref", "TFLM's requantization, or the fused exact one")
        s.add("act", ["ref", "lean"], "ref", "TFLite's table sigmoid/tanh, or its branch-free form")
        s.add("presched", [True, False], True, "compiler scheduling before register allocation")
        s.add("opt", OPT_LEVELS, "-O2", "compiler optimization level")
        base = s.baseline()

        def check(p: Point) -> str | None:
            if p["mode"] == "reference":
                rest = {k: v for k, v in p.items() if k not in ("mode", "opt")}
                if rest != {k: base[k] for k in rest}:
                    return "the reference step takes no fusion, blocking, SIMD or fast forms"
                return None
            per_unit = 4 if p["gates"] == "fused" else 1
            if p["block_u"] * per_unit > MAX_ACCUMULATORS:
                return f"{p['block_u'] * per_unit} recurrent rows: more than 8 accumulators"
            if p["xblock_u"] * p["block_t"] > MAX_ACCUMULATORS:
                return f"{p['xblock_u']} rows x {p['block_t']} steps: more than 8 accumulators"
            if p["cell_update"] == "unit" and p["gates"] != "fused":
                return "a unit's update right after its gates needs the gates fused"
            if p["simd"] != "dsp" and p["wpack"] != "int8":
                return "int16 weights are the DSP path's layout"
            if p["simd"] == "dsp" and p["unroll"] > max(1, dsp_groups):
                return f"unroll {p['unroll']} exceeds the {dsp_groups} groups of 4"
            if p["simd"] == "neon" and p["unroll"] > max(1, longest // 16):
                return f"unroll {p['unroll']} exceeds the {longest // 16} groups of 16"
            return None

        s.require(check)
        return s

    def suggestions(self, spec: KernelSpec, target: Target) -> list[Point]:
        """Expert points: a unit's four gates fused (two units per recurrent block), the
        input projection of two steps sharing each weight, the exact fast forms; on DSP
        cores SMLAD on int16 weights (then int8 weights, half the flash)."""
        space = self.space(spec, target)
        fused = {
            **space.baseline(),
            "mode": "fused",
            "gates": "fused",
            "requant": "fast",
            "act": "lean",
        }
        shapes: list[dict[str, Any]] = [
            {"block_u": 2, "xblock_u": 2, "block_t": 2, "presched": False},
            {"block_u": 2, "xblock_u": 8, "block_t": 1, "presched": False},
            {"block_u": 2, "xblock_u": 4, "block_t": 2, "presched": False},
            {"block_u": 1, "xblock_u": 2, "block_t": 2, "unroll": 2},
            {"gates": "separate", "block_u": 4, "xblock_u": 2, "block_t": 4},
        ]
        points = []
        if target.has("neon"):
            points += [{**fused, **shape, "simd": "neon", "unroll": 1} for shape in shapes]
        if target.has("dsp"):
            points += [{**fused, **shape, "simd": "dsp", "wpack": "int16"} for shape in shapes]
            points.append({**points[0], "opt": "-O3"})
            points.append({**points[0], "wpack": "int8"})
        points += [{**fused, **shape, "unroll": 2} for shape in shapes]
        choices = {p.name: p.choices for p in space.params}
        valid: list[Point] = []
        for point in points:
            # Shrink what this layer's shape cannot take (few units or steps) to 1.
            point = {k: (v if v in choices[k] else 1) for k, v in point.items()}
            if space.check(point) is None and point not in valid:
                valid.append(point)
        return valid

    def scratch_bytes(self, spec: KernelSpec, target: Target, params: Point) -> int:
        d = spec.dims
        per_row = 4 * d["units"] * 2  # one int16 pre-activation per gate and unit
        if params["mode"] == "reference":
            rows = d["batches"] if d["time_major"] else 1
            return 5 * rows * d["units"] * 2  # four gates and one product buffer, TFLM's
        steps = d["steps"] if params["xproj"] == "all" else params["block_t"]
        return steps * d["batches"] * per_row

    # ------------------------------------------------------------------ rendering

    def context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        s = spec.scalars
        gate_scaling = int16_input_scaling(0, 0)  # Q3.12 -> the table's input units
        cell_scaling = (s["cell_tanh_multiplier"], s["cell_tanh_shift"])
        ctx: dict[str, Any] = {
            "hzp": s["hidden_zero_point"],
            "gate_scaling": gate_scaling,
            "cell_scaling": cell_scaling,
            "clip": s["cell_clip"],
            "gate_names": GATE_NAMES,
        }
        if params["mode"] == "reference":
            ctx.update(self._reference_context(spec))
        else:
            ctx.update(self._fused_context(spec, target, params))
        ctx["act"] = self._activations(params, gate_scaling, cell_scaling)
        ctx["products"] = self._products(spec, target, params)
        return ctx

    def _reference_context(self, spec: KernelSpec) -> dict[str, Any]:
        c = spec.consts
        units = spec.dims["units"]
        arrays = [
            "/* Weights [gate][unit][k] in TFLite's gate order (input, forget, cell, output). */",
            c_array("int8_t", "W_INPUT", c["input_weights"].reshape(-1)),
            c_array("int8_t", "W_RECURRENT", c["recurrent_weights"].reshape(-1)),
            "/* The layer's biases as stored, [gate][unit]. */",
            c_array("int32_t", "BIAS", c["bias"], per_line=8),
        ]
        gates = []
        for g in range(4):
            gates.append(
                {
                    "input": (int(c["input_multiplier"][g]), int(c["input_shift"][g])),
                    "recurrent": (int(c["recurrent_multiplier"][g]), int(c["recurrent_shift"][g])),
                    "offset": g * units,
                }
            )
        return {"arrays": "\n".join(arrays), "gates": gates}

    def _bounds(self, spec: KernelSpec) -> tuple[np.ndarray, np.ndarray]:
        """Per row, a bound on |accumulator| (and its partial sums), input and recurrent."""
        c = spec.consts
        out = []
        for w, b in (
            (c["input_weights"], c["input_bias"]),
            (c["recurrent_weights"], c["recurrent_bias"]),
        ):
            rows = w.reshape(b.size, -1).astype(np.int64)
            out.append(np.abs(b.astype(np.int64)) + 128 * np.abs(rows).sum(axis=1))
        return out[0], out[1]

    def _fused_context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        d, c = spec.dims, spec.consts
        units, features = d["units"], d["features"]
        fused = params["gates"] == "fused"
        simd = params["simd"] == "dsp"
        pack = ("dsp16" if params["wpack"] == "int16" else "dsp8") if simd else "int8"
        pack = "neon" if params["simd"] == "neon" else pack
        wx = c["input_weights"].reshape(4 * units, features)
        wh = c["recurrent_weights"].reshape(4 * units, units)
        x_main, x_tail, x_row, x_trow = lay_out(
            wx, row_blocks(units, False, params["xblock_u"]), pack
        )
        h_main, h_tail, h_row, h_trow = lay_out(
            wh, row_blocks(units, fused, params["block_u"]), pack
        )
        wtype = "int8_t" if pack in ("int8", "neon") else "uint32_t"
        arrays = [
            f"/* Input weights by row block ({params['xblock_u']} unit(s) of one gate), "
            + {
                "int8": "[k][row] per block. */",
                "dsp16": "per 4 k and row the SMLAD pairs (k, k+2), (k+1, k+3). */",
                "dsp8": "per 4 k and row one word of 4 bytes, split by SXTB16. */",
                "neon": "per 16 k and row 16 bytes, then the K % 16 tail [k][row]. */",
            }[pack],
        ]
        if x_row:
            arrays.append(c_array(wtype, "WX", x_main, per_line=6 if wtype == "uint32_t" else 16))
        if x_trow:
            arrays.append(c_array("int8_t", "WXT", x_tail))
        arrays.append(
            f"/* Recurrent weights, {params['block_u']} unit(s) per block, the same layout. */"
        )
        if h_row:
            arrays.append(c_array(wtype, "WH", h_main, per_line=6 if wtype == "uint32_t" else 16))
        if h_trow:
            arrays.append(c_array("int8_t", "WHT", h_tail))
        arrays += [
            "/* Biases with the input zero point folded in: bias - input_zp * row sum. */",
            c_array("int32_t", "BX", c["input_bias"], per_line=8),
        ]
        has_bh = bool(np.any(c["recurrent_bias"] != 0))
        if has_bh:
            arrays += [
                "/* The hidden zero point folded: -hidden_zp * row sum. */",
                c_array("int32_t", "BH", c["recurrent_bias"], per_line=8),
            ]
        bx, bh = self._bounds(spec)
        fast = params["requant"] == "fast"
        gates = []
        for g in range(4):
            sl = slice(g * units, (g + 1) * units)
            xq = (int(c["input_multiplier"][g]), int(c["input_shift"][g]))
            hq = (int(c["recurrent_multiplier"][g]), int(c["recurrent_shift"][g]))
            rx = Requant(*xq, fast=fast and _fits_fast(*xq, int(bx[sl].max())))
            rh = Requant(*hq, fast=fast and _fits_fast(*hq, int(bh[sl].max())))
            gates.append(
                {
                    "x": lambda acc, q=rx: requant_c(acc, q, 0, 16, simd),
                    "h": lambda acc, q=rh: requant_c(acc, q, 0, 16, simd),
                }
            )
        return {
            "arrays": "\n".join(arrays),
            "gates": gates,
            "fused": fused,
            "BT": params["block_t"],
            "pack": pack,
            "neon_pair": neon_pairs_exact(np.concatenate([wx.reshape(-1), wh.reshape(-1)])),
            "wtype": wtype,
            "has_bh": has_bh,
            "loops": unit_loops(units, params["block_u"]),
            "xloops": unit_loops(units, params["xblock_u"]),
            "xk": {"K": features, "row": x_row, "trow": x_trow},
            "hk": {"K": units, "row": h_row, "trow": h_trow},
        }

    def _activations(
        self, params: Point, gate_scaling: tuple[int, int], cell_scaling: tuple[int, int]
    ) -> dict[str, str]:
        """C macro bodies (argument x) of the three activations."""
        cell_in = f"at_fp_scale_int16((x), {cell_scaling[0]}, {cell_scaling[1]})"
        if params["act"] == "lean":
            # at_lstm_sigmoid_q3_12 bakes in the gate scaling x * 3: make sure it is that.
            assert gate_scaling == (3, 0), gate_scaling
            return {
                "sigmoid": "at_lstm_sigmoid_q3_12(x)",
                "tanh": "at_lstm_tanh(3 * (x))",
                "cell_tanh": f"at_lstm_tanh({cell_in})",
            }
        gate_in = f"at_fp_scale_int16((x), {gate_scaling[0]}, {gate_scaling[1]})"
        return {
            "sigmoid": f"at_fp_sigmoid_s16({gate_in})",
            "tanh": f"at_fp_tanh_s16({gate_in})",
            "cell_tanh": f"at_fp_tanh_s16({cell_in})",
        }

    def _products(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        """The cell update's three requantized products, as C expressions of `acc`.

        |gate * gate| < 2^30 (sigmoid and tanh outputs stay within +-32767), so the
        fused requantization applies wherever the shift is negative."""
        s = spec.scalars
        fast = params["requant"] == "fast"
        simd = params["simd"] == "dsp"
        hzp = s["hidden_zero_point"]
        out: dict[str, Callable[[str], str]] = {}
        for name, offset, bits in (
            ("forget_cell", 0, 16),
            ("input_cell", 0, 16),
            ("hidden", hzp, 8),
        ):
            m, sh = s[f"{name}_multiplier"], s[f"{name}_shift"]
            q = Requant(m, sh, fast=fast and _fits_fast(m, sh, 2**30 - 1, offset))
            out[name] = lambda acc, q=q, o=offset, b=bits: requant_c(acc, q, o, b, simd)
        return out


TEMPLATES = [LstmTemplate()]

"""DEPTHWISE_CONV_2D templates: general (any kernel, stride, dilation, multiplier) and 3x3.

Both render depthwise.c.j2. The baseline is TFLM's reference loop. The tiled
variants split the output into regions whose valid kernel taps are known when the
code is generated: inside a region there are no bounds checks, the input offset is
folded into a per-region bias (bias + input_offset * sum of that region's weights),
and the taps are unrolled with constant input offsets. Everything a channel block
needs (weights, requantization values, one bias per region) sits in one constant
stream, so the inner loop walks a single pointer.

On DSP cores a block is 4 channels: one word load fetches the 4 channels' inputs of
a tap, SXTB16 splits it into two packed int16 pairs and SMLABB/SMLATT accumulate each
channel with one instruction per MAC against int16 weight pairs expanded here.

The "fast" requantization (see depthwise_requant.j2) doubles the weights so that the
accumulator already holds 2 * acc, and replaces TFLM's two roundings by one
multiply-accumulate and one shift; it is offered only when this layer's values
provably keep it bit-exact (negative shifts, accumulator bound below 2^30).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from autotune.platform.target import Target
from autotune.tune.space import Point, Space
from autotune.tune.spec import KernelSpec
from autotune.tune.template import KernelTemplate, Rendered, c_array, pack_int16_pairs

OPT_LEVELS = ["-O2", "-O3", "-Os"]
MAX_UNROLLED_TAP_BODIES = 400  # regions x taps, beyond which borders stay checked loops
MAX_ACCUMULATORS = 8


@dataclass(frozen=True)
class AxisBand:
    """A run of output positions along one axis whose valid kernel taps are the same."""

    start: int
    stop: int
    taps: tuple[int, ...]


def axis_bands(out_n: int, in_n: int, k: int, stride: int, dil: int, pad: int) -> list[AxisBand]:
    """Output positions grouped by the kernel taps that land inside the input."""
    bands: list[AxisBand] = []
    for o in range(out_n):
        base = o * stride - pad
        taps = tuple(t for t in range(k) if 0 <= base + t * dil < in_n)
        if bands and bands[-1].taps == taps:
            last = bands[-1]
            bands[-1] = AxisBand(last.start, o + 1, taps)
        else:
            bands.append(AxisBand(o, o + 1, taps))
    return bands


@dataclass(frozen=True)
class Region:
    """A rectangle of output pixels computed by one code path.

    checked: the taps are tested against the image at run time (TFLM style, the
    offset added per element); otherwise `ky`/`kx` are the taps valid for every
    pixel of the region and `slot` names its folded bias in the stream.
    """

    y0: int
    y1: int
    x0: int
    x1: int
    checked: bool
    ky: tuple[int, ...] = ()
    kx: tuple[int, ...] = ()
    slot: int = 0


def _merge(bands: list[AxisBand], k: int) -> list[tuple[int, int, bool]]:
    """Bands as (start, stop, full): every band with all k taps is full, the rest border."""
    out: list[tuple[int, int, bool]] = []
    for b in bands:
        full = len(b.taps) == k
        if out and out[-1][2] == full and out[-1][1] == b.start and not full:
            out[-1] = (out[-1][0], b.stop, False)
        else:
            out.append((b.start, b.stop, full))
    return out


def _tap_sum(spec: KernelSpec, ky: tuple[int, ...], kx: tuple[int, ...]) -> np.ndarray:
    w = spec.consts["weights"].astype(np.int64)[0]  # [KH][KW][OC]
    if not ky or not kx:
        return np.zeros(w.shape[2], np.int64)
    return w[np.ix_(ky, kx)].reshape(-1, w.shape[2]).sum(axis=0)


@dataclass(frozen=True)
class FastRequant:
    """Per channel: TFLM's multiplier, k = 2^(e-1) + output_offset * 2^e, right shift e."""

    mult: np.ndarray
    k: np.ndarray
    e: np.ndarray


def fast_requant(
    mult: np.ndarray, shift: np.ndarray, output_offset: int, acc_bound: int
) -> FastRequant | str:
    """The fast requantization's values, or why it would not be bit-exact for them.

    acc_bound bounds |acc| (and every partial sum) of the undoubled accumulator.
    """
    m = np.asarray(mult, np.int64)
    s = np.asarray(shift, np.int64)
    if np.any(m <= 0):
        return "a multiplier is not positive"
    if np.any(s >= 0):
        return "a channel has a non-negative shift (scale >= 0.5)"
    if 2 * acc_bound >= 2**31:
        return f"accumulators may reach {acc_bound}, too close to 2^30 to double"
    e = -s
    k = (np.int64(1) << (e - 1)) + np.int64(output_offset) * (np.int64(1) << e)
    if np.any(np.abs(k) >= 2**30):
        return "output offset scaled by the shift does not fit the rounding term"
    return FastRequant(m, k, e)


def requant_expr(
    acc: str, q: list[str], fast: bool, dsp: bool, lo: int, hi: int, const_e: int | None
) -> str:
    """C expression of a requantized, clamped output from accumulator `acc`.

    q holds the C expressions of (mult, k, e) for the fused form, (mult, shift) for
    TFLM's. On DSP cores SSAT saturates to int8 (with a constant shift folded in).
    """
    if fast and dsp and const_e is not None:
        v, sat = f"AT_REQUANT_FUSED_SAT8({acc}, {q[0]}, {q[1]}, {const_e})", True
    elif fast:
        v, sat = f"at_requant_fused({acc}, {q[0]}, {q[1]}, {q[2]})", dsp
        if dsp:
            v = f"at_sat8({v})"
    else:
        v, sat = f"at_requantize({acc}, {q[0]}, {q[1]}) + OUTPUT_OFFSET", dsp
        if dsp:
            v = f"at_sat8({v})"
    if not sat:
        return f"at_clamp({v}, ACT_MIN, ACT_MAX)"
    if lo > -128:
        v = f"at_max32({v}, ACT_MIN)"
    if hi < 127:
        v = f"at_min32({v}, ACT_MAX)"
    return v


def tidy_c(source: str) -> str:
    """Re-indent generated C by brace depth and drop redundant blank lines.

    The templates nest Jinja macros several levels deep; indenting here keeps the
    emitted code readable without threading indentation through every macro.
    Preprocessor lines (and their continuations) are left as they are.
    """
    out: list[str] = []
    depth = 0
    continued = False
    for raw in source.splitlines():
        line = raw.strip()
        if continued:
            out.append(raw.rstrip())
            continued = line.endswith("\\")
            continue
        if line.startswith("#"):
            out.append(line)
            continued = line.endswith("\\")
            continue
        if not line:
            if out and out[-1] and not out[-1].endswith("{"):
                out.append("")
            continue
        if line.startswith("}") and out and not out[-1]:
            out.pop()
        indent = depth - (1 if line.startswith("}") else 0)
        pad = " " if line.startswith("*") else ""
        out.append("    " * max(0, indent) + pad + line)
        if not line.startswith(("/*", "*")):
            depth += line.count("{") - line.count("}")
    return "\n".join(out).rstrip() + "\n"


def _wrap32(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, np.int64)
    return (((v + 2**31) & 0xFFFFFFFF) - 2**31).astype(np.int64)


class _DepthwiseBase(KernelTemplate):
    op = "DEPTHWISE_CONV_2D"
    main_file = "depthwise.c.j2"
    files = ("depthwise_requant.j2",)

    # ---------------------------------------------------------------- geometry

    def bands(self, spec: KernelSpec) -> tuple[list[AxisBand], list[AxisBand]]:
        d = spec.dims
        rows = axis_bands(d["out_h"], d["in_h"], d["k_h"], d["stride_h"], d["dil_h"], d["pad_top"])
        cols = axis_bands(d["out_w"], d["in_w"], d["k_w"], d["stride_w"], d["dil_w"], d["pad_left"])
        return rows, cols

    def regions(self, spec: KernelSpec, borders: str) -> list[Region]:
        """Output regions; with borders="unrolled" every tap class gets its own code."""
        d = spec.dims
        rows, cols = self.bands(spec)
        out: list[Region] = []
        if borders == "unrolled":
            classes: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
            for rb in rows:
                for cb in cols:
                    slot = classes.setdefault((rb.taps, cb.taps), len(classes))
                    out.append(
                        Region(rb.start, rb.stop, cb.start, cb.stop, False, rb.taps, cb.taps, slot)
                    )
            return out
        full_ky, full_kx = tuple(range(d["k_h"])), tuple(range(d["k_w"]))
        for y0, y1, yfull in _merge(rows, d["k_h"]):
            if not yfull:
                out.append(Region(y0, y1, 0, d["out_w"], True))
                continue
            for x0, x1, xfull in _merge(cols, d["k_w"]):
                if xfull:
                    out.append(Region(y0, y1, x0, x1, False, full_ky, full_kx, 0))
                else:
                    out.append(Region(y0, y1, x0, x1, True))
        return out

    def tap_bodies(self, spec: KernelSpec) -> int:
        """Unrolled tap bodies that borders="unrolled" would generate (a code-size proxy)."""
        rows, cols = self.bands(spec)
        return sum(len(r.taps) * len(c.taps) for r in rows for c in cols)

    def acc_bound(self, spec: KernelSpec) -> int:
        """|acc| and every partial sum, in either accumulation order, stay below this."""
        w = np.abs(spec.consts["weights"].astype(np.int64)[0]).reshape(-1, spec.dims["out_c"])
        wsum = w.sum(axis=0)
        bias = np.abs(spec.consts["bias"].astype(np.int64))
        io = abs(spec.scalars["input_offset"])
        # Folded bias: |bias| + |io| * sum|w|; then raw inputs (|x| <= 128) times weights.
        # Unfolded: |bias| + (|x + io| <= 128 + |io|) * sum|w|.
        return int(np.max(bias + (io + 128) * wsum))

    def fast(self, spec: KernelSpec) -> FastRequant | str:
        return fast_requant(
            spec.consts["mult"],
            spec.consts["shift"],
            spec.scalars["output_offset"],
            self.acc_bound(spec),
        )

    # ---------------------------------------------------------------- space

    def _common_space(self, spec: KernelSpec, target: Target, s: Space) -> None:
        d = spec.dims
        # Choices the shape cannot use are left out, so that every choice is reachable.
        simd = ["none"] + (["dsp"] if target.has("dsp") and d["in_c"] >= 4 else [])
        blocks_c = [b for b in (1, 2, 4) if b <= d["in_c"]]
        unrolls = [u for u in (1, 2, 4) if any((d["in_c"] // b) % u == 0 for b in blocks_c)]
        s.add("simd", simd, "none", "ISA path: dsp = SXTB16 + SMLABB/SMLATT on 4 channels")
        s.add("order", ["pixel", "channel"], "pixel", "outer loop: pixels, or channel blocks")
        s.add("block_c", blocks_c, 1, "input channels per pass (4 on the DSP path)")
        s.add(
            "block_px", [b for b in (1, 2, 3, 4) if b <= d["out_w"]], 1, "adjacent pixels per pass"
        )
        s.add("requant", ["ref", "fast"], "ref", "TFLM's requantization, or the fused one")
        s.add("unroll_c", unrolls, 1, "channel-block loop unrolled (pixel order)")
        s.add("presched", [True, False], True, "compiler scheduling before register allocation")
        s.add("slp", [True, False], True, "compiler SLP vectorization (packs adjacent stores)")
        s.add("opt", OPT_LEVELS, "-O2", "compiler optimization level")
        fast = self.fast(spec)

        def check(p: Point) -> str | None:
            if p.get("mode", "tiled") == "direct":
                rest = {k: v for k, v in p.items() if k not in ("mode", "opt")}
                if rest != {k: v for k, v in s.baseline().items() if k in rest}:
                    return "the direct loop takes no tiling, blocking, SIMD or fused requant"
                return None
            if p["requant"] == "fast" and isinstance(fast, str):
                return f"requant=fast is not exact for this layer: {fast}"
            if p["simd"] == "dsp":
                if p["block_c"] != 4:
                    return "the DSP path works on blocks of 4 channels"
                if p["order"] != "pixel":
                    return "the DSP path walks pixels outside, channel blocks inside"
                if p["block_px"] > 2:
                    return "the DSP path holds at most 2 pixels x 4 channels of accumulators"
            if p["unroll_c"] > 1:
                if p["order"] != "pixel":
                    return "unroll_c unrolls the channel-block loop of the pixel order"
                blocks = d["in_c"] // p["block_c"]
                if blocks == 0 or blocks % p["unroll_c"]:
                    return f"unroll_c {p['unroll_c']} does not divide {blocks} channel blocks"
            if p["block_px"] * p["block_c"] > MAX_ACCUMULATORS:
                return "more than 8 accumulators spill registers"
            taps = d["k_h"] * d["k_w"]
            if p["order"] == "channel" and self.unroll_taps(p) and p["block_c"] * taps > 24:
                return "the channel order keeps every weight of a block in registers (<= 24)"
            return None

        s.require(check)

    # ---------------------------------------------------------------- rendering

    def render(self, spec: KernelSpec, target: Target, params: Point, function: str) -> Rendered:
        rendered = super().render(spec, target, params, function)
        return dataclasses.replace(rendered, source=tidy_c(rendered.source))

    def suggestions(self, spec: KernelSpec, target: Target) -> list[Point]:
        """Expert starting points: the DSP path on DSP cores, the channel order (weights in
        registers, 2 pixels sharing their loads) and 4-channel pixel order elsewhere."""
        space = self.space(spec, target)
        base = {**space.baseline(), **self.tiled_defaults(spec)}
        base["requant"] = "ref" if isinstance(self.fast(spec), str) else "fast"
        late = {"presched": False, "slp": False}
        points: list[Point] = []
        if target.has("dsp"):
            dsp = {**base, "simd": "dsp", "block_c": 4, **late}
            for px, unroll in ((2, 2), (1, 4), (2, 4), (1, 1)):
                points.append({**dsp, "block_px": px, "unroll_c": unroll})
            if "borders" in base:
                # Compact: one unrolled interior, borders as checked loops (a fraction of
                # the code of per-region bodies at nearly their speed).
                compact = {**dsp, "borders": "checked", "unroll_taps": True, "unroll_c": 1}
                points += [{**compact, "block_px": 2}, {**compact, "block_px": 1}]
        points.append({**base, "order": "channel", "block_px": 2, "presched": False})
        points.append({**base, "block_px": 2})
        points.append({**base, "order": "channel"})
        points.append({**base, "block_c": 4})
        valid = [p for p in points if space.check(p) is None]
        return list({repr(sorted(p.items())): p for p in valid}.values())

    def tiled_defaults(self, spec: KernelSpec) -> Point:
        """The parameters that turn the baseline point into a tiled kernel."""
        return {}

    def unroll_taps(self, params: Point) -> bool:
        return True

    def borders(self, params: Point) -> str:
        return "unrolled"

    def context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        w = spec.consts["weights"].astype(np.int64)[0]  # [KH][KW][OC]
        per_channel = bool(spec.flags.get("per_channel"))
        mult = spec.consts["mult"].astype(np.int64)
        shift = spec.consts["shift"].astype(np.int64)
        bias = spec.consts["bias"].astype(np.int64)
        if params.get("mode", "tiled") == "direct":
            arrays = [
                c_array("int8_t", "W8", w.reshape(-1)),
                c_array("int32_t", "BIAS", bias),
            ]
            uniform = not per_channel or (np.all(mult == mult[0]) and np.all(shift == shift[0]))
            if not uniform:
                arrays.append(c_array("int32_t", "MULT", mult, per_line=8))
                arrays.append(c_array("int32_t", "SHIFT", shift))
            return {
                "arrays": "\n\n".join(arrays),
                "uniform_q": uniform,
                "q0": (int(mult[0]), int(shift[0])),
            }
        return self._tiled_context(spec, params, w, mult, shift, bias)

    def _tiled_context(
        self,
        spec: KernelSpec,
        params: Point,
        w: np.ndarray,
        mult: np.ndarray,
        shift: np.ndarray,
        bias: np.ndarray,
    ) -> dict[str, Any]:
        d = spec.dims
        kh, kw, c_in, dm = d["k_h"], d["k_w"], d["in_c"], d["depth_multiplier"]
        taps = kh * kw
        io = spec.scalars["input_offset"]
        fast = params["requant"] == "fast"
        fr = self.fast(spec) if fast else None
        assert not isinstance(fr, str)
        scale = 2 if fast else 1
        regions = self.regions(spec, self.borders(params))
        slots: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        for r in regions:
            if not r.checked:
                slots[r.slot] = (r.ky, r.kx)
        nslots = max(slots, default=-1) + 1
        checked_slot = nslots  # the plain bias, for checked regions
        bias_sets = [
            _wrap32(scale * (bias + io * _tap_sum(spec, *slots[i]))) for i in range(nslots)
        ]
        bias_sets.append(_wrap32(scale * bias))

        # Requantization values: constants when uniform, else per channel in the stream.
        if fast:
            assert fr is not None
            qcols = [fr.mult, fr.k, fr.e]
        else:
            qcols = [mult, shift]
        uniform = all(np.all(q == q[0]) for q in qcols)
        nq = 0 if uniform else len(qcols)
        qconst = [int(q[0]) for q in qcols]

        simd = params["simd"] == "dsp"
        block = 4 if simd else params["block_c"]
        main_c = c_in - c_in % block
        wd = w.reshape(taps, -1) * scale  # [T][OC], doubled for the fast requant

        def entry(chans: list[int], dsp: bool) -> tuple[list[int], dict[str, int]]:
            """One stream entry for output channels `chans` (one per input channel)."""
            words: list[int] = []
            if dsp:
                for t in range(taps):
                    we = pack_int16_pairs(wd[t, [chans[0]]], wd[t, [chans[2]]])[0]
                    wo = pack_int16_pairs(wd[t, [chans[1]]], wd[t, [chans[3]]])[0]
                    words += [int(np.int32(np.uint32(we))), int(np.int32(np.uint32(wo)))]
            else:
                for t in range(taps):
                    words += [int(wd[t, c]) for c in chans]
            q_at = len(words)
            # DSP blocks of the fused form: (mult, k) pairs, then the 4 shifts, so that
            # every pair of words is read by one LDRD.
            paired = dsp and nq == 3
            if paired:
                words += [int(q[c]) for c in chans for q in qcols[:2]]
                words += [int(qcols[2][c]) for c in chans]
            elif nq:
                words += [int(q[c]) for c in chans for q in qcols]
            b_at = len(words)
            for bs in bias_sets:
                words += [int(bs[c]) for c in chans]
            return words, {"q": q_at, "b": b_at, "paired": int(paired)}

        def stream(first: int, stop: int, size: int, dsp: bool) -> tuple[list[int], dict[str, int]]:
            words: list[int] = []
            layout: dict[str, int] = {"q": 0, "b": 0, "paired": 0}
            for ic in range(first, stop, size):
                for m in range(dm):
                    chans = [(ic + j) * dm + m for j in range(size)]
                    ew, layout = entry(chans, dsp)
                    words += ew
            return words, layout

        main, layout = stream(0, main_c, block, simd)
        tail, tail_layout = stream(main_c, c_in, 1, False)
        arrays = []
        if main:
            arrays.append(c_array("int32_t", "PS", main, per_line=8))
        if tail:
            arrays.append(c_array("int32_t", "PT", tail, per_line=8))
        stride = len(main) // max(1, (main_c // block) * dm) if main else 0
        tail_stride = len(tail) // max(1, (c_in - main_c) * dm) if tail else 0

        def offsets(r: Region) -> dict[str, Any]:
            """Base-pointer offsets and tap list of an unchecked region."""
            ky0, kx0 = r.ky[0], r.kx[0]
            tap_list = [
                (
                    ky * kw + kx,
                    ((ky - ky0) * d["dil_h"] * d["in_w"] + (kx - kx0) * d["dil_w"]) * c_in,
                )
                for ky in r.ky
                for kx in r.kx
            ]
            return {
                "row_base": ky0 * d["dil_h"] - d["pad_top"],
                "col_base": kx0 * d["dil_w"] - d["pad_left"],
                "taps": tap_list,
            }

        def uses(r: Region, npx: int) -> list[tuple[int, list[tuple[int, int]]]]:
            """Input loads of npx adjacent pixels: (offset, [(pixel, tap)...]), each once."""
            by_off: dict[int, list[tuple[int, int]]] = {}
            for px in range(npx):
                for t, off in offsets(r)["taps"]:
                    by_off.setdefault(off + px * d["stride_w"] * c_in, []).append((px, t))
            return sorted(by_off.items())

        # Taps read by some unchecked region: the channel order holds exactly these in locals.
        hoisted = sorted(
            {ky * kw + kx for r in regions if not r.checked for ky in r.ky for kx in r.kx}
        )
        region_list = []
        for r in regions:
            info: dict[str, Any] = {"r": r}
            if not r.checked:
                info.update(offsets(r))
            region_list.append(info)
        lo, hi = spec.scalars["act_min"], spec.scalars["act_max"]
        const_e = qconst[2] if fast and nq == 0 else None

        def requant(acc: str, q: list[str]) -> str:
            return requant_expr(acc, q, fast, simd, lo, hi, const_e)

        return {
            "arrays": "\n\n".join(arrays),
            "requant": requant,
            "regions": region_list,
            "uses": uses,
            "fast": fast,
            "nq": nq,
            "qconst": qconst,
            "block": block,
            "main_c": main_c,
            "stride": stride,
            "tail_stride": tail_stride,
            "layout": layout,
            "tail_layout": tail_layout,
            "checked_slot": checked_slot,
            "hoisted": hoisted,
            "unroll_taps": self.unroll_taps(params),
        }


class DepthwiseGeneral(_DepthwiseBase):
    """Any DEPTHWISE_CONV_2D: TFLM's reference loop (the baseline), or tiled regions."""

    name = "depthwise_general"

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        return spec.op == "DEPTHWISE_CONV_2D"

    def space(self, spec: KernelSpec, target: Target) -> Space:
        s = Space()
        s.add("mode", ["direct", "tiled"], "direct", "TFLM's loop, or tiled regions")
        borders = ["checked"]
        if self.tap_bodies(spec) <= MAX_UNROLLED_TAP_BODIES:
            borders.append("unrolled")
        s.add("borders", borders, "checked", "border pixels: run-time checks, or per-class code")
        s.add("unroll_taps", [False, True], False, "interior kernel taps unrolled")
        self._common_space(spec, target, s)
        return s

    def tiled_defaults(self, spec: KernelSpec) -> Point:
        few = self.tap_bodies(spec) <= MAX_UNROLLED_TAP_BODIES
        return {"mode": "tiled", "borders": "unrolled" if few else "checked", "unroll_taps": True}

    def unroll_taps(self, params: Point) -> bool:
        return bool(params["unroll_taps"]) or params["borders"] == "unrolled"

    def borders(self, params: Point) -> str:
        return str(params["borders"])


class Depthwise3x3(_DepthwiseBase):
    """3x3 kernels: every region of the output (interior, edges, corners) has its own
    fully unrolled code and folded bias, so no pixel pays a bounds check."""

    name = "depthwise_3x3"

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        d = spec.dims
        return spec.op == "DEPTHWISE_CONV_2D" and d["k_h"] == 3 and d["k_w"] == 3

    def space(self, spec: KernelSpec, target: Target) -> Space:
        s = Space()
        self._common_space(spec, target, s)
        return s


TEMPLATES = [DepthwiseGeneral(), Depthwise3x3()]

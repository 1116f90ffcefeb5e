"""A MIPS32 template: dot products as MADD chains in HI/LO, for FULLY_CONNECTED and 1x1 CONV_2D.

Why MIPS-specific: MADD multiplies two registers and adds to the 64-bit HI/LO
accumulator in one instruction (one per cycle on the microAptiv for 16-bit
operands), where portable C needs a MUL and an ADDU. GCC does not keep an
accumulator in HI/LO across a loop or a sequence of inline-assembly statements (it
moves it through GPRs with MFLO/MFHI/MTLO/MTHI each time), so each unit's dot
product over a chunk of inputs is a single assembly block: MTLO, the MADDs, MFLO.
Only LO is read, so HI never needs initialising: LO ends as the int32 sum modulo
2^32, which is what TFLM's int32 accumulator holds.

The tunable choices: how many inputs a chunk holds in registers (reused by every
unit, so loaded once per row), weights from a table in flash or as immediates in the
code (no loads at all, zero weights skipped, at 8 bytes of code per weight), and
the optimisation level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from autotune.codegen import c_array
from autotune.platform.target import Target
from autotune.tune.space import Point, Space
from autotune.tune.spec import KernelSpec
from autotune.tune.template import KernelTemplate

from autotune_mips.isa import ISA_NAME

CHUNKS = (4, 8, 12, 16)  # input values held in registers (MIPS o32 has ~24 free GPRs)
MAX_IMMEDIATE_MACS = 4096  # beyond this, immediate weights cost too much flash
OPT_LEVELS = ("-O2", "-Os", "-O3")


def _wrap32(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, np.int64)
    return (((v + 2**31) & 0xFFFFFFFF) - 2**31).astype(np.int64)


@dataclass(frozen=True)
class Chunk:
    """Inputs k0..k1-1 of every row, as one group of registers."""

    k0: int
    k1: int
    w0: int  # offset of this chunk's weights in the table
    table_asm: tuple[str, ...]
    imm_asm: tuple[tuple[str, ...], ...]

    @property
    def g(self) -> int:
        return self.k1 - self.k0


def table_asm(g: int, load: str, step: int) -> tuple[str, ...]:
    """MADDs over ``g`` table weights, each loaded one MADD ahead of its use.

    Two temporaries alternate so that a load is never used by the next instruction
    (the microAptiv's load-use stall).
    """
    t = ("%[t0]", "%[t1]")
    lines = [f"{load} {t[0]}, 0(%[wp])"]
    for k in range(g):
        if k + 1 < g:
            lines.append(f"{load} {t[(k + 1) % 2]}, {(k + 1) * step}(%[wp])")
        lines.append(f"madd %[x{k}], {t[k % 2]}")
    return tuple(lines)


def immediate_asm(weights: np.ndarray) -> tuple[str, ...]:
    """MADDs against weights given as immediates; zero weights contribute nothing."""
    lines: list[str] = []
    for k, w in enumerate(int(v) for v in weights):
        if w:
            lines += [f"addiu %[t0], $0, {w}", f"madd %[x{k}], %[t0]"]
    return tuple(lines)


class MaddDot(KernelTemplate):
    """MADD dot products for one op: FULLY_CONNECTED, or CONV_2D when it is 1x1 pointwise."""

    # Looked up in this package (the folder of this module), header.j2 in autotune's.
    main_file = "templates/madd_dot.c.j2"

    def __init__(self, op: str) -> None:
        self.op = op  # type: ignore[misc]
        self.name = f"mips_madd_{op.lower()}"  # type: ignore[misc]

    # -- what a layer looks like as rows of dot products --------------------------

    @staticmethod
    def _shape(spec: KernelSpec) -> tuple[int, int, int]:
        """(rows, depth, units)."""
        d = spec.dims
        if spec.op == "FULLY_CONNECTED":
            return d["batches"], d["depth"], d["units"]
        return d["batches"] * d["out_h"] * d["out_w"], d["in_c"], d["out_c"]

    def weights(self, spec: KernelSpec) -> np.ndarray:
        """[units][depth] int64 with the filter offset added, as TFLM adds it per MAC."""
        _, depth, units = self._shape(spec)
        w = spec.consts["weights"].astype(np.int64).reshape(units, depth)
        return w + int(spec.scalars.get("filter_offset", 0))

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        if target.isa != ISA_NAME or spec.op != self.op:
            return False
        if spec.op == "FULLY_CONNECTED":
            return True
        d = spec.dims
        return (
            (d["k_h"], d["k_w"], d["stride_h"], d["stride_w"]) == (1, 1, 1, 1)
            and (d["dil_h"], d["dil_w"], d["pad_top"], d["pad_left"]) == (1, 1, 0, 0)
            and d.get("groups", 1) == 1
            and (d["in_h"], d["in_w"]) == (d["out_h"], d["out_w"])
        )

    def space(self, spec: KernelSpec, target: Target) -> Space:
        _, depth, units = self._shape(spec)
        s = Space()
        s.add("chunk", [min(c, depth) for c in CHUNKS], min(8, depth), "inputs held in registers")
        modes = ["table"] + (["immediate"] if units * depth <= MAX_IMMEDIATE_MACS else [])
        s.add("weights", modes, "table", "weights loaded from flash, or immediates in the code")
        s.add("opt", list(OPT_LEVELS), "-O2", "compiler optimization level")
        return s

    def suggestions(self, spec: KernelSpec, target: Target) -> list[Point]:
        space = self.space(spec, target)
        points = [
            {"chunk": c, "weights": mode, "opt": "-O2"}
            for mode in ("immediate", "table")
            for c in (16, 12, 8)
        ]
        return [p for p in points if space.check(p) is None]

    def scratch_bytes(self, spec: KernelSpec, target: Target, params: Point) -> int:
        _, depth, units = self._shape(spec)
        return 4 * units if depth > params["chunk"] else 0

    def context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        rows, depth, units = self._shape(spec)
        w = self.weights(spec)
        bias = spec.consts["bias"].astype(np.int64)
        folded = _wrap32(bias + int(spec.scalars["input_offset"]) * w.sum(axis=1))
        mult = spec.consts["mult"].astype(np.int64)
        shift = spec.consts["shift"].astype(np.int64)
        arrays: list[str] = []
        if np.all(mult == mult[0]) and np.all(shift == shift[0]):
            m0, s0 = int(mult[0]), int(shift[0])

            def qm(_u: object) -> str:
                return str(m0)

            def qs(_u: object) -> str:
                return str(s0)
        else:
            arrays += [c_array("int32_t", "QM", mult, per_line=8), c_array("int32_t", "QS", shift)]

            def qm(u: object) -> str:
                return f"QM[{u}]"

            def qs(u: object) -> str:
                return f"QS[{u}]"

        table = params["weights"] == "table"
        wide = bool(np.abs(w).max(initial=0) > 127)
        wtype = "int16_t" if wide else "int8_t"
        g = params["chunk"]
        chunks: list[Chunk] = []
        blocks: list[np.ndarray] = []
        w0 = 0
        for k0 in range(0, depth, g):
            k1 = min(k0 + g, depth)
            block = w[:, k0:k1]
            blocks.append(block.reshape(-1))
            chunks.append(
                Chunk(
                    k0,
                    k1,
                    w0,
                    table_asm(k1 - k0, "lh" if wide else "lb", 2 if wide else 1),
                    tuple(immediate_asm(block[u]) for u in range(units)),
                )
            )
            w0 += block.size
        if table:
            arrays.insert(0, c_array("int32_t", "BIAS", folded, per_line=8))
            arrays.append(c_array(wtype, "W", np.concatenate(blocks)))
        return {
            "arrays": "\n\n".join(arrays),
            "rows": rows,
            "K": depth,
            "U": units,
            "chunks": chunks,
            "bias_c": [int(b) for b in folded],
            "wtype": wtype,
            "qm": qm,
            "qs": qs,
        }


TEMPLATES = (MaddDot("FULLY_CONNECTED"), MaddDot("CONV_2D"))

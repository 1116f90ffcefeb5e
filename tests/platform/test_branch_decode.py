"""Every Thumb branch form is a branch to the cycle models, whatever capstone says it writes.

Capstone lists PC among the written registers for BEQ (16-bit), BL, BX and POP
{PC}, but not for B, B.W, B<cc>.W, CBZ/CBNZ or TBB/TBH; the decoder must still
mark them, so that M0/M3/M4 charge the taken-branch refill and M7 its mispredict.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.platform.cycles import get_model
from autotune.platform.cycles.base import Branch
from tests.platform.test_cycles import asm

# (assembly, expected kind); a branch is the block's first instruction, followed by
# padding so that forward targets are encodable (CBZ cannot branch to the next insn).
FORMS = [
    ("b back", Branch.DIRECT),
    ("b.w back", Branch.DIRECT),
    ("b fwd", Branch.DIRECT),
    ("beq back", Branch.COND),
    ("beq.w back", Branch.COND),
    ("bne.w fwd", Branch.COND),
    ("cbz r0, fwd", Branch.COND),
    ("cbnz r1, fwd", Branch.COND),
    ("bl back", Branch.DIRECT),
    ("bx lr", Branch.INDIRECT),
    ("pop {r4, pc}", Branch.INDIRECT),
    ("tbb [r0, r1]", Branch.INDIRECT),
]


def _branch(text: str, tmp_path: Path, flavour: str = "thumb-m"):
    insns = asm(flavour, f"{text}\nnop\nnop\nnop", tmp_path)
    return insns[:1]


@pytest.mark.parametrize("text,kind", FORMS)
def test_decoder_marks_every_branch_form(text: str, kind: Branch, tmp_path: Path) -> None:
    (insn,) = _branch(text, tmp_path)
    assert insn.branch == kind, insn.text
    if kind != Branch.INDIRECT:
        assert insn.target is not None
        assert insn.backward == ("back" in text)


@pytest.mark.parametrize("text", ["b back", "b.w back", "beq back", "beq.w back", "cbz r0, fwd"])
def test_m4_and_m3_charge_the_refill_when_taken(text: str, tmp_path: Path) -> None:
    # M3/M4 TRM Table 3-1: B, B<cc>, CBZ are 1 cycle, 1 + P when taken; P = 1 for a
    # direct branch (speculated) to a 16-bit target.
    for model in ("cortex-m4 v3", "cortex-m3 v3", "cortex-m33 v3"):
        c = get_model(model).block_cost(_branch(text, tmp_path))
        assert (c.cycles, c.taken_delta) == (1, 1), (model, text)


@pytest.mark.parametrize("text", ["b back", "beq back", "cbz r0, fwd", "cbnz r1, fwd"])
def test_m0_and_m0plus_charge_the_refill_when_taken(text: str, tmp_path: Path) -> None:
    # DDI 0432C Table 3-1 (M0): B 3, B<cc> 1 or 3 -> refill 2; DDI 0484C (M0+): refill 1.
    # CBZ is not in ARMv6-M, so it is decoded from the M7 assembly (same encoding).
    flavour = "thumb-m" if text.startswith("cb") else "thumb-m0"
    insns = _branch(text, tmp_path, flavour)
    assert get_model("cortex-m0 v2").block_cost(insns).taken_delta == 2
    assert get_model("cortex-m0plus v2").block_cost(insns).taken_delta == 1


def test_m7_mispredicts_forward_taken_and_backward_fallthrough(tmp_path: Path) -> None:
    m7 = get_model("cortex-m7 v2")
    # Static BTFN stand-in for the M7 predictor: a forward conditional branch that is
    # taken costs the mispredict (4), a backward one costs it when it falls through.
    for text in ("bne.w fwd", "cbz r0, fwd", "cbnz r1, fwd"):
        c = m7.block_cost(_branch(text, tmp_path))
        assert c.taken_delta == m7.mispredict, text
    for text in ("beq.w back", "beq back"):
        c = m7.block_cost(_branch(text, tmp_path))
        assert c.taken_delta == -m7.mispredict, text
    # Unconditional direct branches are predicted (target buffer): no penalty either way.
    for text in ("b back", "b.w back"):
        c = m7.block_cost(_branch(text, tmp_path))
        assert c.taken_delta == 0 and c.cycles == 1, text

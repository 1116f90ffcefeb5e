"""Each cycle model on short hand-written sequences whose cost follows from its cited table.

Sequences are assembled with the Debian cross assemblers and decoded exactly as
the emulator decodes a basic block; expected figures are worked out in the
comments from the sources each model cites.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from autotune.platform import plugins
from autotune.platform.cycles.base import BlockCost, Branch, Insn

BASE = 0x1000

_AS = {
    "thumb-m": ("arm-none-eabi-as", ["-mthumb", "-mcpu=cortex-m7"], ".syntax unified\n.thumb\n"),
    "thumb-m0": ("arm-none-eabi-as", ["-mthumb", "-mcpu=cortex-m0"], ".syntax unified\n.thumb\n"),
    "arm": ("arm-none-eabi-as", ["-mcpu=cortex-a7", "-mfpu=neon-vfpv4"], ".syntax unified\n.arm\n"),
    "aarch64": ("aarch64-linux-gnu-as", [], ""),
    "riscv32": ("riscv64-unknown-elf-as", ["-march=rv32imc", "-mabi=ilp32", "-mno-relax"], ""),
}


def asm(flavour: str, body: str, tmp_path: Path, at: int = BASE) -> list[Insn]:
    """Assemble ``body`` and decode its .text as a block placed at ``at``."""
    tool, flags, prefix = _AS[flavour]
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    src = tmp_path / "snippet.s"
    obj = tmp_path / "snippet.o"
    # Padding labels let a sequence end in a backward or forward branch.
    src.write_text(f"{prefix}.text\nback:\n{body}\nfwd:\n")
    subprocess.run([tool, *flags, str(src), "-o", str(obj)], check=True, capture_output=True)
    with open(obj, "rb") as f:
        code = ELFFile(f).get_section_by_name(".text").data()
    # The built-in ISA supports' decoders: "thumb" is Thumb state of the A-profile ISA.
    isa = {"thumb": "arm"}.get(flavour, "thumb-m" if flavour.startswith("thumb-m") else flavour)
    decoder = plugins.get_isa(isa).decoder()
    assert decoder is not None
    return decoder.decode(code, at, int(flavour.startswith("thumb")))


def cost(model: str, flavour: str, body: str, tmp_path: Path, at: int = BASE) -> BlockCost:
    insns = asm(flavour, body, tmp_path, at)
    return plugins.get_cycle_model(model).block_cost(insns)


def test_every_target_names_an_existing_model() -> None:
    plugins.reset()
    for t in plugins.get_targets().values():
        if t.cycle_model:
            model = plugins.get_cycle_model(t.cycle_model)
            assert model.name == t.cycle_model
            assert model.label == f"cycles (model {t.cycle_model})"
            assert model.info.sources
    assert len(plugins.get_cycle_models()) == 10
    assert plugins.get_cycle_model("cortex-m4").name == "cortex-m4 v3"
    with pytest.raises(plugins.UnknownCycleModelError, match="unknown cycle model 'cortex-m5 v1'"):
        plugins.get_cycle_model("cortex-m5 v1")


# ------------------------------------------------------------------ Cortex-M4


def test_m4_pipelined_loads(tmp_path: Path) -> None:
    # DDI 0337I 3.3.2 (same rules on the M4): "LDR R0,[R1,R5]; LDR R1,[R2];
    # LDR R2,[R3,#4] - normally four cycles total".
    c = cost(
        "cortex-m4 v3", "thumb-m", "ldr r0, [r1, r5]\nldr r1, [r2]\nldr r2, [r3, #4]", tmp_path
    )
    assert (c.instructions, c.cycles) == (3, 4)
    # A run of eight independent loads: 2 for the first, 1 for each following.
    body = "\n".join(f"ldr r{i}, [r8, #{4 * i}]" for i in range(8))
    assert cost("cortex-m4 v3", "thumb-m", body, tmp_path).cycles == 2 + 7
    # "LDR R0,[R1,R2]; STR R0,[R3,#20] - normally three cycles total"
    assert (
        cost("cortex-m4 v3", "thumb-m", "ldr r0, [r1, r2]\nstr r0, [r3, #20]", tmp_path).cycles == 3
    )
    # "LDR R0,[R1,R2]; STR R1,[R3,R2] - normally three cycles total"
    assert (
        cost("cortex-m4 v3", "thumb-m", "ldr r0, [r1, r2]\nstr r1, [r3, r2]", tmp_path).cycles == 3
    )


def test_m4_loads_with_base_update_pipeline_like_any_single_load(tmp_path: Path) -> None:
    # 3.3.2: "LDR [any] are pipelined when possible": post- and pre-indexed forms
    # included; only the loaded register feeding the next address breaks the pair.
    body = "ldr r0, [r1], #4\nldrsb r2, [r3], #1\nldr r4, [r5, #4]!"
    assert cost("cortex-m4 v3", "thumb-m", body, tmp_path).cycles == 2 + 1 + 1
    # The written-back base is not the load's destination: the next load may use it.
    body = "ldr r0, [r1], #4\nldr r2, [r1], #4"
    assert cost("cortex-m4 v3", "thumb-m", body, tmp_path).cycles == 2 + 1
    # The loaded register as the next address: no pipelining, 2 + 2.
    body = "ldr r0, [r1], #4\nldr r2, [r0], #4"
    assert cost("cortex-m4 v3", "thumb-m", body, tmp_path).cycles == 2 + 2
    # LDRD is never pipelined, with or without write-back (1 + N).
    body = "ldr r0, [r1], #4\nldrd r2, r3, [r4], #8"
    assert cost("cortex-m4 v3", "thumb-m", body, tmp_path).cycles == 2 + 3


def test_m4_load_whose_address_depends_on_the_previous_instruction(tmp_path: Path) -> None:
    # The second load's address is the first load's result: no pipelining, 2 + 2.
    assert cost("cortex-m4 v3", "thumb-m", "ldr r0, [r1]\nldr r2, [r0]", tmp_path).cycles == 4
    # An address computed by the preceding data-processing instruction stalls
    # one cycle ("no forwarding path for this scenario"): 1 + (2 + 1).
    assert cost("cortex-m4 v3", "thumb-m", "adds r1, r4, #4\nldr r0, [r1]", tmp_path).cycles == 4


def test_m4_smlad_chain_is_single_cycle(tmp_path: Path) -> None:
    # Table 3-1 (M4): SMLAD 1 cycle; four dependent SMLADs on one accumulator.
    body = "\n".join(["smlad r0, r1, r2, r0"] * 4)
    assert cost("cortex-m4 v3", "thumb-m", body, tmp_path).cycles == 4
    assert cost("cortex-m33 v3", "thumb-m", body, tmp_path).cycles == 4


def test_m4_taken_branch_costs_a_pipeline_refill(tmp_path: Path) -> None:
    # SUBS 1; BNE 1, or 1 + P when taken; P = 1 for a speculated direct branch
    # to a 16-bit target.
    c = cost("cortex-m4 v3", "thumb-m", "subs r0, #1\nbne back", tmp_path)
    assert (c.cycles, c.cycles + c.taken_delta) == (2, 3)
    # BX LR: 1 + P with P = 2 for a register target.
    c = cost("cortex-m4 v3", "thumb-m", "bx lr", tmp_path)
    assert (c.cycles, c.taken_delta) == (1, 2)
    # Entering a block whose first instruction is 32-bit at a halfword address
    # costs a second fetch (the 1..3 range of P).
    assert (
        cost("cortex-m4 v3", "thumb-m", "add.w r0, r0, #1", tmp_path, at=BASE + 2).entry_extra == 1
    )
    assert cost("cortex-m4 v3", "thumb-m", "add.w r0, r0, #1", tmp_path).entry_extra == 0


def test_m4_and_m3_multiply_and_divide(tmp_path: Path) -> None:
    body = "mul r0, r1, r2\nmla r3, r1, r2, r3\numull r4, r5, r1, r2\nsdiv r6, r1, r2"
    # M4 Table 3-1: MUL 1, MLA 1, UMULL 1, SDIV 2-12 (upper bound 12).
    assert cost("cortex-m4 v3", "thumb-m", body, tmp_path).cycles == 1 + 1 + 1 + 12
    # M3 Table 3-1: MUL 1, MLA 2, UMULL 3-5 (3), SDIV 2-12 (12).
    assert cost("cortex-m3 v3", "thumb-m", body, tmp_path).cycles == 1 + 2 + 3 + 12


def test_m4_multiple_transfers(tmp_path: Path) -> None:
    # PUSH/LDM/STM 1 + N; POP with PC 1 + N, then the reload.
    assert cost("cortex-m4 v3", "thumb-m", "push {r4-r7, lr}", tmp_path).cycles == 6
    c = cost("cortex-m4 v3", "thumb-m", "pop {r4-r7, pc}", tmp_path)
    assert (c.cycles, c.taken_delta) == (6, 2)
    assert cost("cortex-m4 v3", "thumb-m", "ldrd r0, r1, [r2]", tmp_path).cycles == 3
    assert cost("cortex-m4 v3", "thumb-m", "ldm r0, {r1, r2, r3}", tmp_path).cycles == 4


def test_m3_rejects_dsp_instructions(tmp_path: Path) -> None:
    smlad = asm("thumb-m", "smlad r0, r1, r2, r0", tmp_path)[0]
    assert plugins.get_cycle_model("cortex-m4 v3").check(smlad) is None
    assert "not implemented by cortex-m3" in (plugins.get_cycle_model("cortex-m3 v3").check(smlad) or "")


# ------------------------------------------------------------ Cortex-M0 / M0+


def test_m0_muls_loads_and_branches(tmp_path: Path) -> None:
    # DDI 0432C Table 3-1: MULS 1 (fast multiplier), LDR 2 (no pipelining).
    assert cost("cortex-m0 v2", "thumb-m0", "muls r0, r1, r0\n" * 3, tmp_path).cycles == 3
    loads = "ldr r0, [r4]\nldr r1, [r4, #4]\nldr r2, [r4, #8]"
    assert cost("cortex-m0 v2", "thumb-m0", loads, tmp_path).cycles == 6
    # B<cc> 1 or 3; BL 4; BX 3; POP {r4, pc} 4 + N = 6; PUSH {r4-r7, lr} 1 + 5.
    c = cost("cortex-m0 v2", "thumb-m0", "subs r0, #1\nbne back", tmp_path)
    assert (c.cycles, c.cycles + c.taken_delta) == (2, 4)
    c = cost("cortex-m0 v2", "thumb-m0", "bl fwd", tmp_path)
    assert c.cycles + c.taken_delta == 4
    c = cost("cortex-m0 v2", "thumb-m0", "bx lr", tmp_path)
    assert c.cycles + c.taken_delta == 3
    c = cost("cortex-m0 v2", "thumb-m0", "pop {r4, pc}", tmp_path)
    assert c.cycles + c.taken_delta == 6
    assert cost("cortex-m0 v2", "thumb-m0", "push {r4-r7, lr}", tmp_path).cycles == 6


def test_m0plus_has_a_shorter_refill(tmp_path: Path) -> None:
    # DDI 0484C Table 3-1: B<cc> 1 or 2, BL 3, POP {r4, pc} 3 + N = 5.
    c = cost("cortex-m0plus v2", "thumb-m0", "bne back", tmp_path)
    assert (c.cycles, c.cycles + c.taken_delta) == (1, 2)
    c = cost("cortex-m0plus v2", "thumb-m0", "bl fwd", tmp_path)
    assert c.cycles + c.taken_delta == 3
    c = cost("cortex-m0plus v2", "thumb-m0", "pop {r4, pc}", tmp_path)
    assert c.cycles + c.taken_delta == 5


# ------------------------------------------------------------------ Cortex-M7


def test_m7_dual_issue(tmp_path: Path) -> None:
    # IssueWidth 2, two ALUs: independent ALU pairs issue together.
    assert (
        cost("cortex-m7 v2", "thumb-m", "add.w r0, r0, #1\nadd.w r1, r1, #1", tmp_path).cycles == 1
    )
    three = "add.w r0, r0, #1\nadd.w r1, r1, #1\nadd.w r2, r2, #1"
    assert cost("cortex-m7 v2", "thumb-m", three, tmp_path).cycles == 2
    # A dependent pair cannot share a cycle.
    assert (
        cost("cortex-m7 v2", "thumb-m", "add.w r0, r0, #1\nadd.w r1, r0, #1", tmp_path).cycles == 2
    )


def test_m7_load_use_and_multiply_latency(tmp_path: Path) -> None:
    # WriteLd latency 1 (word), M7SlowLoad latency 2 (byte).
    assert cost("cortex-m7 v2", "thumb-m", "ldr r0, [r1]\nadd.w r2, r0, #1", tmp_path).cycles == 2
    assert cost("cortex-m7 v2", "thumb-m", "ldrb r0, [r1]\nadd.w r2, r0, #1", tmp_path).cycles == 3
    # MAC latency 2, accumulator read one cycle late: an SMLAD chain on its
    # accumulator issues every cycle; a multiplicand dependence waits 2.
    chain = "\n".join(["smlad r0, r1, r2, r0"] * 4)
    assert cost("cortex-m7 v2", "thumb-m", chain, tmp_path).cycles == 4
    dep = "smlad r0, r1, r2, r3\nsmlad r4, r0, r2, r3"
    assert cost("cortex-m7 v2", "thumb-m", dep, tmp_path).cycles == 3
    # WriteDIV: 7 cycles, single issue.
    assert cost("cortex-m7 v2", "thumb-m", "sdiv r0, r1, r2", tmp_path).cycles == 7
    # Load/store multiple: single issue, two registers per cycle on the 64-bit path.
    assert cost("cortex-m7 v2", "thumb-m", "ldm r0, {r1-r4}", tmp_path).cycles == 2
    assert cost("cortex-m7 v2", "thumb-m", "push {r4-r7, lr}", tmp_path).cycles == 3


def test_m7_branch_prediction(tmp_path: Path) -> None:
    # A loop back-edge is predicted taken: leaving the loop costs the mispredict (4).
    c = cost("cortex-m7 v2", "thumb-m", "subs r0, #1\nbne back", tmp_path)
    assert c.cycles + c.taken_delta == 2  # SUBS, then BNE waiting for the flags
    assert c.cycles == 2 + 4


# ------------------------------------------------------------------ Cortex-A7


def test_a7_dual_issue_needs_an_immediate_younger(tmp_path: Path) -> None:
    # cortex-a7.md: ALU-immediate instructions can take ex2; register ALU only ex1.
    assert cost("cortex-a7 v1", "arm", "add r0, r0, #1\nadd r1, r1, #1", tmp_path).cycles == 1
    assert cost("cortex-a7 v1", "arm", "add r0, r0, r2\nadd r1, r1, r3", tmp_path).cycles == 2


def test_a7_latencies(tmp_path: Path) -> None:
    # cortex_a7_load1 latency 2: the dependent add issues 2 cycles after the load.
    assert cost("cortex-a7 v1", "arm", "ldr r0, [r1]\nadd r2, r0, #1", tmp_path).cycles == 3
    # cortex_a7_mul latency 2, accumulator bypass 1; multiplicand use waits 2.
    assert cost("cortex-a7 v1", "arm", "mul r0, r1, r2\nmla r3, r4, r5, r0", tmp_path).cycles == 2
    assert cost("cortex-a7 v1", "arm", "mul r0, r1, r2\nmla r3, r0, r5, r6", tmp_path).cycles == 3
    # cortex_a7_idiv: both pipes for 5 cycles.
    assert cost("cortex-a7 v1", "arm", "sdiv r0, r1, r2", tmp_path).cycles == 5
    # cortex_a7_neon: both*2 and never dual-issued.
    neon = "vadd.i8 q0, q1, q2\nvadd.i8 q3, q4, q5"
    assert cost("cortex-a7 v1", "arm", neon, tmp_path).cycles == 4


# ----------------------------------------------------------------- Cortex-A53


def test_a53_dual_issue_and_latencies(tmp_path: Path) -> None:
    # Two ALUs: two independent adds per cycle.
    assert cost("cortex-a53 v2", "aarch64", "add x0, x0, #1\nadd x1, x1, #1", tmp_path).cycles == 1
    three = "add x0, x0, #1\nadd x1, x1, #1\nadd x2, x2, #1"
    assert cost("cortex-a53 v2", "aarch64", three, tmp_path).cycles == 2
    # LoadLatency 3.
    assert cost("cortex-a53 v2", "aarch64", "ldr x0, [x1]\nadd x2, x0, #1", tmp_path).cycles == 4
    # WriteIM 4 with ReadIM advance 1: a multiply result feeds an add after 3.
    assert cost("cortex-a53 v2", "aarch64", "mul x0, x1, x2\nadd x3, x0, #1", tmp_path).cycles == 4
    # ReadIMA advance 2: a MADD chain through the accumulator every 2 cycles.
    chain = "\n".join(["madd x0, x1, x2, x0"] * 3)
    assert cost("cortex-a53 v2", "aarch64", chain, tmp_path).cycles == 5
    # WriteID32 latency 4.
    assert cost("cortex-a53 v2", "aarch64", "sdiv w0, w1, w2\nadd w3, w0, #1", tmp_path).cycles == 5


def test_a53_asimd_issue(tmp_path: Path) -> None:
    # One ASIMD instruction per cycle, Q-form (128-bit) or D-form: a Q-form FMLA issues
    # every cycle (ncnn's A53 measurements); v1 charged Q-forms 2 cycles of the unit.
    q = "add v0.16b, v1.16b, v2.16b\nadd v3.16b, v4.16b, v5.16b"
    d = "add v0.8b, v1.8b, v2.8b\nadd v3.8b, v4.8b, v5.8b"
    assert cost("cortex-a53 v2", "aarch64", q, tmp_path).cycles == 2
    assert cost("cortex-a53 v2", "aarch64", d, tmp_path).cycles == 2
    # ASIMD work pairs with integer work.
    pair = "smull v0.8h, v1.8b, v2.8b\nadd x1, x1, #1"
    assert cost("cortex-a53 v2", "aarch64", pair, tmp_path).cycles == 1
    # The load path is 64 bits: a Q load blocks issue 2 cycles, a D load 1, no pairing.
    assert cost("cortex-a53 v2", "aarch64", "ldr q0, [x0]\nldr q1, [x1]", tmp_path).cycles == 4
    assert cost("cortex-a53 v2", "aarch64", "ldr d0, [x0]\nldr d1, [x1]", tmp_path).cycles == 2
    assert cost("cortex-a53 v2", "aarch64", "ldr q0, [x0]\nadd x2, x2, #1", tmp_path).cycles == 3
    # Multiply-accumulate chains through the accumulator: 1 cycle apart (late forwarding);
    # the int8 dot-product step SMULL, SMLAL2 (accumulator forwarded), then SADALP,
    # which reads the products as an operand: it waits the full 4 cycles.
    chain = "smlal v0.8h, v1.8b, v2.8b\nsmlal v0.8h, v3.8b, v4.8b"
    assert cost("cortex-a53 v2", "aarch64", chain, tmp_path).cycles == 2
    dot = "smull v3.8h, v1.8b, v2.8b\nsmlal2 v3.8h, v1.16b, v2.16b\nsadalp v0.4s, v3.8h"
    assert cost("cortex-a53 v2", "aarch64", dot, tmp_path).cycles == 1 + 4 + 1


def test_a53_branch_mispredict(tmp_path: Path) -> None:
    c = cost("cortex-a53 v2", "aarch64", "subs x0, x0, #1\nb.ne back", tmp_path)
    assert c.cycles + c.taken_delta == 2  # b.ne waits one cycle for the flags
    assert c.cycles == 2 + 9  # MispredictPenalty 9 when the loop is left


# ----------------------------------------------------------------------- Ibex


def test_ibex_table(tmp_path: Path) -> None:
    # Loads/stores stall 1; MUL stalls 2, MULH 3; DIV 37; jumps 1; taken branches 2.
    assert cost("ibex v1", "riscv32", "lw a0, 0(a1)\nlw a2, 4(a1)", tmp_path).cycles == 4
    assert cost("ibex v1", "riscv32", "mul a0, a1, a2", tmp_path).cycles == 3
    assert cost("ibex v1", "riscv32", "mulh a0, a1, a2", tmp_path).cycles == 4
    assert cost("ibex v1", "riscv32", "div a0, a1, a2", tmp_path).cycles == 38
    c = cost("ibex v1", "riscv32", "addi a0, a0, -1\nbnez a0, back", tmp_path)
    assert (c.cycles, c.cycles + c.taken_delta) == (2, 4)
    assert cost("ibex v1", "riscv32", "jal ra, fwd", tmp_path).cycles == 2


# ------------------------------------------------------------------ SiFive E31


def test_e31_result_latencies(tmp_path: Path) -> None:
    # LW 2-cycle result latency, LB 3, MUL 5; independent instructions do not wait.
    assert cost("sifive-e31 v1", "riscv32", "lw a0, 0(a1)\naddi a2, a0, 1", tmp_path).cycles == 3
    assert cost("sifive-e31 v1", "riscv32", "lb a0, 0(a1)\naddi a2, a0, 1", tmp_path).cycles == 4
    assert cost("sifive-e31 v1", "riscv32", "lw a0, 0(a1)\naddi a2, a3, 1", tmp_path).cycles == 2
    assert cost("sifive-e31 v1", "riscv32", "mul a0, a1, a2\naddi a3, a0, 1", tmp_path).cycles == 6
    # The multiplier blocks until the previous multiply completes.
    two = "mul a0, a1, a2\nmul a3, a4, a5"
    assert cost("sifive-e31 v1", "riscv32", two, tmp_path).cycles == 6


def test_e31_branch_prediction(tmp_path: Path) -> None:
    # Correctly predicted control flow is free; a mispredict costs 3.
    c = cost("sifive-e31 v1", "riscv32", "addi a0, a0, -1\nbnez a0, back", tmp_path)
    assert (c.cycles + c.taken_delta, c.cycles) == (2, 2 + 3)
    c = cost("sifive-e31 v1", "riscv32", "beqz a0, fwd\nnop", tmp_path)
    fwd = asm("riscv32", "beqz a0, fwd\nnop", tmp_path)
    assert fwd[0].branch == Branch.COND and not fwd[0].backward
    first = plugins.get_cycle_model("sifive-e31 v1").block_cost(fwd[:1])
    assert (first.cycles, first.cycles + first.taken_delta) == (1, 4)
    ret = plugins.get_cycle_model("sifive-e31 v1").block_cost(asm("riscv32", "ret", tmp_path))
    assert ret.taken_delta == 0  # returns are predicted by the return-address stack


# --------------------------------------------------------------- decoding


def test_decoder_normalises_registers(tmp_path: Path) -> None:
    a64 = asm("aarch64", "add w0, w1, w2\nldr q3, [x4, #16]", tmp_path)
    assert a64[0].reads == {"x1", "x2"} and a64[0].writes == {"x0"}
    assert a64[1].load and a64[1].writes == {"v3"} and a64[1].addr_regs == {"x4"}
    rv = asm("riscv32", "c.lw a0, 4(a1)\nc.add a2, a0\nc.sw a2, 8(a1)", tmp_path)
    assert rv[0].load and rv[0].writes == {"a0"} and rv[0].addr_regs == {"a1"}
    assert rv[1].reads == {"a0", "a2"} and rv[1].writes == {"a2"}
    assert rv[2].store and rv[2].reads == {"a1", "a2"} and not rv[2].writes
    th = asm("thumb-m", "push {r4, r5, lr}\nldm r0!, {r1, r2}", tmp_path)
    assert th[0].nregs == 3 and th[0].store
    assert th[1].nregs == 2 and th[1].load and th[1].writeback

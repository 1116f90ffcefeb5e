"""The embedded emulator runs real cross-compiled kernels on every executable target.

Every target except arc-em compiles an int8 dot product and a small convolution,
runs them with seeded inputs and must match numpy; counts must repeat exactly.
Faults, timeouts and buffer mistakes come back as typed errors.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from autotune.errors import AutotuneError
from autotune.platform import plugins
from autotune.platform.emulator import (
    BufferMismatchError,
    ElfLoadError,
    Emulator,
    EmulatorFault,
    EmulatorTimeout,
    RunResult,
    UnicornRunner,
    load_elf,
    machine_for,
    run_elf,
)
from autotune.platform.target import Target
from autotune.platform.toolchain import build_elf

DOT_N = 203  # not a multiple of 4 or 8, so vectorised code needs a tail

DOT_C = f"""
#include "autotune_harness.h"
#define N {DOT_N}
AUTOTUNE_BUFFER(int8_t, dot_a, N);
AUTOTUNE_BUFFER(int8_t, dot_b, N);
AUTOTUNE_BUFFER(int32_t, dot_out, 1);
void autotune_main(void)
{{
    int32_t acc = 0;
    for (int i = 0; i < N; i++) {{
        acc += (int32_t)dot_a[i] * (int32_t)dot_b[i];
    }}
    dot_out[0] = acc;
}}
"""

# NHWC int8 input 7x6x3, 3x3 filters, 4 output channels, stride 1, no padding,
# int32 bias; writes the int32 accumulators and an int8 result requantised by a
# rounding right shift of 7 with saturation.
H, W, C, K, R = 7, 6, 3, 4, 3
OH, OW = H - R + 1, W - R + 1
CONV_C = f"""
#include "autotune_harness.h"
#define H {H}
#define W {W}
#define C {C}
#define K {K}
#define R {R}
#define OH (H - R + 1)
#define OW (W - R + 1)
AUTOTUNE_BUFFER(int8_t, conv_in, H * W * C);
AUTOTUNE_BUFFER(int8_t, conv_w, K * R * R * C);
AUTOTUNE_BUFFER(int32_t, conv_bias, K);
AUTOTUNE_BUFFER(int32_t, conv_acc, OH * OW * K);
AUTOTUNE_BUFFER(int8_t, conv_out, OH * OW * K);
void autotune_main(void)
{{
    for (int y = 0; y < OH; y++)
        for (int x = 0; x < OW; x++)
            for (int k = 0; k < K; k++) {{
                int32_t acc = conv_bias[k];
                for (int dy = 0; dy < R; dy++)
                    for (int dx = 0; dx < R; dx++)
                        for (int c = 0; c < C; c++)
                            acc += (int32_t)conv_in[((y + dy) * W + (x + dx)) * C + c]
                                 * (int32_t)conv_w[((k * R + dy) * R + dx) * C + c];
                int idx = (y * OW + x) * K + k;
                conv_acc[idx] = acc;
                int32_t q = (acc + 64) >> 7;
                conv_out[idx] = (int8_t)(q > 127 ? 127 : (q < -128 ? -128 : q));
            }}
}}
"""


def text_bytes(elf: Path, address: int, n: int) -> bytes:
    """``n`` bytes of loaded code at ``address``."""
    for vaddr, blob, _ in load_elf(elf).segments:
        if vaddr <= address < vaddr + len(blob):
            return blob[address - vaddr : address - vaddr + n]
    raise AssertionError(f"{address:#x} is not in a loaded segment")


def executable_targets() -> list[str]:
    """Every registered target the emulator runs (all but arc-em)."""
    plugins.reset()
    return [n for n, t in plugins.get_targets().items() if t.family != "arc"]


def need_toolchain(target: Target) -> None:
    if shutil.which(target.toolchain.cc) is None:
        pytest.skip(f"{target.toolchain.cc} not installed ({target.toolchain.debian_package})")


_BUILDS: dict[tuple[str, str], Path] = {}


def build_kernel(target: Target, name: str, source: str, root: Path) -> Path:
    """Compile a C or assembly kernel once per (target, kernel) for the test session."""
    key = (target.name, name)
    if key not in _BUILDS:
        need_toolchain(target)
        out = root / f"{target.name}-{name}"
        out.mkdir(parents=True, exist_ok=True)
        suffix = ".S" if name.endswith("_s") else ".c"
        src = out / f"{name}{suffix}"
        src.write_text(source)
        _BUILDS[key] = build_elf(target, [src], out).elf
    return _BUILDS[key]


@pytest.fixture(scope="session")
def build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emu-builds")


def dot_inputs(seed: int) -> tuple[dict[str, bytes], int]:
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, DOT_N, dtype=np.int8)
    b = rng.integers(-128, 128, DOT_N, dtype=np.int8)
    want = int(np.dot(a.astype(np.int64), b.astype(np.int64)))
    return {"dot_a": a.tobytes(), "dot_b": b.tobytes()}, want


def conv_inputs(seed: int) -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (H, W, C), dtype=np.int8)
    w = rng.integers(-128, 128, (K, R, R, C), dtype=np.int8)
    bias = rng.integers(-5000, 5000, K, dtype=np.int32)
    acc = np.zeros((OH, OW, K), dtype=np.int64)
    for y in range(OH):
        for xx in range(OW):
            patch = x[y : y + R, xx : xx + R, :].astype(np.int64)
            acc[y, xx, :] = np.tensordot(w.astype(np.int64), patch, axes=([1, 2, 3], [0, 1, 2]))
    acc += bias
    q = np.clip((acc + 64) >> 7, -128, 127).astype(np.int8)
    inputs = {"conv_in": x.tobytes(), "conv_w": w.tobytes(), "conv_bias": bias.tobytes()}
    return inputs, acc.astype(np.int32).reshape(-1), q.reshape(-1)


CONV_OUTPUTS = {"conv_acc": OH * OW * K * 4, "conv_out": OH * OW * K}


@pytest.mark.toolchain
@pytest.mark.parametrize("name", executable_targets())
def test_dot_product_matches_numpy_and_counts_repeat(name: str, build_root: Path) -> None:
    target = plugins.get_target(name)
    elf = build_kernel(target, "dot", DOT_C, build_root)
    emu = Emulator(target)
    results: list[RunResult] = []
    for seed in (1, 2):
        inputs, want = dot_inputs(seed)
        res = emu.run(elf, inputs, {"dot_out": 4})
        assert int(np.frombuffer(res.outputs["dot_out"], np.int32)[0]) == want
        results.append(res)
    again = emu.run(elf, dot_inputs(2)[0], {"dot_out": 4})
    # The dot product has no data-dependent control flow: identical counts for
    # different data, and bit-identical results when repeated.
    assert results[0].instructions == results[1].instructions == again.instructions
    assert results[1].cycles == again.cycles and again.outputs == results[1].outputs
    assert again.instructions >= DOT_N // 16  # at least one instruction per 16 MACs (NEON)
    assert again.cycle_model == target.cycle_model
    assert again.metrics() == {
        "instructions (exact)": again.instructions,
        f"cycles (model {target.cycle_model})": again.cycles,
    }


@pytest.mark.toolchain
@pytest.mark.parametrize("name", executable_targets())
def test_convolution_matches_numpy_and_counts_repeat(name: str, build_root: Path) -> None:
    target = plugins.get_target(name)
    elf = build_kernel(target, "conv", CONV_C, build_root)
    inputs, acc, q = conv_inputs(7)
    first = run_elf(elf, target, inputs, CONV_OUTPUTS)
    np.testing.assert_array_equal(np.frombuffer(first.outputs["conv_acc"], np.int32), acc)
    np.testing.assert_array_equal(np.frombuffer(first.outputs["conv_out"], np.int8), q)
    second = run_elf(elf, target, inputs, CONV_OUTPUTS)
    assert (second.instructions, second.cycles) == (first.instructions, first.cycles)
    assert first.cycles is not None and first.cycles >= first.instructions // 2


LOOP_THUMB_S = """
    .syntax unified
    .thumb
    .text
    .global autotune_main
    .type autotune_main, %function
    .thumb_func
autotune_main:
    movs r0, #10
1:  subs r0, #1
    bne 1b
    bx lr
"""

LOOP_RV_S = """
    .text
    .global autotune_main
    .type autotune_main, @function
autotune_main:
    li a0, 10
1:  addi a0, a0, -1
    bnez a0, 1b
    ret
"""


@pytest.mark.toolchain
def test_exact_count_and_model_cycles_of_a_hand_written_loop_m4(build_root: Path) -> None:
    target = plugins.get_target("m4")
    res = run_elf(build_kernel(target, "loop_s", LOOP_THUMB_S, build_root), target)
    assert res.instructions == 1 + 10 * 2 + 1
    # Cortex-M4 TRM Table 3-1: MOVS 1; SUBS 1; BNE 1, +P (=1, target speculated,
    # 16-bit) when taken (9 times); BX LR 1 + P (=2, register target).
    assert res.cycles == 1 + 10 * 2 + 9 * 1 + 1 + 2
    assert res.cycles_label == "cycles (model cortex-m4 v3)"


@pytest.mark.toolchain
def test_exact_count_and_model_cycles_of_a_hand_written_loop_ibex(build_root: Path) -> None:
    target = plugins.get_target("rv32imc")
    res = run_elf(build_kernel(target, "loop_s", LOOP_RV_S, build_root), target)
    assert res.instructions == 22
    # Ibex pipeline table: li/addi 1; bnez 1, +2 when taken (9 times); ret is a
    # jump: 1 + 1 stall.
    assert res.cycles == 1 + 10 * 2 + 9 * 2 + 2
    assert res.cycle_model == "ibex v1"


SMLAD_C = """
#include "autotune_harness.h"
AUTOTUNE_BUFFER(int32_t, out, 1);
void autotune_main(void)
{
    int32_t r, x = 0x00020003, y = 0x00050007, acc = 100;
    __asm__ volatile(".syntax unified\\n.arch armv7e-m\\nsmlad %0, %1, %2, %3"
                     : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    out[0] = r;
}
"""


@pytest.mark.toolchain
def test_smlad_runs_on_m4_and_faults_on_m0_and_m3(build_root: Path) -> None:
    m4 = plugins.get_target("cortex-m4")
    res = run_elf(build_kernel(m4, "smlad", SMLAD_C, build_root), m4, outputs={"out": 4})
    assert np.frombuffer(res.outputs["out"], np.int32)[0] == 100 + 3 * 7 + 2 * 5
    for name in ("cortex-m0", "cortex-m3"):
        target = plugins.get_target(name)
        elf = build_kernel(target, "smlad", SMLAD_C, build_root)
        with pytest.raises(EmulatorFault, match=r"invalid instruction.*smlad") as info:
            run_elf(elf, target, outputs={"out": 4})
        fault = info.value
        assert isinstance(fault, AutotuneError)
        assert f"{fault.pc:#x}" in str(fault)
        # The reported PC is the SMLAD itself, not the start of its block.
        decoder = plugins.get_isa("thumb-m").decoder()
        assert decoder is not None
        decoded = decoder.decode(text_bytes(elf, fault.pc, 4), fault.pc)
        assert decoded[0].name == "smlad"


def test_m0_cpu_model_itself_rejects_smlad() -> None:
    """The Unicorn CPU chosen for cortex-m0 lacks the DSP extension (no cycle model involved)."""
    from unicorn import UC_ERR_INSN_INVALID, Uc, UcError
    from unicorn import arm_const as arm

    smlad_thumb2 = bytes.fromhex("21fb0230")  # smlad r0, r1, r2, r3
    results = {}
    for name in ("cortex-m0", "cortex-m4"):
        m = machine_for(plugins.get_target(name))
        uc = Uc(m.uc_arch, m.uc_mode, m.uc_cpu)
        uc.mem_map(0, 0x1000)
        uc.mem_write(0x100, smlad_thumb2)
        uc.reg_write(arm.UC_ARM_REG_R1, 0x00020003)
        uc.reg_write(arm.UC_ARM_REG_R2, 0x00050007)
        uc.reg_write(arm.UC_ARM_REG_R3, 100)
        try:
            uc.emu_start(0x101, 0x104)
            results[name] = uc.reg_read(arm.UC_ARM_REG_R0)
        except UcError as exc:
            results[name] = exc.errno
    assert results == {"cortex-m0": UC_ERR_INSN_INVALID, "cortex-m4": 131}


FAULTS_C = """
#include "autotune_harness.h"
AUTOTUNE_BUFFER(int32_t, sel, 1);
AUTOTUNE_BUFFER(int32_t, out, 1);
void autotune_main(void)
{
    if (sel[0] == 1) {
        out[0] = *(volatile int32_t *)0x10000000u;   /* nothing is mapped there */
    } else if (sel[0] == 2) {
        for (;;) {                                    /* a runaway variant */
            out[0]++;
            __asm__ volatile("");
        }
    } else if (sel[0] == 3) {
        *(volatile int32_t *)0x100u = 5;              /* flash is read-only on a Cortex-M */
    } else {
        out[0] = 42;
    }
}
"""


@pytest.mark.toolchain
@pytest.mark.parametrize("name", ["cortex-m4", "rv32imc", "cortex-a53"])
def test_faults_and_timeouts_are_typed(name: str, build_root: Path) -> None:
    target = plugins.get_target(name)
    elf = build_kernel(target, "faults", FAULTS_C, build_root)
    emu = Emulator(target)
    ok = emu.run(elf, {"sel": np.int32(0).tobytes()}, {"out": 4}, budget=10_000)
    assert np.frombuffer(ok.outputs["out"], np.int32)[0] == 42

    with pytest.raises(EmulatorFault, match="read from unmapped address 0x10000000") as info:
        emu.run(elf, {"sel": np.int32(1).tobytes()}, {"out": 4}, budget=10_000)
    fault = info.value
    assert fault.address == 0x10000000
    main = load_elf(elf).symbol("autotune_main")
    assert main.value & ~1 <= fault.pc < (main.value & ~1) + main.size

    started = time.perf_counter()
    with pytest.raises(EmulatorTimeout, match="budget of 20000") as tinfo:
        emu.run(elf, {"sel": np.int32(2).tobytes()}, {"out": 4}, budget=20_000)
    assert time.perf_counter() - started < 5
    assert tinfo.value.instructions > 20_000

    if target.family == "cortex-m":
        with pytest.raises(EmulatorFault, match="write to read-only memory at 0x100"):
            emu.run(elf, {"sel": np.int32(3).tobytes()}, {"out": 4}, budget=10_000)


ILLEGAL_C = """
#include "autotune_harness.h"
AUTOTUNE_BUFFER(int32_t, out, 1);
void autotune_main(void)
{
    out[0] = 1;
#if defined(__riscv)
    __asm__ volatile(".4byte 0xffffffff");
#elif defined(__aarch64__)
    __asm__ volatile(".inst 0x00000000");
#elif defined(__thumb__)
    __asm__ volatile("udf #7");
#else
    __asm__ volatile(".inst 0xe7f000f0");
#endif
    out[0] = 2;
}
"""


@pytest.mark.toolchain
@pytest.mark.parametrize("name", ["cortex-m0", "cortex-a7", "cortex-a53", "rv32imc"])
def test_invalid_instruction_is_a_fault_at_its_pc(name: str, build_root: Path) -> None:
    target = plugins.get_target(name)
    elf = build_kernel(target, "illegal", ILLEGAL_C, build_root)
    with pytest.raises(EmulatorFault, match=r"invalid instruction|undefined instruction") as info:
        run_elf(elf, target, outputs={"out": 4})
    main = load_elf(elf).symbol("autotune_main")
    start = main.value & ~1
    assert start < info.value.pc < start + main.size
    assert f"pc {info.value.pc:#x}" in str(info.value)


@pytest.mark.toolchain
def test_buffer_mistakes_are_one_line_errors(build_root: Path) -> None:
    target = plugins.get_target("cortex-m4")
    elf = build_kernel(target, "dot", DOT_C, build_root)
    with pytest.raises(BufferMismatchError, match=r"no buffer named 'nope'.*dot_a, dot_b, dot_out"):
        run_elf(elf, target, {"nope": b"\0"})
    with pytest.raises(BufferMismatchError, match="has 300 bytes but the buffer holds 203"):
        run_elf(elf, target, {"dot_a": bytes(300)})
    with pytest.raises(BufferMismatchError, match="asked for 8 bytes"):
        run_elf(elf, target, outputs={"dot_out": 8})
    rv = plugins.get_target("rv32imc")
    with pytest.raises(ElfLoadError, match="EM_ARM, not code for rv32imc"):
        run_elf(elf, rv)
    with pytest.raises(ElfLoadError, match="cannot read ELF"):
        run_elf(build_root / "missing.elf", target)
    for exc in (BufferMismatchError, ElfLoadError, EmulatorFault, EmulatorTimeout):
        assert issubclass(exc, AutotuneError)


def test_unicorn_runner_is_registered_and_declines_arc() -> None:
    plugins.reset()
    runner = plugins.get_runner("unicorn")
    assert isinstance(runner, UnicornRunner)
    assert runner.available() is None
    assert runner.supports(plugins.get_target("cortex-m4")) is None
    reason = runner.supports(plugins.get_target("arc-em"))
    assert reason is not None and "arc-em" in reason
    for name in ("qemu", "size-only", "nsim"):
        assert plugins.get_runner(name).name == name

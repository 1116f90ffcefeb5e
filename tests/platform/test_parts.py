"""Parts: cache and wait-state timing on constructed access sequences, presets, selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotune.platform import plugins, toolchain
from autotune.platform.emulator import run_elf
from autotune.platform.parts import (
    Cache,
    CacheSim,
    Memory,
    MemoryTimer,
    Part,
    PartError,
    apply_part,
    load_part_file,
)


def test_lru_set_associative_cache_evicts_the_least_recently_used_line() -> None:
    # 2 sets x 2 ways x 16-byte lines: lines 0, 2, 4 (addresses 0, 32, 64) share set 0.
    sim = CacheSim(Cache("c", 64, 16, 2, miss_penalty=5))
    seq = [0, 4, 32, 0, 64, 32, 0]
    hits = [sim.access(a) for a in seq]
    # 0 miss; 4 same line hit; 32 miss; 0 hit (0 now most recent); 64 miss evicts 32;
    # 32 miss evicts 0; 0 miss.
    assert hits == [False, True, False, True, False, False, False]
    assert (sim.hits, sim.misses) == (2, 5)


def test_fifo_evicts_the_oldest_line_even_when_used() -> None:
    sim = CacheSim(Cache("c", 64, 16, 2, miss_penalty=5, policy="fifo"))
    hits = [sim.access(a) for a in [0, 32, 0, 64, 0]]
    # FIFO: 64 evicts 0 (oldest fill) although 0 was just used, so 0 misses again.
    assert hits == [False, False, True, False, False]


def _part(**placement: tuple[str, ...]) -> Part:
    return Part(
        name="testpart",
        core="cortex-m4",
        clock_mhz=100,
        memories=(
            Memory("flash", "flash", 4096, wait_states=3, icache="i", dcache="d"),
            Memory("slow", "flash", 4096, wait_states=2),
            Memory("tcm", "tcm", 64),
            Memory("sram", "sram", 4096),
        ),
        caches=(Cache("i", 64, 16, 1, miss_penalty=7), Cache("d", 32, 16, 2, miss_penalty=4)),
        placement=placement or {"code": ("flash",), "rodata": ("flash",), "data": ("sram",)},
    )


def test_fetch_stalls_per_line_missed() -> None:
    timer = MemoryTimer(_part(), [(0, 0x1000, "code", 100), (0x2000, 0x3000, "data", 10)])
    # A 20-byte block at 12 spans lines 0 and 1 (16-byte lines): two misses.
    assert timer.fetch_block(12, 20) == 2 * 7
    assert timer.fetch_block(12, 20) == 0  # both lines cached now
    # Direct-mapped, 4 sets: line 4 (address 64) evicts line 0.
    assert timer.fetch_block(64, 4) == 7
    assert timer.fetch_block(0, 2) == 7
    assert timer.stats()["i"] == {"hits": 2, "misses": 4}


def test_reads_go_through_the_data_cache_or_pay_wait_states() -> None:
    part = _part(code=("flash",), rodata=("flash",), data=("slow",))
    timer = MemoryTimer(part, [(0, 0x1000, "code", 100), (0x2000, 0x3000, "data", 10)])
    assert timer.read_data(0x100, 4) == 4  # rodata: D-cache miss
    assert timer.read_data(0x104, 4) == 0  # same line
    assert timer.read_data(0x10E, 4) == 4  # straddles into the next line: one more miss
    assert timer.read_data(0x2000, 4) == 2  # uncached slow memory: its wait states
    assert timer.read_data(0x5000, 4) == 0  # outside every region
    assert timer.read_ranges() == [(0, 0x1000), (0x2000, 0x3000)]


def test_placement_takes_the_first_memory_that_fits() -> None:
    part = _part(code=("tcm", "flash"), rodata=("flash",), data=("sram",))
    # 40 bytes of code fit the 64-byte TCM: fetches are free.
    assert MemoryTimer(part, [(0, 0x1000, "code", 40)]).fetch_block(0, 16) == 0
    # 100 bytes do not: flash through the I-cache.
    assert MemoryTimer(part, [(0, 0x1000, "code", 100)]).fetch_block(0, 16) == 7
    with pytest.raises(PartError, match="fit none of"):
        MemoryTimer(part, [(0, 0x1000, "code", 100), (0x2000, 0x3000, "data", 10_000)])


def test_presets_are_consistent_and_name_their_core_and_source() -> None:
    plugins.reset()
    parts = plugins.get_parts()
    for name in ("stm32l4r5", "stm32f746", "nrf52840", "stm32u585", "rp2040", "esp32c3"):
        part = parts[name]
        assert part.check() == []
        assert part.reference and part.caches
        assert plugins.get_target(part.core).cycle_model
    assert parts["core-only"].zero_wait
    assert plugins.get_part("NUCLEO-L4R5ZI") is parts["stm32l4r5"]
    with pytest.raises(plugins.UnknownPartError, match="closest match: stm32l4r5"):
        plugins.get_part("stm32l4r4")


def test_apply_part_names_core_model_part_and_version() -> None:
    m4 = plugins.get_target("cortex-m4")
    timed = apply_part(m4, plugins.get_part("stm32l4r5"))
    assert timed.cycle_model == f"{m4.cycle_model}, stm32l4r5 v1 @120 MHz"
    assert plugins.metric_label(timed) == f"cycles (model {m4.cycle_model}, stm32l4r5 v1 @120 MHz)"
    assert timed.default_clock_mhz == 120 and timed.part is not None
    assert apply_part(m4, plugins.get_part("core-only")) is m4
    with pytest.raises(PartError, match="cortex-m7 core, not cortex-m4"):
        apply_part(m4, plugins.get_part("stm32f746"))


def test_a_part_links_into_its_own_flash_and_ram() -> None:
    """The core's generic map (cortex-m4: 1 MiB + 512 KiB) is resized to the chip: a model
    too large for one part passes the fit check on a larger one, and the error names the
    part. Origins stay, so code and data sit where they were measured."""
    from autotune.model.tflite_import import parse_model
    from autotune.tune.fit import ModelTooLarge, check_fits
    from tests.tune.test_fit import fc_model

    m4 = plugins.get_target("cortex-m4")
    l4r5 = apply_part(m4, plugins.get_part("stm32l4r5"))
    assert [(r.origin, r.length) for r in l4r5.memory] == [
        (m4.memory[0].origin, 2 * 1024 * 1024),
        (m4.memory[1].origin, 640 * 1024),
    ]
    f746 = apply_part(plugins.get_target("cortex-m7"), plugins.get_part("stm32f746"))
    assert [r.length for r in f746.memory] == [1024 * 1024, (64 + 240) * 1024]  # DTCM + SRAM1
    graph = parse_model(fc_model(1100, 1000), "big.tflite")  # 1,104,000 B of parameters
    check_fits(graph, l4r5, "big.tflite")  # 2 MiB of flash
    with pytest.raises(ModelTooLarge, match="flash region \\(with --part nrf52840\\)"):
        check_fits(graph, apply_part(m4, plugins.get_part("nrf52840")), "big.tflite")


def test_calibrated_file_overrides_the_free_parameters(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    path.write_text(
        json.dumps({"base": "stm32l4r5", "version": 2, "caches": {"art-i": {"miss_penalty": 11}}})
    )
    part = load_part_file(path, plugins.get_parts())
    assert part.name == "stm32l4r5+cal" and part.version == 2
    assert part.cache("art-i").miss_penalty == 11 and part.cache("art-d").miss_penalty == 15
    assert plugins.get_part(str(path)).cache("art-i").miss_penalty == 11
    path.write_text(json.dumps({"base": "stm32l4r5", "caches": {"art-i": {"size": 4}}}))
    with pytest.raises(PartError, match="may only set miss_penalty"):
        load_part_file(path, plugins.get_parts())
    path.write_text("{")
    with pytest.raises(PartError, match="cannot read it as JSON"):
        load_part_file(path, plugins.get_parts())


_STREAM = """
#include <stdint.h>
#include "autotune_harness.h"

/* 2 KB of constants, read twice as words: more than the 256-byte data cache. */
static const uint32_t table[512] = {%s};
AUTOTUNE_BUFFER(uint32_t, at_out, 1);

void autotune_main(void)
{
    uint32_t sum = 0;
    for (int pass = 0; pass < 2; ++pass) {
        for (int i = 0; i < 512; ++i) {
            sum += table[i];
        }
    }
    at_out[0] = sum;
}
"""


def test_emulator_adds_exactly_the_misses_times_the_penalty(tmp_path: Path) -> None:
    m4 = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(m4):
        pytest.skip("arm-none-eabi-gcc not installed")
    src = tmp_path / "stream.c"
    src.write_text(_STREAM % ", ".join(str(i) for i in range(512)))
    elf = toolchain.build_elf(m4, [src], tmp_path).elf
    core = run_elf(elf, m4, outputs={"at_out": 4})
    part = plugins.get_part("stm32l4r5")
    timed = run_elf(elf, apply_part(m4, part), outputs={"at_out": 4})
    assert timed.outputs == core.outputs and timed.instructions == core.instructions
    stats = timed.extra["caches"]
    # Every 32-byte line of the table misses on both passes (2 KB through 256 B): 128.
    assert stats["art-d"]["misses"] >= 128
    misses = stats["art-d"]["misses"] + stats["art-i"]["misses"]
    assert timed.cycles - core.cycles == misses * 15
    assert timed.cycle_model == "cortex-m4 v3, stm32l4r5 v1 @120 MHz"


def test_tuning_resolves_the_part_into_the_target_and_its_db_key() -> None:
    from autotune.tune.pipeline import TuneOptions, resolve_target

    target = resolve_target(TuneOptions("cortex-m33", part="b-u585i-iot02a"))
    assert target.part is plugins.get_part("stm32u585")
    assert target.cycle_model.endswith(", stm32u585 v1 @160 MHz")  # in every trial's key
    with pytest.raises(PartError, match="rv32imc core"):
        resolve_target(TuneOptions("cortex-m4", part="esp32c3"))


def test_targets_lists_the_parts_as_json() -> None:
    from click.testing import CliRunner

    from autotune.cli import targets_cmd

    result = CliRunner().invoke(targets_cmd.command, ["--parts", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)["parts"]}
    assert rows["rp2040"]["caches"][0]["line"] == 8
    assert rows["stm32l4r5"]["boards"] == ["nucleo-l4r5zi"]
    assert "RM0432" in rows["stm32l4r5"]["reference"]


def test_a_library_measured_on_one_part_is_not_reused_for_another(tmp_path: Path) -> None:
    from autotune.emit.deploy import _verification_key
    from autotune.emit.library import emit_library, quick_choices
    from autotune.examples import quickstart_model
    from autotune.model.tflite_import import parse_model

    m4 = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(m4):
        pytest.skip("arm-none-eabi-gcc not installed")
    graph = parse_model(quickstart_model())
    library = emit_library(graph, m4, tmp_path, quick_choices(graph, m4))
    timed = apply_part(m4, plugins.get_part("stm32l4r5"))
    assert _verification_key(library, m4, 0, 3) != _verification_key(library, timed, 0, 3)

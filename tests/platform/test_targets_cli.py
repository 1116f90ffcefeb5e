"""`autotune targets`: the table, the documented JSON shape, and unknown-name errors."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from autotune.cli import targets_cmd
from autotune.cli.main import main
from autotune.platform import plugins

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"

ALL_TARGETS = {
    "cortex-m0",
    "cortex-m0plus",
    "cortex-m3",
    "cortex-m4",
    "cortex-m7",
    "cortex-m33",
    "cortex-a53",
    "cortex-a7",
    "arc-em",
    "rv32imc",
    "rv32im",
    "rv32imac",
    "rv32gc",
}


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    plugins.reset()
    yield
    plugins.reset()


def run(*args: str) -> Any:
    result = CliRunner().invoke(targets_cmd.command, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def wide_table(*args: str) -> str:
    """The table as a person with a wide terminal sees it (rich reads COLUMNS)."""
    result = CliRunner(env={"COLUMNS": "220"}).invoke(targets_cmd.command, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def targets_json(*args: str) -> dict[str, Any]:
    return json.loads(run("--json", *args).output)


def test_json_lists_every_target_with_the_documented_shape() -> None:
    data = targets_json()
    assert data["schema_version"] == 1 and "schema" not in data
    rows = {row["name"]: row for row in data["targets"]}
    assert set(rows) == ALL_TARGETS
    # In plugin load order, each plugin's targets together, as it registered them.
    loaded = [info.name for info in plugins.plugins()]
    owners = [loaded.index(row["plugin"]) for row in data["targets"]]
    assert owners == sorted(owners)
    assert list(rows) == list(plugins.get_targets())

    documented = DOCS.read_text()
    for row in data["targets"]:
        for key, value in row.items():
            assert f"| `{key}` |" in documented, f"docs/cli.md does not document {key}"
            if isinstance(value, dict):
                for sub in value:
                    assert f"| `{key}.{sub}` |" in documented, f"{key}.{sub} undocumented"

    m4 = rows["cortex-m4"]
    assert m4["aliases"] == ["m4"]
    assert "dsp" in m4["features"] and m4["simd_bits"] == 32
    assert m4["toolchain"]["debian_package"] == "gcc-arm-none-eabi"
    assert m4["runner"] == "unicorn"
    assert m4["cycle_model"] == "cortex-m4 v3"
    assert m4["metric"] == "cycles (model cortex-m4 v3)"
    assert m4["plugin"] == "cortex_m"
    assert {r["name"] for r in m4["memory"]} == {"flash", "ram"}
    for row in data["targets"]:
        cc = row["toolchain"]["cc"]
        assert row["toolchain"]["installed"] == (shutil.which(cc) is not None)
        assert row["runner_registered"] == (row["runner"] in plugins.get_runners())

    arc = rows["arc-em"]
    assert arc["cycle_model"] is None
    if shutil.which("nsimdrv") is None:
        assert (arc["runner"], arc["metric"]) == ("size-only", "code size only")
    else:
        assert (arc["runner"], arc["metric"]) == ("nsim", "cycles (nSIM)")


def test_the_json_example_in_the_docs_matches_real_output() -> None:
    documented = DOCS.read_text()
    example = json.loads(re.search(r"```json\n(.*?)```", documented, re.DOTALL)[1])
    real = targets_json("-t", "m4")
    assert example["schema_version"] == real["schema_version"]
    (doc_row,) = example["targets"]
    (real_row,) = real["targets"]
    assert list(doc_row) == list(real_row)
    for key in ("name", "aliases", "features", "memory", "cycle_model", "metric", "plugin"):
        assert doc_row[key] == real_row[key], key
    assert doc_row["toolchain"]["cflags"] == real_row["toolchain"]["cflags"]


def test_target_option_accepts_aliases_and_repeats() -> None:
    data = targets_json("-t", "m4", "--target", "RISCV", "-t", "cortex-m4")
    assert [row["name"] for row in data["targets"]] == ["cortex-m4", "rv32imc"]


def test_table_shows_every_target_and_its_measurement() -> None:
    output = wide_table()
    for name in ALL_TARGETS:
        assert name in output
    for text in ("gcc-riscv64-unknown-elf", "gcc-aarch64-linux-gnu", "cycles (model ibex v1)"):
        assert text in output
    if shutil.which("nsimdrv") is None:
        assert "code size only" in output


def test_table_names_the_package_of_a_missing_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        targets_cmd.shutil,
        "which",
        lambda cmd: None if cmd == "arc-linux-gnu-gcc" else real_which(cmd),
    )
    (row,) = targets_json("-t", "arc")["targets"]
    assert (row["toolchain"]["installed"], row["toolchain"]["path"]) == (False, None)
    output = wide_table("-t", "arc-em")
    assert "apt-get install gcc-arc-linux-gnu" in output


def test_unknown_target_is_a_one_line_error_with_the_closest_match(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["targets", "--target", "cortex-m44"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("autotune: error: unknown target 'cortex-m44'")
    assert "closest match: cortex-m4" in err
    for name in ALL_TARGETS:
        assert name in err

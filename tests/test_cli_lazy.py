"""Lazy subcommands: ``edgeprof push`` (from cron) never imports numpy, the gate, the collector
or the measurement stack, and ``edgeprof --help`` still lists every command with its help.

Causal, not timed: a fresh interpreter runs the command and reports what ``sys.modules`` holds
afterwards. A control run of ``gate --help`` shows the same probe does see a heavy import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from edgeprof.cli import COMMANDS, main
from edgeprof.report.store import save_report
from edgeprof.testing.standin_collector import StandinCollector, sample_report

TOKEN = "lazy-cli-token"
HEAVY = (
    "numpy",
    "edgeprof.gate",
    "edgeprof.collector",
    "edgeprof.measure",
    "edgeprof.report.codec",
    "starlette",
    "sqlalchemy",
    "uvicorn",
)

# Runs the CLI in a fresh interpreter, then writes the exit code and every imported module.
_PROBE = """
import json, sys
from edgeprof.cli import main
try:
    main(sys.argv[2:], prog_name="edgeprof")
    code = 0
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def probe(tmp: Path, *args: str) -> dict[str, Any]:
    """Run ``edgeprof ARGS`` in a new process; its exit code and imported modules."""
    out = tmp / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EDGEPROF_TOKEN": TOKEN},
        check=False,
    )
    assert out.exists(), proc.stderr
    result: dict[str, Any] = json.loads(out.read_text())
    result["stdout"] = proc.stdout
    return result


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_push_help_imports_nothing_heavy(tmp_path: Path) -> None:
    result = probe(tmp_path, "push", "--help")
    assert result["code"] == 0
    assert "--token-file" in result["stdout"]
    assert heavy(result["modules"]) == []
    assert "urllib3" not in result["modules"]  # imported only once a client is made


def test_a_real_push_imports_nothing_heavy(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    report_id, data = sample_report()
    save_report(data, report_id, store)
    with StandinCollector(up, TOKEN) as c:
        result = probe(tmp_path, "push", "--url", c.url, "--store", str(store))
        assert c.stored_ids() == [report_id]  # the push really ran its whole path
    assert result["code"] == 0, result["stdout"]
    assert "1 sent" in result["stdout"]
    assert "urllib3" in result["modules"]
    assert heavy(result["modules"]) == []


def test_top_level_help_imports_no_subcommand(tmp_path: Path) -> None:
    result = probe(tmp_path, "--help")
    assert result["code"] == 0
    for name in COMMANDS:
        assert f"  {name} " in result["stdout"], name
    loaded = [
        m for m in result["modules"] if m.startswith("edgeprof.cli.") and m != "edgeprof.cli.lazy"
    ]
    assert loaded == []
    assert heavy(result["modules"]) == []


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    """Control: a command that does import the gate shows up, so the checks above can fail."""
    result = probe(tmp_path, "gate", "--help")
    assert result["code"] == 0
    assert "edgeprof.gate" in heavy(result["modules"])


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_registry_help_is_the_commands_own(name: str) -> None:
    """The listing shows, for every width, exactly what the loaded command would show."""
    spec = COMMANDS[name]
    command = spec.load()
    assert isinstance(command, click.Command)
    assert command.name == name
    for limit in (30, 45, 73, 200):
        assert spec.short_help(limit) == command.get_short_help_str(limit)


def test_help_lists_every_command_and_runs_one() -> None:
    runner = CliRunner()
    listing = runner.invoke(main, ["--help"])
    assert listing.exit_code == 0
    assert [line.split()[0] for line in listing.stdout.split("Commands:\n")[1].splitlines()] == (
        sorted(COMMANDS)
    )
    unknown = runner.invoke(main, ["frobnicate"])
    assert unknown.exit_code == 2
    assert "No such command" in unknown.stderr

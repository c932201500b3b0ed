"""The ``edgeprof`` command line: thin click functions over the modules that do the work.

Every subcommand lives in its own module and is imported only when it runs (or its help is
shown): :data:`COMMANDS` maps each name to ``"module:attribute"`` and its one-line help, which
``edgeprof --help`` lists without importing anything. So ``edgeprof push`` from cron loads click,
msgpack and urllib3, not numpy, the gate or the collector (``tests/test_cli_lazy.py``).

Exit codes are :mod:`edgeprof.exit_codes`: 0 ok, 1 a gate or benchmark failed, 2 could not do it
(bad input, missing device), 130 interrupted (Ctrl-C). An
:class:`~edgeprof.errors.EdgeprofError` prints one line; a traceback only with ``--debug``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgeprof import __version__, exit_codes
from edgeprof.cli.lazy import LazyCommand, LazyGroup
from edgeprof.device.roots import ENV_ETC, ENV_PROCFS, ENV_SYSFS, SystemRoots
from edgeprof.errors import EdgeprofError, InputError

# name -> where the command is, and the short help `edgeprof --help` shows without importing it
# (tests/test_cli_lazy.py checks each against the command's own docstring).
COMMANDS: dict[str, LazyCommand] = {
    "collector": LazyCommand(
        "edgeprof.cli.collector:collector_group",
        "Administer a collector's database: tokens, trusted signing keys, migrations.",
    ),
    "doctor": LazyCommand(
        "edgeprof.cli.doctor:doctor",
        "Show what this machine offers: clock, counters, memory, power rails, runtimes, ports.",
    ),
    "firmware": LazyCommand(
        "edgeprof.cli.firmware:firmware_group",
        "Build the MCU reference firmware and run it under emulation.",
    ),
    "gate": LazyCommand(
        "edgeprof.cli.gate:gate_group",
        "Approve or reject reports against a policy (`gate REPORT...` = `gate check REPORT...`).",
    ),
    "keys": LazyCommand("edgeprof.cli.report:keys_group", "This device's report-signing keys."),
    "pull": LazyCommand(
        "edgeprof.cli.pull:pull", "Fetch reports from a collector by filter, checked byte for byte."
    ),
    "push": LazyCommand(
        "edgeprof.cli.push:push",
        "Send the spooled reports to the collector; each leaves the spool once acknowledged.",
    ),
    "report": LazyCommand(
        "edgeprof.cli.report:report_group", "Read, export and verify report files."
    ),
    "run": LazyCommand(
        "edgeprof.cli.run:run",
        "Profile MODEL (.tflite) on this device: latency, memory, power, energy and quality.",
    ),
    "serve": LazyCommand(
        "edgeprof.cli.collector:serve",
        "Run the collector: devices upload reports, pipelines pull them (HTTP API).",
    ),
}


class _Group(LazyGroup):
    """Turns expected failures into one line on stderr and exit code 2, Ctrl-C into 130
    (click would print "Aborted!" and exit 1, which scripts read as "the gate failed")."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeprofError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"edgeprof: error: {exc}", err=True)
            ctx.exit(exit_codes.ERROR)
        except KeyboardInterrupt:
            click.echo("\nedgeprof: interrupted", err=True)
            ctx.exit(exit_codes.INTERRUPTED)


@click.group(cls=_Group, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeprof")
@click.option(
    "--sysfs-root",
    envvar=ENV_SYSFS,
    type=click.Path(file_okay=False),
    help=f"Read sysfs from here instead of /sys (also ${ENV_SYSFS}).",
)
@click.option(
    "--procfs-root",
    envvar=ENV_PROCFS,
    type=click.Path(file_okay=False),
    help=f"Read procfs from here instead of /proc (also ${ENV_PROCFS}).",
)
@click.option(
    "--etc-root",
    envvar=ENV_ETC,
    type=click.Path(file_okay=False),
    help=f"Read /etc files (board release files) from here (also ${ENV_ETC}).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for expected errors too.")
@click.pass_context
def main(
    ctx: click.Context,
    sysfs_root: str | None,
    procfs_root: str | None,
    etc_root: str | None,
    debug: bool,
) -> None:
    """Profile quantized-model inference on this device or on an attached MCU."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    for flag, root in (
        ("--sysfs-root", sysfs_root),
        ("--procfs-root", procfs_root),
        ("--etc-root", etc_root),
    ):
        if root is not None and not Path(root).is_dir():
            # Read from an empty tree, every source would silently find nothing.
            raise InputError(f"{flag} {root}: no such directory")
    ctx.obj["roots"] = SystemRoots.from_env(sysfs_root, procfs_root, etc_root)


if __name__ == "__main__":  # pragma: no cover
    main()

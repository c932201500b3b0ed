"""The ``edgeprof`` command line: thin click functions over the modules that do the work.

Exit codes: 0 ok, 1 a gate or benchmark failed, 2 could not do it (bad input, missing device).
An :class:`~edgeprof.errors.EdgeprofError` prints one line; a traceback only with ``--debug``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from edgeprof import __version__
from edgeprof.errors import EdgeprofError
from edgeprof.roots import ENV_ETC, ENV_PROCFS, ENV_SYSFS, SystemRoots

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2


class _Group(click.Group):
    """Turns expected failures into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeprofError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"edgeprof: error: {exc}", err=True)
            ctx.exit(EXIT_ERROR)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj["roots"] = SystemRoots.from_env(sysfs_root, procfs_root, etc_root)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Show what this machine offers: clock, counters, memory, power rails, runtimes, ports."""
    from edgeprof.doctor import collect
    from edgeprof.doctor_text import render

    report = collect(ctx.obj["roots"])
    if as_json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        click.echo(render(report))


if __name__ == "__main__":  # pragma: no cover
    main()

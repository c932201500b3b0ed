"""``edgeprof doctor``: what this machine offers (:mod:`edgeprof.device.doctor`), text or JSON."""

from __future__ import annotations

import json
import sys

import click


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Show what this machine offers: clock, counters, memory, power rails, runtimes, ports."""
    from edgeprof.cli.doctor_text import render
    from edgeprof.device.doctor import collect

    report = collect(ctx.obj["roots"])
    if as_json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        click.echo(render(report))

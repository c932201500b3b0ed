"""``edgeprof pull``: the pipelines' client; parses and prints over :mod:`edgeprof.uplink.pull`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edgeprof.errors import InputError
from edgeprof.uplink.http import resolve_token


@click.command("pull")
@click.option("--url", required=True, help="Collector base URL.")
@click.option("--token", default=None, help="Pipeline token (prefer --token-file).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--model", help="Model name.")
@click.option("--model-sha256", help="Model file sha256.")
@click.option("--board", help="Board id.")
@click.option("--device", help="Device id.")
@click.option("--runner", help="Runner (tflite, tflm, mcu).")
@click.option("--since", "created_after", help="Created at or after (ISO 8601 or Unix ns).")
@click.option("--until", "created_before", help="Created before (ISO 8601 or Unix ns).")
@click.option("--tag", multiple=True, metavar="KEY:VALUE", help="Repeatable; all must match.")
@click.option("--gate-status", type=click.Choice(["none", "pass", "fail", "incomplete"]))
@click.option("--max", "limit", type=click.IntRange(min=1), help="At most this many reports.")
@click.option(
    "--out",
    default=None,
    help="Folder to write <id>.msgpack files into, or - for the reports on stdout "
    "(concatenated msgpack maps).",
)
@click.option("--list", "list_only", is_flag=True, help="Only list (JSON lines), fetch nothing.")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True)
def pull(
    url: str,
    token: str | None,
    token_file: Path | None,
    tag: tuple[str, ...],
    limit: int | None,
    out: str | None,
    list_only: bool,
    timeout_s: float,
    **filters: str | None,
) -> None:
    """Fetch reports from a collector by filter, checked byte for byte."""
    from edgeprof.uplink.pull import CollectorApi, PullQuery, fetch_all
    from edgeprof.uplink.pull import pull as pull_into

    if not list_only and out is None:
        raise InputError("give --out DIR (or --out - for stdout), or --list")
    api = CollectorApi.make(url, resolve_token(token, token_file), timeout_s)
    query = PullQuery({k: v for k, v in filters.items() if v is not None}, tag, limit)
    if list_only:
        for item in api.listings(query.filters, query.tags, limit=query.limit):
            click.echo(json.dumps(item, sort_keys=True))
    elif out == "-":
        for _, data in fetch_all(api, query):
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
    else:
        result = pull_into(api, query, Path(str(out)))
        click.echo(
            f"pulled {result.written} new report(s) into {result.directory} "
            f"({result.kept} already there)"
        )

"""``edgeprof push``: send the spooled reports to the collector (see :mod:`edgeprof.uplink.spool`).

Exit codes (:mod:`edgeprof.exit_codes`): 0 everything delivered (or nothing to send), 1 something
remains (the collector did not answer in time), was rejected or set aside as corrupt, or another
push holds the lock, 2 it could not be done: bad input, an answer that says the URL or token is
wrong (401/403/404/405/3xx...), a store push cannot use or a file-system failure on the way
(full, read-only, a symlink, another mount), each with one line on stderr. It
imports no numpy, gate or collector code (cron runs it on small boards). The command handles
:class:`~edgeprof.errors.EdgeprofError` itself so it behaves the same inside the ``edgeprof``
group and standalone (``python -m edgeprof.cli.push``). The token is never printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeprof import exit_codes
from edgeprof.errors import EdgeprofError, PushBusyError
from edgeprof.report.store import default_store
from edgeprof.uplink import spool as uplink
from edgeprof.uplink.http import DEFAULT_TIMEOUT_S, ENV_TOKEN, BaseUrl, resolve_token


def _counts(result: uplink.PushResult) -> str:
    return (
        f"{result.sent} sent, {result.duplicates} duplicate, "
        f"{result.rejected} rejected, {result.corrupt} corrupt, {result.failed} failed, "
        f"{result.remaining} remaining"
    )


def _summary(result: uplink.PushResult, where: str) -> str:
    """One line: the counts, then the error, or else the first refusal's reason."""
    line = f"push to {where}: {_counts(result)}"
    if result.error:
        return f"{line} ({result.error})"
    if result.rejection:
        return f"{line} (first rejected {result.rejection}; reasons in rejected/*.reason.txt)"
    return line


@click.command("push")
@click.option("--url", required=True, help="Collector base URL; reports go to URL/v1/reports.")
@click.option(
    "--token",
    default=None,
    help=f"Bearer token (else --token-file, else ${ENV_TOKEN}); prefer a file: "
    "command lines are visible to other users.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the bearer token from this file.",
)
@click.option(
    "--store",
    "--spool",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The report store (spool); default $EDGEPROF_STORE or the XDG data directory.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=uplink.DEFAULT_MAX_ATTEMPTS,
    show_default=True,
    help="Tries per report before this run gives up.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    help="Seconds allowed for each connect, send and receive.",
)
@click.option(
    "--lock-wait",
    "lock_wait_s",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for a running push to finish before giving up.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.pass_context
def push(
    ctx: click.Context,
    url: str,
    token: str | None,
    token_file: Path | None,
    store: Path | None,
    max_attempts: int,
    timeout_s: float,
    lock_wait_s: float,
    as_json: bool,
) -> None:
    """Send the spooled reports to the collector; each leaves the spool once acknowledged."""
    debug = bool(ctx.find_root().obj and ctx.find_root().obj.get("debug"))
    directory = store or default_store()
    try:
        secret = resolve_token(token, token_file)
        where = BaseUrl.parse(url).url(uplink.REPORTS_PATH)
        result = uplink.push(
            directory,
            url,
            secret,
            max_attempts=max_attempts,
            timeout_s=timeout_s,
            lock_wait_s=lock_wait_s,
        )
    except PushBusyError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "busy": True, "error": str(exc)}))
        else:
            click.echo(f"edgeprof: {exc}", err=True)
        ctx.exit(exit_codes.FAILED)
    except EdgeprofError as exc:
        if debug:
            raise
        click.echo(f"edgeprof: error: {exc}", err=True)
        ctx.exit(exit_codes.ERROR)
    if as_json:
        click.echo(json.dumps({**result.as_dict(), "busy": False, "store": str(directory)}))
    elif result.fatal:
        click.echo(f"edgeprof: error: push stopped: {result.error} ({_counts(result)})", err=True)
    else:
        click.echo(_summary(result, where))
    if result.fatal:
        ctx.exit(exit_codes.ERROR)
    ctx.exit(exit_codes.OK if result.delivered_all else exit_codes.FAILED)


if __name__ == "__main__":
    push(prog_name="edgeprof push")

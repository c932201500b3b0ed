"""``edgeprof run``: profile a model (:func:`edgeprof.measure.profile.profile`), print, upload.

Parsing and printing only; the run is :mod:`edgeprof.measure.profile`, the upload
:func:`edgeprof.uplink.spool.push`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edgeprof import exit_codes
from edgeprof.errors import InputError
from edgeprof.runners import RUNNER_NAMES


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{v!r}: expected KEY=VALUE", param_hint=what)
        out[key] = val
    return out


class _Progress:
    """A progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.phase = ""

    def __call__(self, phase: str, done: int, fraction: float) -> None:
        if not self.enabled:
            return
        if phase != self.phase:
            if self.phase:
                click.echo("", err=True)
            self.phase = phase
        width = 30
        bar = "#" * int(min(1.0, max(0.0, fraction)) * width)
        click.echo(f"\r  {phase:<8} [{bar:<{width}}] {done}", err=True, nl=False)

    def close(self) -> None:
        if self.enabled and self.phase:
            click.echo("\r" + " " * 60 + "\r", err=True, nl=False)


@click.command("run")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--runner",
    type=click.Choice(RUNNER_NAMES),
    default="tflite",
    show_default=True,
    help="TFLite/LiteRT interpreter, TFLite Micro, or an MCU running edgeprof firmware.",
)
@click.option("--board", help="mcu runner: the board id (see boards/), e.g. stm32f446-nucleo.")
@click.option(
    "--port",
    help="mcu runner: /dev/ttyACM0, socket://HOST:PORT, rfc2217://HOST:PORT, or usb:[VID:PID].",
)
@click.option("--baud", type=int, default=115_200, show_default=True, help="mcu runner, serial.")
@click.option(
    "--runtime",
    type=click.Choice(["auto", "litert", "tflite-runtime"]),
    default="auto",
    show_default=True,
    help="Which TFLite runtime (tflite runner).",
)
@click.option("--threads", type=int, help="Interpreter threads (tflite runner).")
@click.option(
    "--no-default-delegates",
    is_flag=True,
    help="Reference kernels, bit-exact (BUILTIN_WITHOUT_DEFAULT_DELEGATES).",
)
@click.option("--delegate", help="External delegate library, e.g. libedgetpu.so.1.")
@click.option(
    "--delegate-option",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option for the external delegate (repeatable).",
)
@click.option("--arena-size", type=int, help="TFLM tensor arena in bytes.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Warm-up inferences.")
@click.option("--warmup-seconds", type=float, default=0.0, show_default=True)
@click.option(
    "--count", type=int, default=100, show_default=True, help="Measured inferences, at least."
)
@click.option(
    "--min-seconds",
    type=float,
    default=1.0,
    show_default=True,
    help="Measure for at least this long.",
)
@click.option(
    "--max-seconds",
    type=float,
    default=60.0,
    show_default=True,
    help="Never measure longer than this.",
)
@click.option("--delay-ms", type=float, default=0.0, help="Pause between inferences.")
@click.option(
    "--rate-hz",
    type=float,
    default=1000.0,
    show_default=True,
    help="Native sampler rate (memory and power).",
)
@click.option(
    "--inputs",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Real inputs (.npy or .npz) instead of random data.",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Labelled data (.npz with inputs and labels): accuracy.",
)
@click.option(
    "--reference",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The float twin: agreement, SNR, compression ratio.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random inputs.")
@click.option("--tag", multiple=True, metavar="KEY=VALUE", help="Tag the report (repeatable).")
@click.option(
    "--store",
    "--spool",
    type=click.Path(file_okay=False, path_type=Path),
    help="Report directory (default: $EDGEPROF_STORE or the XDG data dir).",
)
@click.option("--no-report", is_flag=True, help="Do not write a report file.")
@click.option("--upload", metavar="URL", help="Then push the spool to this collector.")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Bearer token for --upload (else $EDGEPROF_TOKEN).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def run(
    ctx: click.Context,
    model: Path,
    runner: str,
    board: str | None,
    port: str | None,
    baud: int,
    runtime: str,
    threads: int | None,
    no_default_delegates: bool,
    delegate: str | None,
    delegate_option: tuple[str, ...],
    arena_size: int | None,
    warmup: int,
    warmup_seconds: float,
    count: int,
    min_seconds: float,
    max_seconds: float,
    delay_ms: float,
    rate_hz: float,
    inputs: Path | None,
    data: Path | None,
    reference: Path | None,
    seed: int,
    tag: tuple[str, ...],
    store: Path | None,
    no_report: bool,
    upload: str | None,
    token_file: Path | None,
    as_json: bool,
) -> None:
    """Profile MODEL (.tflite) on this device: latency, memory, power, energy and quality.

    Ctrl-C while measuring keeps what was measured: the report, marked interrupted, is printed
    and saved, and the exit code is 130 (before the first measured inference: no report).
    """
    from edgeprof.cli.run_text import render
    from edgeprof.measure.profile import ProfileRequest, profile
    from edgeprof.measure.session import RunPlan
    from edgeprof.runners import RunnerOptions

    req = ProfileRequest(
        model=model,
        runner=runner,
        options=RunnerOptions(
            runtime=runtime,
            threads=threads,
            default_delegates=not no_default_delegates,
            delegate=delegate,
            delegate_options=_pairs(delegate_option, "--delegate-option"),
            arena_size=arena_size,
            board=board,
            port=port,
            baudrate=baud,
        ),
        plan=RunPlan(
            warmup_count=warmup,
            warmup_seconds=warmup_seconds,
            min_count=count,
            min_seconds=min_seconds,
            max_seconds=max_seconds,
            max_count=max(count, 1_000_000),
            delay_s=delay_ms / 1e3,
            rate_hz=rate_hz,
        ),
        inputs=inputs,
        data=data,
        reference=reference,
        seed=seed,
        tags=_pairs(tag, "--tag"),
        store=store,
        save=not no_report,
    )
    if upload and no_report:
        raise click.BadParameter(
            "--upload sends the report, so it needs one", param_hint="--upload"
        )
    if token_file is not None and not upload:
        raise InputError("--token-file is the token for --upload, and no --upload was given")
    progress = _Progress(enabled=sys.stderr.isatty() and not as_json)
    try:
        outcome = profile(req, ctx.obj["roots"], progress=progress)
    finally:
        progress.close()
    if as_json:
        from edgeprof.report.codec import summary_json

        json.dump(summary_json(outcome.report, outcome.path), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        click.echo(render(outcome.report, str(outcome.path) if outcome.path else None))
    if outcome.interrupted:  # nothing uploaded: the user asked to stop
        click.echo(
            f"edgeprof: interrupted after {outcome.session.count} measured inferences"
            + (f"; report kept: {outcome.path}" if outcome.path else ""),
            err=True,
        )
        ctx.exit(exit_codes.INTERRUPTED)
    if upload:
        _upload(ctx, upload, token_file, store, quiet=as_json)


def _upload(
    ctx: click.Context, url: str, token_file: Path | None, store: Path | None, quiet: bool
) -> None:
    """Push the whole spool (this report and any left from earlier runs) after a run."""
    from edgeprof.report.store import default_store
    from edgeprof.uplink.http import resolve_token
    from edgeprof.uplink.spool import push

    result = push(store or default_store(), url, resolve_token(None, token_file))
    if not quiet:
        click.echo(
            f"  upload {url}: {result.sent} sent, {result.duplicates} already there, "
            f"{result.remaining} still spooled" + (f" ({result.error})" if result.error else "")
        )
    if result.fatal:  # a wrong URL or token, a store push cannot use: could not do it
        if quiet:
            click.echo(f"edgeprof: error: push stopped: {result.error}", err=True)
        ctx.exit(exit_codes.ERROR)
    if not result.delivered_all:
        ctx.exit(exit_codes.FAILED)

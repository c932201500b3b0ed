"""The ``edgeprof`` command line: thin click functions over the modules that do the work.

Exit codes: 0 ok, 1 a gate or benchmark failed, 2 could not do it (bad input, missing device).
An :class:`~edgeprof.errors.EdgeprofError` prints one line; a traceback only with ``--debug``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from edgeprof import __version__
from edgeprof.cli.collector import collector_group, pull, serve
from edgeprof.cli.firmware import firmware_group
from edgeprof.cli.gate import gate_group
from edgeprof.cli.push import push
from edgeprof.cli.report import keys_group, report_group
from edgeprof.device.roots import ENV_ETC, ENV_PROCFS, ENV_SYSFS, SystemRoots
from edgeprof.errors import EdgeprofError
from edgeprof.runners import RUNNER_NAMES

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
    from edgeprof.cli.doctor_text import render
    from edgeprof.device.doctor import collect

    report = collect(ctx.obj["roots"])
    if as_json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        click.echo(render(report))


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


@main.command()
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
    """Profile MODEL (.tflite) on this device: latency, memory, power, energy and quality."""
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
    if upload:
        _upload(ctx, upload, token_file, store, quiet=as_json)


def _upload(
    ctx: click.Context, url: str, token_file: Path | None, store: Path | None, quiet: bool
) -> None:
    """Push the whole spool (this report and any left from earlier runs) after a run."""
    from edgeprof.report.store import default_store
    from edgeprof.uplink import spool as uplink

    result = uplink.push(store or default_store(), url, uplink.resolve_token(None, token_file))
    if not quiet:
        click.echo(
            f"  upload {url}: {result.sent} sent, {result.duplicates} already there, "
            f"{result.remaining} still spooled" + (f" ({result.error})" if result.error else "")
        )
    if not result.delivered_all:
        ctx.exit(EXIT_FAILED)


main.add_command(push)
main.add_command(report_group)
main.add_command(keys_group)
main.add_command(gate_group)
main.add_command(firmware_group)
main.add_command(serve)
main.add_command(collector_group)
main.add_command(pull)

if __name__ == "__main__":  # pragma: no cover
    main()

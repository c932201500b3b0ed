"""``edgeprof firmware``: build the reference firmware for a port, run it under QEMU.

Thin click functions over :mod:`edgeprof.bridge.firmware_build` and :mod:`edgeprof.bridge.qemu`.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click

from edgeprof.bridge import firmware_build


@click.group("firmware")
def firmware_group() -> None:
    """Build the MCU reference firmware and run it under emulation."""


@firmware_group.command("build")
@click.option(
    "--port-name",
    required=True,
    type=click.Choice([*firmware_build.PORTS, *firmware_build.IDF_PORTS]),
    help="Which port to build.",
)
@click.option(
    "--build-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build directory (default: build-fw-<port> in the checkout).",
)
@click.option("--build-type", help="CMAKE_BUILD_TYPE (Arm ports default to MinSizeRel).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the sizes as JSON.")
def build(
    port_name: str, build_dir: Path | None, build_type: str | None, jobs: int, as_json: bool
) -> None:
    """Configure and build one port with CMake, then print each image's text/data/bss."""
    result = firmware_build.build_port(port_name, build_dir, build_type=build_type, jobs=jobs)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "port": result.port,
                    "build_dir": str(result.build_dir),
                    "images": [
                        {
                            "path": str(i.path),
                            "text": i.text,
                            "data": i.data,
                            "bss": i.bss,
                            "stack": i.stack,
                            "heap": i.heap,
                        }
                        for i in result.images
                    ],
                },
                indent=2,
            )
        )
        return
    click.echo(f"{result.port}: built in {result.build_dir}")
    click.echo(f"  {'image':<24}{'text':>10}{'data':>10}{'bss':>10}{'stack':>10}{'heap':>10}")
    for i in result.images:
        click.echo(
            f"  {i.path.name:<24}{i.text:>10}{i.data:>10}{i.bss:>10}{i.stack:>10}{i.heap:>10}"
        )
    click.echo("  (bytes; flash = text + data; stack and heap are linker-script reservations)")


@firmware_group.command("qemu")
@click.option(
    "--build-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the qemu-mps2-an386 build is (default: build-fw-qemu-mps2-an386).",
)
@click.option(
    "--icount-shift",
    type=click.IntRange(0, 10),
    default=None,
    help="QEMU -icount shift (deterministic counts; default: the harness's).",
)
@click.option("--no-icount", is_flag=True, help="Run without -icount (counts not deterministic).")
@click.option("--smoke", is_flag=True, help="Run the bring-up firmware instead.")
def qemu_cmd(
    build_dir: Path | None, icount_shift: int | None, no_icount: bool, smoke: bool
) -> None:
    """Run the built QEMU firmware and print its serial URL, until Ctrl-C.

    Then, in another shell: ``edgeprof run --runner mcu --board qemu-mps2-an386 --port URL``.
    """
    from edgeprof.bridge import qemu

    build_dir = build_dir or firmware_build.default_build_dir("qemu-mps2-an386")
    name = "edgeprof-smoke.elf" if smoke else "edgeprof-fw.elf"
    shift = (
        None if no_icount else (qemu.DEFAULT_ICOUNT_SHIFT if icount_shift is None else icount_shift)
    )
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with qemu.QemuMachine(build_dir / name, icount_shift=shift) as machine:
            click.echo(machine.url, nl=True)
            click.echo(f"  qemu pid {machine.pid}; Ctrl-C to stop", err=True)
            try:
                while not stop.wait(0.5):
                    if machine.poll() is not None:
                        click.echo(f"  qemu exited with status {machine.poll()}", err=True)
                        break
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Attacks on ``edgeprof push`` (issue 13, item 9): answers that are not the report's fault, a
hostile or broken local store. Each runs the real CLI as cron would (``python -m edgeprof push``)
against the stand-in collector, and checks the exit code, a one-line message (no traceback), and
that every report is accounted for: in exactly one of the spool, ``sent/`` (and then upstream)
or ``rejected/``, and never anywhere outside the store.

The file-system cases are real: a full tmpfs, a tmpfs remounted read-only, a tmpfs mounted at
``sent/``. Mounting needs root; without it they skip locally (and fail under CI).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeprof.report.codec import encode
from edgeprof.report.store import save_report
from edgeprof.testing.attacks import Attack
from edgeprof.testing.sample_reports import minimal_report
from edgeprof.testing.standin_collector import StandinCollector, sample_report
from edgeprof.uplink.spool import CORRUPT_DIR, LOCK_NAME, REJECTED_DIR, SENT_DIR

pytestmark = pytest.mark.integration  # real processes, real mounts

TOKEN = "push-attack-token"
Opener = Callable[[str], Attack]


def spool(store: Path, n: int, padding: int = 0, after: str = "") -> list[str]:
    """n reports written as ``edgeprof run`` writes them, each id sorting after ``after`` (push
    sends in id order; two uuid7 ids of one millisecond may sort either way); sorted ids."""
    ids: list[str] = []
    while len(ids) < n:
        report_id, data = sample_report(padding)
        if report_id > after:
            save_report(data, report_id, store)
            ids.append(report_id)
    return sorted(ids)


def cli(store: Path, url: str, *extra: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    """``python -m edgeprof push`` as cron runs it (token from the environment)."""
    return subprocess.run(
        [sys.executable, "-m", "edgeprof", "push", "--url", url, "--store", str(store), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "EDGEPROF_TOKEN": token},
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> bool:
    """Exit 2, exactly one line in all (on stderr), no traceback, naming each of ``words``."""
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return (
        proc.returncode == 2
        and len(lines) == 1
        and "Traceback" not in lines[0]
        and all(w in lines[0] for w in words)
    )


def names(directory: Path) -> list[str]:
    """The report ids filed in a directory (none when it does not exist)."""
    if not directory.is_dir() or directory.is_symlink():
        return []
    return sorted(p.name.removesuffix(".msgpack") for p in directory.glob("*.msgpack"))


def accounted(store: Path, ids: list[str], upstream: list[str]) -> bool:
    """Each report in exactly one place (spool, sent/, rejected/); sent/ only once upstream."""
    spooled, sent, rejected = names(store), names(store / SENT_DIR), names(store / REJECTED_DIR)
    places = spooled + sent + rejected
    return sorted(places) == sorted(ids) and set(sent) <= set(upstream)


def no_temp_files(*directories: Path) -> bool:
    return not any(p.name.endswith(".tmp") for d in directories if d.is_dir() for p in d.iterdir())


@pytest.fixture
def mount_tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """``mount_tmpfs(dir, size)``: a real tmpfs at dir (made if missing), unmounted afterwards."""
    mounted: list[Path] = []

    def mount(where: Path, size: str) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            reason = f"cannot mount a tmpfs (needs root): {proc.stderr.strip()}"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False, timeout=30)


def remount_ro(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True, timeout=30)


def fill(directory: Path) -> int:
    """Write a filler file until the file system is full; the bytes written."""
    written = 0
    with contextlib.suppress(OSError), (directory / "filler").open("wb", buffering=0) as f:
        while True:
            written += f.write(b"\0" * 1024)
    with contextlib.suppress(OSError), (directory / "filler2").open("wb", buffering=0) as f:
        while True:  # the last partial block
            written += f.write(b"\0")
    return written


# ------------------------------------------------------------------ answers that stop the push


def test_404_405_redirects_and_auth_stop_the_push_and_keep_the_spool(
    tmp_path: Path, attack: Opener
) -> None:
    """A wrong path, a proxy's 404, a 405, a redirect, a refused token: configuration, not the
    reports' fault. Before: a 404 filed the whole spool under rejected/."""
    a = attack("the collector answers 404/405/3xx/401/403 to every upload")
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 3)
    with StandinCollector(up, TOKEN) as c:
        cases: list[tuple[str, str, str]] = [
            (f"{c.url}/wrong/prefix", TOKEN, "404"),  # a wrong --url path
            *((f"{c.url}/status/{s}", TOKEN, s) for s in ("404", "405", "410")),
            *((f"{c.url}/status/{s}", TOKEN, s) for s in ("301", "302", "307", "308")),
            (c.url, "a-revoked-token", "401"),
            (f"{c.url}/status/403", TOKEN, "403"),
        ]
        for url, token, status in cases:
            proc = cli(store, url, token=token)
            held = (
                one_line_error(proc, f"HTTP {status}", "3 remaining")
                and names(store) == ids  # the whole spool kept
                and not (store / REJECTED_DIR).exists()
                and c.stored_ids() == []
                and token not in proc.stdout + proc.stderr
            )
            assert a.attempt(held), (status, proc.stdout, proc.stderr)
        final = cli(store, c.url)  # the right URL and token then deliver everything
        assert final.returncode == 0, final.stderr
        assert c.stored_ids() == ids
    assert a.failed == 0


def test_a_redirect_names_where_it_points(tmp_path: Path, attack: Opener) -> None:
    a = attack("the collector redirects uploads (http -> https, a moved path)")
    store, up = tmp_path / "store", tmp_path / "up"
    spool(store, 1)
    with StandinCollector(up, TOKEN) as c:
        proc = cli(store, f"{c.url}/status/308")
        assert a.attempt(one_line_error(proc, "HTTP 308", f"{c.url}/v1/reports")), proc.stderr
    assert a.failed == 0


def test_content_refusals_still_go_to_rejected_with_the_reason_on_the_console(
    tmp_path: Path, attack: Opener
) -> None:
    """The definitive refusals (here 413) file the report; the others are still delivered."""
    a = attack("a report the collector refuses (413) among good ones")
    store, up = tmp_path / "store", tmp_path / "up"
    big = spool(store, 1, padding=200_000)
    good = spool(store, 2, after=big[0])
    with StandinCollector(up, TOKEN, max_bytes=100_000) as c:
        proc = cli(store, c.url)
        upstream = c.stored_ids()
    held = (
        proc.returncode == 1
        and "HTTP 413" in proc.stdout
        and len(proc.stdout.strip().splitlines()) == 1
        and names(store / REJECTED_DIR) == big
        and upstream == sorted(good)
        and accounted(store, big + good, upstream)
        and "413" in (store / REJECTED_DIR / f"{big[0]}.msgpack.reason.txt").read_text()
    )
    assert a.attempt(held), (proc.stdout, proc.stderr)
    assert a.failed == 0


# ------------------------------------------------------------------ a hostile or broken store


def test_disk_full_while_filing_a_refused_report_still_sends_the_rest(
    tmp_path: Path, mount_tmpfs: Callable[[Path, str], Path], attack: Opener
) -> None:
    """Before: an OSError traceback at the reason file, and the good reports behind it were
    never sent. Now the refused report stays in the spool (its reason file could not be
    written), the good ones are delivered and filed, and the error is one line."""
    a = attack("the disk is full when push files a refused or corrupt report")
    store = mount_tmpfs(tmp_path / "fs", "512k") / "store"
    up = tmp_path / "up"
    big = spool(store, 1, padding=200_000)
    good = spool(store, 3, after=big[0])  # the refused report comes first
    (store / "zz-junk.msgpack").write_bytes(b"\x93not a report")  # sorts after the uuid7 ids
    (store / SENT_DIR).mkdir()
    fill(store.parent)
    with StandinCollector(up, TOKEN, max_bytes=100_000) as c:
        proc = cli(store, c.url)
        upstream = c.stored_ids()
    held = (
        one_line_error(proc, "No space left", "3 sent")
        and upstream == sorted(good)
        and names(store / SENT_DIR) == sorted(good)
        and names(store) == sorted([*big, "zz-junk"])  # kept, not lost
        and accounted(store, [*big, *good, "zz-junk"], upstream)
        and no_temp_files(store, store / SENT_DIR, store / REJECTED_DIR, store / CORRUPT_DIR)
    )
    assert a.attempt(held), (proc.stdout, proc.stderr)
    assert a.failed == 0


@pytest.mark.parametrize("subdir", [SENT_DIR, REJECTED_DIR, CORRUPT_DIR])
def test_a_symlinked_subdirectory_is_refused(tmp_path: Path, subdir: str, attack: Opener) -> None:
    """Before: a ``sent/`` (``rejected/``, ``corrupt/``) symlinked elsewhere moved the reports
    (a refused one, a corrupt file) out of the store."""
    a = attack(f"{subdir}/ is a symlink to a directory outside the store")
    store, up, outside = tmp_path / "store", tmp_path / "up", tmp_path / "outside"
    outside.mkdir()
    ids = spool(store, 1, padding=200_000) + spool(store, 2)  # the first one is refused (413)
    (store / "zz-junk.msgpack").write_bytes(b"\x93not a report")
    (store / subdir).symlink_to(outside)
    with StandinCollector(up, TOKEN, max_bytes=100_000) as c:
        proc = cli(store, c.url)
        upstream = c.stored_ids()
    held = (
        one_line_error(proc, f"{subdir}", "symbolic link")
        and list(outside.iterdir()) == []
        and names(store) == sorted([*ids, "zz-junk"])
        and upstream == []
    )
    assert a.attempt(held), (proc.stdout, proc.stderr)
    assert a.failed == 0


def test_a_symlinked_lock_is_refused_and_never_followed(tmp_path: Path, attack: Opener) -> None:
    """Before: a dangling ``.push.lock`` symlink got its target created (as root: anywhere)."""
    a = attack(".push.lock is a symlink (dangling, or to a file outside the store)")
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 2)
    dangling, victim = tmp_path / "created-by-push", tmp_path / "victim"
    victim.write_bytes(b"keep me")
    with StandinCollector(up, TOKEN) as c:
        for target in (dangling, victim):
            (store / LOCK_NAME).unlink(missing_ok=True)
            (store / LOCK_NAME).symlink_to(target)
            proc = cli(store, c.url)
            held = (
                one_line_error(proc, LOCK_NAME, "symbolic link")
                and not dangling.exists()
                and victim.read_bytes() == b"keep me"
                and names(store) == ids
                and c.stored_ids() == []
            )
            assert a.attempt(held), (target, proc.stdout, proc.stderr)
    assert a.failed == 0


def test_sent_on_another_file_system_is_refused(
    tmp_path: Path, mount_tmpfs: Callable[[Path, str], Path], attack: Opener
) -> None:
    """Before: ``Invalid cross-device link`` traceback after the first acknowledgement."""
    a = attack("sent/ is a mount point of another file system")
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 2)
    mount_tmpfs(store / SENT_DIR, "1m")
    with StandinCollector(up, TOKEN) as c:
        proc = cli(store, c.url)
        upstream = c.stored_ids()
    held = (
        one_line_error(proc, SENT_DIR, "another file system")
        and names(store) == ids
        and names(store / SENT_DIR) == []
        and upstream == []
    )
    assert a.attempt(held), (proc.stdout, proc.stderr)
    assert a.failed == 0


@pytest.mark.parametrize("with_sent", [False, True], ids=["fresh", "sent-and-lock-exist"])
def test_a_read_only_store_is_one_line_and_loses_nothing(
    tmp_path: Path,
    mount_tmpfs: Callable[[Path, str], Path],
    attack: Opener,
    with_sent: bool,
) -> None:
    """Before: ``OSError: [Errno 30] Read-only file system`` traceback."""
    a = attack("the store is on a read-only file system")
    fs = mount_tmpfs(tmp_path / "fs", "1m")
    store, up = fs / "store", tmp_path / "up"
    ids = spool(store, 2)
    if with_sent:
        (store / SENT_DIR).mkdir()
        (store / LOCK_NAME).touch()
    remount_ro(fs)
    with StandinCollector(up, TOKEN) as c:
        proc = cli(store, c.url)
        upstream = c.stored_ids()
    held = one_line_error(proc, "Read-only file system") and names(store) == ids and upstream == []
    assert a.attempt(held), (proc.stdout, proc.stderr)
    assert a.failed == 0


def test_a_move_that_fails_after_the_acknowledgement_stops_and_loses_nothing(
    tmp_path: Path, attack: Opener
) -> None:
    """The collector has stored the report, then the move into sent/ fails (here a folder of
    the report's name is in the way: rename cannot replace it). The report stays in the spool
    (the next push finds it upstream: 200) and the run stops with one line."""
    a = attack("the move into sent/ fails after the collector acknowledged the report")
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 3)
    (store / SENT_DIR / f"{ids[0]}.msgpack").mkdir(parents=True)
    with StandinCollector(up, TOKEN) as c:
        proc = cli(store, c.url)
        upstream, kept = c.stored_ids(), names(store)
        (store / SENT_DIR / f"{ids[0]}.msgpack").rmdir()
        again = cli(store, c.url)
        final = c.stored_ids()
    held = (
        one_line_error(proc, ids[0], "stays in the spool", "0 sent", "3 remaining")
        and upstream == ids[:1]
        and kept == ids  # the acknowledged one too: nothing lost
        and again.returncode == 0
        and "1 duplicate" in again.stdout
        and final == ids
        and names(store / SENT_DIR) == ids
    )
    assert a.attempt(held), (proc.stdout, proc.stderr, again.stdout, again.stderr)
    assert a.failed == 0


def test_a_store_this_user_cannot_write_is_one_line_before_anything_is_sent(
    world_dir: Path, unprivileged: Callable[[Callable[[], str]], str], attack: Opener
) -> None:
    """A push run as a user who may read the store but not write it (root owns it): refused
    before the first upload, whether the lock exists (writable by all) or not."""
    a = attack("push run by a user who cannot write the store")
    store = world_dir / "store"
    ids = spool(store, 2)
    for path in store.iterdir():
        path.chmod(0o644)

    def try_push() -> str:
        from edgeprof.uplink.spool import push  # already imported by the parent

        try:
            push(store, "http://127.0.0.1:9", TOKEN)
        except Exception as exc:  # the one-line error the CLI would print
            return f"{type(exc).__name__}: {exc}"
        return "no error"

    for lock_exists in (False, True):
        if lock_exists:
            (store / LOCK_NAME).touch()
            (store / LOCK_NAME).chmod(0o666)
        said = unprivileged(try_push)
        held = (
            said.startswith("StoreError: ")
            and "Permission denied" in said
            and "\n" not in said
            and names(store) == ids
            and not (store / SENT_DIR).exists()
        )
        assert a.attempt(held), said
    assert a.failed == 0


def test_a_wrong_path_on_the_real_collector_keeps_the_spool(
    collector: Any, tmp_path: Path, attack: Opener
) -> None:
    """The real collector (uvicorn) behind a wrong --url: the endpoint given instead of the
    base, a path prefix it does not have, a token it does not know."""
    a = attack("push to the real collector with a wrong URL path or token")
    store = tmp_path / "store"
    ids = []
    for _ in range(2):
        report = minimal_report()
        save_report(collector.signed(report), report["report_id"], store)
        ids.append(report["report_id"])
    ids.sort()
    for url, token in (
        (f"{collector.url}/v1/reports", collector.device_token),
        (f"{collector.url}/collector", collector.device_token),
        (collector.url, "not-a-token-it-knows"),
    ):
        proc = cli(store, url, token=token)
        held = (
            one_line_error(proc, "HTTP 4", "2 remaining")
            and names(store) == ids
            and not (store / REJECTED_DIR).exists()
            and collector.stored() == 0
        )
        assert a.attempt(held), (url, proc.stdout, proc.stderr)
    proc = cli(store, collector.url, token=collector.device_token)
    assert proc.returncode == 0, proc.stderr
    assert collector.stored() == 2
    assert a.failed == 0


def test_a_report_id_with_a_newline_cannot_forge_a_console_line(
    tmp_path: Path, attack: Opener
) -> None:
    """The first refusal's reason is on the console now, and it names the report id, which the
    report's author chose: a newline in it must not start a second, forged line."""
    a = attack("a refused report whose id carries a newline and a forged summary")
    store, up = tmp_path / "store", tmp_path / "up"
    report = minimal_report()
    report["report_id"] = forged = "x\nedgeprof: push: 0 rejected, everything delivered"
    save_report(encode(report), forged, store)
    with StandinCollector(up, TOKEN) as c:
        proc = cli(store, c.url)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    held = (
        proc.returncode == 1
        and len(lines) == 1
        and "HTTP 400" in lines[0]
        and names(store / REJECTED_DIR) == [forged]
    )
    assert a.attempt(held), (proc.stdout, proc.stderr)
    assert a.failed == 0

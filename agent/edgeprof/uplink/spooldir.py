"""The spool as push sees it: the store directory opened once, nothing under it followed.

Push moves reports between ``<store>/`` and its ``sent/``, ``rejected/`` and ``corrupt/``
folders, and locks ``<store>/.push.lock``. A store is a place other programs (and other users,
when it is shared) can write to, so every operation here is relative to a descriptor of the
store taken once (``openat``/``renameat`` through ``dir_fd``), and none follows a symbolic link:

* the folders are opened with ``O_NOFOLLOW | O_DIRECTORY``; a symlinked one is refused (a
  ``sent/`` pointing elsewhere would carry the reports out of the store);
* a folder on another mount (``sent/`` as a mount point) is refused before anything is sent:
  ``rename`` cannot cross it, and a copy is not atomic;
* the lock is opened with ``O_NOFOLLOW | O_CREAT``: a symlinked lock is refused, and its target
  (dangling or not) is never created or touched;
* reports are read with ``O_NOFOLLOW | O_NONBLOCK`` and only when they are regular files.

Every failure of the file system (full, read-only, permissions, a symlink, another mount) is a
:class:`StoreError`: one line naming the path and the cause, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from edgeprof.atomic import write_atomic_at
from edgeprof.errors import InputError, PushBusyError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_LOCK_POLL_S = 0.05


class StoreError(InputError):
    """The store cannot be used as push needs it (a local file-system problem)."""


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _mount_id(fd: int) -> str | None:
    """The mount an open file is on (``/proc/self/fdinfo``); None where /proc cannot tell.

    Finer than ``st_dev``: a bind mount of the same file system has the same device, and
    ``rename`` still cannot cross it.
    """
    try:  # bytes: no codec to import (a push may run where the interpreter's files are not)
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"mnt_id:"):
                    return line.split(b":", 1)[1].strip().decode()
    except OSError:
        pass
    return None


class SpoolDir:
    """One store, opened once; see the module doc. Use as a context manager (closes the fds)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self._subdirs: dict[str, int] = {}
        self._mount = _mount_id(fd)
        self._dev = os.fstat(fd).st_dev

    @classmethod
    def open(cls, path: Path) -> SpoolDir | None:
        """The store at ``path`` (which may itself be a symlink: the operator chose it), or
        None when it does not exist (nothing to push)."""
        try:
            fd = os.open(path, _DIR_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot open the store {path}: {_why(exc)}") from None
        return cls(path, fd)

    def close(self) -> None:
        for fd in self._subdirs.values():
            os.close(fd)
        self._subdirs.clear()
        os.close(self.fd)

    def __enter__(self) -> SpoolDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def where(self, *names: str) -> str:
        """A path for messages."""
        return os.path.join(self.path, *names)

    # ------------------------------------------------------------------ reading

    def names(self, suffix: str) -> list[str]:
        """The regular, non-hidden files named ``*suffix``, sorted (symlinks never listed)."""
        try:
            with os.scandir(self.fd) as entries:
                return sorted(
                    e.name
                    for e in entries
                    if not e.name.startswith(".")
                    and e.name.endswith(suffix)
                    and e.is_file(follow_symlinks=False)
                )
        except OSError as exc:
            raise StoreError(f"cannot list the store {self.path}: {_why(exc)}") from None

    def read(self, name: str, max_bytes: int) -> bytes | None:
        """A report's bytes; None when it is gone or not a regular file (left alone);
        :class:`InputError` when it is larger than ``max_bytes``."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):
                return None
            raise StoreError(f"cannot read {self.where(name)}: {_why(exc)}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            if st.st_size > max_bytes:
                raise InputError(f"{st.st_size} bytes, larger than {max_bytes}")
            chunks: list[bytes] = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise StoreError(f"cannot read {self.where(name)}: {_why(exc)}") from None
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ the folders

    def check(self, subdir: str) -> None:
        """Refuse ``subdir`` if it exists and is not a plain folder on the store's mount."""
        try:
            st = os.stat(subdir, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot use {self.where(subdir)}: {_why(exc)}") from None
        self._refuse_if_odd(subdir, st.st_mode)
        self.subdir(subdir)

    def _refuse_if_odd(self, subdir: str, mode: int) -> None:
        if stat.S_ISLNK(mode):
            raise StoreError(
                f"refusing {self.where(subdir)}: it is a symbolic link (push never moves "
                "reports out of the store; make it a plain folder); nothing sent"
            )
        if not stat.S_ISDIR(mode):
            raise StoreError(f"refusing {self.where(subdir)}: it is not a folder; nothing sent")

    def subdir(self, subdir: str) -> int:
        """The folder's fd, made if missing; refused if symlinked or on another mount."""
        if subdir in self._subdirs:
            return self._subdirs[subdir]
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(subdir, 0o755, dir_fd=self.fd)  # mkdirat never follows a symlink
            fd = os.open(subdir, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                with contextlib.suppress(OSError):
                    mode = os.stat(subdir, dir_fd=self.fd, follow_symlinks=False).st_mode
                    self._refuse_if_odd(subdir, mode)
            raise StoreError(f"cannot use {self.where(subdir)}: {_why(exc)}") from None
        st = os.fstat(fd)
        other = st.st_dev != self._dev or (
            self._mount is not None and _mount_id(fd) not in (None, self._mount)
        )
        if other:
            os.close(fd)
            raise StoreError(
                f"refusing {self.where(subdir)}: it is on another file system than the store "
                "(reports move by rename, which cannot cross it); nothing sent"
            )
        self._subdirs[subdir] = fd
        return fd

    # ------------------------------------------------------------------ writing

    def writable(self) -> None:
        """Refuse a store push cannot move reports out of (read-only, no permission)."""
        try:
            ok = os.access(
                ".",
                os.W_OK | os.X_OK,
                dir_fd=self.fd,
                effective_ids=os.access in os.supports_effective_ids,
            )
        except OSError as exc:
            raise StoreError(f"cannot use the store {self.path}: {_why(exc)}") from None
        if not ok:
            try:  # the cause, for the message: a read-only mount or a permission
                st = os.statvfs(self.fd)
                cause = "Read-only file system" if st.f_flag & os.ST_RDONLY else "Permission denied"
            except OSError:
                cause = "not writable"
            raise StoreError(
                f"cannot move reports out of the spool {self.path}: {cause}; nothing sent"
            )

    def write_reason(self, subdir: str, name: str, text: str) -> None:
        """``<subdir>/<name>`` whole or absent (:func:`write_atomic_at`)."""
        write_atomic_at(self.subdir(subdir), name, text.encode() + b"\n")

    def move(self, name: str, subdir: str) -> None:
        """Rename ``<store>/<name>`` into ``<store>/<subdir>/`` and make it durable."""
        target = self.subdir(subdir)
        os.rename(name, name, src_dir_fd=self.fd, dst_dir_fd=target)
        os.fsync(target)
        os.fsync(self.fd)

    @contextlib.contextmanager
    def lock(self, name: str, wait_s: float = 0.0) -> Iterator[None]:
        """Hold ``<store>/<name>`` (flock) or raise :class:`PushBusyError` after wait_s.

        ``O_NOFOLLOW | O_CREAT``: a symlink there is refused and its target never created.
        """
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o600, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(
                    f"refusing the push lock {self.where(name)}: it is a symbolic link "
                    "(never followed; remove it); nothing sent"
                ) from None
            raise StoreError(
                f"cannot open the push lock {self.where(name)}: {_why(exc)}; nothing sent"
            ) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(
                    f"refusing the push lock {self.where(name)}: not a regular file; nothing sent"
                )
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise PushBusyError(
                            f"another push is running (lock {self.where(name)}); nothing done"
                        ) from None
                    time.sleep(_LOCK_POLL_S)
            yield
        finally:
            os.close(fd)

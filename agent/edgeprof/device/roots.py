"""Where the agent looks for /sys, /proc and /etc.

Every path the agent reads from the system goes through :class:`SystemRoots`, so a containerised
agent with the host's /sys mounted elsewhere, and the tests with their fake sysfs tree, read
through exactly the same code as a bare-metal agent does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_SYSFS = "EDGEPROF_SYSFS_ROOT"
ENV_PROCFS = "EDGEPROF_PROCFS_ROOT"
ENV_ETC = "EDGEPROF_ETC_ROOT"


@dataclass(frozen=True)
class SystemRoots:
    """The three system trees the agent reads: sysfs, procfs and etc."""

    sysfs: Path = Path("/sys")
    procfs: Path = Path("/proc")
    etc: Path = Path("/etc")

    @classmethod
    def from_env(
        cls,
        sysfs: str | os.PathLike[str] | None = None,
        procfs: str | os.PathLike[str] | None = None,
        etc: str | os.PathLike[str] | None = None,
    ) -> SystemRoots:
        """Explicit arguments win over the environment, which wins over the defaults."""
        return cls(
            sysfs=Path(sysfs or os.environ.get(ENV_SYSFS) or "/sys"),
            procfs=Path(procfs or os.environ.get(ENV_PROCFS) or "/proc"),
            etc=Path(etc or os.environ.get(ENV_ETC) or "/etc"),
        )

    def sys(self, *parts: str) -> Path:
        """A path below the sysfs root, e.g. ``roots.sys("class", "hwmon")``."""
        return self.sysfs.joinpath(*parts)

    def proc(self, *parts: str) -> Path:
        """A path below the procfs root."""
        return self.procfs.joinpath(*parts)

    def etc_path(self, *parts: str) -> Path:
        """A path below the etc root."""
        return self.etc.joinpath(*parts)

"""The security suite: every attack from issue 13, run against the real collector (SQLite and
PostgreSQL through the ``collector`` fixture) or the real agent, each counted.

An attack test takes the ``attack`` fixture, names what it tries, and records each try as held
(the system refused or survived it as designed) or not. The test then asserts that every try was
held; the terminal summary lists tries / held / failed per attack, so a run shows what was tried,
not only that nothing broke.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass
class Attack:
    """One named attack and its tries."""

    name: str
    tries: int = 0
    held: int = 0

    @property
    def failed(self) -> int:
        return self.tries - self.held

    def attempt(self, held: bool) -> bool:
        """Record one try; returns ``held`` so a test can also assert on it directly."""
        self.tries += 1
        self.held += bool(held)
        return held


_LEDGER: list[tuple[str, Attack]] = []


@pytest.fixture
def attack(request: pytest.FixtureRequest) -> Callable[[str], Attack]:
    """``attack("what is tried")`` -> an :class:`Attack` recorded under this test's id."""

    def make(name: str) -> Attack:
        a = Attack(name)
        _LEDGER.append((request.node.nodeid, a))
        return a

    return make


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _LEDGER:
        return
    tr = terminalreporter
    tr.section("security suite: attacks tried")
    tr.write_line(f"{'tries':>6} {'held':>6} {'failed':>6}  attack")
    for nodeid, a in _LEDGER:
        backend = nodeid.rsplit("[", 1)[1].rstrip("]") if "[" in nodeid else ""
        label = f"{a.name} [{backend}]" if backend else a.name
        tr.write_line(f"{a.tries:>6} {a.held:>6} {a.failed:>6}  {label}")
    total = sum(a.tries for _, a in _LEDGER)
    failed = sum(a.failed for _, a in _LEDGER)
    tr.write_line(f"{total:>6} {total - failed:>6} {failed:>6}  in all")

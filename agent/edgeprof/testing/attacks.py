"""The attack ledger of the security suite (tests/security/): each attack named, each try counted.

An attack test takes the ``attack`` fixture (tests/conftest.py), names what it tries, and records
each try as held (the system refused or survived it as designed) or not; it then asserts that
every try was held. The terminal summary lists tries / held / failed per attack, so a run shows
what was tried, not only that nothing broke.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass
class Ledger:
    """Every attack of a test session, in the order tried, with the test that tried it."""

    entries: list[tuple[str, Attack]] = field(default_factory=list)

    def open(self, test_id: str, name: str) -> Attack:
        attack = Attack(name)
        self.entries.append((test_id, attack))
        return attack

    def lines(self) -> list[str]:
        """The summary table, one line per attack and a total."""
        out = [f"{'tries':>6} {'held':>6} {'failed':>6}  attack"]
        for test_id, a in self.entries:
            param = test_id.rsplit("[", 1)[1].rstrip("]") if "[" in test_id else ""
            label = f"{a.name} [{param}]" if param else a.name
            out.append(f"{a.tries:>6} {a.held:>6} {a.failed:>6}  {label}")
        total = sum(a.tries for _, a in self.entries)
        failed = sum(a.failed for _, a in self.entries)
        out.append(f"{total:>6} {total - failed:>6} {failed:>6}  in all")
        return out

"""The process exit codes of every ``edgeprof`` command, in one place.

Scripts and CI read these, so they never change: 0 it worked (or the gate passed), 1 it ran and
the answer is "no" (a gate or benchmark failed, reports were left behind, a signature did not
match), 2 it could not be done (bad input, a missing device, a gate that could not evaluate),
130 interrupted (Ctrl-C: 128 + SIGINT, what shells report; never 1, which means "no").
"""

from __future__ import annotations

from typing import Final

OK: Final = 0
FAILED: Final = 1
ERROR: Final = 2
INTERRUPTED: Final = 130

# The gate's outcomes (edgeprof.gate.evaluate.Decision.outcome) as exit codes: "incomplete"
# (a required rule had nothing to judge) is "could not evaluate", not a failure.
GATE_PASS: Final = OK
GATE_FAIL: Final = FAILED
GATE_INCOMPLETE: Final = ERROR


def for_gate(outcome: str) -> int:
    """``pass`` -> 0, ``fail`` -> 1, anything else (``incomplete``) -> 2."""
    return {"pass": GATE_PASS, "fail": GATE_FAIL}.get(outcome, GATE_INCOMPLETE)

"""Whether a board can measure a metric at all, from its board file.

Why: a rule on power cannot be met by a board with no power sensor, so "the report lacks power"
on such a board says nothing about the run; the decision must be INCOMPLETE only when a metric
this board *can* measure is missing. The board file says which rails exist (``[power].rails``);
a board the registry does not know is assumed able to measure everything (fail closed).
"""

from __future__ import annotations

from edgeprof.gate.policy import metric_unit

_POWER_UNITS = ("w", "j", "tokens/mW")


def is_power_metric(metric: str) -> bool:
    """Power and energy figures (watts, joules, tokens per mW): they need a power sensor."""
    return metric_unit(metric) in _POWER_UNITS


def unmeasurable(metric: str, board_id: str) -> str | None:
    """Why ``board_id`` cannot measure ``metric`` (None when it can, or when unknown)."""
    from edgeprof.device.board_registry import load_boards

    board = load_boards().get(board_id)
    if board is None or not is_power_metric(metric):
        return None
    if board.power is not None and board.power.rails:
        return None
    return (
        f"board {board_id} has no power rails in its board file ([power].rails), so "
        f"{metric} is not measurable there"
    )

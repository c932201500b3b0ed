"""Kept for its callers: ``minimal_report`` is the factory of edgeprof.testing.reports."""

from __future__ import annotations

from edgeprof.testing.reports import make_report as minimal_report

__all__ = ["minimal_report"]

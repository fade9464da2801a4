"""The median, which the ETA and the checks of a run's duration are made of: a module of its own, so that the
service does not import the step figures of orchestrator/core/stepstats.py (asked for now and then) to start."""

from __future__ import annotations

from collections.abc import Iterable


def median(values: Iterable[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count), as ``statistics.median`` says it,
    without importing ``statistics`` (and its ``fractions`` and ``decimal``) into the service."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no median of no values")
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

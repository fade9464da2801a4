"""A problem that starts, goes on for a while and ends, said twice: once when it starts and once when it ends,
however often it happens in between. Pure: the caller owns the log lines, this only tells when to write them.

(:mod:`orchestrator.core.spell` is the other pattern: a problem said once a minute, with a count.)
"""

from __future__ import annotations


class Streak:
    """:meth:`failed` is ``True`` only for the first failure of a streak, :meth:`recovered` only for the
    success that ends one. A streak whose first failure was ``quiet`` (not worth saying) ends quietly too."""

    __slots__ = ("_failing", "_said")

    def __init__(self) -> None:
        self._failing = False
        self._said = False

    @property
    def failing(self) -> bool:
        """Whether a streak is going on (the last thing reported was a failure)."""
        return self._failing

    def failed(self, *, quiet: bool = False) -> bool:
        """A failure: ``True`` if it starts a streak that is worth saying (the caller says it)."""
        if self._failing:
            return False
        self._failing, self._said = True, not quiet
        return self._said

    def recovered(self) -> bool:
        """A success: ``True`` if it ends a streak that was said (the caller says that it is over)."""
        said = self._failing and self._said
        self._failing = self._said = False
        return said

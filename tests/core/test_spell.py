"""Spells of a recurring problem (orchestrator/core/spell.py): one line at the first, the rest counted. A table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.spell import Held, Spell

T0 = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("refusals", "said"),
    [
        # The first refusal is said; the rest of the minute are counted.
        ([("a", 0), ("a", 1), ("b", 59)], [Held(0), None, None]),
        # The first after the minute is said, with what was held, most first.
        (
            [("a", 0), ("b", 1), ("a", 2), ("a", 3), ("c", 30), ("d", 60), ("d", 61)],
            [Held(0), None, None, None, None, Held(4, (("a", 2), ("b", 1), ("c", 1))), None],
        ),
        # A quiet spell holds nothing.
        ([("a", 0), ("a", 600)], [Held(0), Held(0)]),
    ],
)
def test_a_spell_says_its_first_refusal_and_counts_the_rest(
    refusals: list[tuple[str, float]], said: list[Held | None]
) -> None:
    spell = Spell(timedelta(minutes=1))
    assert [spell.hit(who, T0 + timedelta(seconds=s)) for who, s in refusals] == said


@pytest.mark.parametrize(
    ("held", "text"),
    [
        (Held(0), ""),
        (Held(3), " (and 3 more refused since the last such line)"),
        (Held(5, (("a", 4), ("b", 1))), " (and 5 more refused since the last such line, most from a (4), b (1))"),
    ],
)
def test_what_a_spell_held_reads_as(held: Held, text: str) -> None:
    assert held.text() == text

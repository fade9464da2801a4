"""The status badge (``GET /badge/{job}.svg``) for READMEs and wikis that run no scripts: a pure function of the
job's name, its status document and ``now``, drawn in the shields.io style (a grey label, a coloured value).

The value says the progress while a run is on (``running 45 %``), else the last outcome and its age
(``completed 5 min ago``, ``failed 2 h ago``, ``cancelled 3 d ago``) or ``never run``, with ``· paused`` after it
while the schedule is paused. Widths are estimated from a table of Verdana 11 px character widths (the font
the badge asks for; a viewer without it draws a similar sans-serif). Every text is XML-escaped, and the badge
has no script, no style element and no link: only shapes, text and a ``<title>`` with the whole text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator.core.events import parse_iso

GREEN = "#4c1"
RED = "#e05d44"
GREY = "#9f9f9f"
BLUE = "#007ec6"
LABEL = "#555"
HEIGHT = 20
PADDING = 6
"""Space on each side of a text, in pixels."""
FONT = "Verdana,Geneva,DejaVu Sans,sans-serif"
LOWER_WIDTHS = (
    "6.7 6.8 5.7 6.8 6.5 3.8 6.8 7.0 3.0 3.8 6.4 3.0 10.6 7.0 6.7 6.8 6.8 4.7 5.7 4.3 7.0 6.4 9.0 6.4 6.4 5.6"
)
UPPER_WIDTHS = (
    "7.5 7.5 7.7 8.5 7.0 6.3 8.5 8.3 4.6 5.0 7.6 6.1 9.3 8.2 8.7 6.6 8.7 7.7 7.5 6.8 8.1 7.5 10.9 7.5 6.8 7.5"
)
OTHER_WIDTHS = {" ": 3.9, ".": 3.9, ",": 3.9, ":": 4.5, ";": 4.5, "-": 4.5, "_": 7.0, "%": 11.9, "(": 4.9, ")": 4.9}
OTHER_WIDTHS |= {"/": 4.9, "·": 3.9, "'": 2.7, '"': 4.6, "<": 8.4, ">": 8.4, "&": 7.7, "!": 4.0, "?": 5.8}
WIDTHS = {
    **dict.fromkeys("0123456789", 7.0),
    **dict(zip("abcdefghijklmnopqrstuvwxyz", map(float, LOWER_WIDTHS.split()), strict=True)),
    **dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", map(float, UPPER_WIDTHS.split()), strict=True)),
    **OTHER_WIDTHS,
}
"""Verdana 11 px, in pixels, rounded to a tenth (as shields.io measures it)."""
DEFAULT_WIDTH = 7.0
"""Any other character: about the width of a digit (wide CJK characters are wider; the badge grows a little short)."""
OUTCOMES = {"completed": ("completed", GREEN), "error": ("failed", RED), "cancelled": ("cancelled", GREY)}


@dataclass(frozen=True, slots=True)
class Badge:
    """What a badge says, before it is drawn."""

    label: str
    value: str
    colour: str

    @property
    def text(self) -> str:
        return f"{self.label}: {self.value}"


def badge_of(job: str, status: Mapping[str, Any], now: datetime) -> Badge:
    """What the badge of ``job`` says, from its status document, as of ``now``."""
    if status.get("running"):
        progress = (status.get("progress") or {}).get("progress")
        value = f"running {progress} %" if isinstance(progress, int | float) else "running"
        colour = BLUE
    else:
        value, colour = _last_outcome(status.get("lastRun"), now)
    if status.get("paused"):
        value += " · paused"
    return Badge(job, value, colour)


def _last_outcome(last: Any, now: datetime) -> tuple[str, str]:
    if not isinstance(last, Mapping):
        return "never run", GREY
    raw = str(last.get("status", ""))
    word, colour = OUTCOMES.get(raw, (raw or "unknown", GREY))
    ended = parse_iso(last.get("finishedAt")) or parse_iso(last.get("startedAt"))
    return (f"{word} {age(now - ended)}" if ended is not None else word), colour


def age(elapsed: timedelta) -> str:
    """``just now``, ``5 min ago``, ``2 h ago``, ``3 d ago`` (whole units, rounded down)."""
    seconds = max(0.0, elapsed.total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def text_width(text: str) -> float:
    return sum(WIDTHS.get(char, DEFAULT_WIDTH) for char in text)


def render(badge: Badge) -> str:
    """The badge as an SVG document."""
    left = math.ceil(text_width(badge.label)) + 2 * PADDING
    right = math.ceil(text_width(badge.value)) + 2 * PADDING
    width = left + right
    label, value, title = _xml(badge.label), _xml(badge.value), _xml(badge.text)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" role="img" '
        f'aria-label="{title}"><title>{title}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="{HEIGHT}" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="{HEIGHT}" fill="{LABEL}"/>'
        f'<rect x="{left}" width="{right}" height="{HEIGHT}" fill="{badge.colour}"/>'
        f'<rect width="{width}" height="{HEIGHT}" fill="url(#s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="{FONT}" font-size="11">'
        f"{_text(left / 2, label)}{_text(left + right / 2, value)}</g></svg>"
    )


def badge_svg(job: str, status: Mapping[str, Any], now: datetime) -> str:
    """The badge of ``job`` as an SVG document (``badge_of`` drawn by ``render``)."""
    return render(badge_of(job, status, now))


def _text(x: float, escaped: str) -> str:
    """A text with its shadow, centred on ``x``."""
    return (
        f'<text x="{x:g}" y="15" fill="#010101" fill-opacity=".3" aria-hidden="true">{escaped}</text>'
        f'<text x="{x:g}" y="14">{escaped}</text>'
    )


def _xml(text: str) -> str:
    """``text`` safe in XML text and attribute values: escaped, and without the control characters XML 1.0
    forbids (a parser would reject the whole badge)."""
    printable = "".join(char for char in text if char >= " " or char == "\t")
    return html.escape(printable, quote=True)

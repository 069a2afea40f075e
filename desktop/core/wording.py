"""Counts and shares in the words a worker reads: "1 error", "2 errors", "69.9 %"."""

from __future__ import annotations

import math

from .results import as_written


def percent(share: float, decimals: int = 1) -> str:
    """`share` (0-1) as written in the CSV, as a percentage rounded down: a confidence just
    under a 70 % review threshold reads "69.9 %" (or "69 %"), never a "70.0 %" flagged as
    under 70 %."""
    if not math.isfinite(share):
        return "n/a"
    scale = 10**decimals
    # The nudge (a millionth of a step) only undoes the multiplication's rounding (0.57 *
    # 1000 is 569.99999...).
    return f"{math.floor(as_written(share) * 100 * scale + 1e-6) / scale:.{decimals}f} %"


def sentence(text: str) -> str:
    """A reason as a dialog's sentence: capital first letter, full stop at the end (the
    reasons are written to follow "error: " on a command line)."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def plural(count: int, word: str) -> str:
    """`count` and `word`, with an "s" unless there is exactly one."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def nearest_class(name: str, confidence: float) -> str:
    """An unknown item's nearest class, said as no verdict: "nearest class Mouse (41.2 %
    among the known classes)", as the app's preview and the web page's verdict say it."""
    return f"nearest class {name} ({percent(confidence)} among the known classes)"


def counts_line(
    total: int, ok: int, review: int, unknown: int, errors: int, checked: int = 0
) -> str:
    """A batch at a glance, as the app and the web page show it:
    "13 results: 10 ok · 1 needs review · 1 unknown · 2 errors" (unknown only when any).
    `checked`: rows a person confirmed or corrected (the app), counted apart from the rest."""
    unknown_part = f"{unknown} unknown · " if unknown else ""
    checked_part = f" · {checked} checked by a person" if checked else ""
    review_verb = "needs" if review == 1 else "need"
    return (
        f"{plural(total, 'result')}: {ok} ok · {review} {review_verb} review · "
        f"{unknown_part}{plural(errors, 'error')}{checked_part}"
    )

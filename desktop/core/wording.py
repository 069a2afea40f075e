"""Counts in the words a worker reads: "1 error", "2 errors"."""

from __future__ import annotations


def plural(count: int, word: str) -> str:
    """`count` and `word`, with an "s" unless there is exactly one."""
    return f"{count} {word}{'' if count == 1 else 's'}"

"""The trainer's error boundary: problems a user can fix from the message alone.

Every such error derives from `TrainerError`, and `ewaste-train` prints those as one line
and exits with status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TrainerError(Exception):
    """A problem with the user's data, files or flags; the message says what to fix."""


class ConfigError(TrainerError, ValueError):
    """A recipe setting that is not one of its choices (also a ValueError, as Python's own
    code would raise for a bad argument)."""

"""Locales a station may run under, for tests that start a program under one. .ci/run
generates them and sets EWASTE_REQUIRE_LOCALES=1: there a missing one is a failure, not a
skip. On a developer's machine without it, a skip."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LOCALES_REQUIRED = os.environ.get("EWASTE_REQUIRE_LOCALES") == "1"


def environment_in(language: str, **more: str) -> dict[str, str]:
    """This process's environment under the locale `language` (installed, or the test is
    skipped or failed), with `more` added."""
    probe = f"import locale; locale.setlocale(locale.LC_ALL, {language!r})"
    if subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode != 0:
        message = f"the {language} locale is not installed (localedef -i ... -f ...)"
        if LOCALES_REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env.pop("PYTHONUTF8", None)
    return {**env, "LC_ALL": language, **more}

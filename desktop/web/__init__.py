"""`ewaste-web`: the station's classifier as a local web page (optional extra `web`)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The command: said in one line on an install without the extra, or on a machine
    without a writable temporary folder (a hardened service), where Gradio, imported at the
    page module's top, would end in a traceback."""
    from desktop.core.extras import missing_extra

    problem = missing_extra("web")
    if problem is None:
        problem = no_temporary_folder()
    if problem:
        print(f"ewaste-web: error: {problem}", file=sys.stderr)
        return 2
    from desktop.web.app import main as serve

    return serve(argv)


def no_temporary_folder() -> str | None:
    """Why there is no temporary folder to write (uploads arrive there), or None."""
    try:
        tempfile.gettempdir()  # tries TMPDIR, /tmp, /var/tmp ... and the working folder
    except OSError as exc:
        return f"no writable temporary folder for the uploads: set TMPDIR to one ({exc})"
    return None

"""`ewaste-web`: the station's classifier as a local web page (optional extra `web`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The command: said in one line on an install without the extra (Gradio imported at
    the page module's top would end in a traceback)."""
    from desktop.core.extras import missing_extra

    problem = missing_extra("web")
    if problem:
        print(f"ewaste-web: error: {problem}", file=sys.stderr)
        return 2
    from desktop.web.app import main as serve

    return serve(argv)

"""Before Qt starts on Linux/X11: are the system libraries of Qt's xcb plugin there?

The PySide6 wheel does not carry them, and without them Qt aborts with "no Qt platform
plugin could be initialized" and no word on what is missing. This names the missing
libraries and the command that installs them (or says there is no display at all), and the
app exits instead of crashing.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping

# The libraries Qt 6's xcb platform plugin loads: soname -> (Debian/Ubuntu, Fedora) package.
XCB_LIBRARIES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
}


def uses_xcb(environ: Mapping[str, str]) -> bool:
    """Will Qt pick its X11 (xcb) plugin? Not when told another platform (offscreen, a
    Wayland session), nor on another operating system. With no display at all it does,
    and aborts."""
    if not sys.platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.startswith("xcb")
    return not environ.get("WAYLAND_DISPLAY")


def missing_xcb_libraries(load: Callable[[str], object] = ctypes.CDLL) -> list[str]:
    missing = []
    for soname in XCB_LIBRARIES:
        try:
            load(soname)
        except OSError:
            missing.append(soname)
    return missing


def x_server_answers(display: str) -> bool:
    """Whether the X server of `display` (":0", "host:10.0") takes a connection, asked
    through libxcb as Qt will; True when that cannot be told (no libxcb: said otherwise)."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return True
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)  # never NULL: an error object
    try:
        return xcb.xcb_connection_has_error(connection) == 0
    finally:
        xcb.xcb_disconnect(connection)


def platform_problem(
    environ: Mapping[str, str] = os.environ,
    load: Callable[[str], object] = ctypes.CDLL,
    answers: Callable[[str], bool] = x_server_answers,
) -> str | None:
    """A message naming what to install, or that there is no display to open a window on;
    None when Qt can open its window."""
    if not uses_xcb(environ):
        return None
    if not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"):
        # Over SSH, say: Qt would abort blaming xcb-cursor0 and advising a reinstall.
        return (
            "ewaste-app: cannot open a window: no display (DISPLAY and WAYLAND_DISPLAY are "
            "not set). Start it from the desktop session, or check an install without one:\n"
            "  QT_QPA_PLATFORM=offscreen ewaste-app --check\n"
            "(ewaste-classify needs no display.)"
        )
    missing = missing_xcb_libraries(load)
    display = environ.get("DISPLAY", "")
    if not missing:
        if display and not answers(display):  # a stale DISPLAY, a closed ssh -X, a crashed X
            return (
                f"ewaste-app: cannot open a window: no X server answers at DISPLAY={display}. "
                "Start it from the desktop session, or check an install without one:\n"
                "  QT_QPA_PLATFORM=offscreen ewaste-app --check\n"
                "(ewaste-classify needs no display.)"
            )
        return None
    debian = " ".join(XCB_LIBRARIES[soname][0] for soname in missing)
    fedora = " ".join(sorted({XCB_LIBRARIES[soname][1] for soname in missing}))
    return (
        f"ewaste-app: cannot open a window: Qt's X11 plugin needs {', '.join(missing)}, "
        "which this system lacks. Install them, then start the app again:\n"
        f"  Debian/Ubuntu: sudo apt-get install {debian}\n"
        f"  Fedora:        sudo dnf install {fedora}\n"
        "(ewaste-classify needs none of them.)"
    )

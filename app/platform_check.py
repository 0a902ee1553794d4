"""Can Qt open a window here? Answered before any Qt import, in one line a person can act on.

Without a display, or without a system library that Qt's xcb plugin links,
Qt aborts with a core dump and a paragraph about plugins. Each library the
plugin (and libQt6XcbQpa) needs is loaded here by its soname, as the dynamic
loader will, and a missing one is named with the Debian/Ubuntu package that
ships it.
"""

from __future__ import annotations

import ctypes
import os
import sys

HEADLESS_HINT = ("use the headless commands instead, e.g. `torchwork run CONFIG.toml`, "
                 "`torchwork runs` (see `torchwork --help`)")
# soname -> Debian/Ubuntu package: the direct dependencies of PySide6 6.10's libqxcb.so and
# libQt6XcbQpa.so.6 outside Qt itself (`ldd` on them), as packaging/system-deps.sh installs them
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1", "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0", "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0", "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-util.so.1": "libxcb-util1", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0", "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shm.so.0": "libxcb-shm0", "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0", "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1", "libGL.so.1": "libgl1", "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1", "libglib-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}


def display_problem() -> str | None:
    """Why Qt could not open a window here, in one line, or None when it can."""
    if sys.platform != "linux":
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return None  # offscreen, vnc, ...: the user chose
    wayland = bool(os.environ.get("WAYLAND_DISPLAY")) and not platform.startswith("xcb")
    if wayland:
        return None
    if not os.environ.get("DISPLAY"):
        return f"no display found (neither DISPLAY nor WAYLAND_DISPLAY is set): {HEADLESS_HINT}"
    missing = [lib for lib in XCB_LIBRARIES if not loadable(lib)]
    if not missing:
        return None
    packages = " ".join(dict.fromkeys(XCB_LIBRARIES[lib] for lib in missing))
    return (f"Qt's xcb platform plugin cannot load {', '.join(missing)}: install them with "
            f"`sudo apt-get install {packages}` (Debian/Ubuntu package names), or "
            f"{HEADLESS_HINT}")


def loadable(soname: str) -> bool:
    """Whether the dynamic loader finds and loads ``soname``, as it will for Qt's plugin."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True

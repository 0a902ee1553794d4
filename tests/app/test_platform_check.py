"""Without a display or without the system libraries of Qt's xcb plugin, `torchwork` says so in
one line naming what to install, before Qt is started (Qt itself aborts with a core dump)."""

import pytest

from app import __main__ as entry
from app import platform_check


@pytest.fixture
def x11(monkeypatch):
    monkeypatch.setattr(platform_check.sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)


def without(monkeypatch, *sonames):
    tried = []

    def loadable(soname):
        tried.append(soname)
        return soname not in sonames

    monkeypatch.setattr(platform_check, "loadable", loadable)
    return tried


def test_missing_xcb_libraries_are_named_with_their_debian_packages(x11, monkeypatch, capsys):
    without(monkeypatch, "libxcb-cursor.so.0", "libxkbcommon-x11.so.0")
    assert entry.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "libxcb-cursor.so.0, libxkbcommon-x11.so.0" in err
    assert "sudo apt-get install libxcb-cursor0 libxkbcommon-x11-0`" in err
    assert "torchwork run CONFIG.toml" in err


def test_every_library_the_plugin_links_is_probed(x11, monkeypatch):
    tried = without(monkeypatch, "libxcb-icccm.so.4")
    assert "apt-get install libxcb-icccm4`" in platform_check.display_problem()
    assert {"libxcb-cursor.so.0", "libxkbcommon-x11.so.0", "libxcb-keysyms.so.1",
            "libxcb-randr.so.0", "libEGL.so.1", "libfontconfig.so.1"} <= set(tried)


def test_with_every_library_the_window_may_open(x11, monkeypatch):
    without(monkeypatch)
    assert platform_check.display_problem() is None


def test_the_probe_loads_real_libraries():
    assert platform_check.loadable("libc.so.6")
    assert not platform_check.loadable("libtorchwork-missing.so.0")


@pytest.mark.parametrize("env", [{"QT_QPA_PLATFORM": "offscreen"},
                                 {"WAYLAND_DISPLAY": "wayland-0"}])
def test_libraries_are_not_probed_where_qt_will_not_use_xcb(x11, monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    tried = without(monkeypatch, "libxcb-cursor.so.0")
    assert platform_check.display_problem() is None
    assert tried == []


def test_no_display_is_said_before_any_library(x11, monkeypatch):
    monkeypatch.delenv("DISPLAY")
    without(monkeypatch, "libxcb-cursor.so.0")
    assert platform_check.display_problem().startswith("no display found")

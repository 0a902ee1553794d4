"""The timeline widget: keys move the view, search walks the hits, clicks and ranges report."""

import orjson
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app.widgets.timeline_view import TimelineView, format_us
from engine.profiling.timeline import load_trace


def x(name, ts, dur, tid=1, pid=100, cat="cpu_op", **args):
    event = {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur}
    if args:
        event["args"] = args
    return event


@pytest.fixture
def index(tmp_path):
    events = []
    for step in range(10):  # 10 steps of 1 ms, each: linear(addmm), relu
        t = step * 1000
        events += [x(f"ProfilerStep#{step}", t, 900, cat="user_annotation"),
                   x("aten::linear", t + 100, 400),
                   x("aten::addmm", t + 150, 300, **{"Input Dims": [[32, 64], [64, 10]],
                                                     "Input type": ["float", "float"]}),
                   x("aten::relu", t + 600, 200),
                   x("void gemm_kernel", t + 200, 250, pid=0, tid=7, cat="kernel")]
    path = tmp_path / "t.pt.trace.json"
    path.write_bytes(orjson.dumps({"traceEvents": events}))
    return load_trace(path)


@pytest.fixture
def view(qtbot, index):
    widget = TimelineView()
    qtbot.addWidget(widget)
    widget.resize(1000, 500)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_trace(index)
    return widget


def test_shows_the_whole_trace_with_a_row_per_track(view):
    t0, t1 = view.window()
    assert t0 <= 0 and t1 >= view.index.span_us
    labels = [label for _, label in view.track_axis._tickLevels[0]]
    assert labels == ["CPU thread 1", "CUDA stream 7"]
    assert "kernel" in view.legend.text() and "cpu_op" in view.legend.text()
    view.grab()
    assert view.slices.bars_drawn > 0


def test_keys_zoom_and_pan(qtbot, view):
    view.plot.setFocus()
    t0, t1 = view.window()
    qtbot.keyClick(view.plot, Qt.Key_W)
    z0, z1 = view.window()
    assert z1 - z0 == pytest.approx(0.8 * (t1 - t0))
    qtbot.keyClick(view.plot, Qt.Key_S)
    assert view.window()[1] - view.window()[0] == pytest.approx(t1 - t0)
    for _ in range(5):
        qtbot.keyClick(view.plot, Qt.Key_W)
    a0, a1 = view.window()
    qtbot.keyClick(view.plot, Qt.Key_D)
    assert view.window()[0] == pytest.approx(a0 + 0.15 * (a1 - a0))
    qtbot.keyClick(view.plot, Qt.Key_A)
    assert view.window()[0] == pytest.approx(a0)


def test_search_walks_hits_in_time_order_and_centres_them(view):
    assert view.search("ADDMM") == 10
    assert view.hit_label.text() == "10 matches"
    view.next_hit()
    first = view.selected
    assert view.index.names[view.index.name_id[first]] == "aten::addmm"
    t0, t1 = view.window()
    assert t0 < view.index.start_us[first] < view.index.end_us[first] < t1
    assert (t1 - t0) < 2000  # zoomed in to it, not the whole trace
    view.next_hit()
    second = view.selected
    assert view.index.start_us[second] > view.index.start_us[first]
    assert view.hit_label.text() == "2 of 10"
    view.previous_hit()
    assert view.selected == first
    view.previous_hit()  # wraps around to the last
    assert view.hit_label.text() == "10 of 10"
    assert view.search("nothing like it") == 0
    assert view.hit_label.text() == "no matches"


def test_enter_in_the_search_box_goes_to_the_next_hit(qtbot, view):
    qtbot.keyClicks(view.search_box, "relu")
    qtbot.keyClick(view.search_box, Qt.Key_Return)
    assert view.index.names[view.index.name_id[view.selected]] == "aten::relu"
    assert view.hit_label.text() == "1 of 10"
    qtbot.keyClick(view.search_box, Qt.Key_Return)
    assert view.hit_label.text() == "2 of 10"
    qtbot.keyClick(view.search_box, Qt.Key_Return, Qt.ShiftModifier)
    assert view.hit_label.text() == "1 of 10"


def test_click_on_a_slice_shows_its_details(qtbot, view):
    view.set_window(0, 1000)  # the first step
    row = view.index.tracks[0].first_row + 2  # addmm's row
    scene = view.viewbox.mapViewToScene(QPointF(300, row + 0.5))
    pos = view.plot.mapFromScene(scene)
    qtbot.mouseClick(view.plot.viewport(), Qt.LeftButton, pos=pos)
    text = view.info_text()
    assert "aten::addmm" in text
    assert "300 µs" in text
    assert "float [32, 64]" in text and "float [64, 10]" in text
    assert "CPU thread 1" in text
    # a click on empty space clears it
    scene = view.viewbox.mapViewToScene(QPointF(950, row + 0.5))
    qtbot.mouseClick(view.plot.viewport(), Qt.LeftButton, pos=view.plot.mapFromScene(scene))
    assert view.selected is None and view.info_text() == ""


def test_fit_zooms_to_the_selection(qtbot, view):
    view.search("relu")
    view.next_hit()
    view.set_window(0, view.index.span_us)
    qtbot.keyClick(view.plot, Qt.Key_F)
    t0, t1 = view.window()
    assert t1 - t0 == pytest.approx(200 * 1.1)


def test_range_selection_fills_time_per_name(qtbot, view):
    view.select_range(1150, 1300)  # inside step 1: addmm from 1150, linear, the step, kernel
    rows = {name: (time, share, count) for name, time, share, count in view.range_rows()}
    assert rows["aten::addmm"] == ("150 µs", "100.0", "1")
    assert rows["aten::linear"] == ("150 µs", "100.0", "1")
    assert rows["void gemm_kernel"] == ("100 µs", "66.7", "1")
    assert "aten::relu" not in rows
    assert view.region.isVisible()


def mouse(widget, kind, pos, buttons, modifiers):
    """A mouse event with the modifiers held throughout (QTest's moves carry none)."""
    local = QPointF(pos)
    event = QMouseEvent(kind, local, widget.mapToGlobal(local), Qt.LeftButton, buttons,
                        modifiers)
    QApplication.sendEvent(widget, event)


def test_shift_drag_selects_a_range(qtbot, view):
    view.set_window(0, 2000)
    vb = view.viewbox
    row = view.index.tracks[0].first_row
    start = view.plot.mapFromScene(vb.mapViewToScene(QPointF(1000, row + 0.5)))
    end = view.plot.mapFromScene(vb.mapViewToScene(QPointF(2000, row + 0.5)))
    viewport = view.plot.viewport()
    shift = Qt.ShiftModifier
    mouse(viewport, QEvent.MouseButtonPress, start, Qt.LeftButton, shift)
    for k in range(1, 11):
        mouse(viewport, QEvent.MouseMove, start + (end - start) * k / 10, Qt.LeftButton, shift)
    mouse(viewport, QEvent.MouseButtonRelease, end, Qt.NoButton, shift)
    assert view.range_us is not None
    t0, t1 = view.range_us
    assert t0 == pytest.approx(1000, abs=10) and t1 == pytest.approx(2000, abs=10)
    names = [r[0] for r in view.range_rows()]
    assert names[0] == "ProfilerStep#1"


def test_dark_theme_and_format(view):
    view.apply_theme(True)
    assert view.plot.backgroundBrush().color().name() == "#1e1f22"
    view.grab()
    assert format_us(850) == "850 µs"
    assert format_us(12_345) == "12.35 ms"
    assert format_us(1_250_000) == "1.25 s"


def test_drag_pans_time(view):
    view.set_window(1000, 2000)
    vb = view.viewbox
    start = view.plot.mapFromScene(vb.mapViewToScene(QPointF(1600, 0.5)))
    end = view.plot.mapFromScene(vb.mapViewToScene(QPointF(1400, 0.5)))
    viewport = view.plot.viewport()
    mouse(viewport, QEvent.MouseButtonPress, start, Qt.LeftButton, Qt.NoModifier)
    for k in range(1, 11):
        mouse(viewport, QEvent.MouseMove, start + (end - start) * k / 10, Qt.LeftButton,
              Qt.NoModifier)
    mouse(viewport, QEvent.MouseButtonRelease, end, Qt.NoButton, Qt.NoModifier)
    t0, t1 = view.window()
    assert t0 == pytest.approx(1200, abs=5) and t1 == pytest.approx(2200, abs=5)
    assert view.range_us is None

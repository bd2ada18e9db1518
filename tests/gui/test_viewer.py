"""The frame viewer with keys and mouse: zoom about the cursor, 1:1 and fit, panning, rotation, marks of a
constant size on screen, viewing adjustments that never reach the evidence, the clip player, and the
choice of the audio window."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from forensic_face.gui.frame_panel import FramePanel


def on_screen(qtbot, widget, width: int, height: int):
    qtbot.addWidget(widget)
    widget.resize(width, height)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture()
def panel(qtbot) -> FramePanel:
    p = on_screen(qtbot, FramePanel(), 800, 600)
    rng = np.random.default_rng(0)
    p.view.set_frame(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    return p


def wheel(view, at: QPointF, steps: int) -> None:
    vp = view.viewport()
    QApplication.sendEvent(vp, QWheelEvent(at, vp.mapToGlobal(at), QPoint(), QPoint(0, 120 * steps),
                                           Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                                           Qt.ScrollPhase.NoScrollPhase, False))


def test_the_wheel_zooms_about_the_cursor_and_the_readout_follows(panel: FramePanel) -> None:
    view = panel.view
    view.actual_pixels()
    assert view.zoom_level() == pytest.approx(1.0) and panel.zoom_label.text() == "100 %"
    view.zoom_by(4.0)  # the frame larger than the view: the point under the cursor can stay put
    at = QPointF(300, 200)
    under = view.mapToScene(at.toPoint())
    wheel(view, at, 2)
    assert view.zoom_level() == pytest.approx(4 * 1.25 ** 2) and panel.zoom_label.text() == "625 %"
    after = view.mapToScene(at.toPoint())
    assert abs(after.x() - under.x()) < 0.5 and abs(after.y() - under.y()) < 0.5  # the point stayed put
    wheel(view, at, -2)
    assert view.zoom_level() == pytest.approx(4.0)


def test_zoom_fit_and_actual_pixels_by_keys(qtbot, panel: FramePanel) -> None:
    view = panel.view
    view.setFocus()
    view.actual_pixels()
    qtbot.keyClick(view, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert view.zoom_level() == pytest.approx(1.25)
    qtbot.keyClick(view, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(view, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert view.zoom_level() == pytest.approx(0.8)
    qtbot.keyClick(view, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)  # fit: the frame fills the view
    fitted = view.zoom_level()
    assert fitted > 1.5 and panel.zoom_label.text() == f"{fitted * 100:.0f} %"
    qtbot.keyClick(view, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
    assert view.zoom_level() == pytest.approx(1.0)


def test_middle_button_pans_and_rotation_turns_the_view_only(qtbot, panel: FramePanel) -> None:
    view = panel.view
    view.actual_pixels()
    view.zoom_by(6.0)
    h, v = view.horizontalScrollBar(), view.verticalScrollBar()
    assert h.maximum() > 0 and v.maximum() > 0  # scrollbars when the frame is larger than the view
    h.setValue(h.maximum() // 2)
    v.setValue(v.maximum() // 2)
    x0, y0 = h.value(), v.value()
    vp = view.viewport()
    for kind, pos, buttons in ((QEvent.Type.MouseButtonPress, QPointF(200, 200), Qt.MouseButton.MiddleButton),
                               (QEvent.Type.MouseMove, QPointF(150, 170), Qt.MouseButton.MiddleButton),
                               (QEvent.Type.MouseButtonRelease, QPointF(150, 170), Qt.MouseButton.NoButton)):
        QApplication.sendEvent(vp, QMouseEvent(kind, pos, vp.mapToGlobal(pos), Qt.MouseButton.MiddleButton,
                                               buttons, Qt.KeyboardModifier.NoModifier))
    assert (h.value() - x0, v.value() - y0) == (50, 30)  # dragged left and up: the view moves right and down
    frame = view.original.copy()
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert view.rotation() == 90 and view.zoom_level() == pytest.approx(6.0)
    qtbot.keyClick(view, Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert view.rotation() == 0 and np.array_equal(view.original, frame)


def test_marks_and_handles_keep_their_size_on_screen(panel: FramePanel) -> None:
    view = panel.view
    view.set_detection((100, 60, 180, 150), [(120, 90), (160, 90), (140, 110), (125, 130), (155, 130)], "dlib")

    def screen_widths() -> list[float]:
        vt = view.viewportTransform()
        return [round(m.deviceTransform(vt).mapRect(m.boundingRect()).width(), 2) for m in view.marks()[2:]]

    view.actual_pixels()
    at_one = screen_widths()
    view.zoom_by(8.0)
    assert screen_widths() == at_one and at_one[0] == pytest.approx(2 * view.MARK_PX, abs=0.5)
    dot = view.marks()[2]
    centre = view.mapFromScene(QPointF(120, 90))
    assert dot.deviceTransform(view.viewportTransform()).map(QPointF(0, 0)).toPoint() == centre  # still on it


def test_viewing_adjustments_change_the_picture_never_the_frame(panel: FramePanel) -> None:
    from forensic_face.gui.widgets import to_qimage

    view = panel.view
    frame = view.original.copy()
    def shown_image():
        return view._pixmap.pixmap().toImage().convertToFormat(to_qimage(frame).format())

    shown = shown_image()
    assert shown == to_qimage(frame)
    brightness, contrast, gamma = panel.adjust_sliders
    brightness.setValue(60)
    contrast.setValue(40)
    gamma.setValue(-30)
    assert shown_image() != shown
    assert np.array_equal(view.original, frame)  # the frame itself is as loaded
    assert "brightness +60" in panel.adjustment_text() and "not evidence" in panel.adjustment_text()
    panel.reset_adjustment()
    assert shown_image() == shown and panel.adjustment_text() == ""


def test_the_clip_player_steps_plays_and_jumps_to_marked_frames(qtbot, panel: FramePanel) -> None:
    tl = panel.timeline
    tl.setVisible(True)
    tl.set_clip(30, 25.0)
    tl.set_marks([7, 20])
    asked = []
    tl.position_changed.connect(asked.append)
    tl.position_changed.connect(lambda _i: tl.frame_shown())  # the frame is shown at once
    panel.view.setFocus()
    qtbot.keyClick(panel.view, Qt.Key.Key_Right)
    qtbot.keyClick(panel.view, Qt.Key.Key_Right)
    qtbot.keyClick(panel.view, Qt.Key.Key_Left)
    assert asked == [1, 2, 1] and tl.label.text().startswith("frame 1 of 30 · 0.04 s")
    qtbot.keyClick(panel.view, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(panel.view, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    assert asked[-2:] == [7, 20]
    qtbot.keyClick(panel.view, Qt.Key.Key_Space)
    assert tl.playing and tl.play_button.text() == "❚❚ Pause"
    qtbot.waitUntil(lambda: tl.slider.value() >= 24, timeout=3000)
    qtbot.keyClick(panel.view, Qt.Key.Key_Space)
    assert not tl.playing
    stopped = tl.slider.value()
    qtbot.wait(200)
    assert tl.slider.value() == stopped


def test_playback_waits_for_each_frame_to_be_shown(qtbot, panel: FramePanel) -> None:
    tl = panel.timeline
    tl.setVisible(True)
    tl.set_clip(100, 100.0)
    asked = []
    tl.position_changed.connect(asked.append)
    tl.toggle_play()
    qtbot.wait(200)  # about 20 ticks, but the first frame asked for was never shown
    assert asked == [1]
    tl.frame_shown()
    qtbot.waitUntil(lambda: len(asked) == 2, timeout=1000)
    tl.pause()


def test_a_click_on_the_recording_chooses_the_audio_window(qtbot) -> None:
    from forensic_face.audio.synth import synth_speech
    from forensic_face.gui.audio_panel import AudioPanel
    from forensic_face.reports.figures import audio_view

    panel = on_screen(qtbot, AudioPanel(), 900, 600)
    view = audio_view(synth_speech(4.0, 16000, seed=1), 16000)
    panel.set_frame_time(1.0)  # a clip's frame at 1 s
    panel.draw(view, 1.0, 1.0, None, "test")
    panel.canvas.canvas.draw()
    assert panel.window_time() is None and "frame's time" in panel.choice.text()
    ax = panel._axes[1]
    x, y = ax.transData.transform((2.5, 1000.0))
    widget = panel.canvas.canvas
    ratio = widget.devicePixelRatioF()
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=QPoint(round(x / ratio),
                                                                    round(widget.height() - y / ratio)))
    assert panel.window_time() == pytest.approx(2.5, abs=0.02)
    assert panel.offset.value() == pytest.approx(1.5, abs=0.02) and "(chosen)" in panel.choice.text()
    panel.set_frame_time(2.0)  # another frame: the offset holds, the window follows
    assert panel.window_time() == pytest.approx(3.5, abs=0.02)
    panel.reset_choice()
    assert panel.window_time() is None

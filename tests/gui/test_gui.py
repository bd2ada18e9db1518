"""The desktop application driven offscreen with pytest-qt: the flows an analyst goes through."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt

from forensic_face.gui.main_window import MainWindow
from forensic_face.gui.settings import AppSettings
from forensic_face.services.workbench import Workbench
from forensic_face.store.case import Case

TASK_MS = 120_000


@pytest.fixture()
def settings(tmp_path: Path) -> AppSettings:
    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture()
def window(qtbot, settings, tiny_models, tmp_path: Path) -> MainWindow:
    settings.gallery_path = str(tmp_path / "gallery.db")
    wb = Workbench(tiny_models, "cpu", settings.gallery_path, 5)
    w = MainWindow(settings, wb)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.runner.wait(TASK_MS)
    w.preview.wait(TASK_MS)


def wait_idle(qtbot, w: MainWindow) -> None:
    qtbot.waitUntil(lambda: not w.runner.busy and not w.preview.busy, timeout=TASK_MS)


def error_dialogs(w: MainWindow):
    from PySide6.QtWidgets import QMessageBox

    return [b for b in w.findChildren(QMessageBox) if b.objectName() == "errorDialog" and b.isVisible()]


@pytest.fixture()
def case_dir(tmp_path: Path, frame_640: np.ndarray) -> Path:
    from forensic_face.audio.synth import synth_speech

    src = tmp_path / "incoming"
    src.mkdir()
    cv2.imwrite(str(src / "cam2.jpg"), cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR))
    sf.write(src / "cam2.wav", synth_speech(4.0, 16000, seed=5), 16000)
    case = Case.create(tmp_path / "case", "GUI-1", "Analyst A", "GUI flow")
    case.add_evidence([src / "cam2.jpg", src / "cam2.wav"])
    return case.root


@pytest.fixture()
def people(tmp_path: Path, face_rgb: np.ndarray) -> Path:
    root = tmp_path / "people"
    for name, shift in (("Eileen_Collins", 0), ("Someone_Else", 60)):
        (root / name).mkdir(parents=True)
        cv2.imwrite(str(root / name / "a.jpg"), cv2.cvtColor(np.roll(face_rgb, shift, axis=1), cv2.COLOR_RGB2BGR))
    return root


def test_enrol_open_analyse_see_candidates_export(qtbot, window: MainWindow, case_dir: Path, people: Path,
                                                  tmp_path: Path, monkeypatch) -> None:
    w = window
    from PySide6.QtWidgets import QMessageBox

    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(QMessageBox, "information", lambda _parent, title, text, *a, **k: shown.append((title, text)))
    w.gallery_actions.enrol(str(people))
    assert w.progress.isVisible() or not w.runner.busy  # the progress bar shows while enrolling
    wait_idle(qtbot, w)
    assert w.wb.gallery_info()["people"] == 2
    w.act_gallery_info.trigger()  # Gallery ▸ Gallery information: people, and the arithmetic the faces were made in
    wait_idle(qtbot, w)
    title, text = shown[-1]
    assert title == "Gallery" and ": 2 people, 2 images (ok 2)" in text
    assert f"embeddings of model {w.wb.engine().info.version}: 2 (made in float32 arithmetic)" in text
    w.case_actions.open_case(str(case_dir))
    wait_idle(qtbot, w)
    assert w.stack.currentWidget() is w.case_view
    assert w.evidence.topLevelItemCount() == 2
    assert {w.evidence.topLevelItem(i).text(2) for i in range(2)} == {"verified"}
    assert "verified" in w.case_summary.text()
    assert w.case_view.frame_combo.currentText() == "cam2.jpg" and w.case_view.audio_combo.currentText() == "cam2.wav"
    assert w.case_view.frame_note.text().startswith("cam2.jpg: 640×480")
    assert len(w.case_view.audio_canvas.figure.axes) == 3  # the audio panel before any analysis
    assert "no analysis yet" in w.case_view.audio_note.text()
    qtbot.mouseClick(w.case_view.run_button, Qt.MouseButton.LeftButton)
    assert w.runner.busy and not w.case_view.run_button.isEnabled()  # no second run while one is going
    wait_idle(qtbot, w)
    assert not error_dialogs(w)
    cv = w.case_view
    assert cv.table.rowCount() == 2
    assert {cv.table.item(r, 0).text() for r in range(2)} == {"Eileen_Collins", "Someone_Else"}
    assert not cv.table.item(0, 0).icon().isNull()  # gallery face thumbnail
    assert cv.table.horizontalHeaderItem(3).text() == "Euclidean distance"
    cos, dist = float(cv.table.item(0, 2).text()), float(cv.table.item(0, 3).text())
    assert dist == pytest.approx((2 - 2 * cos) ** 0.5, abs=1e-2)  # both shown to 3 decimals
    assert cv.verdict.text().startswith(("Investigative lead", "No confident match"))
    assert cv.input_panel.array is not None and cv.recon_panel.array is not None
    assert cv.input_panel.array.shape == cv.recon_panel.array.shape  # same size side by side
    assert cv.with_audio.isEnabled()
    cv.with_audio.setChecked(False)
    assert cv.recon_panel.caption.text() == "without audio"
    assert "Face 88 px wide" in cv.quality.text() or "px wide" in cv.quality.text()
    assert cv.analysis_combo.currentText() == "analysis-001"
    assert len(cv.audio_canvas.figure.axes) == 3  # waveform, spectrogram + pitch, LBRP
    assert w.log_table.rowCount() == len(Case.open(case_dir).read_log())
    cv.table.cellDoubleClicked.emit(0, 0)
    assert w.analysis_actions.compare.isVisible() and w.analysis_actions.compare.panels[2].array is not None
    w.analysis_actions.compare.close()
    out = tmp_path / "out" / "report.pdf"
    w.report_actions.export_to(str(out))
    wait_idle(qtbot, w)
    assert out.read_bytes().startswith(b"%PDF-")
    assert Case.open(case_dir).read_log()[-1]["action"] == "report.exported"
    assert str(case_dir.resolve()) in w.settings.recent_cases()
    other = Case.create(tmp_path / "other", "GUI-9", "Analyst")  # another case: nothing of the first one shows
    w.case_actions.open_case(str(other.root))
    wait_idle(qtbot, w)
    assert cv.table.rowCount() == 0 and cv.input_panel.array is None and cv.view is None
    assert w.windowTitle() == "forensic_face — case GUI-9"


def test_not_a_case_folder_says_so_and_keeps_the_start_screen(qtbot, window: MainWindow, tmp_path: Path) -> None:
    (tmp_path / "holiday").mkdir()
    window.case_actions.open_case(str(tmp_path / "holiday"))
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: bool(error_dialogs(window)), timeout=5000)
    box = error_dialogs(window)[0]
    assert "case.json" in box.informativeText() or "not a case" in box.informativeText()
    assert "Nothing was lost" in box.informativeText()
    assert window.stack.currentWidget() is window.start


def test_no_face_then_hand_drawn_box(qtbot, window: MainWindow, tmp_path: Path) -> None:
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    cv2.imwrite(str(tmp_path / "wall.png"), np.full((240, 320, 3), 128, np.uint8))
    case = Case.create(tmp_path / "c2", "GUI-2", "Analyst")
    case.add_evidence([tmp_path / "wall.png"])
    w = window
    w.settings.gallery_path = ""  # no gallery: the analysis reconstructs only
    w.case_actions.open_case(str(case.root))
    wait_idle(qtbot, w)
    w.act_detect.trigger()
    wait_idle(qtbot, w)
    assert "Draw the face box by hand" in w.case_view.frame_note.text()
    w.act_run.trigger()
    wait_idle(qtbot, w)
    qtbot.waitUntil(lambda: bool(error_dialogs(w)), timeout=5000)
    assert "Draw the face box" in error_dialogs(w)[0].informativeText()
    error_dialogs(w)[0].close()
    view = w.case_view.frame_view
    w.act_draw.trigger()  # Ctrl+B
    assert view.drawing
    vp = view.viewport()

    def send(kind, x, y, buttons):
        pos = QPointF(view.mapFromScene(QPointF(x, y)))
        ev = QMouseEvent(kind, pos, vp.mapToGlobal(pos), Qt.MouseButton.LeftButton, buttons,
                         Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(vp, ev)

    with qtbot.waitSignal(view.box_drawn, timeout=2000):
        send(QEvent.Type.MouseButtonPress, 100, 60, Qt.MouseButton.LeftButton)
        send(QEvent.Type.MouseMove, 150, 110, Qt.MouseButton.LeftButton)
        send(QEvent.Type.MouseMove, 180, 150, Qt.MouseButton.LeftButton)
        send(QEvent.Type.MouseButtonRelease, 180, 150, Qt.MouseButton.NoButton)
    x0, y0, x1, y1 = view.manual_box()
    assert abs(x0 - 100) < 3 and abs(y1 - 150) < 3
    w.act_run.trigger()
    wait_idle(qtbot, w)
    assert not error_dialogs(w)
    saved = Case.open(case.root).read_log()
    analysis = [e for e in saved if e["action"] == "analysis"][-1]
    assert analysis["details"]["parameters"]["manual_box"] is not None
    assert "drawn by the analyst" in w.case_view.frame_note.text()


def test_drawn_box_can_be_resized_moved_and_survives_a_stray_click(qtbot) -> None:
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from forensic_face.gui.frame_view import FrameView

    view = FrameView()
    qtbot.addWidget(view)
    view.resize(640, 480)
    view.show()
    view.set_frame(np.full((240, 320, 3), 90, np.uint8))
    view.set_drawing(True)
    vp = view.viewport()
    drawn = []
    view.box_drawn.connect(drawn.append)

    def drag(points):
        def send(kind, x, y, buttons):
            pos = QPointF(view.mapFromScene(QPointF(x, y)))
            QApplication.sendEvent(vp, QMouseEvent(kind, pos, vp.mapToGlobal(pos), Qt.MouseButton.LeftButton,
                                                   buttons, Qt.KeyboardModifier.NoModifier))
        send(QEvent.Type.MouseButtonPress, *points[0], Qt.MouseButton.LeftButton)
        for x, y in points[1:]:
            send(QEvent.Type.MouseMove, x, y, Qt.MouseButton.LeftButton)
        send(QEvent.Type.MouseButtonRelease, *points[-1], Qt.MouseButton.NoButton)

    def near(box, want):
        return all(abs(a - b) < 2 for a, b in zip(box, want, strict=True))

    drag([(100, 60), (150, 100), (180, 150)])
    assert near(view.manual_box(), (100, 60, 180, 150)) and len(drawn) == 1
    # the bottom-right corner handle: only that corner moves
    assert view.grab_at(QPointF(180, 150)) == "rb"
    drag([(180, 150), (200, 170), (210, 180)])
    assert near(view.manual_box(), (100, 60, 210, 180)) and near(drawn[-1], (100, 60, 210, 180))
    # the left edge alone
    assert view.grab_at(QPointF(100, 120)) == "l"
    drag([(100, 120), (90, 120)])
    assert near(view.manual_box(), (90, 60, 210, 180))
    # inside: the box moves, same size, and stops at the frame's edge
    assert view.grab_at(QPointF(150, 120)) == "move"
    drag([(150, 120), (200, 100), (400, 100)])
    x0, y0, x1, y1 = view.manual_box()
    assert near((x1, x1 - x0, y1 - y0), (320, 120, 120)) and abs(y0 - 40) < 2
    # a click elsewhere (no drag) leaves the box as it was and reports nothing
    count, box = len(drawn), view.manual_box()
    drag([(20, 200), (20, 200)])
    assert view.manual_box() == box and len(drawn) == count
    # a drag elsewhere draws a new box
    drag([(10, 10), (60, 70)])
    assert near(view.manual_box(), (10, 10, 60, 70)) and len(drawn) == count + 1


def test_cancel_enrolment_leaves_the_window_usable(qtbot, window: MainWindow, tmp_path: Path,
                                                   face_rgb: np.ndarray) -> None:
    root = tmp_path / "many"
    for i in range(60):
        (root / f"P{i:03d}").mkdir(parents=True)
        cv2.imwrite(str(root / f"P{i:03d}" / "a.png"), cv2.cvtColor(np.roll(face_rgb, i, axis=1), cv2.COLOR_RGB2BGR))
    w = window
    w.gallery_actions.enrol(str(root))
    assert w.cancel_button.isVisible() and w.act_cancel.isEnabled()
    w.cancel_task()
    wait_idle(qtbot, w)
    assert "cancelled" in w.statusBar().currentMessage()
    assert not error_dialogs(w) and not w.progress.isVisible()
    assert w.wb.gallery_info()["images"] < 60  # stopped before the end
    assert w.act_open.isEnabled()


def test_video_timeline_marks_best_frames(qtbot, window: MainWindow, tmp_path: Path, frame_640) -> None:
    path = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(30):
        f = cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR)
        vw.write(cv2.GaussianBlur(f, (0, 0), 0.5 + abs(i - 20) / 3))  # sharpest around frame 20
    vw.release()
    case = Case.create(tmp_path / "c3", "GUI-3", "Analyst")
    case.add_evidence([path])
    w = window
    w.settings.gallery_path = ""  # no gallery: the analysis reconstructs only
    w.case_actions.open_case(str(case.root))
    wait_idle(qtbot, w)
    tl = w.case_view.timeline
    assert tl.slider.isEnabled() and tl.slider.maximum() == 29
    assert tl.marks and abs(tl.marks[0] - 20) <= 3
    assert "best frames" in tl.label.text()
    tl.slider.setValue(5)
    wait_idle(qtbot, w)
    assert "frame 5 at 0.50 s" in w.case_view.frame_note.text()
    w.act_run.trigger()  # analyses the frame the timeline shows
    wait_idle(qtbot, w)
    assert not error_dialogs(w)
    assert w.case_view.view.record.timestamp_s == 0.5
    w.act_close.trigger()
    w.case_actions.open_case(str(case.root))  # reopened: the analysis shows, the timeline stands at its frame
    wait_idle(qtbot, w)
    assert w.case_view.view is not None and not tl.isHidden() and tl.slider.value() == 5


def test_layout_and_recent_cases_are_remembered(qtbot, settings, tiny_models, case_dir: Path) -> None:
    w = MainWindow(settings, Workbench(tiny_models, "cpu"))
    qtbot.addWidget(w)
    w.show()
    w.case_actions.open_case(str(case_dir))
    wait_idle(qtbot, w)
    w.resize(w.width() - 17, w.height() - 23)
    size = (w.width(), w.height())
    w.log_dock.hide()
    w.close()
    w2 = MainWindow(settings, Workbench(tiny_models, "cpu"))
    qtbot.addWidget(w2)
    w2.show()
    assert (w2.width(), w2.height()) == size
    assert w2.log_dock.isHidden()  # dock layout restored
    assert w2.start.recent.count() == 1 and str(case_dir.resolve()) in w2.start.recent.item(0).text()
    assert [a.text() for a in w2.recent_menu.actions()] == [str(case_dir.resolve())]


@pytest.mark.slow
def test_open_demo_case_with_the_shipped_models(qtbot, settings, tmp_path: Path, monkeypatch) -> None:
    from PySide6.QtWidgets import QFileDialog

    from forensic_face.engine.inference import FaceEngine

    if not FaceEngine.available():
        pytest.skip("no trained models in resources/models")
    settings.demo_folder = str(tmp_path / "demo")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: a[2])  # the folder it proposes
    w = MainWindow(settings, Workbench(device="cpu"))
    qtbot.addWidget(w)
    w.show()
    w.act_demo.trigger()
    assert w.progress.isVisible()
    wait_idle(qtbot, w)
    assert not error_dialogs(w)
    assert w.windowTitle() == "forensic_face — case DEMO-001"
    cv = w.case_view
    assert cv.table.rowCount() == 3 and cv.table.item(0, 0).text() == "Grace_Hopper"
    assert cv.verdict.text().startswith("Investigative lead: Grace_Hopper")
    assert w.wb.gallery_path == str(tmp_path / "demo" / "gallery.db")  # the demo case searches the demo gallery
    assert settings.gallery_path == ""  # ... which never becomes the default of a real case
    other = Case.create(tmp_path / "real", "REAL-1", "Analyst")
    w.case_actions.open_case(str(other.root))
    wait_idle(qtbot, w)
    assert w.wb.gallery_path == "" and "gallery: none" in w.status_label.text()


def test_altered_evidence_is_flagged_in_the_evidence_list(qtbot, window: MainWindow, case_dir: Path) -> None:
    import os

    ev = next((case_dir / "evidence").iterdir())
    os.chmod(ev, 0o644)
    ev.write_bytes(ev.read_bytes()[:-10])
    window.case_actions.open_case(str(case_dir))
    wait_idle(qtbot, window)
    states = {window.evidence.topLevelItem(i).text(0): window.evidence.topLevelItem(i).text(2) for i in range(2)}
    assert states[ev.name] == "altered" and list(states.values()).count("verified") == 1
    assert "integrity problem" in window.case_summary.text()


def test_a_forged_verdict_is_flagged_and_verification_is_recorded(qtbot, window: MainWindow, case_dir: Path,
                                                                  people: Path, tiny_engine, detector,
                                                                  tmp_path: Path) -> None:
    from forensic_face.services.analysis import analyze_case
    from forensic_face.services.enrolment import enroll_folder
    from forensic_face.store.gallery import open_gallery

    with open_gallery(tmp_path / "g.db", mode="create") as gallery:
        enroll_folder(gallery, people, tiny_engine, detector)
        analyze_case(Case.open(case_dir), tiny_engine, detector, gallery, top_k=2)
    import json

    record = case_dir / "results" / "analysis-001" / "analysis-001.json"
    data = json.loads(record.read_text())
    data["search"].update(verdict="candidate: Forged Person", confident=True)
    data["search"]["candidates"][0].update(person="Forged Person", match_probability=0.99)
    record.write_text(json.dumps(data))  # someone makes the analysis name somebody else
    w = window
    w.case_actions.open_case(str(case_dir))
    wait_idle(qtbot, w)
    assert w.case_view.verdict.text().startswith("ALTERED: files of this analysis were changed")
    assert "Investigative lead: Forged Person" not in w.case_view.verdict.text().split("\n")[0]
    assert "integrity problem" in w.case_summary.text()
    entries = len(Case.open(case_dir).read_log())
    qtbot.keyClick(w, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    wait_idle(qtbot, w)
    qtbot.waitUntil(lambda: bool(error_dialogs(w)), timeout=5000)
    box = error_dialogs(w)[0].informativeText()
    assert "analysis-001.json: altered after it was written" in box and "Nothing was lost" not in box
    log = Case.open(case_dir).read_log()
    assert len(log) == entries + 1 and log[-1]["action"] == "case.verified" and log[-1]["details"]["ok"] is False


def test_settings_reach_the_services(qtbot, window: MainWindow, tmp_path: Path) -> None:
    from forensic_face.gui.dialogs import SettingsDialog

    dlg = SettingsDialog(window, window.settings, cuda_available=False)
    qtbot.addWidget(dlg)
    assert not dlg.device.model().item(2).isEnabled()  # CUDA greyed out where torch sees no GPU
    dlg.gallery.setText(str(tmp_path / "other.db"))
    dlg.top_k.setValue(3)
    assert dlg.fpir.currentText() == "1 % (default)"
    dlg.fpir.setCurrentIndex(dlg.fpir.findText("5 %"))
    dlg.analyst.setText("B. Examiner")
    assert dlg.precision.currentText() == "auto"
    assert window.wb.engine().info.params["precision"] == "float32"  # the suite's environment (tests/conftest.py)
    dlg.precision.setCurrentText("bfloat16")
    dlg.apply(window.settings)
    window.apply_settings()
    assert window.wb.gallery_path == str(tmp_path / "other.db") and window.wb.top_k == 3
    # the engine is rebuilt in the arithmetic chosen, and every result made with it records that
    assert window.wb.engine().info.params["precision"] == "bfloat16"
    assert AppSettings(window.settings.q).precision == "bfloat16"
    assert window.wb.fpir == 0.05  # gallery searches now allow more (and more false) leads
    assert "other.db" in window.status_label.text() and "top-3" in window.status_label.text()
    assert "false leads 5 %" in window.status_label.text()
    assert AppSettings(window.settings.q).analyst == "B. Examiner" and AppSettings(window.settings.q).fpir == 0.05
    window.settings.q.setValue("search/fpir", "0.3")  # a rate the calibration never measured: the default
    assert window.settings.fpir == 0.01


def test_a_full_disk_during_a_task_says_what_to_do(qtbot, window: MainWindow) -> None:
    import errno

    def write_fails(progress):
        raise OSError(errno.ENOSPC, "No space left on device", "/cases/x/results/.partial-analysis-001/a.png")

    window.run_task("Writing", write_fails, lambda _r: None, "Could not write")
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: bool(error_dialogs(window)), timeout=5000)
    text = error_dialogs(window)[0].informativeText()
    assert "the disk is full; free some space and try again" in text and "internal" not in text.lower()


# ------------------------------------------------------------------------------------------- issue 21
def informative_label(box):
    from PySide6.QtWidgets import QLabel

    return box.findChild(QLabel, "qt_msgbox_informativelabel")


def open_faceless_case(qtbot, w: MainWindow, tmp_path: Path) -> Case:
    """A case whose only evidence is a grey wall (no face), opened without a gallery."""
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((240, 320, 3), 128, np.uint8))
    case = Case.create(tmp_path / "faceless", "GUI-W", "Analyst")
    case.add_evidence([tmp_path / "wall.png"])
    w.settings.gallery_path = ""
    w.case_actions.open_case(str(case.root))
    wait_idle(qtbot, w)
    return case


def test_every_view_shortcut_and_menu_entry_opens_its_own_tab(qtbot, window: MainWindow, case_dir: Path) -> None:
    w = window
    w.case_actions.open_case(str(case_dir))
    wait_idle(qtbot, w)
    w.activateWindow()
    tabs = w.case_view.tabs
    for i, key in enumerate((Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4)):
        tabs.setCurrentIndex((i + 1) % 4)
        qtbot.keyClick(w, key, Qt.KeyboardModifier.ControlModifier)
        assert tabs.currentIndex() == i
    entries = {a.text(): a for a in w.view_menu.actions()}
    for i, name in enumerate(("Frame", "Compare", "Audio", "Candidates")):
        tabs.setCurrentIndex((i + 1) % 4)
        entries[name].trigger()
        assert tabs.currentIndex() == i


def test_showing_list_stays_on_the_analysis_shown_and_added_evidence_shows_at_once(
        qtbot, window: MainWindow, tmp_path: Path, frame_640, tiny_engine, detector) -> None:
    from forensic_face.services.analysis import analyze_case

    w = window
    case = Case.create(tmp_path / "c5", "GUI-5", "Analyst")
    w.case_actions.open_case(str(case.root))
    wait_idle(qtbot, w)
    assert not w.case_view.frame_view.has_frame()
    cv2.imwrite(str(tmp_path / "cam5.png"), cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR))
    w.case_actions.add_evidence([str(tmp_path / "cam5.png")])
    wait_idle(qtbot, w)
    assert w.case_view.frame_view.has_frame()  # shown without pressing Detect
    assert w.case_view.frame_note.text().startswith("cam5.png: 640×480") and "found by" in w.case_view.frame_note.text()
    for _ in range(2):
        analyze_case(Case.open(case.root), tiny_engine, detector, None)
    w.case_actions.open_case(str(case.root))
    wait_idle(qtbot, w)
    cv = w.case_view
    assert cv.view.analysis_id == "analysis-002" and cv.analysis_combo.currentText() == "analysis-002"
    sf.write(tmp_path / "late.wav", np.zeros(16000, np.float32), 16000)
    w.case_actions.add_evidence([str(tmp_path / "late.wav")])
    wait_idle(qtbot, w)
    assert cv.view.analysis_id == "analysis-002" and cv.analysis_combo.currentText() == "analysis-002"
    w.report_actions.export_to(str(tmp_path / "r.pdf"))
    wait_idle(qtbot, w)
    assert cv.view.analysis_id == "analysis-002" and cv.analysis_combo.currentText() == "analysis-002"
    cv.analysis_combo.setCurrentText("analysis-001")  # the analyst chooses the first: the tabs follow
    wait_idle(qtbot, w)
    assert cv.view.analysis_id == "analysis-001"


def test_the_drawn_box_stays_for_a_rerun_and_the_draw_tool_is_put_down(qtbot, window: MainWindow,
                                                                        tmp_path: Path) -> None:
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    w = window
    case = open_faceless_case(qtbot, w, tmp_path)
    view, vp = w.case_view.frame_view, w.case_view.frame_view.viewport()
    w.activateWindow()
    qtbot.keyClick(w, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    assert view.drawing and w.act_draw.isChecked()

    def send(kind, x, y, buttons):
        pos = QPointF(view.mapFromScene(QPointF(x, y)))
        QApplication.sendEvent(vp, QMouseEvent(kind, pos, vp.mapToGlobal(pos), Qt.MouseButton.LeftButton, buttons,
                                               Qt.KeyboardModifier.NoModifier))

    send(QEvent.Type.MouseButtonPress, 100, 60, Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseMove, 180, 150, Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseButtonRelease, 180, 150, Qt.MouseButton.NoButton)
    assert not view.drawing and not w.act_draw.isChecked() and not w.case_view.draw_button.isChecked()
    box = view.manual_box()
    for _run in (1, 2):  # the second run finds the analyst's box still there
        w.act_run.trigger()
        wait_idle(qtbot, w)
        assert not error_dialogs(w), error_dialogs(w)[0].informativeText() if error_dialogs(w) else ""
        assert view.manual_box() == box and w.case_view.drawn_box() == box
    log = [e for e in Case.open(case.root).read_log() if e["action"] == "analysis"]
    assert len(log) == 2 and all(e["details"]["parameters"]["manual_box"] for e in log)
    w.case_view.frame_panel.clear_box_button.click()
    assert w.case_view.drawn_box() is None


def test_error_dialogs_are_plain_text_with_the_windows_advice(qtbot, window: MainWindow, tmp_path: Path,
                                                              case_dir: Path) -> None:
    import os

    w = window
    open_faceless_case(qtbot, w, tmp_path)
    w.act_run.trigger()  # no face, no box
    wait_idle(qtbot, w)
    qtbot.waitUntil(lambda: bool(error_dialogs(w)), timeout=5000)
    box = error_dialogs(w)[0]
    text = box.informativeText()
    assert "<br>" not in text and "--box" not in text and "`" not in text
    assert text.lower().count("draw the face box by hand") == 1 and "Analysis ▸ Draw face box" in text
    assert informative_label(box).textFormat() == Qt.TextFormat.PlainText
    assert "Nothing was lost" in text  # true here: the step changed nothing
    box.close()
    ev = next((case_dir / "evidence").glob("*.jpg"))
    os.chmod(ev, 0o644)
    ev.write_bytes(ev.read_bytes()[:-10])  # the evidence is altered; opening the case finds it
    w.case_actions.open_case(str(case_dir))
    wait_idle(qtbot, w)
    w.act_run.trigger()
    wait_idle(qtbot, w)
    qtbot.waitUntil(lambda: bool(error_dialogs(w)), timeout=5000)
    text = error_dialogs(w)[0].informativeText()
    assert "Nothing was lost" not in text and "not as it was recorded" in text
    assert "File ▸ Verify case" in text and "forensic-face case verify" not in text


def test_candidates_tab_tells_the_search_and_highlights_at_most_the_lead(qtbot, window: MainWindow,
                                                                         case_dir: Path, people: Path,
                                                                         monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    from forensic_face.reports.wording import lead_row

    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: None)
    w = window
    w.gallery_actions.enrol(str(people))
    wait_idle(qtbot, w)
    w.case_actions.open_case(str(case_dir))
    wait_idle(qtbot, w)
    w.act_run.trigger()
    wait_idle(qtbot, w)
    cv = w.case_view
    search = cv.view.record.search
    header = cv.table.horizontalHeaderItem(4)
    assert header.text() == "One-to-one match probability" and "best of the strangers" in header.toolTip()
    has_open_set = search.open_set_threshold != float("-inf")  # the tiny test models have none
    assert ("false-lead rate of 1%" in cv.verdict.text()) == has_open_set
    assert "one-to-one match probability compares the probe with one candidate alone" in cv.search_panel.info.text()
    # which recognisers made the similarities: said only for a joined bundle's search (these models are one CNN)
    assert ("weighted mean of several recognisers" in cv.search_panel.info.text()) == bool(search.paths)
    assert cv.search_panel.highlighted_rows() == ([] if lead_row(search) is None else [0])
    assert ("background" in cv.verdict.styleSheet()) == search.confident  # coloured only for a lead


def test_the_demo_asks_where_and_shows_its_stages(qtbot, window: MainWindow, case_dir: Path, tmp_path: Path,
                                                  monkeypatch) -> None:
    import time

    from PySide6.QtWidgets import QFileDialog

    import forensic_face.services.demo as demo

    w = window
    asked = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: asked.append(a[2]) or "")
    w.act_demo.trigger()  # cancelled: nothing runs, nothing is written
    assert asked and not w.runner.busy and not str(asked[0]).startswith(str(Path.home()))
    crowded = tmp_path / "crowded"
    (crowded / "case").mkdir(parents=True)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(crowded))
    w.act_demo.trigger()  # a folder holding other things: refused, its 'case' folder left alone
    assert not w.runner.busy and (crowded / "case").is_dir()
    error_dialogs(w)[0].close()
    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda out: time.sleep(1.0) or {"case": str(case_dir)})
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "fresh"))
    (tmp_path / "fresh").mkdir()
    w.act_demo.trigger()
    qtbot.waitUntil(lambda: "step 1 of 2" in w.task_label.text(), timeout=5000)
    seen.append(w.progress.maximum())  # a busy bar, not a 0 % that never moves
    wait_idle(qtbot, w)
    assert seen == [0] and w.settings.demo_folder == str(tmp_path / "fresh")
    assert w.windowTitle() == "forensic_face — case GUI-1"


def test_small_robustness_fixes(qtbot, window: MainWindow, case_dir: Path, tmp_path: Path) -> None:
    w = window
    w.report_actions.export_to(str(tmp_path / "none.pdf"))  # no case open: nothing happens
    assert not w.runner.busy and not (tmp_path / "none.pdf").exists()
    w.run_task("Holding", lambda p: __import__("time").sleep(1.0), lambda _r: None, "x")
    w.case_actions.open_case(str(case_dir))  # busy: the same message as every other task
    assert w.statusBar().currentMessage().startswith("Busy with 'Holding'")
    wait_idle(qtbot, w)


def test_exported_views_carry_their_caption_and_are_logged(qtbot, window: MainWindow, case_dir: Path,
                                                           tmp_path: Path) -> None:
    import hashlib

    w = window
    w.settings.gallery_path = ""
    w.case_actions.open_case(str(case_dir))
    wait_idle(qtbot, w)
    w.act_run.trigger()
    wait_idle(qtbot, w)
    w.show_tab(0)
    for kind in ("frame", "crop", "comparison"):
        out = tmp_path / "exports" / f"{kind}.png"
        w.report_actions.export_png_to(kind, str(out))
        wait_idle(qtbot, w)
        assert out.read_bytes().startswith(b"\x89PNG")
        entry = Case.open(case_dir).read_log()[-1]
        assert entry["action"] == "view.exported" and entry["details"]["kind"] == kind
        assert entry["details"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        sha = next(e.sha256 for e in Case.open(case_dir).evidence if e.name == "cam2.jpg")
        caption = entry["details"]["caption"]
        assert entry["details"]["evidence_sha256"] == sha and any("GUI-1" in line for line in caption)
    entries = len(Case.open(case_dir).read_log())
    w.report_actions.export_png_to("frame", str(case_dir / "inside.png"))  # never into the case folder
    wait_idle(qtbot, w)
    assert not (case_dir / "inside.png").exists() and len(Case.open(case_dir).read_log()) == entries


def test_view_adjustments_never_reach_the_analysis_and_the_chosen_audio_window_does(
        qtbot, window: MainWindow, case_dir: Path) -> None:
    w = window
    w.settings.gallery_path = ""
    w.case_actions.open_case(str(case_dir))
    wait_idle(qtbot, w)
    panel = w.case_view.frame_panel
    panel.adjust_button.click()
    assert panel.adjust_bar.isVisible()
    brightness, contrast, _gamma = panel.adjust_sliders
    brightness.setValue(80)
    contrast.setValue(60)
    audio = w.case_view.audio_panel
    w.show_tab(2)
    qtbot.waitUntil(lambda: bool(audio._axes), timeout=TASK_MS)
    audio.canvas.canvas.draw()
    x, y = audio._axes[1].transData.transform((3.0, 1000.0))
    widget = audio.canvas.canvas
    ratio = widget.devicePixelRatioF()
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton,
                     pos=QPoint(round(x / ratio), round(widget.height() - y / ratio)))
    assert w.case_view.audio_time_s() == pytest.approx(3.0, abs=0.02)
    w.act_run.trigger()
    wait_idle(qtbot, w)
    assert not error_dialogs(w)
    assert w.case_view.view.record.audio.timestamp_s == pytest.approx(3.0, abs=0.02)  # the window chosen
    panel.reset_adjustment()
    w.act_run.trigger()
    wait_idle(qtbot, w)
    results = case_dir / "results"
    adjusted, plain = (results / a / "input_face.png" for a in ("analysis-001", "analysis-002"))
    assert adjusted.read_bytes() == plain.read_bytes()  # the analysis read the evidence, not the view
    assert w.wb.verify_case(Case.open(case_dir))[0].verification.ok


def test_a_clip_plays_through_the_preview_path(qtbot, window: MainWindow, tmp_path: Path, frame_640) -> None:
    path = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(30):
        vw.write(cv2.cvtColor(np.roll(frame_640, 3 * i, axis=1), cv2.COLOR_RGB2BGR))
    vw.release()
    case = Case.create(tmp_path / "c8", "GUI-8", "Analyst")
    case.add_evidence([path])
    w = window
    w.case_actions.open_case(str(case.root))
    wait_idle(qtbot, w)
    cv, tl = w.case_view, w.case_view.timeline
    tl.slider.setValue(0)  # from the start: the clip does not end while it plays here
    wait_idle(qtbot, w)
    cv.frame_view.setFocus()
    start = tl.slider.value()
    qtbot.keyClick(cv.frame_view, Qt.Key.Key_Right)
    wait_idle(qtbot, w)
    assert f"frame {start + 1} at" in cv.frame_note.text()
    qtbot.keyClick(cv.frame_view, Qt.Key.Key_Space)
    assert tl.playing
    qtbot.waitUntil(lambda: tl.slider.value() >= start + 4, timeout=20_000)
    qtbot.keyClick(cv.frame_view, Qt.Key.Key_Space)
    wait_idle(qtbot, w)
    assert not tl.playing and f"frame {tl.slider.value()} at" in cv.frame_note.text()  # the frame named is shown
    assert f"frame {tl.slider.value()} of 30" in tl.label.text()


def test_an_analysis_is_withdrawn_and_annotated_from_the_menu_and_shown_so(
        qtbot, window: MainWindow, tmp_path: Path, frame_640, tiny_engine, detector, people: Path,
        monkeypatch) -> None:
    from PySide6.QtWidgets import QInputDialog

    from forensic_face.services.analysis import analyze_case
    from forensic_face.services.enrolment import enroll_folder
    from forensic_face.store.gallery import open_gallery

    w = window
    cv2.imwrite(str(tmp_path / "cam7.png"), cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR))
    case = Case.create(tmp_path / "c7", "GUI-7", "Analyst")
    case.add_evidence([tmp_path / "cam7.png"])
    with open_gallery(tmp_path / "g7.db", mode="create") as gallery:
        enroll_folder(gallery, people, tiny_engine, detector)
        for _ in range(2):
            analyze_case(Case.open(case.root), tiny_engine, detector, gallery)
    w.case_actions.open_case(str(case.root))
    wait_idle(qtbot, w)
    cv = w.case_view
    cv.analysis_combo.setCurrentText("analysis-001")  # the mistaken one, not the newest
    wait_idle(qtbot, w)
    assert not cv.record_note.isVisible()
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("wrong face box", True))
    w.act_withdraw.trigger()
    wait_idle(qtbot, w)
    assert cv.view.analysis_id == "analysis-001" and cv.record_note.isVisible()
    assert cv.record_note.text().startswith("WITHDRAWN on ") and "wrong face box" in cv.record_note.text()
    assert cv.verdict.text().startswith("WITHDRAWN (wrong face box). It read: ")  # never headlined as found
    monkeypatch.setattr(QInputDialog, "getMultiLineText", lambda *a, **k: ("box drawn on the wrong person", True))
    qtbot.keyClick(w, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    wait_idle(qtbot, w)
    assert "Note (" in cv.record_note.text() and "box drawn on the wrong person" in cv.record_note.text()
    refs = Case.open(case.root).analyses()
    assert refs[0].withdrawn.text == "wrong face box" and [n.text for n in refs[0].notes] == [
        "box drawn on the wrong person"] and refs[1].withdrawn is None
    assert any(e["action"] == "analysis.withdrawn" for e in w.state.log)  # the audit dock is up to date
    cv.analysis_combo.setCurrentText("analysis-002")
    wait_idle(qtbot, w)
    assert not cv.record_note.isVisible()


def test_a_server_gallery_is_chosen_by_url_and_its_password_is_never_kept(qtbot, window: MainWindow) -> None:
    """Settings ▸ Gallery takes a PostgreSQL URL; a password typed into it is dropped (it belongs in ~/.pgpass
    or PGPASSWORD) before it reaches the settings file, the services or the status bar, and the window says so."""
    from forensic_face.gui.dialogs import SettingsDialog

    dlg = SettingsDialog(window, window.settings, cuda_available=False)
    qtbot.addWidget(dlg)
    dlg.gallery.setText("postgresql://analyst:s3cret@db.unit.example:5433/gallery")
    assert dlg.apply(window.settings) is False
    window.apply_settings()
    for shown in (window.settings.gallery_path, AppSettings(window.settings.q).gallery_path, window.wb.gallery_path,
                  window.status_label.text()):
        assert "s3cret" not in shown and "analyst@db.unit.example:5433/gallery" in shown
    dlg.gallery.setText("postgresql://analyst@db.unit.example/gallery")
    assert dlg.apply(window.settings) is True


def test_listening_to_the_audio_window_writes_exactly_that_window_for_the_player(qtbot, window: MainWindow,
                                                                                 case_dir: Path) -> None:
    """Audio ▸ Listen: the chosen window (with half a second either side) is written as a WAV for the system's
    player, read from the evidence as the analysis reads it; the evidence is untouched."""
    import soundfile as sf

    from forensic_face.audio.io import load_audio

    w = window
    w.settings.gallery_path = ""
    w.case_actions.open_case(str(case_dir))
    wait_idle(qtbot, w)
    audio = w.case_view.audio_panel
    w.show_tab(2)
    qtbot.waitUntil(lambda: audio.listen.isEnabled(), timeout=TASK_MS)
    audio.choose(2.0)
    qtbot.mouseClick(audio.listen, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, w)
    assert not error_dialogs(w) and w.analysis_actions.listened is not None
    heard, sr = sf.read(w.analysis_actions.listened, dtype="float32")
    case = Case.open(case_dir)
    name = next(e.name for e in case.evidence if e.kind == "audio")
    whole = load_audio(case.evidence_path(name))
    assert sr == whole.sr and len(heard) == round(2.0 * sr)  # 1 s window + 0.5 s either side
    start = round(1.0 * sr)
    np.testing.assert_allclose(heard, whole.samples[start:start + len(heard)], atol=1 / 32767 + 1e-6)
    assert case.verify().ok


def test_a_sideways_frame_is_analysed_turned_as_the_view_shows_it(qtbot, window: MainWindow, tmp_path: Path,
                                                                  frame_640) -> None:
    """A camera hung sideways: the analyst turns the view, ticks Analysis ▸ Analyse the frame turned as the view
    shows it, and the analysis turns the frame the same way (recorded) and finds the face upright; the analysed
    frame is then shown upright."""
    w = window
    w.settings.gallery_path = ""
    cv2.imwrite(str(tmp_path / "side.png"), cv2.cvtColor(np.ascontiguousarray(np.rot90(frame_640, 1)),
                                                         cv2.COLOR_RGB2BGR))  # turned counter-clockwise
    case = Case.create(tmp_path / "c8", "GUI-8", "Analyst")
    case.add_evidence([tmp_path / "side.png"])
    w.case_actions.open_case(str(case.root))
    wait_idle(qtbot, w)
    cv = w.case_view
    cv.frame_panel.actions["rotate_right"].trigger()  # the view turned clockwise: the face looks upright
    assert cv.frame_view.rotation() == 90
    w.act_turned.trigger()
    assert w.act_turned.isChecked()
    w.act_run.trigger()
    wait_idle(qtbot, w)
    assert not error_dialogs(w)
    rec = cv.view.record
    assert rec.parameters["rotate"] == 90 and rec.face.method != "manual"
    assert cv.frame_view.rotation() == 0  # shown as analysed, upright
    assert cv.view.frame.shape == frame_640.shape


def clip_case_window(qtbot, settings, models: Path, clip: Path) -> MainWindow:
    """The window, with the models given and no gallery, on a new case (beside ``clip``) holding ``clip``."""
    case = Case.create(clip.parent / f"case-{clip.stem}", "GUI-CLIP", "Analyst")
    case.add_evidence([clip])
    w = MainWindow(settings, Workbench(models, "cpu", "", 5))
    qtbot.addWidget(w)
    w.show()
    w.case_actions.open_case(str(case.root))
    wait_idle(qtbot, w)
    return w


def test_following_a_face_through_a_clip_shows_the_frames_pooled(qtbot, settings, tiny_clip_models, tmp_path: Path,
                                                                 face_rgb: np.ndarray) -> None:
    from PySide6.QtGui import QKeySequence

    path = tmp_path / "walk.avi"
    face = cv2.cvtColor(cv2.resize(face_rgb[30:300, 130:380], (100, 108), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_RGB2BGR)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(24):
        img = np.full((240, 320, 3), 100, np.uint8)
        img[60:168, 40 + 5 * i:140 + 5 * i] = face
        vw.write(img)
    vw.release()
    w = clip_case_window(qtbot, settings, tiny_clip_models, path)
    assert w.act_follow.shortcut() == QKeySequence("Ctrl+Shift+R") and w.act_follow.isEnabled()
    assert w.act_follow in w.menuBar().actions()[1].menu().actions()  # in the Analysis menu
    w.act_follow.trigger()
    wait_idle(qtbot, w)
    assert not error_dialogs(w)
    cv = w.case_view
    clip = cv.view.record.clip
    assert clip is not None and len(clip.frames) == 16 and clip.calibration == "none (no gallery searched)"
    assert cv.tabs.currentIndex() == 1 and cv.strip_panel.isVisible() and cv.clip_note.isVisible()
    assert cv.clip_note.text().startswith("Track 1 of 1 found in the clip: 16 frames pooled")
    assert sorted(cv.timeline.marks) == sorted(int(f.index) for f in clip.frames)  # Ctrl+Left/Right steps them
    assert "frames pooled (▲)" in cv.timeline.label.text()
    w.runner.wait(TASK_MS)
    w.preview.wait(TASK_MS)


def test_the_people_in_a_clip_are_drawn_on_its_frames_listed_and_the_one_chosen_followed(
        qtbot, settings, tiny_clip_models, tmp_path: Path) -> None:
    from PySide6.QtGui import QAction, QKeySequence

    from forensic_face.gui.frame_view import track_colour
    from forensic_face.vision.synthclip import crossing_shots, generate_clip

    path = tmp_path / "crossing.avi"  # the cameraman passes in front of the astronaut
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 480))
    for frame, _ in generate_clip(crossing_shots(frames=30, cut_frames=0, empty_frames=0)):
        vw.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    vw.release()
    w = clip_case_window(qtbot, settings, tiny_clip_models, path)
    find, panel, cv = w.act_find_people, w.tracks_panel, w.case_view
    assert find.shortcut() == QKeySequence("Ctrl+Shift+T") and find.isEnabled()
    assert [a for a in w.findChildren(QAction) if find.shortcut() in a.shortcuts()] == [find]  # the key is its own
    assert find in w.menuBar().actions()[1].menu().actions() and not w.tracks_dock.isVisible()

    find.trigger()  # cancelled at once (Esc): nothing found, nothing shown
    w.act_cancel.trigger()
    wait_idle(qtbot, w)
    assert panel.list.count() == 0 and "cancelled" in w.statusBar().currentMessage()

    find.trigger()
    assert w.progress.isVisible() and w.cancel_button.isVisible()
    wait_idle(qtbot, w)
    assert not error_dialogs(w)
    assert w.tracks_dock.isVisible() and panel.list.count() == 2 and cv.tabs.currentIndex() == 0
    tracks = panel.tracks
    assert [t.track_id for t in tracks.tracks] == [1, 2] and tracks.evidence == "crossing.avi"
    assert panel.list.item(1).text().startswith("Track 2\n0.00–1.16 s · frames 0–29\n")
    assert not panel.list.item(1).icon().isNull()

    def drawn() -> list[tuple]:
        """(number, box, colour, line width) of each track drawn on the frame shown."""
        marks = cv.frame_view.track_marks()
        rects, labels = marks[0::2], marks[1::2]
        return [(int(label.text().split()[-1]), tuple(round(v, 1) for v in r.rect().getCoords()),
                 r.pen().color().name(), r.pen().widthF()) for r, label in zip(rects, labels, strict=True)]

    def expected(index: int, chosen: int | None = None) -> list[tuple]:
        return [(tid, tuple(round(v, 1) for v in box), track_colour(tid).name(), 4.0 if tid == chosen else 2.0)
                for tid, box in tracks.boxes_at(index)]

    cv.timeline.slider.setValue(3)
    wait_idle(qtbot, w)
    assert cv.frame_index() == 3 and len(drawn()) == 2 and drawn() == expected(3)
    cv.frame_panel.actions["next"].trigger()  # stepping on: the boxes of that frame
    wait_idle(qtbot, w)
    assert cv.frame_index() == 4 and drawn() == expected(4) != expected(3)
    cameraman = tracks.tracks[1]
    assert cameraman.box_at(4)[0] > 400  # he comes from the right

    panel.list.setCurrentRow(1)
    assert drawn() == expected(4, chosen=2) and panel.follow_button.isEnabled()
    qtbot.mouseClick(panel.follow_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, w)
    assert not error_dialogs(w)
    clip = cv.view.record.clip
    assert clip.track == "2" and cv.view.record.parameters["clip"]["track"] == 2
    assert clip.boxes and all(box == pytest.approx(cameraman.box_at(int(f.index)), abs=0.01)
                              for f, box in zip(clip.frames, clip.boxes, strict=True))
    assert len(drawn()) == 2  # the analysed frame keeps the tracks drawn

    panel.start.setValue(0.4)  # a time range: the tracks in it, and the analysis over it
    panel.end.setValue(0.8)
    find.trigger()
    wait_idle(qtbot, w)
    assert [(t.track_id, t.first_frame, t.last_frame) for t in panel.tracks.tracks] == [(1, 10, 19), (2, 10, 19)]
    assert "crossing.avi</b>, 0.40–0.80 s: 2 face track(s) in 10 frames" in panel.summary.text()
    panel.list.setCurrentRow(0)
    panel.follow_button.click()
    wait_idle(qtbot, w)
    record = cv.view.record
    assert record.clip.track == "1" and (record.parameters["clip"]["start_s"], record.parameters["clip"]["end_s"]) \
        == (0.4, 0.8) and all(10 <= f.index <= 19 for f in record.clip.frames)
    panel.end.setValue(0.2)  # ending before it starts: said, nothing run
    find.trigger()
    assert "ends (0.20 s) before it starts (0.40 s)" in error_dialogs(w)[0].informativeText()
    assert not w.runner.busy
    w.runner.wait(TASK_MS)
    w.preview.wait(TASK_MS)

"""Render the main window at each step of the main flow to PNG, on a real X server (Xvfb) or offscreen.

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \
        .venv/bin/python scripts/gui_screenshots.py --out runs/screenshots
    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/gui_screenshots.py --out runs/screenshots

Debian packages: xvfb libxcb-icccm4 libxcb-keysyms1 (and Qt's other xcb libraries). Uses fresh
settings in a temporary folder, builds the demo case there, and drives the window through its shortcuts:
start screen, case opened (frame with the detected box), the face zoomed with the wheel and the view
adjusted, compare, audio, candidates, candidate comparison, report export.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/screenshots")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QMessageBox

    from forensic_face.gui.main_window import MainWindow
    from forensic_face.gui.settings import AppSettings
    from forensic_face.services.workbench import Workbench

    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    tmp = Path(tempfile.mkdtemp(prefix="ff-shots-"))
    settings = AppSettings(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    settings.demo_folder = str(tmp / "demo")
    settings.analyst = "Demo Analyst"
    w = MainWindow(settings, Workbench(device="cpu"))
    w.resize(1500, 920)
    w.move(20, 20)
    w.show()

    def settle(seconds: float = 0.3) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    def idle(timeout: float = 300) -> None:
        end = time.monotonic() + timeout
        while (w.runner.busy or w.preview.busy) and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        settle(0.5)

    def shot(name: str, widget=None) -> None:
        settle(0.3)
        (widget or w).grab().save(str(out / f"{name}.png"))
        print(out / f"{name}.png", flush=True)

    ctrl = Qt.KeyboardModifier.ControlModifier

    def press(key, modifiers) -> None:
        QTest.keyClick(w, key, modifiers)
        settle(0.3)

    def wheel(view, at: QPointF) -> None:
        vp = view.viewport()
        QApplication.sendEvent(vp, QWheelEvent(at, vp.mapToGlobal(at), QPoint(), QPoint(0, 120),
                                               Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                                               Qt.ScrollPhase.NoScrollPhase, False))

    settle(0.5)
    shot("01-start")
    w.case_actions.open_demo(str(tmp / "demo"))  # the folder the File ▸ Open the demo dialog would be given
    settle(1.0)
    shot("02-building-demo-progress")
    idle()
    press(Qt.Key.Key_1, ctrl)  # View ▸ Frame, through its shortcut
    settle(0.5)
    shot("03-case-frame")
    cv = w.case_view
    box = cv.view.record.face.box
    centre = cv.frame_view.mapFromScene(QPointF((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
    cv.frame_view.actual_pixels()
    for _ in range(8):  # the wheel, about the face
        centre = cv.frame_view.mapFromScene(QPointF((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
        wheel(cv.frame_view, QPointF(centre))
    cv.frame_panel.adjust_button.click()
    cv.frame_panel.adjust_sliders[0].setValue(25)
    cv.frame_panel.adjust_sliders[1].setValue(30)
    shot("04-frame-zoomed-adjusted")
    cv.frame_panel.reset_adjustment()
    cv.frame_panel.adjust_button.click()
    cv.frame_view.fit()
    press(Qt.Key.Key_2, ctrl)
    shot("05-compare")
    press(Qt.Key.Key_3, ctrl)
    idle()
    cv.audio_panel.choose(3.2)  # as a click on the recording at 3.2 s does
    shot("06-audio")
    press(Qt.Key.Key_4, ctrl)
    shot("07-candidates")
    w.report_actions.export_png_to("comparison", str(out / "10-exported-comparison.png"))  # File ▸ Export as PNG
    idle()
    w.analysis_actions.open_candidate(0)
    settle(0.5)
    shot("08-compare-candidate", w.analysis_actions.compare)
    w.analysis_actions.compare.close()
    w.report_actions.export_to(str(tmp / "report.pdf"))
    idle()
    report = next(b for b in w.findChildren(QMessageBox) if b.objectName() == "reportWritten")
    shot("09-report-written", report)
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

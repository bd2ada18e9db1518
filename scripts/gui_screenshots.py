"""Render the main window at each step of the main flow to PNG, on a real X server (Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \
        .venv/bin/python scripts/gui_screenshots.py --out runs/screenshots

Debian packages: xvfb libxcb-icccm4 libxcb-keysyms1 (and Qt's other xcb libraries). Uses fresh
settings in a temporary folder, builds the demo case there, and drives: start screen, case opened
(frame with the detected box), compare, audio, candidates, candidate comparison, report export.
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
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

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

    def shot(name: str, whole_screen: bool = False) -> None:
        settle(0.3)
        pix = app.primaryScreen().grabWindow(0) if whole_screen else w.grab()
        pix.save(str(out / f"{name}.png"))
        print(out / f"{name}.png", flush=True)

    settle(0.5)
    shot("01-start")
    w.act_demo.trigger()
    settle(1.0)
    shot("02-building-demo-progress")
    idle()
    w.show_tab(0)
    settle(0.5)
    shot("03-case-frame")
    w.show_tab(1)
    shot("04-compare")
    w.show_tab(2)
    idle()
    shot("05-audio")
    w.show_tab(3)
    shot("06-candidates")
    w.analysis_actions.open_candidate(0)
    settle(0.5)
    shot("07-compare-candidate", whole_screen=True)
    w.analysis_actions.compare.close()
    w.report_actions.export_to(str(tmp / "report.pdf"))
    idle()
    shot("08-report-written", whole_screen=True)
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

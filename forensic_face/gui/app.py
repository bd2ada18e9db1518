"""Start the desktop application: ``forensic-face gui [--case DIR]``."""

from __future__ import annotations

import sys
import time

from forensic_face import __version__


def main(case: str | None = None, exit_after_show: bool = False, models: str | None = None) -> int:
    """Run the application; with ``exit_after_show`` quit once the first window is painted (for timing)."""
    t0 = time.perf_counter()
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from forensic_face.paths import configure_runtime

    configure_runtime()
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("forensic-face")
    app.setOrganizationName("forensic_face")
    app.setApplicationVersion(__version__)
    app.setStyle("Fusion")

    import threading

    from forensic_face.gui.main_window import MainWindow
    from forensic_face.gui.settings import AppSettings
    from forensic_face.services.workbench import Workbench

    def warm_up() -> None:  # matplotlib's import, off the GUI thread, before the first case needs it
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401

    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    settings = AppSettings()
    window = MainWindow(settings, Workbench(models, settings.device, settings.gallery_path, settings.top_k,
                                            settings.fpir, settings.precision))
    window.show()
    if case:
        window.case_actions.open_case(case)
    if exit_after_show:
        def report() -> None:
            handle = window.windowHandle()
            if handle is None or not handle.isExposed():  # not on screen yet: look again shortly
                QTimer.singleShot(5, report)
                return
            window.repaint()  # one full synchronous paint, so its cost is in the figure
            print(f"first window painted after {time.perf_counter() - t0:.3f} s in main()", flush=True)
            app.quit()

        QTimer.singleShot(0, report)
    return app.exec()


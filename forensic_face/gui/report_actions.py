"""Export the open case's PDF report."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMessageBox

from forensic_face.gui.actions import WindowActions


class ReportActions(WindowActions):
    """File ▸ Export PDF report: choose where, write it as a task, offer to open it."""

    def export_report(self) -> None:
        w = self.w
        if w.state is None:
            return
        case = w.state.case
        default = str(Path(case.root).parent / f"{case.meta['id'].replace('/', '_')}-report.pdf")
        out, _ = QFileDialog.getSaveFileName(w, "Export the case report", default, "PDF (*.pdf)")
        if out:
            self.export_to(out if out.lower().endswith(".pdf") else out + ".pdf")

    def export_to(self, out: str) -> None:
        w = self.w
        if w.state is None:
            return
        case = w.state.case

        def done(result) -> None:
            info, state = result
            w.case_actions.show_case(state, show_latest=False)
            box = QMessageBox(w)
            box.setWindowTitle("Report written")
            box.setText(f"{info.path}\n{info.pages} pages · SHA-256 {info.sha256[:16]}… (logged in the case)"
                        + ("" if info.verified else "\n\nThe case failed verification; the report lists the problems."))
            open_button = box.addButton("Open", QMessageBox.ButtonRole.AcceptRole)
            box.addButton(QMessageBox.StandardButton.Close)
            box.buttonClicked.connect(lambda b: b is open_button and QDesktopServices.openUrl(
                QUrl.fromLocalFile(info.path)))
            box.setObjectName("reportWritten")
            box.open()

        w.run_task("Writing report", lambda p: w.wb.export_report(case, out, p), done,
                   "The report could not be written")

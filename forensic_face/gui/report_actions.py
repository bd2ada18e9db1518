"""Export the open case's PDF report, and what the window shows (frame, face crop, comparison) as PNG."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt, QUrl
from PySide6.QtGui import QColor, QDesktopServices, QFont, QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import QFileDialog, QMessageBox

from forensic_face.gui.actions import WindowActions
from forensic_face.gui.dialogs import show_error


class ReportActions(WindowActions):
    """File ▸ Export PDF report: choose where, write it as a task, offer to open it; File ▸ Export as PNG:
    the view with a caption naming the case, the evidence's SHA-256 and the frame's time, written and
    logged by the workbench."""

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

    # ---------------------------------------------------------------------------------------- PNG views
    def export_png(self, kind: str) -> None:
        """Export what the window shows (``kind``: see CaseView.EXPORTS) as a PNG with its caption."""
        w = self.w
        if w.state is None:
            return
        case = w.state.case
        default = str(Path(case.root).parent / f"{case.meta['id'].replace('/', '_')}-{kind}.png")
        out, _ = QFileDialog.getSaveFileName(w, "Export as PNG (with a caption naming its source)", default,
                                             "PNG (*.png)")
        if out:
            self.export_png_to(kind, out if out.lower().endswith(".png") else out + ".png")

    def export_png_to(self, kind: str, out: str) -> None:
        w = self.w
        if w.state is None:
            return
        shown = w.case_view.export_image(kind)
        if shown is None:
            show_error(w, "Nothing to export", "error", f"The {kind} is not shown yet: run or choose an analysis.")
            return
        image, source = shown
        case = w.state.case
        item = next((e for e in case.evidence if e.name == source["evidence"]), None)
        sha = item.sha256 if item is not None else "?"
        caption = [f"Case {case.meta['id']} · {source['what']}",
                   f"Evidence {source['evidence']} · SHA-256 {sha}",
                   f"{source['when']} · exported {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"]
        details = {"kind": kind, "evidence": source["evidence"], "evidence_sha256": sha, "caption": caption}

        def export(_progress):  # on the worker: the captioned PNG, the file, its log entry, the log as it is now
            path, digest, not_logged = w.wb.export_view(case, out, captioned_png(image, caption), details)
            return path, digest, not_logged, case.read_log()

        def done(result) -> None:
            path, digest, not_logged, entries = result
            w.statusBar().showMessage(f"{path} written (SHA-256 {digest[:16]}…); " + (
                "logged in the case" if not not_logged else f"not logged: {not_logged}"), 10000)
            state = w.state
            if state is not None and state.case.root == case.root and not not_logged:
                w.log_table.show_entries(entries)

        w.run_task("Exporting PNG", export, done, "The picture could not be written")


def captioned_png(image: QImage, lines: list[str]) -> bytes:
    """``image`` above a white strip with ``lines`` of caption, as PNG bytes."""
    font = QFont()
    font.setPointSize(9)
    metrics = QFontMetrics(font)
    width = max(image.width(), 640)
    line_h = metrics.height() + 2
    out = QImage(width, image.height() + line_h * len(lines) + 12, QImage.Format.Format_RGB32)
    out.fill(QColor("white"))
    painter = QPainter(out)
    painter.drawImage(0, 0, image)
    painter.setFont(font)
    painter.setPen(QColor("black"))
    for i, line in enumerate(lines):
        painter.drawText(6, image.height() + 6 + metrics.ascent() + i * line_h, metrics.elidedText(
            line, Qt.TextElideMode.ElideMiddle, width - 12))
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    out.save(buffer, "PNG")
    buffer.close()
    return bytes(data)

"""Dialogs: new case, settings, candidate comparison, and error messages that say what to do."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from forensic_face.core.records import Candidate
from forensic_face.gui.settings import DEVICES, FPIR_CHOICES, PRECISIONS, AppSettings
from forensic_face.gui.widgets import ImagePanel
from forensic_face.models.calibration import DEFAULT_FPIR
from forensic_face.store.gallery import public_location

#: What the analyst can do about each kind of failure (a task's kinds: gui.tasks.failure_kind).
UNCHANGED = ("Nothing was lost: the case and the evidence are as they were before this step (a failed analysis is "
             "only recorded in the audit log, with its reason).")
DRAW_BOX = ("Draw the face box by hand: Analysis ▸ Draw face box (Ctrl+B), drag over the face on the Frame tab, "
            "then run the analysis again.")
IN_DOUBT = ("This step changed nothing, but the case is not as it was recorded: do not rely on the files it names. "
            "File ▸ Verify case (Ctrl+Shift+V) lists the problems; keep the case as it is for examination.")
ADVICE = {
    "cancelled": "Nothing was changed by the unfinished step.",
    "error": UNCHANGED,
    "no_face": f"{DRAW_BOX} {UNCHANGED}",
    "integrity": IN_DOUBT,
    "internal": "This is a fault in forensic_face, not in your data. The unfinished step saved nothing; the "
                "details are in the log. Please report it with the case's audit log.",
    "verification": "The case was not changed by the verification. Do not rely on the named files; report the "
                    "problems and keep the case as it is for examination.",
}

#: The command-line advice some messages carry, and what the window offers instead; the advice to draw
#: the box by hand goes (DRAW_BOX says it once, the window's way).
_GUI_WORDS = (
    (re.compile(r"[;,.]?\s*draw the face box by hand(?:\s*\((?:--box|Analysis)[^)]*\))?\.?", re.IGNORECASE), ""),
    (re.compile(r"`forensic-face case verify`"), "File ▸ Verify case"),
    (re.compile(r"`forensic-face gallery enroll [^`]*`"), "Gallery ▸ Enrol a folder"),
    (re.compile(r"`(?:forensic-face )?case add`"), "File ▸ Add evidence"),
    (re.compile(r"`forensic-face case log`"), "the audit log"),
)


def gui_message(message: str) -> str:
    """A task's message as the window says it: the command line's advice replaced by the menus'."""
    for pattern, words in _GUI_WORDS:
        message = pattern.sub(words, message)
    return message.strip()


def show_error(parent: QWidget | None, title: str, kind: str, message: str, case_in_doubt: bool = False) -> None:
    """A dialog that says what went wrong and what to do next; ``case_in_doubt`` when the open case failed
    verification (nothing can then be said to be as it was)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Information if kind == "cancelled" else QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(title)
    if case_in_doubt and kind in ("error", "no_face"):
        kind = "integrity"
    advice = ADVICE.get(kind, "")
    # file and person names can hold markup: the whole dialog is plain text, shown as written
    box.setInformativeText(f"{gui_message(message)}\n\n{advice}".strip())
    box.setTextFormat(Qt.TextFormat.PlainText)  # after the informative text: its label takes the format too
    box.setObjectName("errorDialog")
    box.open()


def path_row(edit: QLineEdit, button_text: str, on_browse) -> QHBoxLayout:
    """A path field with its browse button."""
    browse = QPushButton(button_text)
    browse.clicked.connect(on_browse)
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(browse)
    return row


class NewCaseDialog(QDialog):
    def __init__(self, parent: QWidget | None, analyst: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("New case")
        self.folder = QLineEdit()
        row = path_row(self.folder, "Browse…", self._browse)
        self.case_id = QLineEdit()
        self.case_id.setPlaceholderText("e.g. CR-2026/0173")
        self.analyst = QLineEdit(analyst)
        self.title = QLineEdit()
        form = QFormLayout()
        form.addRow("Case folder (new, empty):", row)
        form.addRow("Case ID:", self.case_id)
        form.addRow("Analyst:", self.analyst)
        form.addRow("Title:", self.title)
        self.hint = QLabel("")
        self.hint.setStyleSheet("color: #b71c1c;")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.hint)
        lay.addWidget(buttons)
        self.resize(520, 200)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the new case")
        if folder:
            self.folder.setText(folder)

    def _accept(self) -> None:
        missing = [n for n, w in (("case folder", self.folder), ("case ID", self.case_id), ("analyst", self.analyst))
                   if not w.text().strip()]
        if missing:
            self.hint.setText("Please fill in: " + ", ".join(missing))
            return
        path = Path(self.folder.text().strip())
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            self.hint.setText(f"{path} is not empty; choose a new or empty folder")
            return
        self.accept()

    def values(self) -> tuple[str, str, str, str]:
        return (self.folder.text().strip(), self.case_id.text().strip(), self.analyst.text().strip(),
                self.title.text().strip())


class SettingsDialog(QDialog):
    def __init__(self, parent: QWidget | None, settings: AppSettings, cuda_available: bool | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.gallery = QLineEdit(settings.gallery_path)
        self.gallery.setPlaceholderText("gallery.db, or postgresql://analyst@server/gallery")
        self.gallery.setToolTip("A gallery database file, or a PostgreSQL server's URL (a unit's shared gallery). "
                                "A password is never stored here: give it in ~/.pgpass or PGPASSWORD.")
        row = path_row(self.gallery, "Choose…", self._browse)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(settings.device)
        if cuda_available is False:
            self.device.model().item(DEVICES.index("cuda")).setEnabled(False)
            self.device.setToolTip("No CUDA GPU is visible to torch on this computer")
        self.precision = QComboBox()
        self.precision.addItems(PRECISIONS)
        self.precision.setCurrentText(settings.precision)
        self.precision.setToolTip(
            "The recognisers' arithmetic on the CPU. auto: bfloat16 where this computer's CPU multiplies it natively "
            "(about half the time; similarities within about 0.001 of float32's), float32 elsewhere. float32 gives "
            "the same numbers on every computer. Every analysis records the one used.")
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 100)
        self.top_k.setValue(settings.top_k)
        self.fpir = QComboBox()
        for rate in FPIR_CHOICES:
            self.fpir.addItem(f"{rate * 100:g} %" + (" (default)" if rate == DEFAULT_FPIR else ""), rate)
        self.fpir.setCurrentIndex(FPIR_CHOICES.index(settings.fpir))
        self.fpir.setToolTip("The share of searches for someone who is not in the gallery that may still end with "
                             "an investigative lead. A higher rate gives more leads, and more of them false.")
        self.analyst = QLineEdit(settings.analyst)
        form = QFormLayout(self)
        form.addRow("Gallery (file or URL):", row)
        form.addRow("Compute device:", self.device)
        form.addRow("Recognisers' arithmetic:", self.precision)
        form.addRow("Candidates shown (top-k):", self.top_k)
        form.addRow("False-lead rate of gallery leads:", self.fpir)
        form.addRow("Default analyst name:", self.analyst)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.resize(560, 210)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Gallery database (existing or new)", self.gallery.text(),
                                              "Gallery (*.db);;All files (*)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.gallery.setText(path)

    def apply(self, settings: AppSettings) -> bool:
        """Store the choices; False when a password had to be dropped from the gallery's URL (say so)."""
        given = self.gallery.text().strip()
        settings.gallery_path = public_location(given)
        settings.device = self.device.currentText()
        settings.precision = self.precision.currentText()
        settings.top_k = self.top_k.value()
        settings.fpir = float(self.fpir.currentData())
        settings.analyst = self.analyst.text().strip()
        return settings.gallery_path == given


class CompareDialog(QDialog):
    """Probe beside a candidate's gallery face, the same size, with the scores."""

    def __init__(self, parent: QWidget | None, probe: np.ndarray | None, reconstruction: np.ndarray | None,
                 candidate: Candidate, thumb: np.ndarray | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Compare with {candidate.person}")
        panels = [ImagePanel("degraded input"), ImagePanel("reconstruction (model output)"),
                  ImagePanel(f"gallery: {candidate.person}")]
        size = max((a.shape[0] for a in (probe, reconstruction, thumb) if a is not None), default=64)
        for panel, img in zip(panels, (probe, reconstruction, thumb), strict=True):
            if img is not None and img.shape[0] != size:
                import cv2

                img = cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST)
            panel.set_image(img)
        row = QHBoxLayout()
        for p in panels:
            row.addWidget(p)
        zoom = QSlider(Qt.Orientation.Horizontal)
        zoom.setRange(1, 8)
        zoom.setValue(4)
        zoom.valueChanged.connect(lambda z: [p.set_zoom(z) for p in panels])
        info = QLabel(f"identity probability {candidate.identity_probability:.3f} · cosine "
                      f"similarity {candidate.similarity:.3f} · Euclidean distance "
                      f"{candidate.euclidean:.3f} · match probability "
                      f"{candidate.match_probability:.3f}<br><i>An investigative lead, not an "
                      f"identification. The reconstruction is not evidence.</i>")
        lay = QVBoxLayout(self)
        lay.addLayout(row, 1)
        zrow = QHBoxLayout()
        zrow.addWidget(QLabel("Zoom:"))
        zrow.addWidget(zoom, 1)
        lay.addLayout(zrow)
        lay.addWidget(info)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        lay.addWidget(close)
        self.panels = panels
        self.resize(900, 480)

"""The Candidates tab: the search told as a search (the lead decision and its false-lead rate first), the
one-to-one figures labelled as such, and the candidates with the lead, if any, the only row highlighted."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from forensic_face.gui.widgets import to_pixmap
from forensic_face.reports.wording import (
    ONE_TO_ONE,
    lead_row,
    one_to_one_note,
    open_set_note,
    paths_note,
    search_verdict,
)

VERDICT_STYLE = "font-size: 15px; font-weight: bold; padding: 6px;"
LEAD_COLOUR = "#fff3cd"
ALTERED_COLOUR = "#f8d7da"
NO_SEARCH = "Run an analysis with a gallery to see candidates."


class SearchPanel(QWidget):
    """The verdict, what the figures mean, and the ranked candidates (double-click one to compare)."""

    candidate_opened = Signal(int)  # row

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.verdict = QLabel(NO_SEARCH)
        self.verdict.setObjectName("verdict")
        self.verdict.setTextFormat(Qt.TextFormat.PlainText)
        self.verdict.setWordWrap(True)
        self.verdict.setStyleSheet(VERDICT_STYLE)
        self.info = QLabel("")
        self.info.setTextFormat(Qt.TextFormat.PlainText)
        self.info.setWordWrap(True)
        self.table = QTableWidget(0, 6)
        self.table.setObjectName("candidates")
        self.table.setHorizontalHeaderLabels(["Person", "Identity probability", "Cosine similarity",
                                              "Euclidean distance", ONE_TO_ONE.capitalize(), "Gallery image"])
        self.table.setIconSize(QSize(56, 56))
        self.table.verticalHeader().setDefaultSectionSize(60)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3, 4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.candidate_opened.emit(row))
        caveat = QLabel("<i>A candidate is an investigative lead, not an identification. Double-click a row to "
                        "compare side by side.</i>")
        lay = QVBoxLayout(self)
        lay.addWidget(self.verdict)
        lay.addWidget(self.info)
        lay.addWidget(self.table, 1)
        lay.addWidget(caveat)

    def clear(self, text: str = NO_SEARCH) -> None:
        self.table.setRowCount(0)
        self.verdict.setText(text)
        self.verdict.setStyleSheet(VERDICT_STYLE)
        self.info.setText("")

    def show_search(self, view) -> None:
        """The search of an AnalysisView; an altered or withdrawn analysis is flagged and nothing of it highlighted."""
        search = view.record.search
        if search is None:
            self.clear("No gallery was searched (choose one in Settings, then run the analysis).")
            return
        self.clear()
        cands = search.candidates
        withdrawn = view.withdrawn is not None
        lead = lead_row(search) if view.trustworthy and not withdrawn else None
        if not view.trustworthy:  # a record changed after it was written: never headline what it now says
            self.verdict.setText("ALTERED: files of this analysis were changed after they were written (case "
                                 "verification names them). Do not rely on anything shown for it.\n"
                                 "It now reads: " + search_verdict(search))
            self.verdict.setStyleSheet(f"{VERDICT_STYLE} background: {ALTERED_COLOUR};")
        elif withdrawn:  # the analyst withdrew it: what it found is kept, never headlined
            self.verdict.setText(f"WITHDRAWN ({view.withdrawn.text}). It read: " + search_verdict(search))
            self.verdict.setStyleSheet(f"{VERDICT_STYLE} background: {ALTERED_COLOUR};")
        else:
            self.verdict.setText(search_verdict(search))
            if lead is not None:
                self.verdict.setStyleSheet(f"{VERDICT_STYLE} background: {LEAD_COLOUR};")
        self.info.setText(
            f"{search.people_searched} people ({search.embeddings_searched} images) compared with "
            f"model {search.model_version}. {open_set_note(search)} {one_to_one_note(search)} It is 0.5 at "
            f"cosine {search.threshold_similarity:.3f}. Identity probability assumes the person is in the gallery. "
            + paths_note(search))
        self.table.horizontalHeaderItem(4).setToolTip(one_to_one_note(search))
        self.table.setRowCount(len(cands))
        for r, c in enumerate(cands):
            name = QTableWidgetItem(c.person)
            thumb = view.thumbnails[r] if r < len(view.thumbnails) else None
            if thumb is not None:
                name.setIcon(QIcon(to_pixmap(thumb)))
            self.table.setItem(r, 0, name)
            values = (c.identity_probability, c.similarity, c.euclidean, c.match_probability)
            for col, value in enumerate(values, 1):
                item = QTableWidgetItem(f"{value:.3f}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, col, item)
            self.table.setItem(r, 5, QTableWidgetItem(c.image_path))
            if r == lead:
                for col in range(self.table.columnCount()):
                    self.table.item(r, col).setBackground(QColor(LEAD_COLOUR))

    def highlighted_rows(self) -> list[int]:
        """The rows shown highlighted (at most one: the lead)."""
        return [r for r in range(self.table.rowCount())
                if self.table.item(r, 0).background().style() != Qt.BrushStyle.NoBrush]

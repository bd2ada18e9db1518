"""The open case beside the centre: its summary, the evidence list with hash checks, the audit log."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
)

from forensic_face.store.case import Case
from forensic_face.store.verify import VerifyReport


class CaseSummary(QLabel):
    """Case id, title, analyst, folder and whether the case verified."""

    def __init__(self) -> None:
        super().__init__("")
        self.setWordWrap(True)

    def show_case(self, case: Case, verification: VerifyReport) -> None:
        v = verification
        esc = html.escape
        integrity = ("<span style='color:#1b5e20'>evidence, results and audit log verified</span>" if v.ok else
                     f"<span style='color:#b71c1c'><b>{len(v.problems)} integrity problem(s)</b>: "
                     + esc("; ".join(v.problems[:3])) + "</span>")
        self.setText(f"<b>{esc(case.meta['id'][:100])}</b> — "
                     f"{esc((case.meta.get('title') or 'untitled')[:300])}<br>"
                     f"Analyst: {esc(case.meta.get('analyst', '')[:120])} · {esc(str(case.root))}<br>"
                     f"{integrity}")
        self.setTextFormat(Qt.TextFormat.RichText)


class EvidenceList(QTreeWidget):
    """One row per evidence file with the result of its hash check."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("evidenceList")
        self.setHeaderLabels(["Evidence", "Type", "Hash check", "SHA-256", "Added (UTC)"])
        self.setRootIsDecorated(False)
        self.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)

    def show_evidence(self, evidence: list, verification: VerifyReport) -> None:
        self.clear()
        for e in evidence:
            status = verification.evidence_status.get(e.name, "not checked")
            item = QTreeWidgetItem([e.name, f"{e.kind} ({e.format})", status, e.sha256[:16] + "…",
                                    e.added[:19].replace("T", " ")])
            item.setToolTip(3, e.sha256)
            item.setToolTip(0, f"original name: {e.original_name}; {e.size:,} bytes")
            item.setForeground(2, Qt.GlobalColor.darkGreen if status == "verified" else Qt.GlobalColor.red)
            self.addTopLevelItem(item)


class AuditLogTable(QTableWidget):
    """The case's audit log, one entry a row, newest at the bottom."""

    def __init__(self) -> None:
        super().__init__(0, 5)
        self.setObjectName("auditLog")
        self.setHorizontalHeaderLabels(["#", "Time (UTC)", "Action", "Details", "Entry hash"])
        self.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)

    def show_entries(self, entries: list[dict]) -> None:
        from forensic_face.reports.pdf import details_line

        self.setRowCount(len(entries))
        for r, e in enumerate(entries):
            for c, text in enumerate((str(e.get("seq", "")), str(e.get("time", ""))[:23].replace("T", " "),
                                      str(e.get("action", "")), details_line(e.get("details", {}), 400),
                                      str(e.get("hash", ""))[:16])):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.setItem(r, c, item)
        self.resizeColumnsToContents()
        self.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.scrollToBottom()

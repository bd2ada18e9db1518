"""The main window: start screen, case view, evidence and audit-log docks, menus, progress."""

from __future__ import annotations

import html
import logging
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from forensic_face import __version__
from forensic_face.gui.case_view import NO_AUDIO, CaseView
from forensic_face.gui.dialogs import CompareDialog, NewCaseDialog, SettingsDialog, show_error
from forensic_face.gui.settings import AppSettings
from forensic_face.gui.tasks import TaskRunner
from forensic_face.services.workbench import CaseState, Workbench

log = logging.getLogger(__name__)

STATUS_COLOURS = {"verified": "#1b5e20", "altered": "#b71c1c", "missing": "#b71c1c", "link": "#b71c1c"}


class StartPage(QWidget):
    open_recent = Signal(str)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        title = QLabel(f"<h1>forensic_face</h1><p>Face reconstruction and gallery search from degraded CCTV frames "
                       f"and their audio · version {__version__}</p>")
        buttons = QHBoxLayout()
        for text, action in (("New case…", window.act_new), ("Open case…", window.act_open),
                             ("Open the demo case", window.act_demo)):
            b = QPushButton(text)
            b.setMinimumHeight(36)
            b.clicked.connect(action.trigger)
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.recent = QListWidget()
        self.recent.setObjectName("recentCases")
        self.recent.itemActivated.connect(lambda item: self.open_recent.emit(item.data(Qt.ItemDataRole.UserRole)))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(40, 30, 40, 30)
        lay.addWidget(title)
        lay.addLayout(buttons)
        lay.addWidget(QLabel("<b>Recent cases</b> (double-click or Enter to open)"))
        lay.addWidget(self.recent, 1)
        note = QLabel("<i>Candidates are investigative leads, not identifications. Evidence files are never "
                      "modified; every step is recorded in the case's audit log.</i>")
        note.setWordWrap(True)
        lay.addWidget(note)

    def set_recent(self, paths: list[str]) -> None:
        self.recent.clear()
        for p in paths:
            exists = (Path(p) / "case.json").is_file()
            item = QListWidgetItem(p if exists else f"{p}  (not found)")
            item.setData(Qt.ItemDataRole.UserRole, p)
            if not exists:
                item.setForeground(Qt.GlobalColor.gray)
            self.recent.addItem(item)


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings | None = None, workbench: Workbench | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.wb = workbench or Workbench(device=self.settings.device, gallery_path=self.settings.gallery_path,
                                         top_k=self.settings.top_k, fpir=self.settings.fpir)
        self.state: CaseState | None = None
        self.runner = TaskRunner(self)  # analysis, enrolment, export, opening cases
        self.preview = TaskRunner(self)  # frames and audio panels
        self._queued: dict[str, tuple] = {}  # preview work waiting for the preview runner, newest per kind
        self.setWindowTitle("forensic_face")
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_menus()
        self.case_view = CaseView()
        self.start = StartPage(self)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.start)
        self.stack.addWidget(self.case_view)
        self.setCentralWidget(self.stack)
        self._build_docks()
        self._build_status()
        self._connect()
        self.start.set_recent(self.settings.recent_cases())
        self._set_case_actions(False)
        screen = self.screen().availableGeometry()  # fits small and high-DPI screens alike
        self.resize(min(1400, int(screen.width() * 0.92)), min(900, int(screen.height() * 0.9)))
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    # ---------------------------------------------------------------------------------------- building
    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
        act.triggered.connect(slot)
        return act

    def _build_actions(self) -> None:
        sk = QKeySequence.StandardKey
        self.act_new = self._action("&New case…", self.new_case, sk.New, "Create a new case folder")
        self.act_open = self._action("&Open case…", self.open_case_dialog, sk.Open, "Open a case folder")
        self.act_demo = self._action("Open the &demo case", self.open_demo, "Ctrl+Shift+D",
                                     "Build and open the bundled demo case")
        self.act_add = self._action("&Add evidence…", self.add_evidence_dialog, "Ctrl+I",
                                    "Copy evidence files into the case (hashed, read-only, logged)")
        self.act_export = self._action("&Export PDF report…", self.export_report, "Ctrl+E")
        self.act_verify = self._action("&Verify case", self.verify_case, "Ctrl+Shift+V",
                                       "Re-hash the evidence and check the audit chain")
        self.act_close = self._action("&Close case", self.close_case, sk.Close)
        self.act_quit = self._action("&Quit", self.close, sk.Quit)
        self.act_run = self._action("&Run analysis", self.run_analysis, "Ctrl+R")
        self.act_run.setShortcuts([QKeySequence("Ctrl+R"), QKeySequence("F5")])
        self.act_detect = self._action("&Detect face", self.detect_face, "Ctrl+D")
        self.act_draw = self._action("Draw face &box", lambda: None, "Ctrl+B")
        self.act_draw.setCheckable(True)
        self.act_enrol = self._action("&Enrol a folder…", self.enrol_dialog, "Ctrl+G",
                                      "Enrol an LFW-style folder (one sub-folder per person)")
        self.act_gallery_info = self._action("Gallery &information", self.gallery_info)
        self.act_settings = self._action("&Settings…", self.settings_dialog, sk.Preferences)
        if self.act_settings.shortcut().isEmpty():
            self.act_settings.setShortcut(QKeySequence("Ctrl+,"))
        self.act_cancel = self._action("&Cancel running task", self.cancel_task, "Esc")
        self.act_cancel.setEnabled(False)
        self.act_about = self._action("&About", self.about)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        for a in (self.act_new, self.act_open, self.act_demo):
            m.addAction(a)
        self.recent_menu = m.addMenu("Recent cases")
        m.addSeparator()
        for a in (self.act_add, self.act_verify, self.act_export, self.act_close):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_settings)
        m.addAction(self.act_quit)
        m = mb.addMenu("&Analysis")
        for a in (self.act_run, self.act_detect, self.act_draw, self.act_cancel):
            m.addAction(a)
        m = mb.addMenu("&Gallery")
        m.addAction(self.act_enrol)
        m.addAction(self.act_gallery_info)
        self.view_menu = mb.addMenu("&View")
        m = mb.addMenu("&Help")
        m.addAction(self.act_about)
        self._fill_recent_menu()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for p in self.settings.recent_cases():
            self.recent_menu.addAction(p, lambda p=p: self.open_case(p))
        self.recent_menu.setEnabled(bool(self.settings.recent_cases()))

    def _build_docks(self) -> None:
        self.evidence = QTreeWidget()
        self.evidence.setObjectName("evidenceList")
        self.evidence.setHeaderLabels(["Evidence", "Type", "Hash check", "SHA-256", "Added (UTC)"])
        self.evidence.setRootIsDecorated(False)
        self.evidence.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        add = QPushButton("Add evidence…")
        add.clicked.connect(self.act_add.trigger)
        hint = QLabel("<i>or drop files on the window</i>")
        self.case_summary = QLabel("")
        self.case_summary.setWordWrap(True)
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.case_summary)
        lay.addWidget(self.evidence, 1)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(hint)
        row.addStretch(1)
        lay.addLayout(row)
        self.evidence_dock = QDockWidget("Case and evidence", self)
        self.evidence_dock.setObjectName("evidenceDock")
        self.evidence_dock.setWidget(w)
        w.setMinimumWidth(420)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.evidence_dock)
        self.log_table = QTableWidget(0, 5)
        self.log_table.setObjectName("auditLog")
        self.log_table.setHorizontalHeaderLabels(["#", "Time (UTC)", "Action", "Details", "Entry hash"])
        self.log_table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.log_table.verticalHeader().setVisible(False)
        self.log_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.log_dock = QDockWidget("Audit log", self)
        self.log_dock.setObjectName("auditDock")
        self.log_dock.setWidget(self.log_table)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)
        self.view_menu.addAction(self.evidence_dock.toggleViewAction())
        self.view_menu.addAction(self.log_dock.toggleViewAction())
        for i in range(4):
            self.view_menu.addAction(self._action(self.case_view.tabs.tabText(i), lambda i=i: self.show_tab(i),
                                                  f"Ctrl+{i + 1}"))

    def _build_status(self) -> None:
        self.status_label = QLabel("")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.progress = QProgressBar()
        self.progress.setObjectName("taskProgress")
        self.progress.setMaximumWidth(320)
        self.progress.setVisible(False)
        self.progress.setFormat("%p%")
        self.task_label = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_task)
        sb = self.statusBar()
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.task_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        self._update_status()

    def _connect(self) -> None:
        self.start.open_recent.connect(self.open_case)
        self.runner.started.connect(self._task_started)
        self.runner.progress.connect(self._task_progress)
        self.runner.finished.connect(self._task_finished)
        self.preview.finished.connect(self._next_preview)
        cv = self.case_view
        cv.run_requested.connect(self.run_analysis)
        cv.frame_requested.connect(self.load_frame)
        cv.detect_requested.connect(self.detect_face)
        cv.candidate_opened.connect(self.open_candidate)
        cv.analysis_combo.currentTextChanged.connect(self.show_analysis_id)
        cv.audio_combo.currentTextChanged.connect(self.preview_audio)
        cv.frame_view.box_drawn.connect(lambda box: self.statusBar().showMessage(
            f"Face box drawn: {box}; Run analysis will use it", 8000))
        self.act_draw.toggled.connect(cv.draw_button.setChecked)
        cv.draw_button.toggled.connect(self.act_draw.setChecked)

    # ---------------------------------------------------------------------------------------- status
    def _update_status(self) -> None:
        gallery = self.wb.gallery_path or "none (Settings ▸ Gallery)"
        case = f"case {self.state.case.meta['id']}" if self.state else "no case open"
        self.status_label.setText(f"{case} · gallery: {gallery} · device: {self.wb.device} · top-{self.wb.top_k}"
                                  f" · false leads {self.wb.fpir * 100:g} %")

    def _task_started(self, label: str, cancellable: bool) -> None:
        self.task_label.setText(label)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(cancellable)
        self.cancel_button.setEnabled(cancellable)
        self.act_cancel.setEnabled(cancellable)
        self._set_busy(True)

    def _task_progress(self, done: int, total: int, message: str) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        self.task_label.setText(f"{self.runner.label}: {message}" if message else self.runner.label)

    def _task_finished(self, _label: str) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.act_cancel.setEnabled(False)
        self.task_label.setText("")
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        for a in (self.act_new, self.act_open, self.act_demo, self.act_enrol, self.act_settings):
            a.setEnabled(not busy)
        self._set_case_actions(self.state is not None and not busy)

    def _set_case_actions(self, on: bool) -> None:
        for a in (self.act_add, self.act_export, self.act_verify, self.act_close, self.act_run, self.act_detect):
            a.setEnabled(on)
        self.case_view.run_button.setEnabled(on and self.case_view.frame_combo.count() > 0)
        if self.state is None:
            self.evidence_dock.hide()
            self.log_dock.hide()

    def cancel_task(self) -> None:
        if self.runner.busy:
            self.runner.cancel()
            self.cancel_button.setEnabled(False)
            self.task_label.setText(f"{self.runner.label}: cancelling…")

    def _failed(self, title: str):
        def handler(kind: str, message: str) -> None:
            if kind == "cancelled":
                self.statusBar().showMessage(f"{title}: cancelled; nothing was changed by the unfinished step", 8000)
                return
            show_error(self, title, kind, message)
        return handler

    def _start(self, label: str, fn, on_done, title: str, cancellable: bool = True) -> bool:
        if not self.runner.run(label, fn, on_done, self._failed(title), cancellable):
            self.statusBar().showMessage(f"Busy with '{self.runner.label}'; wait for it or cancel it (Esc)", 6000)
            return False
        return True

    # ---------------------------------------------------------------------------------------- cases
    def new_case(self) -> None:
        dlg = NewCaseDialog(self, self.settings.analyst)
        if dlg.exec() != NewCaseDialog.DialogCode.Accepted:
            return
        folder, case_id, analyst, title = dlg.values()
        if analyst and not self.settings.analyst:
            self.settings.analyst = analyst
        self._start("Creating case", lambda p: self.wb.new_case(folder, case_id, analyst, title), self.show_case,
                    "Could not create the case")

    def open_case_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open case folder")
        if folder:
            self.open_case(folder)

    def open_case(self, folder: str) -> None:
        def failed(kind: str, message: str) -> None:
            if kind != "cancelled" and not (Path(folder) / "case.json").is_file():
                self.settings.remove_recent(folder)
                self.start.set_recent(self.settings.recent_cases())
                self._fill_recent_menu()
            self._failed("Could not open the case")(kind, message)

        self.runner.run("Opening case (verifying evidence)", lambda p: self.wb.open_case(folder, p), self.show_case,
                        failed) or self.statusBar().showMessage("Busy; wait or cancel (Esc)", 6000)

    def open_demo(self) -> None:
        folder = self.settings.demo_folder

        def done(state: CaseState) -> None:
            # the demo gallery serves the demo case only: opening or creating another case goes back to the
            # gallery of the settings, which the demo never changes
            self.show_case(state)
            self.statusBar().showMessage(f"Demo case built in {folder}; gallery {self.wb.gallery_path}", 10000)

        self._start("Building the demo case", lambda p: self.wb.demo_case(folder, p), done,
                    "Could not build the demo case", cancellable=False)

    def close_case(self) -> None:
        self.state = None
        self.case_view.clear_analysis()
        self.stack.setCurrentWidget(self.start)
        self.start.set_recent(self.settings.recent_cases())
        self.log_table.setRowCount(0)
        self.evidence.clear()
        self._set_case_actions(False)
        self.setWindowTitle("forensic_face")
        self._update_status()

    def _gallery_for(self, case) -> None:
        """The demo's gallery for the demo case, the settings' gallery for every other case: opening the demo
        never becomes the default of a real case."""
        demo = Path(self.settings.demo_folder)
        is_demo = Path(case.root).resolve() == (demo / "case").resolve()
        wanted = str(demo / "gallery.db") if is_demo else self.settings.gallery_path
        if self.wb.gallery_path != wanted:
            self.wb.configure(gallery_path=wanted)
            self._update_status()

    def show_case(self, state: CaseState, show_latest: bool = True) -> None:
        first = self.state is None or self.state.case.root != state.case.root
        self.state = state
        case = state.case
        self.settings.add_recent(str(case.root))
        self._fill_recent_menu()
        self._gallery_for(case)
        self.setWindowTitle(f"forensic_face — case {case.meta['id'][:80]}")
        v = state.verification
        esc = html.escape
        integrity = ("<span style='color:#1b5e20'>evidence, results and audit log verified</span>" if v.ok else
                     f"<span style='color:#b71c1c'><b>{len(v.problems)} integrity problem(s)</b>: "
                     + esc("; ".join(v.problems[:3])) + "</span>")
        self.case_summary.setText(f"<b>{esc(case.meta['id'][:100])}</b> — "
                                  f"{esc((case.meta.get('title') or 'untitled')[:300])}<br>"
                                  f"Analyst: {esc(case.meta.get('analyst', '')[:120])} · {esc(str(case.root))}<br>"
                                  f"{integrity}")
        self.case_summary.setTextFormat(Qt.TextFormat.RichText)
        self.evidence.clear()
        for e in case.evidence:
            status = v.evidence_status.get(e.name, "not checked")
            item = QTreeWidgetItem([e.name, f"{e.kind} ({e.format})", status, e.sha256[:16] + "…",
                                    e.added[:19].replace("T", " ")])
            item.setToolTip(3, e.sha256)
            item.setToolTip(0, f"original name: {e.original_name}; {e.size:,} bytes")
            item.setForeground(2, Qt.GlobalColor.darkGreen if status == "verified" else Qt.GlobalColor.red)
            self.evidence.addTopLevelItem(item)
        self._fill_log(state.log)
        self.case_view.set_evidence(case.evidence, keep=not first)
        self.case_view.set_analyses(state.analyses, state.latest.analysis_id if state.latest else None)
        self.stack.setCurrentWidget(self.case_view)
        if first:
            self.evidence_dock.show()
            self.log_dock.show()
        self._set_case_actions(not self.runner.busy)
        self._update_status()
        if first:
            self.case_view.clear_analysis()
        if show_latest and state.latest is not None:
            self._show_view(state.latest)
        elif first:
            if self.case_view.frame_combo.count():
                self.load_frame(self.case_view.frame_combo.currentText(), None)
            self.preview_audio(self.case_view.audio_combo.currentText())

    def _fill_log(self, entries: list[dict]) -> None:
        from forensic_face.reports.pdf import details_line

        t = self.log_table
        t.setRowCount(len(entries))
        for r, e in enumerate(entries):
            for c, text in enumerate((str(e.get("seq", "")), str(e.get("time", ""))[:23].replace("T", " "),
                                      str(e.get("action", "")), details_line(e.get("details", {}), 400),
                                      str(e.get("hash", ""))[:16])):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                t.setItem(r, c, item)
        t.resizeColumnsToContents()
        t.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        t.scrollToBottom()

    def verify_case(self) -> None:
        if self.state is None:
            return
        case = self.state.case

        def done(result: tuple[CaseState, str]) -> None:
            state, not_logged = result
            self.show_case(state, show_latest=False)
            v = state.verification
            head = state.log[-1] if state.log else {}
            recorded = (f"This verification was recorded in the audit log (entry {head.get('seq')}). Audit log head "
                        f"to note outside the case: {head.get('seq')}:{head.get('hash')}" if not not_logged else
                        f"This verification was not recorded in the audit log: {not_logged}")
            if v.ok:
                QMessageBox.information(self, "Case verified", f"All {v.evidence_checked} evidence files match "
                                        f"their SHA-256, {len(v.result_status)} result files match the audit log, "
                                        f"and the audit chain of {v.log_entries} entries is intact.\n\n{recorded}")
            else:
                show_error(self, "Case verification failed", "verification",
                           "\n".join(v.problems) + "\n\n" + recorded)

        self._start("Verifying case", lambda p: self.wb.verify_case(case, p), done, "Could not verify the case")

    def add_evidence_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add evidence (copied into the case; the originals are only read)", "",
            "Images, video and audio (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.mp4 *.avi *.mov *.mkv *.m4v *.wav "
            "*.flac *.ogg *.opus *.mp3);;All files (*)")
        if files:
            self.add_evidence(files)

    def add_evidence(self, files: list[str]) -> None:
        if self.state is None:
            show_error(self, "No case open", "error", "Open or create a case before adding evidence.")
            return
        case = self.state.case
        self._start("Adding evidence", lambda p: self.wb.add_evidence(case, files, p),
                    lambda s: self.show_case(s, show_latest=False), "Could not add the evidence")

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt)
        if self.state is not None and event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            self.add_evidence(files)
            event.acceptProposedAction()

    # ---------------------------------------------------------------------------------------- frames
    def _preview_task(self, kind: str, fn, on_done, title: str) -> None:
        """Run light work (frames, audio panels) beside the main task; while one runs, the newest request of
        each kind waits and the older ones are dropped."""
        if not self.preview.run(kind, fn, on_done, self._failed(title)):
            self._queued[kind] = (fn, on_done, title)

    def _next_preview(self, _label: str) -> None:
        if self._queued:
            kind = next(iter(self._queued))
            fn, on_done, title = self._queued.pop(kind)
            self.preview.run(kind, fn, on_done, self._failed(title))

    def load_frame(self, evidence: str, index, detect: bool = True) -> None:
        if self.state is None or not evidence:
            return
        case = self.state.case
        rank = index is None and any(e.name == evidence and e.kind == "video" for e in case.evidence)
        self._preview_task("frame", lambda p: self.wb.load_frame(case, evidence, index, detect=detect, rank=rank,
                                                                  progress=p),
                           self.case_view.show_frame, "Could not load the frame")

    def detect_face(self) -> None:
        cv = self.case_view
        name = cv.frame_combo.currentText()
        if name:
            idx = cv.timeline.slider.value() if cv.timeline.slider.isEnabled() else None
            self.load_frame(name, idx if idx is not None else 0, detect=True)

    # ---------------------------------------------------------------------------------------- analysis
    def run_analysis(self) -> None:
        if self.state is None:
            return
        cv = self.case_view
        frame = cv.frame_combo.currentText()
        if not frame:
            show_error(self, "Nothing to analyse", "error", "Add an image or video to the case first.")
            return
        audio = cv.audio_combo.currentText()
        audio = None if audio in ("", NO_AUDIO) else audio
        use_audio = cv.use_audio.isChecked() and audio is not None
        box, time_s, case = cv.frame_view.manual_box(), cv.time_s(), self.state.case

        def done(result) -> None:
            state, aid = result
            self.show_case(state)
            self.show_tab(3 if state.latest and state.latest.data.get("search") else 1)
            self.statusBar().showMessage(f"{aid} saved in the case and logged", 8000)

        self._start("Analysing", lambda p: self.wb.analyze(case, frame, audio, use_audio, box, time_s, p), done,
                    "The analysis could not finish")

    def show_analysis_id(self, analysis_id: str) -> None:
        if self.state is None or not analysis_id:
            return
        if self.case_view.view is not None and self.case_view.view.analysis_id == analysis_id:
            return
        case, verification = self.state.case, self.state.verification
        self._preview_task("analysis", lambda p: self.wb.load_analysis(case, analysis_id, verification),
                           self._show_view, "Could not load the analysis")

    def _show_view(self, view) -> None:
        self.case_view.show_analysis(view)
        ev = view.data.get("frame_evidence")
        if self.state is not None and any(e.name == ev and e.kind == "video" for e in self.state.case.evidence):
            self._show_clip_at(view, ev)
        audio = view.data.get("audio") if isinstance(view.data.get("audio"), dict) else None
        if view.audio is None:
            self.case_view.draw_audio(None, None, 1.0, None, view.audio_problem or "No audio in this analysis.")
            return
        t, win = audio.get("timestamp_s"), audio.get("window_s") or 1.0
        note = (f"{audio.get('evidence')}: window {win:g} s at {t:.2f} s · pitch {audio.get('pitch_hz')} Hz · "
                f"voiced {100 * (audio.get('voiced_fraction') or 0):.0f} %"
                + (" · warnings: " + "; ".join(view.audio.warnings) if view.audio.warnings else ""))
        self.case_view.draw_audio(view.audio, t, win, None, note)
        case = self.state.case if self.state else None
        if case is not None:
            self._preview_task("lbrp", lambda p: self.wb.audio_panel(case, audio["evidence"], float(t), False),
                               lambda res: self.case_view.view is view and self.case_view.draw_audio(
                                   view.audio, t, win, res[2], note), "Could not compute the LBRP features")

    def _show_clip_at(self, view, evidence: str) -> None:
        """An analysis of a clip: its timeline, positioned at the analysed frame, with the analysis' box."""
        case, face = self.state.case, view.data.get("face") or {}
        t = view.data.get("timestamp_s")

        def show(data) -> None:
            if self.case_view.view is view:
                self.case_view.show_frame(data)
                self.case_view.frame_view.set_detection(face.get("box"), face.get("landmarks"), face.get("method", ""))

        self._preview_task("frame", lambda p: self.wb.load_frame(case, evidence, None, detect=False, rank=True,
                                                                  progress=p, time_s=t), show,
                           "Could not load the frame")

    def preview_audio(self, name: str) -> None:
        """Before any analysis: the chosen audio evidence with a window at the frame's time (or mid-clip)."""
        if self.state is None or self.case_view.view is not None or not name or name == NO_AUDIO:
            return
        case, t_frame = self.state.case, self.case_view.time_s()

        def show(result) -> None:
            view, t, vec = result
            if self.case_view.view is None:
                length = view.file_duration_s or view.duration_s
                self.case_view.draw_audio(view, t, 1.0, vec, f"{name}: {length:.1f} s; window 1 s at "
                                          f"{t:.2f} s (no analysis yet)" + (" · warnings: " + "; ".join(
                                              view.warnings) if view.warnings else ""))

        self._preview_task("audio", lambda p: self.wb.audio_panel(case, name, t_frame), show,
                           "Could not read the audio")

    def open_candidate(self, row: int) -> None:
        view = self.case_view.view
        if view is None:
            return
        cands = (view.data.get("search") or {}).get("candidates") or []
        if 0 <= row < len(cands):
            thumb = view.thumbnails[row] if row < len(view.thumbnails) else None
            recon = self.case_view.recon_panel.array
            self._compare = CompareDialog(self, view.images.get("input_face"), recon, cands[row], thumb)
            self._compare.open()

    def show_tab(self, index: int) -> None:
        if self.state is not None:
            self.case_view.tabs.setCurrentIndex(index)

    # ---------------------------------------------------------------------------------------- gallery, export
    def enrol_dialog(self) -> None:
        if not self.wb.gallery_path:
            show_error(self, "No gallery database", "error", "Choose or create a gallery database in Settings first.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Folder with one sub-folder per person")
        if folder:
            self.enrol(folder)

    def enrol(self, folder: str) -> None:
        def done(report) -> None:
            r = report.as_dict()
            QMessageBox.information(self, "Enrolment finished",
                                    f"{r['enrolled']} faces enrolled for {r['people']} people ({r['already_enrolled']}"
                                    f" already there); no usable face in {len(r['no_face'])} images, "
                                    f"{len(r['unreadable'])} unreadable.")
            self._update_status()

        self._start("Enrolling", lambda p: self.wb.enrol(folder, p), done, "Enrolment stopped")

    def gallery_info(self) -> None:
        self._start("Reading gallery", lambda p: self.wb.gallery_info(),
                    lambda info: QMessageBox.information(self, "Gallery", "No gallery chosen." if info is None else
                                                         "\n".join(f"{k}: {v}" for k, v in info.items())),
                    "Could not read the gallery", cancellable=False)

    def export_report(self) -> None:
        if self.state is None:
            return
        case = self.state.case
        default = str(Path(case.root).parent / f"{case.meta['id'].replace('/', '_')}-report.pdf")
        out, _ = QFileDialog.getSaveFileName(self, "Export the case report", default, "PDF (*.pdf)")
        if out:
            self.export_to(out if out.lower().endswith(".pdf") else out + ".pdf")

    def export_to(self, out: str) -> None:
        case = self.state.case

        def done(result) -> None:
            info, state = result
            self.show_case(state, show_latest=False)
            box = QMessageBox(self)
            box.setWindowTitle("Report written")
            box.setText(f"{info.path}\n{info.pages} pages · SHA-256 {info.sha256[:16]}… (logged in the case)"
                        + ("" if info.verified else "\n\nThe case failed verification; the report lists the problems."))
            open_button = box.addButton("Open", QMessageBox.ButtonRole.AcceptRole)
            box.addButton(QMessageBox.StandardButton.Close)
            box.buttonClicked.connect(lambda b: b is open_button and QDesktopServices.openUrl(
                QUrl.fromLocalFile(info.path)))
            box.setObjectName("reportWritten")
            box.open()

        self._start("Writing report", lambda p: self.wb.export_report(case, out, p), done,
                    "The report could not be written")

    # ---------------------------------------------------------------------------------------- settings, misc
    def settings_dialog(self) -> None:
        import sys

        torch = sys.modules.get("torch")  # known once the engine has loaded; never imported here for this
        cuda = torch.cuda.is_available() if torch is not None else None
        dlg = SettingsDialog(self, self.settings, cuda_available=cuda)
        if dlg.exec() == SettingsDialog.DialogCode.Accepted:
            dlg.apply(self.settings)
            self.apply_settings()

    def apply_settings(self) -> None:
        """Hand the saved settings to the services (the engine reloads on a device change)."""
        self.wb.configure(device=self.settings.device, gallery_path=self.settings.gallery_path,
                          top_k=self.settings.top_k, fpir=self.settings.fpir)
        self._update_status()

    def about(self) -> None:
        QMessageBox.about(self, "About forensic_face",
                          f"forensic_face {__version__}<br>Face reconstruction and recognition from degraded CCTV "
                          f"frames and their audio.<br>Candidates are investigative leads, not identifications.")

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.runner.busy:
            answer = QMessageBox.question(self, "A task is running",
                                          f"'{self.runner.label}' is still running. Cancel it and quit?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.runner.cancel()
        self.runner.wait(30000)
        self.preview.wait(30000)
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()
        self.wb.close()
        super().closeEvent(event)

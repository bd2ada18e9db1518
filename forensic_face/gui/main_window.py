"""The main window: start screen, case view, evidence and audit-log docks, menus, progress."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from forensic_face import __version__
from forensic_face.gui.analysis_actions import AnalysisActions
from forensic_face.gui.case_actions import CaseActions
from forensic_face.gui.case_panels import AuditLogTable, CaseSummary, EvidenceList
from forensic_face.gui.case_view import EXPORTS, CaseView
from forensic_face.gui.dialogs import SettingsDialog, show_error
from forensic_face.gui.gallery_actions import GalleryActions
from forensic_face.gui.report_actions import ReportActions
from forensic_face.gui.settings import AppSettings
from forensic_face.gui.tasks import TaskRunner
from forensic_face.gui.tracks_panel import TracksPanel
from forensic_face.services.cases import CaseState
from forensic_face.services.workbench import Workbench
from forensic_face.store.gallery import public_location


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
    """The window: menus and their actions, the start page or the open case, its docks, the status bar, and
    the tasks it runs. What each action does lives in the controllers: ``case_actions``,
    ``analysis_actions``, ``gallery_actions`` and ``report_actions``."""

    def __init__(self, settings: AppSettings | None = None, workbench: Workbench | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.wb = workbench or Workbench(device=self.settings.device, gallery_path=self.settings.gallery_path,
                                         top_k=self.settings.top_k, fpir=self.settings.fpir,
                                         precision=self.settings.precision)
        self.state: CaseState | None = None
        self.runner = TaskRunner(self)  # analysis, enrolment, export, opening cases
        self.preview = TaskRunner(self)  # frames and audio panels
        self.case_actions = CaseActions(self)
        self.analysis_actions = AnalysisActions(self)
        self.gallery_actions = GalleryActions(self)
        self.report_actions = ReportActions(self)
        self.setWindowTitle("forensic_face")
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_menus()
        self.case_view = CaseView()
        self.case_view.frame_panel.export_button.setMenu(self.export_menu)
        self.case_view.compare_export.setMenu(self.export_menu)
        self.start = StartPage(self)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.start)
        self.stack.addWidget(self.case_view)
        self.setCentralWidget(self.stack)
        self._build_docks()
        self._build_status()
        self._connect()
        self.start.set_recent(self.settings.recent_cases())
        self.set_case_actions(False)
        screen = self.screen().availableGeometry()  # fits small and high-DPI screens alike
        self.resize(min(1400, int(screen.width() * 0.92)), min(900, int(screen.height() * 0.9)))
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    # ---------------------------------------------------------------------------------------- building
    def _action(self, text: str, slot=None, shortcut=None, tip: str = "") -> QAction:
        """An action of the window; ``slot`` is called without the ``checked`` argument Qt passes."""
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
        if slot is not None:
            act.triggered.connect(lambda _checked=False: slot())
        return act

    def _build_actions(self) -> None:
        sk = QKeySequence.StandardKey
        cases, analysis, gallery = self.case_actions, self.analysis_actions, self.gallery_actions
        self.act_new = self._action("&New case…", cases.new_case, sk.New, "Create a new case folder")
        self.act_open = self._action("&Open case…", cases.open_case_dialog, sk.Open, "Open a case folder")
        self.act_demo = self._action("Open the &demo case", cases.open_demo, "Ctrl+Shift+D",
                                     "Build and open the bundled demo case")
        self.act_add = self._action("&Add evidence…", cases.add_evidence_dialog, "Ctrl+I",
                                    "Copy evidence files into the case (hashed, read-only, logged)")
        self.act_export = self._action("&Export PDF report…", self.report_actions.export_report, "Ctrl+E")
        self.act_verify = self._action("&Verify case", cases.verify_case, "Ctrl+Shift+V",
                                       "Re-hash the evidence and check the audit chain")
        self.act_close = self._action("&Close case", cases.close_case, sk.Close)
        self.act_quit = self._action("&Quit", self.close, sk.Quit)
        self.act_run = self._action("&Run analysis", analysis.run_analysis, "Ctrl+R")
        self.act_run.setShortcuts([QKeySequence("Ctrl+R"), QKeySequence("F5")])
        self.act_follow = self._action("&Follow the face through the clip", analysis.follow_clip, "Ctrl+Shift+R",
                                       "Track the person through the clip (or from the box drawn on this frame), "
                                       "pool the best frames of the track and search with them")
        self.act_find_people = self._action("Find the &people in the clip…", analysis.find_people, "Ctrl+Shift+T",
                                            "Follow every face through the clip without analysing it: each track's "
                                            "box is drawn on the frames and listed, to choose whom to follow")
        self.act_detect = self._action("&Detect face", analysis.detect_face, "Ctrl+D")
        self.act_draw = self._action("Draw face &box", None, "Ctrl+B", "Drag on the frame to draw the face box")
        self.act_draw.setCheckable(True)
        self.act_turned = self._action("Analyse the frame &turned as the view shows it", None, None,
                                       "A camera hung sideways: turn the view (Ctrl+Shift+Left/Right), then analyse")
        self.act_turned.setCheckable(True)
        self.act_withdraw = self._action("&Withdraw this analysis…", analysis.withdraw_analysis, None,
                                         "Mark the analysis shown withdrawn, with the reason (kept, logged)")
        self.act_note = self._action("Add a &note to this analysis…", analysis.add_note, "Ctrl+Shift+N",
                                     "Write a note on the analysis shown (logged, printed in the report)")
        self.act_enrol = self._action("&Enrol a folder…", gallery.enrol_dialog, "Ctrl+G",
                                      "Enrol an LFW-style folder (one sub-folder per person)")
        self.act_gallery_info = self._action("Gallery &information", gallery.gallery_info)
        self.act_settings = self._action("&Settings…", self.settings_dialog, sk.Preferences)
        if self.act_settings.shortcut().isEmpty():
            self.act_settings.setShortcut(QKeySequence("Ctrl+,"))
        self.act_cancel = self._action("&Cancel running task", self.cancel_task, "Esc")
        self.act_cancel.setEnabled(False)
        self.act_about = self._action("&About", self.about)
        self.export_menu = QMenu("Export as &PNG", self)
        for kind, text in EXPORTS.items():
            self.export_menu.addAction(self._action(text, lambda kind=kind: self.report_actions.export_png(kind)))

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        for a in (self.act_new, self.act_open, self.act_demo):
            m.addAction(a)
        self.recent_menu = m.addMenu("Recent cases")
        m.addSeparator()
        for a in (self.act_add, self.act_verify, self.act_export):
            m.addAction(a)
        m.addMenu(self.export_menu)
        m.addAction(self.act_close)
        m.addSeparator()
        m.addAction(self.act_settings)
        m.addAction(self.act_quit)
        m = mb.addMenu("&Analysis")
        for a in (self.act_run, self.act_follow, self.act_find_people, self.act_detect, self.act_draw, self.act_turned,
                  self.act_cancel):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_note)
        m.addAction(self.act_withdraw)
        m = mb.addMenu("&Gallery")
        m.addAction(self.act_enrol)
        m.addAction(self.act_gallery_info)
        self.view_menu = mb.addMenu("&View")
        m = mb.addMenu("&Help")
        m.addAction(self.act_about)
        self.fill_recent_menu()

    def fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for p in self.settings.recent_cases():
            self.recent_menu.addAction(p, lambda p=p: self.case_actions.open_case(p))
        self.recent_menu.setEnabled(bool(self.settings.recent_cases()))

    def _build_docks(self) -> None:
        self.evidence = EvidenceList()
        add = QPushButton("Add evidence…")
        add.clicked.connect(self.act_add.trigger)
        hint = QLabel("<i>or drop files on the window</i>")
        self.case_summary = CaseSummary()
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
        self.log_table = AuditLogTable()
        self.log_dock = QDockWidget("Audit log", self)
        self.log_dock.setObjectName("auditDock")
        self.log_dock.setWidget(self.log_table)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)
        self.tracks_panel = TracksPanel()
        self.tracks_panel.find_button.setDefaultAction(self.act_find_people)
        self.tracks_dock = QDockWidget("People in the clip", self)
        self.tracks_dock.setObjectName("tracksDock")
        self.tracks_dock.setWidget(self.tracks_panel)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.tracks_dock)
        self.tabifyDockWidget(self.evidence_dock, self.tracks_dock)  # a tab by the evidence: the frame keeps its room
        self.view_menu.addAction(self.evidence_dock.toggleViewAction())
        self.view_menu.addAction(self.log_dock.toggleViewAction())
        self.view_menu.addAction(self.tracks_dock.toggleViewAction())
        self.view_menu.addSeparator()
        for i, name in enumerate(self.case_view.tab_names()):
            self.view_menu.addAction(self._action(name, lambda i=i: self.show_tab(i), f"Ctrl+{i + 1}"))
        for group in self.case_view.frame_panel.action_groups():  # zoom, rotation, the clip
            self.view_menu.addSeparator()
            for action in group:
                self.view_menu.addAction(action)

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
        self.update_status()

    def _connect(self) -> None:
        self.start.open_recent.connect(self.case_actions.open_case)
        self.runner.started.connect(self._task_started)
        self.runner.progress.connect(self._task_progress)
        self.runner.finished.connect(self._task_finished)
        cv, analysis = self.case_view, self.analysis_actions
        cv.run_requested.connect(analysis.run_analysis)
        cv.frame_requested.connect(analysis.load_frame)
        cv.detect_requested.connect(analysis.detect_face)
        cv.candidate_opened.connect(analysis.open_candidate)
        cv.analysis_chosen.connect(analysis.show_analysis_id)
        cv.audio_chosen.connect(analysis.preview_audio)
        cv.audio_panel.listen_requested.connect(analysis.listen)
        cv.tracks_changed.connect(self.tracks_panel.show_tracks)
        self.tracks_panel.track_chosen.connect(cv.choose_track)
        self.tracks_panel.follow_requested.connect(analysis.follow_track)
        cv.box_drawn.connect(lambda box: self.statusBar().showMessage(
            f"Face box drawn: {box}; Run analysis will use it", 8000))
        self.act_draw.toggled.connect(cv.set_drawing)
        cv.drawing_toggled.connect(self.act_draw.setChecked)

    # ---------------------------------------------------------------------------------------- status, tasks
    def update_status(self) -> None:
        """The status bar's line: the case, the gallery and the search settings in use."""
        gallery = public_location(self.wb.gallery_path) if self.wb.gallery_path else "none (Settings ▸ Gallery)"
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
        self.set_case_actions(self.state is not None and not busy)

    def set_case_actions(self, on: bool) -> None:
        """Enable the actions on the open case; with no case open, hide its docks."""
        for a in (self.act_add, self.act_export, self.act_verify, self.act_close, self.act_run, self.act_follow,
                  self.act_find_people, self.act_detect, self.act_withdraw, self.act_note):
            a.setEnabled(on)
        self.export_menu.setEnabled(on)
        self.case_view.allow_run(on)
        if self.state is None:
            self.evidence_dock.hide()
            self.log_dock.hide()
            self.tracks_dock.hide()

    def cancel_task(self) -> None:
        if self.runner.busy:
            self.runner.cancel()
            self.cancel_button.setEnabled(False)
            self.task_label.setText(f"{self.runner.label}: cancelling…")

    def failure_handler(self, title: str):
        """What a task calls when it fails: a note in the status bar when cancelled, else an error dialog."""
        def handler(kind: str, message: str) -> None:
            if kind == "cancelled":
                self.statusBar().showMessage(f"{title}: cancelled; nothing was changed by the unfinished step", 8000)
                return
            in_doubt = self.state is not None and not self.state.verification.ok
            show_error(self, title, kind, message, case_in_doubt=in_doubt)
        return handler

    def run_task(self, label: str, fn, on_done, title: str, cancellable: bool = True, on_error=None) -> bool:
        """Run ``fn(progress)`` off the GUI thread unless a task is running (then say so and return False);
        a failure goes to ``on_error(kind, message)``, by default the window's ``failure_handler(title)``."""
        if not self.runner.run(label, fn, on_done, on_error or self.failure_handler(title), cancellable):
            self.statusBar().showMessage(f"Busy with '{self.runner.label}'; wait for it or cancel it (Esc)", 6000)
            return False
        return True

    # ---------------------------------------------------------------------------------------- view, settings, misc
    def show_tab(self, index: int) -> None:
        if self.state is not None:
            self.case_view.show_tab(index)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt)
        if self.state is not None and event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            self.case_actions.add_evidence(files)
            event.acceptProposedAction()

    def settings_dialog(self) -> None:
        import sys

        torch = sys.modules.get("torch")  # known once the engine has loaded; never imported here for this
        cuda = torch.cuda.is_available() if torch is not None else None
        dlg = SettingsDialog(self, self.settings, cuda_available=cuda)
        if dlg.exec() == SettingsDialog.DialogCode.Accepted:
            if not dlg.apply(self.settings):
                self.statusBar().showMessage("The password in the gallery's URL was not kept: give it in ~/.pgpass "
                                             "or PGPASSWORD (it is never stored in settings, cases or reports)", 12000)
            self.apply_settings()

    def apply_settings(self) -> None:
        """Hand the saved settings to the services (the engine reloads on a change of device or arithmetic)."""
        self.wb.configure(device=self.settings.device, gallery_path=self.settings.gallery_path,
                          top_k=self.settings.top_k, fpir=self.settings.fpir, precision=self.settings.precision)
        self.update_status()

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

"""What the window does with cases: create, open, the demo, close, verify, add evidence, and show one."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox

from forensic_face.gui.actions import WindowActions
from forensic_face.gui.dialogs import NewCaseDialog, show_error
from forensic_face.services.cases import CaseState


class CaseActions(WindowActions):
    """The File menu's case actions; every change to a case runs as a task of the window."""

    def new_case(self) -> None:
        w = self.w
        dlg = NewCaseDialog(w, w.settings.analyst)
        if dlg.exec() != NewCaseDialog.DialogCode.Accepted:
            return
        folder, case_id, analyst, title = dlg.values()
        if analyst and not w.settings.analyst:
            w.settings.analyst = analyst
        w.run_task("Creating case", lambda p: w.wb.new_case(folder, case_id, analyst, title), self.show_case,
                   "Could not create the case")

    def open_case_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.w, "Open case folder")
        if folder:
            self.open_case(folder)

    def open_case(self, folder: str) -> None:
        w = self.w

        def failed(kind: str, message: str) -> None:
            if kind != "cancelled" and not (Path(folder) / "case.json").is_file():
                w.settings.remove_recent(folder)
                w.start.set_recent(w.settings.recent_cases())
                w.fill_recent_menu()
            w.failure_handler("Could not open the case")(kind, message)

        w.run_task("Opening case (verifying evidence)", lambda p: w.wb.open_case(folder, p), self.show_case,
                   "Could not open the case", on_error=failed)

    def choose_demo_folder(self) -> str:
        """Ask where to build the demo (the last place, or a new folder in the temporary folder); "" when the
        analyst cancels or picks a folder holding other things (the demo replaces its case and gallery)."""
        w = self.w
        start = Path(w.settings.demo_folder)
        start.mkdir(parents=True, exist_ok=True)
        folder = QFileDialog.getExistingDirectory(
            w, "Folder for the demo case (its evidence, gallery, case and report are written there)", str(start))
        if not folder:
            return ""
        path = Path(folder)
        if any(path.iterdir()) and not (path / "demo_summary.json").is_file():
            show_error(w, "Choose another folder", "error", f"{folder} holds other files. The demo replaces the case "
                       "and gallery in its folder: choose an empty folder, or one the demo was built in before.")
            return ""
        w.settings.demo_folder = folder
        return folder

    def open_demo(self, folder: str = "") -> None:
        """Build the demo in ``folder`` (asked for when not given) and open it."""
        w = self.w
        folder = folder or self.choose_demo_folder()
        if not folder:
            return

        def done(state: CaseState) -> None:
            # the demo gallery serves the demo case only: opening or creating another case goes back to the
            # gallery of the settings, which the demo never changes
            self.show_case(state)
            w.statusBar().showMessage(f"Demo case built in {folder}; gallery {w.wb.gallery_path}", 10000)

        w.run_task("Building the demo case", lambda p: w.wb.demo_case(folder, p), done,
                   "Could not build the demo case", cancellable=False)

    def close_case(self) -> None:
        w = self.w
        w.state = None
        w.case_view.clear_analysis()
        w.stack.setCurrentWidget(w.start)
        w.start.set_recent(w.settings.recent_cases())
        w.log_table.setRowCount(0)
        w.evidence.clear()
        w.set_case_actions(False)
        w.setWindowTitle("forensic_face")
        w.update_status()

    def show_case(self, state: CaseState, show_latest: bool = True) -> None:
        """Show a case just opened or changed; ``show_latest`` shows its newest analysis."""
        w = self.w
        first = w.state is None or w.state.case.root != state.case.root
        w.state = state
        case = state.case
        w.settings.add_recent(str(case.root))
        w.fill_recent_menu()
        w.gallery_actions.use_gallery_for(case)
        w.setWindowTitle(f"forensic_face — case {case.meta['id'][:80]}")
        w.case_summary.show_case(case, state.verification)
        w.evidence.show_evidence(case.evidence, state.verification)
        w.log_table.show_entries(state.log)
        cv = w.case_view
        cv.set_evidence(case.evidence, keep=not first)
        latest = state.latest if show_latest else None  # else the tabs keep what they show
        cv.set_analyses(state.analyses, latest.analysis_id if latest else (None if first else cv.shown_analysis()))
        w.stack.setCurrentWidget(cv)
        if first:
            w.evidence_dock.show()
            w.log_dock.show()
        w.set_case_actions(not w.runner.busy)
        w.update_status()
        if first:
            cv.clear_analysis()
        if latest is not None:
            w.analysis_actions.show_view(latest)
            return
        frame = cv.selected_frame()
        if frame and (first or not cv.frame_view.has_frame()):  # evidence added to an open case shows at once
            w.analysis_actions.load_frame(frame, None)
        if first:
            w.analysis_actions.preview_audio(cv.selected_audio() or "")

    def verify_case(self) -> None:
        w = self.w
        if w.state is None:
            return
        case = w.state.case

        def done(result: tuple[CaseState, str]) -> None:
            state, not_logged = result
            self.show_case(state, show_latest=False)
            v = state.verification
            head = state.log[-1] if state.log else {}
            recorded = (f"This verification was recorded in the audit log (entry {head.get('seq')}). Audit log head "
                        f"to note outside the case: {head.get('seq')}:{head.get('hash')}" if not not_logged else
                        f"This verification was not recorded in the audit log: {not_logged}")
            if v.ok:
                QMessageBox.information(w, "Case verified", f"All {v.evidence_checked} evidence files match "
                                        f"their SHA-256, {len(v.result_status)} result files match the audit log, "
                                        f"and the audit chain of {v.log_entries} entries is intact.\n\n{recorded}")
            else:
                show_error(w, "Case verification failed", "verification",
                           "\n".join(v.problems) + "\n\n" + recorded)

        w.run_task("Verifying case", lambda p: w.wb.verify_case(case, p), done, "Could not verify the case")

    def add_evidence_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self.w, "Add evidence (copied into the case; the originals are only read)", "",
            "Images, video and audio (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.mp4 *.avi *.mov *.mkv *.m4v *.wav "
            "*.flac *.ogg *.opus *.mp3);;All files (*)")
        if files:
            self.add_evidence(files)

    def add_evidence(self, files: list[str]) -> None:
        w = self.w
        if w.state is None:
            show_error(w, "No case open", "error", "Open or create a case before adding evidence.")
            return
        case = w.state.case
        w.run_task("Adding evidence", lambda p: w.wb.add_evidence(case, files, p),
                   lambda s: self.show_case(s, show_latest=False), "Could not add the evidence")

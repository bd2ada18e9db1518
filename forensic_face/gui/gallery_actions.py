"""What the window does with the gallery: enrol a folder, describe the gallery, choose one for each case."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog, QMessageBox

from forensic_face.gui.actions import WindowActions
from forensic_face.gui.dialogs import show_error
from forensic_face.store.gallery import describe_info

if TYPE_CHECKING:
    from forensic_face.store.case import Case


class GalleryActions(WindowActions):
    """The Gallery menu, and which gallery the open case searches."""

    def enrol_dialog(self) -> None:
        w = self.w
        if not w.wb.gallery_path:
            show_error(w, "No gallery database", "error", "Choose or create a gallery database in Settings first.")
            return
        folder = QFileDialog.getExistingDirectory(w, "Folder with one sub-folder per person")
        if folder:
            self.enrol(folder)

    def enrol(self, folder: str) -> None:
        w = self.w

        def done(report) -> None:
            r = report.as_dict()
            QMessageBox.information(w, "Enrolment finished",
                                    f"{r['enrolled']} faces enrolled for {r['people']} people ({r['already_enrolled']}"
                                    f" already there); no usable face in {len(r['no_face'])} images, "
                                    f"{len(r['unreadable'])} unreadable.")
            w.update_status()

        w.run_task("Enrolling", lambda p: w.wb.enrol(folder, p), done, "Enrolment stopped")

    def gallery_info(self) -> None:
        w = self.w
        w.run_task("Reading gallery", lambda p: w.wb.gallery_info(),
                   lambda info: QMessageBox.information(w, "Gallery", "No gallery chosen." if info is None else
                                                        "\n".join(describe_info(info))),
                   "Could not read the gallery", cancellable=False)

    def use_gallery_for(self, case: Case) -> None:
        """The demo's gallery for the demo case, the settings' gallery for every other case: opening the demo
        never becomes the default of a real case."""
        w = self.w
        demo = Path(w.settings.demo_folder)
        is_demo = Path(case.root).resolve() == (demo / "case").resolve()
        wanted = str(demo / "gallery.db") if is_demo else w.settings.gallery_path
        if w.wb.gallery_path != wanted:
            w.wb.configure(gallery_path=wanted)
            w.update_status()

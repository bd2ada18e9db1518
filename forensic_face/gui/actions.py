"""What the window's controllers (case_actions, analysis_actions, gallery_actions, report_actions) share."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forensic_face.gui.main_window import MainWindow


class WindowActions:
    """The actions of one concern, acting on the window's widgets and running its tasks."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window

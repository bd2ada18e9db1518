"""forensic_face: face reconstruction and recognition from degraded CCTV frames and their audio.

The package is layered (pyproject's import-linter contracts, rooted here so that every module is
covered): ``core`` and ``paths`` at the bottom, then ``vision`` and ``audio``, ``models`` (networks,
calibration, their stored format), ``engine`` (inference and the one probe path), ``store`` and
``training``, ``reports``, ``services`` (what a user does: cases, analysis, enrolment, search, the demo,
the bench; called by both the command line and the GUI), the GUI, the command line. Nothing but the GUI
imports Qt.
"""

from forensic_face.paths import configure_runtime

__version__ = "0.1.0"

configure_runtime()

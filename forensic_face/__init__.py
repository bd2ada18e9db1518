"""forensic_face: face reconstruction and recognition from degraded CCTV frames and their audio.

The package is layered (see pyproject's import-linter contracts): ``core`` (types, errors,
progress protocol) at the bottom, then ``vision`` and ``audio`` (the perception engine), then the
command line. Nothing below the GUI imports Qt.
"""

from forensic_face.paths import configure_runtime

__version__ = "0.1.0"

configure_runtime()

#!/usr/bin/env bash
# Build the one-folder application with PyInstaller: dist/forensic-face/forensic-face (see build.spec).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install --quiet "pyinstaller>=6.10,<7"
start=$(date +%s)
.venv/bin/pyinstaller build.spec --noconfirm --clean --log-level WARN
echo "build: $(( $(date +%s) - start )) s; size: $(du -sh dist/forensic-face | cut -f1) in dist/forensic-face/"

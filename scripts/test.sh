#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, the layer contracts and the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
.venv/bin/lint-imports --no-cache
.venv/bin/ruff check forensic_face tests scripts research
.venv/bin/python -m pytest "$@"

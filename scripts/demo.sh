#!/usr/bin/env bash
# Set up (if needed) and run the bundled demo; extra arguments go to `forensic-face demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/forensic-face demo "$@"

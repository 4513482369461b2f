#!/usr/bin/env bash
# The test command of the README (and of CI): set-up if needed, then all three test layers:
# plain pytest on core/, processing.run in real QGIS, and qgis_process.bin runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export QT_QPA_PLATFORM=offscreen
echo "== ruff"
.venv/bin/ruff check --quiet .
echo "ruff: clean"
echo "== pytest"
exec .venv/bin/python -m pytest "$@"

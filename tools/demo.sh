#!/usr/bin/env bash
# The README's first command: set-up if needed, then the main job on built-in demo data through
# qgis_process (see tools/demo.py). Leaves a styled map, a QGIS project and the report in
# demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python tools/demo.py "$@"

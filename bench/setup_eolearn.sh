#!/usr/bin/env bash
# eo-learn 1.5 + s2cloudless + LightGBM in their own venv, for bench/compare_eolearn.py only
# (never a dependency of the plugin). Usage: bash bench/setup_eolearn.sh [VENV_DIR]  (default /tmp/eolearn-venv)
# numpy < 2 as in tools/make_eolearn_fixtures.py; numba for LinearInterpolationTask.
set -euo pipefail
VENV="${1:-/tmp/eolearn-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    /usr/bin/python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "eo-learn==1.5.*" "numpy<2" scipy scikit-learn numba s2cloudless lightgbm
"$VENV/bin/python" -c "import eolearn.core, eolearn.mask.extra.cloud_mask, eolearn.features, lightgbm, s2cloudless, numba; import importlib.metadata as m; print('eo-learn venv ready:', m.version('eo-learn'))"

#!/usr/bin/env bash
# One-time set-up of a Debian 12 (or 13) machine for EO LULC development, idempotent:
# QGIS from Debian, a venv that sees QGIS's Python packages, the plugin's requirements and the
# test tools. Everything lives in .venv/ inside the repository; nothing outside is changed
# except the Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need_apt=0
for cmd in qgis_process.bin gdalinfo xvfb-run; do command -v "$cmd" >/dev/null 2>&1 || need_apt=1; done
/usr/bin/python3 -c "import qgis.core, rasterio, osgeo.gdal, scipy" >/dev/null 2>&1 || need_apt=1
if [ "$need_apt" = 1 ]; then
  echo "== installing QGIS and GDAL from Debian"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    qgis python3-qgis qgis-providers python3-rasterio python3-gdal gdal-bin python3-scipy \
    python3-venv python3-pip xvfb xauth >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv (with QGIS's system packages visible)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.eolulc-requirements
want="$(cat requirements.txt requirements-dev.txt | sha256sum)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== installing Python requirements into .venv"
  # numpy must stay 1.x: Debian's GDAL, rasterio, scipy and QGIS are built against it.
  .venv/bin/python -m pip install -q --disable-pip-version-check \
    -c tools/constraints.txt -r requirements.txt -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

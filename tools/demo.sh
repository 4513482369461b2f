#!/usr/bin/env bash
# The main job on demo data, through qgis_process.bin exactly as a user would run it:
# set-up if needed, then import the real eo-learn EOPatch from ../shared/data into time stacks.
# Results land in demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
repo="$(pwd)"
out="$repo/demo-output"
patch="${1:-$repo/../shared/data/TestEOPatch}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# a throw-away QGIS profile with the plugin enabled (QGIS finds it through QGIS_PLUGINPATH)
mkdir -p "$work/plugins" "$work/config/profiles/default/QGIS" "$work/runtime" "$work/home"
chmod 700 "$work/runtime"
ln -s "$repo" "$work/plugins/eolulc"
printf '[PythonPlugins]\neolulc=true\n' > "$work/config/profiles/default/QGIS/QGIS3.ini"
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export HOME="$work/home" QGIS_CUSTOM_CONFIG_PATH="$work/config" XDG_RUNTIME_DIR="$work/runtime" \
  QT_QPA_PLATFORM=offscreen QGIS_PLUGINPATH="$work/plugins" PYTHONPATH="$site" \
  PYTHONWARNINGS=ignore::DeprecationWarning
qgis_process.bin --json run eolulc:importeopatch -- \
  INPUT="$patch" DATA_FEATURES=NDVI MASK_FEATURE=CLM TIMELESS_FEATURE=LULC \
  OUTPUT="$out/ndvi.tif" OUTPUT_MASK="$out/clm.tif" OUTPUT_TIMELESS="$out/lulc_reference.tif" \
  > "$out/importeopatch.json"
echo "Demo outputs in $out:"
ls -l "$out"

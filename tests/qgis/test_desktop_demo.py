"""The README's main job as a user sees it: the demo (synthetic L1C year -> lulcpipeline through
qgis_process -> project), then the project opened in the real QGIS desktop under Xvfb, with a
screenshot whose canvas must show the legend's colours. The screenshot is kept as an artifact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = Path(os.environ.get("EOLULC_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run([sys.executable, str(REPO / "tools" / "demo.py"), "--out", str(out), "--size", "200",
                           "--dates", "24"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_demo_leaves_map_project_and_report(demo):
    results = json.loads((demo / "lulcpipeline.json").read_text())
    assert results["OVERALL_ACCURACY"] >= 0.85  # the demo data is designed to be learnable
    for name in ("classification.tif", "classification.qml", "reference.tif", "reference.qml", "report.html",
                 "eolulc_demo.qgz", "model.json"):
        assert (demo / name).is_file(), name
    assert "<svg" in (demo / "report.html").read_text()


def test_project_opens_styled_in_qgis_desktop(demo, tmp_path, plugins_dir):
    missing = [tool for tool in ("xvfb-run", "qgis") if not shutil.which(tool)]
    assert not missing, f"{' and '.join(missing)} not found: run tools/setup.sh (it installs xvfb and qgis)"
    from conftest import throwaway_profile_env

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "desktop_demo.png"
    shot.unlink(missing_ok=True)
    env = throwaway_profile_env(plugins_dir, tmp_path)  # the plugin enabled: its initGui runs for real
    env["EOLULC_SCREENSHOT"] = str(shot)
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba")  # an empty cache: initGui starts the kernels' warm-up
    env.pop("QT_QPA_PLATFORM", None)
    subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", "qgis", "--profiles-path", env["QGIS_CUSTOM_CONFIG_PATH"],
         "--nologo", "--noversioncheck", "--code", str(REPO / "tests" / "desktop" / "screenshot.py"),
         str(demo / "eolulc_demo.qgz")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    print(f"\ndesktop screenshot: {shot}")
    assert shot.is_file(), "QGIS did not save a screenshot"
    # the warm-up process goes on after QGIS quits, and leaves its marker when every kernel is cached
    deadline = time.monotonic() + 240
    while not list((tmp_path / "numba").glob("*.warm")) and time.monotonic() < deadline:
        time.sleep(1)
    assert list((tmp_path / "numba").glob("*.warm")), "initGui did not warm the kernels"
    seen = json.loads(shot.with_suffix(".json").read_text())
    assert seen["provider"], "the plugin's provider is not registered in the desktop"
    assert any("Install Python dependencies" in text for text in seen["eolulc_actions"]), seen
    canvas = _rgb(Path(str(shot).replace(".png", "_canvas.png")))
    legend = {c["id"]: c["colour"] for c in json.loads((demo / "model.json").read_text())["metadata"]["legend"]}
    from eolulc.core.timestack import open_stack

    with open_stack(str(demo / "classification.tif")) as stack:
        ids, counts = np.unique(stack.read(), return_counts=True)
    common = [int(i) for i, n in zip(ids, counts) if n > 0.05 * counts.sum() and int(i) in legend]
    assert common
    for class_id in common:
        colour = np.array([int(legend[class_id][k:k + 2], 16) for k in (1, 3, 5)])
        share = np.all(canvas == colour, axis=-1).mean()
        assert share > 0.01, f"class {class_id} colour {legend[class_id]} covers {share:.4f} of the canvas"


def _rgb(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as png:
        return png.read([1, 2, 3]).transpose(1, 2, 0).astype(int)


def test_gui_tour_toolbox_dialog_and_run(demo, tmp_path, plugins_dir):
    """What a user does in the desktop, with screenshots kept: the toolbox with EO LULC expanded,
    the pipeline's dialog filled in, Run in that dialog (QGIS's own task and result loading), the
    canvas afterwards. The top visible raster of the result group must be the land-cover map,
    drawn in the legend's colours."""
    missing = [tool for tool in ("xvfb-run", "qgis") if not shutil.which(tool)]
    assert not missing, f"{' and '.join(missing)} not found: run tools/setup.sh (it installs xvfb and qgis)"
    from conftest import throwaway_profile_env

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    names = ("toolbox.png", "pipeline_dialog.png", "canvas_after_run.png", "desktop_after_run.png", "tour.json")
    for name in names:
        (ARTIFACTS / name).unlink(missing_ok=True)
    env = throwaway_profile_env(plugins_dir, tmp_path)
    env.pop("QT_QPA_PLATFORM", None)
    env["EOLULC_TOUR"] = str(ARTIFACTS)
    outputs = {"OUTPUT": "classification.tif", "OUTPUT_REFERENCE": "reference.tif", "OUTPUT_AGREEMENT": "agreement.tif",
               "OUTPUT_CONFIDENCE": "confidence.tif", "OUTPUT_MODEL": "model.json", "OUTPUT_REPORT": "report.html"}
    env["EOLULC_TOUR_PARAMS"] = json.dumps({
        "INPUT": str(demo / "data" / "l1c.tif"), "REFERENCE": str(demo / "data" / "reference.gpkg"),
        "CLASS_FIELD": "LULC_ID", "NAME_FIELD": "LULC_NAME", **{k: str(tmp_path / v) for k, v in outputs.items()}})
    subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", "qgis", "--profiles-path", env["QGIS_CUSTOM_CONFIG_PATH"],
         "--nologo", "--noversioncheck", "--code", str(REPO / "tests" / "desktop" / "gui_tour.py")],
        env=env, capture_output=True, text=True, timeout=400,
    )
    print(f"\ndesktop screenshots: {ARTIFACTS}")
    seen = json.loads((ARTIFACTS / "tour.json").read_text())
    assert seen["end"] == "done", seen
    assert all((ARTIFACTS / name).stat().st_size > 3000 for name in names[:4])
    toolbox = [row.rstrip() for row in seen["toolbox"]]
    assert "EO LULC [+]" in toolbox and "  Pipeline [+]" in toolbox, toolbox
    assert any(row.startswith("    LULC pipeline (Sentinel-2 time stack") for row in toolbox), toolbox
    assert seen["ok"] and len(seen["groups"]) == 1, seen
    rasters = [layer for layer in seen["tree"] if layer["raster"] and layer["visible"]]
    assert rasters and Path(rasters[0]["source"]).name == "classification.tif", seen["tree"]
    # on top of its group, not only the top visible one; the legend shows class names only
    assert Path(seen["tree"][0]["source"]).name == "classification.tif", seen["tree"]
    legend_rows = seen["tree"][0]["legend"]
    assert legend_rows and not any(row.startswith("Band 1") for row in legend_rows), legend_rows
    canvas = _rgb(ARTIFACTS / "canvas_after_run.png")
    legend = {c["id"]: c["colour"] for c in json.loads((tmp_path / "model.json").read_text())["metadata"]["legend"]}
    for colour in legend.values():
        rgb = np.array([int(colour[k:k + 2], 16) for k in (1, 3, 5)])
        if np.all(canvas == rgb, axis=-1).mean() > 0.05:
            break
    else:
        raise AssertionError("no legend colour covers 5 % of the canvas after the run")


def test_print_layout_prints_both_maps_and_legends(demo, qgis_app):
    """The demo project's print layout exported to PNG: each map frame shows the common classes in
    their legend colours, and each legend (class names only) lies on the page. The PNG is kept."""
    from qgis.core import QgsLayoutExporter, QgsLayoutItemLegend, QgsLayoutItemMap, QgsProject, QgsUnitTypes

    from eolulc.plugin.project import LAYOUT_NAME

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / "print_layout.png"
    png.unlink(missing_ok=True)
    project = QgsProject()
    assert project.read(str(demo / "eolulc_demo.qgz"))
    try:
        layout = project.layoutManager().layoutByName(LAYOUT_NAME)
        assert layout is not None
        settings = QgsLayoutExporter.ImageExportSettings()
        settings.dpi = 100
        assert QgsLayoutExporter(layout).exportToImage(str(png), settings) == QgsLayoutExporter.ExportResult.Success
        mm = QgsUnitTypes.LayoutUnit.LayoutMillimeters
        convert = layout.renderContext().measurementConverter()
        page = convert.convert(layout.pageCollection().page(0).pageSize(), mm)
        maps = sorted((i for i in layout.items() if isinstance(i, QgsLayoutItemMap)),
                      key=lambda i: i.positionWithUnits().x())
        legends = [i for i in layout.items() if isinstance(i, QgsLayoutItemLegend)]
        assert len(maps) == 2 and len(legends) == 2
        frames = [(convert.convert(m.positionWithUnits(), mm), convert.convert(m.sizeWithUnits(), mm),
                   [layer.source() for layer in m.layers()]) for m in maps]
        boxes = []
        for legend in legends:
            legend.adjustBoxSize()
            place, size = convert.convert(legend.positionWithUnits(), mm), convert.convert(legend.sizeWithUnits(), mm)
            boxes.append((place.x(), place.y(), size.width(), size.height()))
            rows = [legend.model().data(legend.model().index(r, 0, legend.model().index(0, 0)), 0)
                    for r in range(legend.model().rowCount(legend.model().index(0, 0)))]
            assert rows and not any("Band 1" in str(row) for row in rows), rows
    finally:
        project.clear()
    for x, y, width, height in boxes:
        assert width > 20 and height > 10, "the legend is empty"
        assert x >= 0 and y >= 0 and x + width <= page.width() and y + height <= page.height(), (
            f"the legend {x:.0f},{y:.0f} {width:.0f} x {height:.0f} mm runs off the {page.width():.0f} x "
            f"{page.height():.0f} mm page")
    image = _rgb(png)
    px_per_mm = image.shape[1] / page.width()
    legend = {c["id"]: c["colour"] for c in json.loads((demo / "model.json").read_text())["metadata"]["legend"]}
    for (place, size, sources), name in zip(frames, ("classification.tif", "reference.tif")):
        assert [Path(s).name for s in sources] == [name]
        x0, y0 = int(place.x() * px_per_mm), int(place.y() * px_per_mm)
        frame = image[y0:y0 + int(size.height() * px_per_mm), x0:x0 + int(size.width() * px_per_mm)]
        from eolulc.core.timestack import open_stack

        with open_stack(str(demo / name)) as stack:
            ids, counts = np.unique(stack.read(), return_counts=True)
        common = [int(i) for i, n in zip(ids, counts) if n > 0.05 * counts.sum() and int(i) in legend]
        assert common
        for class_id in common:
            colour = np.array([int(legend[class_id][k:k + 2], 16) for k in (1, 3, 5)])
            share = np.all(frame == colour, axis=-1).mean()
            assert share > 0.01, f"{name}: class {class_id} ({legend[class_id]}) covers {share:.4f} of its frame"

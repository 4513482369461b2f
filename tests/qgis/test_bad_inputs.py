"""Bad input and faults across every algorithm, as a new user makes them: outputs on inputs, numbers
out of range, damaged and empty files, files of the wrong kind, settings that exhaust memory.

Every failing case asserts: a ``QgsProcessingException`` whose message is at most two lines,
without a traceback, names the parameter or file and says what to do; every input file unchanged
(sha256); nothing at any output path. Cases that must succeed check their result. A share of the
cases runs again through ``qgis_process.bin`` (non-zero exit, the same message, inputs intact).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback

from eolulc.core.eopatch import import_eopatch
from eolulc.core.interpolate import interpolate_stack
from eolulc.core.timestack import StackWriter, open_stack, read_info


# ------------------------------------------------------------------------------ the inputs
def _write_like(path: Path, source: Path, data: np.ndarray, window: tuple[int, int] | None = None) -> Path:
    """A stack with ``source``'s dates and bands (optionally its top-left ``window``) holding ``data``."""
    info = read_info(str(source))
    if window is not None:
        grid = info.grid
        info = info.evolve(grid=type(grid)(window[1], window[0], grid.crs_wkt, grid.transform))
    with StackWriter(str(path), info) as writer:
        writer.write(data.astype(info.dtype))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, eopatch_dir: Path, scene_stack: Path) -> Path:
    """Every input of the cases in one folder, so that one hash of the folder shows any change."""
    folder = tmp_path_factory.mktemp("bad-inputs") / "inputs"
    folder.mkdir()
    import_eopatch(eopatch_dir, ["NDVI"], folder / "ndvi.tif", "CLM", folder / "clm.tif", "LULC", folder / "lulc.tif")
    interpolate_stack(folder / "ndvi.tif", folder / "ndvi16.tif", start="2016-01-01", end="2016-12-31",
                      interval_days=16, mask_path=folder / "clm.tif", min_valid_fraction=0.8)
    shutil.copy(scene_stack, folder / "l1c.tif")
    shutil.copy(eopatch_dir / "vector_timeless" / "LULC.gpkg", folder / "lulc.gpkg")
    shutil.copytree(eopatch_dir, folder / "eopatch")

    with open_stack(str(folder / "ndvi16.tif")) as stack:
        features = stack.read()
    _write_like(folder / "constant.tif", folder / "ndvi16.tif", np.full_like(features, 0.5))
    half = features.copy()
    half[::2] = 0.25  # every other date constant, the rest informative
    _write_like(folder / "half_constant.tif", folder / "ndvi16.tif", half)
    with open_stack(str(folder / "clm.tif")) as stack:
        _write_like(folder / "clm_small.tif", folder / "clm.tif", stack.read()[:, :50, :50], (50, 50))
    with open_stack(str(folder / "l1c.tif")) as stack:
        _write_like(folder / "l1c_small.tif", folder / "l1c.tif", stack.read()[:, :50, :50], (50, 50))

    from eolulc.core.legend import read_legend
    from eolulc.core.reference import read_reference_raster
    from eolulc.core.train import TrainSettings, train_model

    grid = read_info(str(folder / "ndvi16.tif")).grid
    reference = read_reference_raster(str(folder / "lulc.tif"), grid)
    result = train_model([str(folder / "ndvi16.tif")], reference, read_legend(None), TrainSettings(samples=2000))
    result.model.save(folder / "model.json")
    shutil.copy(folder / "model.json", folder / "model.lulc")

    from eolulc.core.classify import classify
    from eolulc.core.model import load_model

    classify([str(folder / "ndvi16.tif")], load_model(folder / "model.json"), str(folder / "map.tif"))
    (folder / "not_model.json").write_text(json.dumps({"hello": "world"}))
    (folder / "pickle.json").write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")
    for name in ("ndvi", "map", "l1c"):
        data = (folder / f"{name}.tif").read_bytes()
        (folder / f"{name}_truncated.tif").write_bytes(data[: len(data) // 2])
    (folder / "empty.tif").write_bytes(b"")
    (folder / "text.tif").write_text("this is a text file, not a GeoTIFF\n")
    os.symlink(folder / "ndvi.tif", folder / "ndvi_link.tif")
    os.link(folder / "ndvi.tif", folder / "ndvi_hardlink.tif")
    (folder / "empty_folder").mkdir()
    with open_stack(str(folder / "l1c.tif")) as stack:  # one acquisition, as buildtimestack takes them
        info = stack.info.evolve(dates=stack.info.dates[:1])
        with StackWriter(str(folder / "scene_one_date.tif"), info) as writer:
            writer.write(stack.read(dates=[0]))
    return folder


def _hashes(folder: Path, sidecars: bool = True) -> dict[str, str]:
    """sha256 of every file; ``sidecars=False`` leaves out the ``.aux.xml`` statistics that
    qgis_process itself (not the plugin) writes beside every raster layer it loads."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and (sidecars or not p.name.endswith(".aux.xml"))}


# ------------------------------------------------------------------------------ the cases
@dataclass
class Case:
    """``params(inputs, out)`` -> parameters; ``expect``: a regex the message must match."""

    id: str
    algorithm: str
    params: Callable[[Path, Path], dict[str, Any]]
    expect: str = ""
    #: for a case that must succeed: a check of its results (inputs, outputs, log)
    check: Callable[[Path, dict[str, Any], str], None] | None = None
    qgis_process: bool = False
    marks: list = field(default_factory=list)


def _interpolate(i: Path, o: Path, **extra) -> dict[str, Any]:
    return {"INPUT": str(i / "ndvi.tif"), "MASK": str(i / "clm.tif"), "START": "2016-01-01", "END": "2016-12-31",
            "OUTPUT": str(o / "interpolated.tif"), **extra}


def _classify(i: Path, o: Path, **extra) -> dict[str, Any]:
    return {"FEATURES": [str(i / "ndvi16.tif")], "MODEL": str(i / "model.json"), "OUTPUT": str(o / "map.tif"),
            **extra}


def _train(i: Path, o: Path, **extra) -> dict[str, Any]:
    return {"FEATURES": [str(i / "ndvi16.tif")], "REFERENCE": str(i / "lulc.tif"), "SAMPLES": 2000,
            "OUTPUT_MODEL": str(o / "model.json"), "OUTPUT_REPORT": str(o / "report.html"), **extra}


def _cloudmask(i: Path, o: Path, **extra) -> dict[str, Any]:
    return {"INPUT": str(i / "l1c.tif"), "OUTPUT_MASK": str(o / "mask.tif"), **extra}


def _features(i: Path, o: Path, **extra) -> dict[str, Any]:
    return {"INPUT": str(i / "l1c.tif"), "OUTPUT": str(o / "features.tif"), **extra}


def _accuracy(i: Path, o: Path, **extra) -> dict[str, Any]:
    return {"INPUT": str(i / "map.tif"), "REFERENCE": str(i / "lulc.tif"), "OUTPUT_HTML": str(o / "accuracy.html"),
            **extra}


def _pipeline(i: Path, o: Path, **extra) -> dict[str, Any]:
    return {"INPUT": str(i / "l1c.tif"), "REFERENCE": str(i / "lulc.gpkg"), "CLASS_FIELD": "LULC_ID",
            "INTERVAL_DAYS": 30, "OUTPUT": str(o / "map.tif"), **extra}


def _experiment(i: Path, o: Path, **extra) -> dict[str, Any]:
    return {"INPUT": str(i / "l1c.tif"), "REFERENCE": str(i / "lulc.gpkg"), "CLASS_FIELD": "LULC_ID",
            "SEEDS": 1, "OUTPUT_HTML": str(o / "e.html"), "OUTPUT_CSV": str(o / "e.csv"),
            "OUTPUT": str(o / "best.tif"), **extra}


def _batch(i: Path, o: Path, **extra) -> dict[str, Any]:
    return {"INPUT_STACK": str(i / "l1c.tif"), "REFERENCE": str(i / "lulc.tif"), "OUTPUT_FOLDER": str(o / "work"),
            "OUTPUT_MOSAIC": str(o / "map.vrt"), "OUTPUT_REPORT": str(o / "batch.html"), **extra}


def _build(i: Path, o: Path, **extra) -> dict[str, Any]:
    return {"LAYERS": [str(i / "scene_one_date.tif")], "OUTPUT": str(o / "stack.tif"), **extra}


def _import(i: Path, o: Path, **extra) -> dict[str, Any]:
    return {"INPUT": str(i / "eopatch"), "DATA_FEATURES": "NDVI", "OUTPUT": str(o / "ndvi.tif"), **extra}


SAME = r"would replace .*an output may never replace an input"


def _replaces(output: str, source: str = "[A-Z_]+") -> str:
    return rf"\({output}\) would replace .*\({source}\).*an output may never replace an input"

TWICE = r"are the same file"
DAMAGED = r"damaged or incomplete"
EMPTY = r"empty file \(0 bytes\)"
NOT_RASTER = r"not a raster GDAL can read"
MISSING = r"does not exist"


def _range(name: str) -> str:
    return rf"\({name}\): .* is outside the allowed range"


def _classified(i: Path, results: dict[str, Any], log: str) -> None:
    with open_stack(results["OUTPUT"]) as stack:
        labels = stack.read()[0, ..., 0]
    reference = np.load(i / "eopatch" / "mask_timeless" / "LULC.npy")[..., 0]
    assert (labels == reference)[reference > 0].mean() > 0.8


def _constant_noted(i: Path, results: dict[str, Any], log: str) -> None:
    assert "features are constant or nodata over the training pixels" in log
    html = Path(results["OUTPUT_REPORT"]).read_text()
    assert "features are constant" in html


def _pipeline_minimal(i: Path, results: dict[str, Any], log: str) -> None:
    assert Path(results["OUTPUT"]).exists()
    for name in ("OUTPUT_CONFIDENCE", "OUTPUT_REFERENCE", "OUTPUT_AGREEMENT", "OUTPUT_MODEL", "OUTPUT_REPORT"):
        # written to temporary outputs (qgis_process removes its temporary folder when it ends)
        assert results[name] and (Path(results[name]).exists() or not Path(results[name]).parent.exists()), name
    assert 0.5 <= results["OVERALL_ACCURACY"] <= 1.0


def _killed_run_leftover(o: Path) -> Path:
    """A temporary output as a run killed in the middle leaves it: named after a writer that is gone."""
    import subprocess

    from eolulc.core.atomic import temporary_sibling

    dead = subprocess.Popen(["true"])
    dead.wait()
    name = temporary_sibling(o / "interpolated.tif").name.replace(f".part-{os.getpid()}-", f".part-{dead.pid}-")
    (o / name).write_bytes(b"\0" * 4096)
    return o / name


def _leftover_removed(i: Path, results: dict[str, Any], log: str) -> None:
    folder = Path(results["OUTPUT"]).parent
    assert Path(results["OUTPUT"]).exists()
    assert not [p.name for p in folder.iterdir() if ".part-" in p.name]


def _mosaic_complete(i: Path, results: dict[str, Any], log: str) -> None:
    import rasterio

    with rasterio.open(results["OUTPUT_MOSAIC"]) as mosaic:
        classes = mosaic.read(1)
        nodata = mosaic.nodata
    with open_stack(str(i / "l1c.tif")) as stack:
        valid = np.isfinite(stack.read()).any(axis=(0, 3))
    assert classes.shape == valid.shape and not np.any(valid & (classes == nodata))
    assert results["FAILED_TILES"] == "" and "r02c02" in log


CASES = [
    # -- interpolate: outputs on inputs (item 1)
    Case("interpolate-output-is-input", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, OUTPUT=str(i / "ndvi.tif")), _replaces("OUTPUT"), qgis_process=True),
    Case("interpolate-output-is-input-relative", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, OUTPUT=os.path.relpath(i / "ndvi.tif")), _replaces("OUTPUT")),
    Case("interpolate-output-is-symlink-to-input", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, OUTPUT=str(i / "ndvi_link.tif")), _replaces("OUTPUT")),
    Case("interpolate-input-is-symlink-to-output", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, INPUT=str(i / "ndvi_link.tif"), OUTPUT=str(i / "ndvi.tif")), SAME),
    Case("interpolate-output-is-hard-link-of-input", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, OUTPUT=str(i / "ndvi_hardlink.tif")), _replaces("OUTPUT")),
    Case("interpolate-output-is-mask", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, OUTPUT=str(i / "clm.tif")), _replaces("OUTPUT")),
    Case("interpolate-count-is-input", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, OUTPUT_COUNT=str(i / "ndvi.tif")), _replaces("OUTPUT_COUNT")),
    Case("interpolate-report-is-mask", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, OUTPUT_REPORT=str(i / "clm.tif")), _replaces("OUTPUT_REPORT")),
    Case("interpolate-two-outputs-one-file", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, OUTPUT_COUNT=str(o / "interpolated.tif")),
         rf"\(OUTPUT\).*\(OUTPUT_COUNT\).*{TWICE}"),
    # -- interpolate: damaged and wrong files (item 3), numbers and dates (item 2)
    Case("interpolate-truncated-input", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, INPUT=str(i / "ndvi_truncated.tif")), rf"ndvi_truncated.tif.*{DAMAGED}.*date",
         qgis_process=True),
    Case("interpolate-empty-input", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, INPUT=str(i / "empty.tif")), rf"\(INPUT\).*{EMPTY}", qgis_process=True),
    Case("interpolate-text-input", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, INPUT=str(i / "text.tif")), rf"\(INPUT\).*{NOT_RASTER}"),
    Case("interpolate-missing-input", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, INPUT=str(i / "nothing.tif")), rf"\(INPUT\).*{MISSING}"),
    Case("interpolate-empty-mask", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, MASK=str(i / "empty.tif")), rf"\(MASK\).*{EMPTY}"),
    Case("interpolate-mask-other-grid", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, MASK=str(i / "clm_small.tif")), r"\(MASK\)"),
    Case("interpolate-mask-other-dates", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, MASK=str(i / "l1c.tif")), r"\(MASK\)"),
    Case("interpolate-interval-zero", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, INTERVAL_DAYS=0), _range("INTERVAL_DAYS")),
    Case("interpolate-interval-huge", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, INTERVAL_DAYS=10**6), _range("INTERVAL_DAYS"), qgis_process=True),
    Case("interpolate-fraction-above-one", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, MIN_VALID_FRACTION=2), _range("MIN_VALID_FRACTION")),
    Case("interpolate-start-not-a-date", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, START="the first of May"), r"\(START\)"),
    Case("interpolate-end-before-start", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, START="2016-12-01", END="2016-01-01"), r"\(START\).*after the start"),
    Case("interpolate-bad-date-list", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, DATES="2016-13-45"), r"\(DATES\)"),
    Case("interpolate-grid-outside-dates", "eolulc:interpolate",
         lambda i, o: _interpolate(i, o, START="2030-01-01", END="2030-12-31"), r"outside the input's"),
    # -- classify
    Case("classify-output-is-features", "eolulc:classify",
         lambda i, o: _classify(i, o, OUTPUT=str(i / "ndvi16.tif")), _replaces("OUTPUT", "FEATURES"),
         qgis_process=True),
    Case("classify-confidence-is-model", "eolulc:classify",
         lambda i, o: _classify(i, o, OUTPUT_CONFIDENCE=str(i / "model.json")), _replaces("OUTPUT_CONFIDENCE")),
    Case("classify-map-is-confidence", "eolulc:classify",
         lambda i, o: _classify(i, o, OUTPUT_CONFIDENCE=str(o / "map.tif")), TWICE),
    Case("classify-model-is-pickle", "eolulc:classify",
         lambda i, o: _classify(i, o, MODEL=str(i / "pickle.json")), r"\(MODEL\).*pickle"),
    Case("classify-model-other-json", "eolulc:classify",
         lambda i, o: _classify(i, o, MODEL=str(i / "not_model.json")), r"\(MODEL\).*not an EO LULC model"),
    Case("classify-model-text", "eolulc:classify",
         lambda i, o: _classify(i, o, MODEL=str(i / "text.tif")), r"\(MODEL\).*not an EO LULC model"),
    Case("classify-model-empty", "eolulc:classify",
         lambda i, o: _classify(i, o, MODEL=str(i / "empty.tif")), r"\(MODEL\).*not an EO LULC model"),
    Case("classify-model-missing", "eolulc:classify",
         lambda i, o: _classify(i, o, MODEL=str(i / "nothing.json")), r"MODEL"),
    Case("classify-model-named-lulc", "eolulc:classify",
         lambda i, o: _classify(i, o, MODEL=str(i / "model.lulc")), check=_classified, qgis_process=True),
    Case("classify-truncated-features", "eolulc:classify",
         lambda i, o: _classify(i, o, FEATURES=[str(i / "ndvi_truncated.tif")]), r"\(FEATURES\)|" + DAMAGED),
    Case("classify-empty-features", "eolulc:classify",
         lambda i, o: _classify(i, o, FEATURES=[str(i / "empty.tif")]), rf"\(FEATURES\).*{EMPTY}"),
    Case("classify-features-not-the-models", "eolulc:classify",
         lambda i, o: _classify(i, o, FEATURES=[str(i / "l1c.tif")]), r"\(FEATURES\)"),
    # -- train
    Case("train-model-is-features", "eolulc:train",
         lambda i, o: _train(i, o, OUTPUT_MODEL=str(i / "ndvi16.tif")), _replaces("OUTPUT_MODEL", "FEATURES"),
         qgis_process=True),
    Case("train-report-is-reference", "eolulc:train",
         lambda i, o: _train(i, o, OUTPUT_REPORT=str(i / "lulc.tif")), _replaces("OUTPUT_REPORT", "REFERENCE")),
    Case("train-two-reports-one-file", "eolulc:train",
         lambda i, o: _train(i, o, OUTPUT_REPORT_JSON=str(o / "report.html")), TWICE),
    Case("train-samples-huge", "eolulc:train",
         lambda i, o: _train(i, o, SAMPLES=10**12), _range("SAMPLES"), qgis_process=True),
    Case("train-samples-tiny", "eolulc:train", lambda i, o: _train(i, o, SAMPLES=5), _range("SAMPLES")),
    Case("train-erosion-huge", "eolulc:train",
         lambda i, o: _train(i, o, EROSION="1000"), r"\(EROSION\).*erosion radius"),
    Case("train-erosion-negative", "eolulc:train",
         lambda i, o: _train(i, o, EROSION="-1"), r"\(EROSION\)"),
    Case("train-erosion-wider-than-reference", "eolulc:train",
         lambda i, o: _train(i, o, EROSION="40"), r"erosion"),
    Case("train-trees-zero", "eolulc:train", lambda i, o: _train(i, o, N_ESTIMATORS=0), _range("N_ESTIMATORS")),
    Case("train-leaves-huge", "eolulc:train", lambda i, o: _train(i, o, NUM_LEAVES=10**6), _range("NUM_LEAVES")),
    Case("train-learning-rate-five", "eolulc:train",
         lambda i, o: _train(i, o, LEARNING_RATE=5), _range("LEARNING_RATE")),
    Case("train-feature-fraction-zero", "eolulc:train",
         lambda i, o: _train(i, o, FEATURE_FRACTION=0), _range("FEATURE_FRACTION")),
    Case("train-test-fraction-all", "eolulc:train",
         lambda i, o: _train(i, o, TEST_FRACTION=0.95), _range("TEST_FRACTION")),
    Case("train-seed-negative", "eolulc:train", lambda i, o: _train(i, o, SEED=-1), _range("SEED")),
    Case("train-block-size-huge", "eolulc:train", lambda i, o: _train(i, o, BLOCK_SIZE=10**9), _range("BLOCK_SIZE")),
    Case("train-polygons-without-class-field", "eolulc:train",
         lambda i, o: _train(i, o, REFERENCE=str(i / "lulc.gpkg")), r"\(CLASS_FIELD\)"),
    Case("train-empty-reference", "eolulc:train",
         lambda i, o: _train(i, o, REFERENCE=str(i / "empty.tif")), rf"\(REFERENCE\).*{EMPTY}"),
    Case("train-constant-features", "eolulc:train",
         lambda i, o: _train(i, o, FEATURES=[str(i / "constant.tif")]), r"\(FEATURES\).*features are constant",
         qgis_process=True),
    Case("train-some-constant-features", "eolulc:train",
         lambda i, o: _train(i, o, FEATURES=[str(i / "half_constant.tif")]), check=_constant_noted),
    Case("train-truncated-features", "eolulc:train",
         lambda i, o: _train(i, o, FEATURES=[str(i / "ndvi_truncated.tif")]), DAMAGED),
    # -- cloudmask
    Case("cloudmask-mask-is-input", "eolulc:cloudmask",
         lambda i, o: _cloudmask(i, o, OUTPUT_MASK=str(i / "l1c.tif")), _replaces("OUTPUT_MASK")),
    Case("cloudmask-two-outputs-one-file", "eolulc:cloudmask",
         lambda i, o: _cloudmask(i, o, OUTPUT_PROBABILITY=str(o / "mask.tif")), TWICE),
    Case("cloudmask-average-over-huge", "eolulc:cloudmask",
         lambda i, o: _cloudmask(i, o, AVERAGE_OVER=10**6), _range("AVERAGE_OVER"), qgis_process=True),
    Case("cloudmask-dilation-huge", "eolulc:cloudmask",
         lambda i, o: _cloudmask(i, o, DILATION_SIZE=10**6), _range("DILATION_SIZE")),
    Case("cloudmask-average-over-wider-than-raster", "eolulc:cloudmask",
         lambda i, o: _cloudmask(i, o, INPUT=str(i / "l1c_small.tif"), AVERAGE_OVER=60),
         r"\(AVERAGE_OVER\).*wider than the raster"),
    Case("cloudmask-dilation-wider-than-raster", "eolulc:cloudmask",
         lambda i, o: _cloudmask(i, o, INPUT=str(i / "l1c_small.tif"), DILATION_SIZE=80),
         r"\(DILATION_SIZE\).*wider than the raster"),
    Case("cloudmask-threshold-above-one", "eolulc:cloudmask",
         lambda i, o: _cloudmask(i, o, THRESHOLD=1.5), _range("THRESHOLD")),
    Case("cloudmask-resolution-huge", "eolulc:cloudmask",
         lambda i, o: _cloudmask(i, o, PROCESSING_RESOLUTION=10**6), _range("PROCESSING_RESOLUTION")),
    Case("cloudmask-no-l1c-bands", "eolulc:cloudmask",
         lambda i, o: _cloudmask(i, o, INPUT=str(i / "ndvi.tif")), r"\(INPUT\).*band"),
    Case("cloudmask-undated-raster", "eolulc:cloudmask",
         lambda i, o: _cloudmask(i, o, INPUT=str(i / "lulc.tif")), r"\(INPUT\).*not a time stack"),
    Case("cloudmask-truncated-input", "eolulc:cloudmask",
         lambda i, o: _cloudmask(i, o, INPUT=str(i / "l1c_truncated.tif")), DAMAGED),
    # -- features
    Case("features-output-is-input", "eolulc:features",
         lambda i, o: _features(i, o, OUTPUT=str(i / "l1c.tif")), _replaces("OUTPUT")),
    Case("features-unknown-band", "eolulc:features", lambda i, o: _features(i, o, BANDS="B99"), r"\(BANDS\)"),
    Case("features-no-band-no-index", "eolulc:features", lambda i, o: _features(i, o, BANDS=" , ", INDICES=[]),
         r"\(BANDS\): empty, and no index is chosen: nothing to compute\. Name the bands"),
    Case("features-bad-custom-index", "eolulc:features",
         lambda i, o: _features(i, o, CUSTOM_INDICES="this is no index"), r"\(CUSTOM_INDICES\)"),
    Case("features-text-input", "eolulc:features",
         lambda i, o: _features(i, o, INPUT=str(i / "text.tif")), rf"\(INPUT\).*{NOT_RASTER}"),
    Case("features-truncated-input", "eolulc:features",
         lambda i, o: _features(i, o, INPUT=str(i / "l1c_truncated.tif")), DAMAGED),
    # -- accuracy
    Case("accuracy-html-is-map", "eolulc:accuracy",
         lambda i, o: _accuracy(i, o, OUTPUT_HTML=str(i / "map.tif")), _replaces("OUTPUT_HTML", "INPUT")),
    Case("accuracy-json-is-reference", "eolulc:accuracy",
         lambda i, o: _accuracy(i, o, REFERENCE=str(i / "lulc.gpkg"), CLASS_FIELD="LULC_ID",
                                OUTPUT_JSON=str(i / "lulc.gpkg")), _replaces("OUTPUT_JSON", "REFERENCE")),
    Case("accuracy-bad-ignore-list", "eolulc:accuracy",
         lambda i, o: _accuracy(i, o, IGNORE_CLASSES="water"), r"\(IGNORE_CLASSES\)"),
    Case("accuracy-truncated-map", "eolulc:accuracy",
         lambda i, o: _accuracy(i, o, INPUT=str(i / "map_truncated.tif")), DAMAGED, qgis_process=True),
    Case("accuracy-empty-reference", "eolulc:accuracy",
         lambda i, o: _accuracy(i, o, REFERENCE=str(i / "empty.tif")), rf"\(REFERENCE\).*{EMPTY}"),
    # -- lulcpipeline
    Case("pipeline-map-is-input", "eolulc:lulcpipeline",
         lambda i, o: _pipeline(i, o, OUTPUT=str(i / "l1c.tif")), _replaces("OUTPUT")),
    Case("pipeline-model-is-reference", "eolulc:lulcpipeline",
         lambda i, o: _pipeline(i, o, OUTPUT_MODEL=str(i / "lulc.gpkg")), _replaces("OUTPUT_MODEL", "REFERENCE")),
    Case("pipeline-samples-huge", "eolulc:lulcpipeline",
         lambda i, o: _pipeline(i, o, SAMPLES=10**12), _range("SAMPLES")),
    Case("pipeline-interval-zero", "eolulc:lulcpipeline",
         lambda i, o: _pipeline(i, o, INTERVAL_DAYS=0), _range("INTERVAL_DAYS")),
    Case("pipeline-test-fraction-zero", "eolulc:lulcpipeline",
         lambda i, o: _pipeline(i, o, TEST_FRACTION=0), _range("TEST_FRACTION")),
    Case("pipeline-unknown-band", "eolulc:lulcpipeline", lambda i, o: _pipeline(i, o, BANDS="B99"), r"\(BANDS\)"),
    Case("pipeline-empty-bands", "eolulc:lulcpipeline", lambda i, o: _pipeline(i, o, BANDS="", INDICES=[]),
         r"\(BANDS\): empty, and no index is chosen; name the bands used as features.*B02,B03,B04,B08,B11,B12"),
    Case("pipeline-bands-only-commas", "eolulc:lulcpipeline", lambda i, o: _pipeline(i, o, BANDS=", ,", INDICES=[]),
         r"\(BANDS\): empty, and no index is chosen; name the bands used as features"),
    Case("pipeline-empty-input", "eolulc:lulcpipeline",
         lambda i, o: _pipeline(i, o, INPUT=str(i / "empty.tif")), rf"\(INPUT\).*{EMPTY}"),
    Case("pipeline-only-input-reference-and-map", "eolulc:lulcpipeline", _pipeline, check=_pipeline_minimal,
         qgis_process=True),
    # -- experiment: every parameter is checked before any work
    Case("experiment-interval-zero", "eolulc:experiment",
         lambda i, o: _experiment(i, o, INTERVALS="8,0"), r"\(INTERVALS\)", qgis_process=True),
    Case("experiment-interval-not-a-number", "eolulc:experiment",
         lambda i, o: _experiment(i, o, INTERVALS="weekly"), r"\(INTERVALS\)"),
    Case("experiment-html-is-input", "eolulc:experiment",
         lambda i, o: _experiment(i, o, OUTPUT_HTML=str(i / "l1c.tif")), _replaces("OUTPUT_HTML")),
    Case("experiment-seeds-huge", "eolulc:experiment",
         lambda i, o: _experiment(i, o, SEEDS=1000), _range("SEEDS")),
    Case("experiment-bad-resolutions", "eolulc:experiment",
         lambda i, o: _experiment(i, o, PROCESSING_RESOLUTIONS="-5"), r"\(PROCESSING_RESOLUTIONS\)"),
    # -- batchpipeline
    Case("batch-mosaic-is-input-stack", "eolulc:batchpipeline",
         lambda i, o: _batch(i, o, OUTPUT_MOSAIC=str(i / "l1c.tif")), _replaces("OUTPUT_MOSAIC")),
    Case("batch-work-folder-is-input-folder", "eolulc:batchpipeline",
         lambda i, o: {"INPUT_FOLDER": str(i), "OUTPUT_FOLDER": str(i), "OUTPUT_MOSAIC": str(o / "m.vrt"),
                       "OUTPUT_REPORT": str(o / "r.html")}, _replaces("OUTPUT_FOLDER")),
    Case("batch-tile-size-huge", "eolulc:batchpipeline",
         lambda i, o: _batch(i, o, TILE_SIZE=10**9), _range("TILE_SIZE")),
    Case("batch-workers-huge", "eolulc:batchpipeline",
         lambda i, o: _batch(i, o, WORKERS=10**5), _range("WORKERS")),
    Case("batch-samples-huge", "eolulc:batchpipeline",
         lambda i, o: _batch(i, o, SAMPLES=10**12), _range("SAMPLES")),
    Case("batch-no-input", "eolulc:batchpipeline",
         lambda i, o: {k: v for k, v in _batch(i, o).items() if k != "INPUT_STACK"}, r"INPUT_FOLDER|INPUT_STACK"),
    Case("batch-small-edge-tile-is-mapped", "eolulc:batchpipeline",
         lambda i, o: _batch(i, o, TILE_SIZE=48, SAMPLES=2000, INTERVAL_DAYS=30), check=_mosaic_complete),
    # -- a killed run's temporary files (item 6)
    Case("interpolate-removes-a-killed-runs-temporaries", "eolulc:interpolate",
         lambda i, o: _killed_run_leftover(o) and _interpolate(i, o), check=_leftover_removed),
    # -- buildtimestack
    Case("build-output-is-layer", "eolulc:buildtimestack",
         lambda i, o: _build(i, o, OUTPUT=str(i / "scene_one_date.tif")), _replaces("OUTPUT", "LAYERS")),
    Case("build-resolution-absurd", "eolulc:buildtimestack",
         lambda i, o: _build(i, o, TARGET_RESOLUTION=0.0001), r"\(TARGET_RESOLUTION\).*px a side"),
    Case("build-empty-layer", "eolulc:buildtimestack",
         lambda i, o: _build(i, o, LAYERS=[str(i / "empty.tif")]), rf"\(LAYERS\).*{EMPTY}"),
    Case("build-folder-without-files", "eolulc:buildtimestack",
         lambda i, o: {"INPUT_FOLDER": str(i / "empty_folder"), "OUTPUT": str(o / "stack.tif")}, r"INPUT_FOLDER"),
    # -- importeopatch
    Case("import-output-replaces-eopatch-array", "eolulc:importeopatch",
         lambda i, o: _import(i, o, OUTPUT=str(i / "eopatch" / "data" / "NDVI.npy")), _replaces("OUTPUT")),
    Case("import-not-an-eopatch", "eolulc:importeopatch",
         lambda i, o: _import(i, o, INPUT=str(i / "empty_folder")), r"\(INPUT\)"),
    Case("import-unknown-feature", "eolulc:importeopatch",
         lambda i, o: _import(i, o, DATA_FEATURES="NOPE"), r"\(DATA_FEATURES\)"),
]


def _output_paths(algorithm: str, params: dict[str, Any], inputs: Path) -> list[Path]:
    """Output paths of a case that are not inputs (those are checked by their hashes)."""
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById(algorithm)
    paths = []
    for definition in alg.destinationParameterDefinitions():
        value = params.get(definition.name())
        path = Path(os.path.abspath(value)) if isinstance(value, str) and value else None
        if path is not None and path != inputs and inputs not in path.parents:
            paths.append(path)
    return paths


def _assert_unchanged(inputs: Path, before: dict[str, str], sidecars: bool = True) -> None:
    after = _hashes(inputs, sidecars)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"inputs changed: {changed}"


def _check_failure(message: str, expect: str) -> None:
    lines = [line for line in message.splitlines() if line.strip()]
    assert len(lines) <= 2, message
    assert "Traceback" not in message and "File \"" not in message, message
    assert re.search(expect, message, re.S), f"{expect!r} not in {message!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_processing_run(case: Case, run_alg, inputs: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(inputs.parent)  # relative paths resolve next to the inputs
    before = _hashes(inputs)
    params = case.params(inputs, tmp_path)
    feedback = _LogFeedback()
    if case.check is not None:
        results = run_alg(case.algorithm, params, feedback=feedback)
        case.check(inputs, results, feedback.log)
    else:
        with pytest.raises(QgsProcessingException) as error:
            run_alg(case.algorithm, params, feedback=feedback)
        _check_failure(str(error.value), case.expect)
        for path in _output_paths(case.algorithm, params, inputs):
            assert not path.exists(), f"{path} was written"
    _assert_unchanged(inputs, before)


QP_CASES = [c for c in CASES if c.qgis_process]


@pytest.mark.parametrize("case", QP_CASES, ids=[c.id for c in QP_CASES])
def test_qgis_process(case: Case, qgis_app, qgis_process, inputs: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(inputs.parent)
    before = _hashes(inputs, sidecars=False)
    params = case.params(inputs, tmp_path)
    args = []
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            args.append((key, item))
    done = qgis_process("--json", "run", case.algorithm, "--", *[f"{k}={v}" for k, v in args])
    if case.check is not None:
        assert done.returncode == 0, done.stdout + done.stderr
        results = json.loads(done.stdout[done.stdout.index("{"):])["results"]
        case.check(inputs, results, done.stdout + done.stderr)
    else:
        assert done.returncode != 0
        assert "Traceback" not in done.stdout + done.stderr
        assert re.search(case.expect, done.stdout + done.stderr, re.S), done.stdout + done.stderr
        for path in _output_paths(case.algorithm, params, inputs):
            assert not path.exists(), f"{path} was written"
    _assert_unchanged(inputs, before, sidecars=False)


def test_at_least_seventy_cases():
    assert len(CASES) >= 70 and len({c.algorithm for c in CASES}) >= 11
    assert len(QP_CASES) >= 10


class _LogFeedback(QgsProcessingFeedback):
    """Keeps what the algorithm logs."""

    def __init__(self) -> None:
        super().__init__()
        self.log = ""

    def pushInfo(self, info: str) -> None:
        self.log += info + "\n"
        super().pushInfo(info)

"""eolulc:accuracy through processing.run and qgis_process.bin on the real TestEOPatch reference."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import QgsApplication, QgsProcessingException

from eolulc.core.eopatch import read_eopatch

ALG = "eolulc:accuracy"


@pytest.fixture(scope="module", autouse=True)
def registered(qgis_app):
    """The algorithm in the provider even before provider.py lists it."""
    from eolulc.processing.accuracy import AccuracyAlgorithm

    provider = QgsApplication.processingRegistry().providerById("eolulc")
    if provider.algorithm("accuracy") is None:
        provider.addAlgorithm(AccuracyAlgorithm())
    assert QgsApplication.processingRegistry().algorithmById(ALG) is not None


@pytest.fixture(scope="module")
def lulc(eopatch_dir) -> np.ndarray:
    return np.load(eopatch_dir / "mask_timeless" / "LULC.npy")[..., 0]


def _write(path: Path, array: np.ndarray, eopatch_dir: Path, nodata=None, shift: float = 0.0) -> str:
    grid = read_eopatch(eopatch_dir).grid(*array.shape)
    a, b, c, d, e, f = grid.transform
    with rasterio.open(path, "w", driver="GTiff", width=grid.width, height=grid.height, count=1,
                       dtype=array.dtype, crs=grid.crs_wkt, transform=rasterio.Affine(a, b, c + shift, d, e, f),
                       nodata=nodata) as ds:
        ds.write(array, 1)
    return str(path)


@pytest.fixture(scope="module")
def lulc_tif(lulc, eopatch_dir, tmp_path_factory) -> str:
    return _write(tmp_path_factory.mktemp("lulc") / "lulc.tif", lulc.astype(np.uint8), eopatch_dir)


def _load(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(f"JSON has {c}"))


def test_reference_against_itself(run_alg, lulc_tif, tmp_path):
    result = run_alg(ALG, {"INPUT": lulc_tif, "REFERENCE": lulc_tif, "OUTPUT_HTML": str(tmp_path / "r.html"),
                           "OUTPUT_JSON": str(tmp_path / "r.json")})
    assert result["OVERALL_ACCURACY"] == 1 and result["KAPPA"] == 1 and result["F1_WEIGHTED"] == 1
    data = _load(result["OUTPUT_JSON"])
    assert data["labels"] == [1, 2, 3, 4, 8] and data["n_samples"] == 9945
    assert data["area_adjusted"]["overall_accuracy"]["estimate"] == pytest.approx(1.0)
    text = Path(result["OUTPUT_HTML"]).read_text(encoding="utf-8")
    assert "<svg" in text and not re.search(r"https?://", text) and "forest" in text


def test_perturbed_map_matches_numpy(run_alg, lulc, eopatch_dir, lulc_tif, tmp_path, monkeypatch):
    monkeypatch.setenv("EOLULC_BLOCK_BUDGET_MB", "0.05")  # several blocks
    rng = np.random.default_rng(11)
    noisy = lulc.astype(np.uint8).copy()
    flip = rng.random(lulc.shape) < 0.3
    noisy[flip] = rng.choice([1, 2, 3, 4, 8], flip.sum())
    noisy[rng.random(lulc.shape) < 0.05] = 255
    noisy_tif = _write(tmp_path / "noisy.tif", noisy, eopatch_dir, nodata=255)
    result = run_alg(ALG, {"INPUT": noisy_tif, "REFERENCE": lulc_tif, "OUTPUT_HTML": str(tmp_path / "r.html"),
                           "OUTPUT_JSON": str(tmp_path / "r.json")})
    keep = (lulc != 0) & (noisy != 255) & (noisy != 0)
    truth, pred = lulc[keep].astype(int), noisy[keep].astype(int)
    ids = np.unique(np.concatenate([truth, pred]))
    po = (truth == pred).mean()
    pe = sum((truth == i).mean() * (pred == i).mean() for i in ids)
    f1 = np.array([2 * ((truth == i) & (pred == i)).sum() / ((truth == i).sum() + (pred == i).sum()) for i in ids])
    support = np.array([(truth == i).sum() for i in ids])
    assert result["OVERALL_ACCURACY"] == pytest.approx(po)
    assert result["KAPPA"] == pytest.approx((po - pe) / (1 - pe))
    assert result["F1_WEIGHTED"] == pytest.approx((f1 * support).sum() / support.sum())
    data = _load(result["OUTPUT_JSON"])
    assert data["n_samples"] == keep.sum() and data["f1_macro"] == pytest.approx(f1.mean())
    mapped = {c["id"]: c["map_pixels"] for c in data["area_adjusted"]["per_class"]}
    assert mapped == {int(i): int(((noisy == i) & (noisy != 255)).sum()) for i in ids}


def test_polygon_reference_against_rasterized_npy(run_alg, lulc_tif, eopatch_dir, tmp_path):
    result = run_alg(ALG, {"INPUT": lulc_tif, "REFERENCE": str(eopatch_dir / "vector_timeless" / "LULC.gpkg"),
                           "CLASS_FIELD": "LULC_ID", "NAME_FIELD": "LULC_NAME",
                           "OUTPUT_HTML": str(tmp_path / "r.html"), "OUTPUT_JSON": str(tmp_path / "r.json")})
    assert result["OVERALL_ACCURACY"] > 0.95 and result["KAPPA"] > 0.9
    names = {c["id"]: c["name"] for c in _load(result["OUTPUT_JSON"])["per_class"]}
    assert names[4] == "schrubland"  # the layer's own spelling, not the legend's "shrubland"
    assert "schrubland" in Path(result["OUTPUT_HTML"]).read_text(encoding="utf-8")


def test_reference_zeros_beside_another_nodata_are_reported(run_alg, lulc, eopatch_dir, lulc_tif, tmp_path):
    from qgis.core import QgsProcessingFeedback

    reference = lulc.astype(np.uint8)
    reference[:10] = 255
    path = _write(tmp_path / "nodata255.tif", reference, eopatch_dir, nodata=255)
    feedback = QgsProcessingFeedback(True)
    run_alg(ALG, {"INPUT": lulc_tif, "REFERENCE": path, "OUTPUT_HTML": str(tmp_path / "r.html")}, feedback)
    zeros = int((reference == 0).sum())
    assert f"declares nodata 255 but also holds {zeros} pixel(s) of 0" in feedback.textLog()


@pytest.fixture(scope="module")
def two_layer_gpkg(eopatch_dir, tmp_path_factory) -> str:
    """LULC.gpkg's polygons twice, as layers LULC and parcels; LULC also has the class ids as text
    (CLASS_TEXT: "1", "2"...), as shapefiles and CSV imports often store codes."""
    from osgeo import ogr

    path = str(tmp_path_factory.mktemp("layers") / "two_layers.gpkg")
    source = ogr.Open(str(eopatch_dir / "vector_timeless" / "LULC.gpkg"))
    target = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = target.CopyLayer(source.GetLayer(), "LULC")
    layer.CreateField(ogr.FieldDefn("CLASS_TEXT", ogr.OFTString))
    for feature in layer:
        feature.SetField("CLASS_TEXT", str(feature.GetField("LULC_ID")))
        layer.SetFeature(feature)
    target.CopyLayer(source.GetLayer(), "parcels")
    del layer, target, source
    return path


def test_text_class_field_holding_numbers(run_alg, lulc_tif, eopatch_dir, two_layer_gpkg, tmp_path):
    numbers = run_alg(ALG, {"INPUT": lulc_tif, "REFERENCE": str(eopatch_dir / "vector_timeless" / "LULC.gpkg"),
                            "CLASS_FIELD": "LULC_ID", "OUTPUT_HTML": str(tmp_path / "n.html"),
                            "OUTPUT_JSON": str(tmp_path / "n.json")})
    text = run_alg(ALG, {"INPUT": lulc_tif, "REFERENCE": f"{two_layer_gpkg}|layername=LULC",
                         "CLASS_FIELD": "CLASS_TEXT", "OUTPUT_HTML": str(tmp_path / "t.html"),
                         "OUTPUT_JSON": str(tmp_path / "t.json")})
    assert _load(text["OUTPUT_JSON"])["confusion"] == _load(numbers["OUTPUT_JSON"])["confusion"]
    assert text["OVERALL_ACCURACY"] == numbers["OVERALL_ACCURACY"] > 0.95
    # a polygon whose text class is left empty is unlabelled, as a NULL one, not an error
    from osgeo import ogr

    blank = tmp_path / "blank.gpkg"
    source = ogr.Open(two_layer_gpkg)
    target = ogr.GetDriverByName("GPKG").CreateDataSource(str(blank))
    layer = target.CopyLayer(source.GetLayerByName("LULC"), "LULC")
    feature = layer.GetNextFeature()
    feature.SetField("CLASS_TEXT", " ")
    layer.SetFeature(feature)
    del feature, layer, target, source
    partial = run_alg(ALG, {"INPUT": lulc_tif, "REFERENCE": str(blank), "CLASS_FIELD": "CLASS_TEXT",
                            "OUTPUT_HTML": str(tmp_path / "b.html"), "OUTPUT_JSON": str(tmp_path / "b.json")})
    assert 0 < _load(partial["OUTPUT_JSON"])["n_samples"] < _load(numbers["OUTPUT_JSON"])["n_samples"]


@pytest.fixture(scope="module")
def fractional_gpkg(eopatch_dir, tmp_path_factory, qgis_app) -> str:
    import processing

    out = tmp_path_factory.mktemp("frac") / "frac.gpkg"
    processing.run("native:fieldcalculator", {
        "INPUT": str(eopatch_dir / "vector_timeless" / "LULC.gpkg"), "FIELD_NAME": "FRAC", "FIELD_TYPE": 0,
        "FIELD_LENGTH": 10, "FIELD_PRECISION": 3, "FORMULA": '"LULC_ID" + 0.5', "OUTPUT": str(out)})
    return str(out)


@pytest.mark.parametrize(
    "case, parameter, text",
    [
        ("no_overlap", "REFERENCE", "no class pixels"),
        ("other_legend", "INPUT", "share no class id: where both have data the reference holds class ids 1, 2, 3, "
                                  "4, 8 and the map 101, 102, 103, 104, 108. They likely use different legends"),
        ("no_class_field", "CLASS_FIELD", "needs its class field"),
        ("fractional_field", "CLASS_FIELD", "not an integer class id"),
        ("several_layers", "REFERENCE", "'two_layers.gpkg' holds 2 layers (LULC, parcels) and the reference names "
                                        "none: pick one as "),
        ("text_field", "CLASS_FIELD", "the field 'LULC_NAME' holds 'grassland', which is not an integer class id"),
        ("bad_ignore", "IGNORE_CLASSES", "not a list of integer"),
        ("bad_legend", "LEGEND", "legend"),
    ],
)
def test_bad_input(run_alg, lulc, lulc_tif, eopatch_dir, fractional_gpkg, two_layer_gpkg, tmp_path, case, parameter,
                   text):
    gpkg = str(eopatch_dir / "vector_timeless" / "LULC.gpkg")
    params = {"INPUT": lulc_tif, "REFERENCE": lulc_tif}
    if case == "no_overlap":
        params["REFERENCE"] = _write(tmp_path / "elsewhere.tif", lulc.astype(np.uint8), eopatch_dir, shift=50_000)
    elif case == "other_legend":
        params["INPUT"] = _write(tmp_path / "other.tif", np.where(lulc == 0, 0, lulc + 100).astype(np.uint8),
                                 eopatch_dir)
    elif case == "no_class_field":
        params["REFERENCE"] = gpkg
    elif case == "fractional_field":
        params.update(REFERENCE=fractional_gpkg, CLASS_FIELD="FRAC")
    elif case == "several_layers":
        params.update(REFERENCE=two_layer_gpkg, CLASS_FIELD="LULC_ID")
        text += f"{two_layer_gpkg}|layername=LULC"
    elif case == "text_field":
        params.update(REFERENCE=f"{two_layer_gpkg}|layername=LULC", CLASS_FIELD="LULC_NAME")
    elif case == "bad_ignore":
        params["IGNORE_CLASSES"] = "0, water"
    else:
        (tmp_path / "legend.csv").write_text("id,name,colour\n1,crops,not-a-colour\n")
        params["LEGEND"] = str(tmp_path / "legend.csv")
    out = tmp_path / "out"
    params.update(OUTPUT_HTML=str(out / "r.html"), OUTPUT_JSON=str(out / "r.json"))
    with pytest.raises(QgsProcessingException) as error:
        run_alg(ALG, params)
    assert f"({parameter})" in str(error.value) and text in str(error.value)
    assert not out.exists() or not list(out.iterdir())


def test_cancel_leaves_no_output(run_alg, lulc_tif, tmp_path, monkeypatch):
    from qgis.core import QgsProcessingFeedback

    monkeypatch.setenv("EOLULC_BLOCK_BUDGET_MB", "0.05")
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value > 0 else None)
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run_alg(ALG, {"INPUT": lulc_tif, "REFERENCE": lulc_tif, "OUTPUT_HTML": str(tmp_path / "r.html"),
                      "OUTPUT_JSON": str(tmp_path / "r.json")}, feedback=feedback)
    assert not list(tmp_path.iterdir())


def test_qgis_process_run(qgis_process, lulc_tif, eopatch_dir, tmp_path):
    rc, result, text = qgis_process.run(ALG, {
        "INPUT": lulc_tif, "REFERENCE": eopatch_dir / "vector_timeless" / "LULC.gpkg", "CLASS_FIELD": "LULC_ID",
        "NAME_FIELD": "LULC_NAME", "OUTPUT_HTML": tmp_path / "r.html", "OUTPUT_JSON": tmp_path / "r.json"})
    assert rc == 0, text
    assert result["results"]["OVERALL_ACCURACY"] > 0.95
    assert _load(tmp_path / "r.json")["overall_accuracy"] == pytest.approx(result["results"]["OVERALL_ACCURACY"])
    assert "<svg" in (tmp_path / "r.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("coding, expected", [
    ({1: 40, 2: 10, 3: 30, 4: 20, 8: 50}, {10: "tree cover", 20: "shrubland", 30: "grassland", 40: "cropland",
                                           50: "built-up"}),
    ({1: 11, 2: 12, 3: 13, 4: 14, 8: 18}, {11: "class 11", 12: "class 12", 13: "class 13", 14: "class 14",
                                           18: "class 18"}),
])
def test_legend_follows_the_references_coding(run_alg, lulc, eopatch_dir, tmp_path, coding, expected):
    """Without a LEGEND, ESA WorldCover codes are named as WorldCover names them, and codes of no
    shipped legend 'class N', never by eo-learn's legend (whose 10 is snow and ice)."""
    recoded = np.zeros_like(lulc, dtype=np.uint8)
    for old, new in coding.items():
        recoded[lulc == old] = new
    path = _write(tmp_path / "recoded.tif", recoded, eopatch_dir)
    result = run_alg(ALG, {"INPUT": path, "REFERENCE": path, "OUTPUT_HTML": str(tmp_path / "r.html"),
                           "OUTPUT_JSON": str(tmp_path / "r.json")})
    names = {c["id"]: c["name"] for c in _load(result["OUTPUT_JSON"])["per_class"]}
    assert names == expected
    assert "snow and ice" not in Path(result["OUTPUT_HTML"]).read_text(encoding="utf-8")

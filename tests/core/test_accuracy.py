"""core.accuracy and core.report: figures against hand-computed ones, Olofsson et al.'s worked
example, the real TestEOPatch reference, and the HTML/JSON files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio

from eolulc.core.accuracy import assess, assess_confusion, compare_raster, confusion_matrix, pixel_area_m2
from eolulc.core.eopatch import read_eopatch
from eolulc.core.legend import Legend, LegendClass, read_legend
from eolulc.core.report import write_report


def _legend(*names: str) -> Legend:
    return Legend(LegendClass(i + 1, n, "#123456") for i, n in enumerate(names))


def test_confusion_matrix_rows_are_reference():
    counts = confusion_matrix([1, 1, 2, 8, 8], [1, 2, 2, 8, 1], [1, 2, 8])
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    # values outside the labels are not counted; label order is respected
    assert confusion_matrix([1, 5, 2], [2, 5, 2], [2, 1]).tolist() == [[1, 0], [1, 0]]


def test_assess_hand_computed():
    # reference 1 1 1 1 2 2 2 3 3 3, map 1 1 1 2 2 2 3 3 3 1
    truth = np.array([1, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    pred = np.array([1, 1, 1, 2, 2, 2, 3, 3, 3, 1])
    report = assess(truth, pred, _legend("a", "b", "c"))
    assert report["n_samples"] == 10 and report["labels"] == [1, 2, 3]
    assert report["overall_accuracy"] == pytest.approx(0.7)
    # p_e = (4*4 + 3*3 + 3*3) / 100 = 0.34; kappa = (0.7 - 0.34) / 0.66
    assert report["kappa"] == pytest.approx(0.36 / 0.66)
    per = {c["id"]: c for c in report["per_class"]}
    assert per[1]["precision"] == pytest.approx(3 / 4) and per[1]["recall"] == pytest.approx(3 / 4)
    assert per[2]["precision"] == pytest.approx(2 / 3) and per[2]["recall"] == pytest.approx(2 / 3)
    assert per[3]["f1"] == pytest.approx(2 / 3) and per[3]["support"] == 3 and per[1]["name"] == "a"
    assert report["f1_macro"] == pytest.approx((0.75 + 2 / 3 + 2 / 3) / 3)
    assert report["f1_weighted"] == pytest.approx((4 * 0.75 + 3 * 2 / 3 + 3 * 2 / 3) / 10)
    assert report["confusion"]["counts"] == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert report["confusion"]["row_normalised"][0] == pytest.approx([0.75, 0.25, 0.0])


def test_classes_in_only_one_side_give_null_not_nan():
    # class 3 only in the reference, class 12 (unknown to the legend) only in the map
    report = assess(np.array([1, 1, 3, 3]), np.array([1, 12, 1, 1]), read_legend(), {1: 30, 12: 10})
    text = json.dumps(report, allow_nan=False)
    assert "NaN" not in text
    per = {c["id"]: c for c in report["per_class"]}
    assert per[3]["precision"] is None and per[3]["recall"] == 0 and per[3]["f1"] == 0
    assert per[12]["recall"] is None and per[12]["precision"] == 0 and per[12]["name"] == "class 12"
    assert per[1]["name"] == "cultivated land"
    area = {c["id"]: c for c in report["area_adjusted"]["per_class"]}
    assert area[3]["users_accuracy"]["estimate"] is None  # never mapped
    assert area[12]["producers_accuracy"]["estimate"] is None  # never in the reference
    # estimated area proportions still sum to one
    assert sum(c["area_proportion"]["estimate"] for c in area.values()) == pytest.approx(1.0)


def test_perfect_and_single_class():
    report = assess(np.array([2, 2, 2]), np.array([2, 2, 2]), read_legend(), {2: 3})
    assert report["overall_accuracy"] == 1 and report["kappa"] == 1 and report["f1_weighted"] == 1
    with pytest.raises(ValueError, match="nothing to compare"):
        assess(np.array([], np.uint16), np.array([], np.uint16), read_legend())


def test_olofsson_2014_worked_example():
    """Section 5 of Olofsson et al. (2014): rows are the map (strata), columns the reference."""
    sample = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
    mapped = {1: 200_000, 2: 150_000, 3: 3_200_000, 4: 6_450_000}  # W = 0.020, 0.015, 0.320, 0.645
    legend = _legend("deforestation", "forest gain", "stable forest", "stable non-forest")
    report = assess_confusion(sample.T, [1, 2, 3, 4], legend, mapped, pixel_area_m2=900)
    area = report["area_adjusted"]
    assert [c["weight"] for c in area["per_class"]] == pytest.approx([0.02, 0.015, 0.32, 0.645])
    assert area["overall_accuracy"]["estimate"] == pytest.approx(0.95, abs=0.005)
    assert area["overall_accuracy"]["ci"] == pytest.approx(0.02, abs=0.005)

    def pairs(key: str) -> list[float]:
        return [v for c in area["per_class"] for v in (c[key]["estimate"], c[key]["ci"])]

    # the paper's table 9 and text, rounded as printed there
    assert pairs("users_accuracy") == pytest.approx([0.88, 0.07, 0.73, 0.10, 0.93, 0.04, 0.96, 0.02], abs=0.006)
    producers = pairs("producers_accuracy")
    assert producers[:2] + producers[4:] == pytest.approx([0.75, 0.21, 0.93, 0.03, 0.96, 0.02], abs=0.006)
    assert pairs("area_ha") == pytest.approx([21_158, 6_158, 11_686, 3_756, 285_770, 15_510, 581_386, 16_282],
                                             abs=1.0)
    assert area["total_pixels"] == 10_000_000


def test_map_class_without_reference_is_left_out_with_a_note():
    report = assess(np.array([1, 1, 2, 2]), np.array([1, 1, 2, 1]), _legend("a", "b", "c"), {1: 50, 2: 40, 3: 10})
    area = report["area_adjusted"]
    assert any("c" in note and "no reference pixel" in note for note in area["notes"])
    assert {c["id"]: c["weight"] for c in area["per_class"]}[3] == 0
    with pytest.raises(ValueError, match="lack class"):
        assess(np.array([1, 2]), np.array([1, 2]), _legend("a", "b"), {1: 5})


@pytest.fixture(scope="module")
def lulc(eopatch_dir) -> np.ndarray:
    return np.load(eopatch_dir / "mask_timeless" / "LULC.npy")[..., 0]


def _write(path, array, grid, nodata=None):
    with rasterio.open(path, "w", driver="GTiff", width=grid.width, height=grid.height, count=1,
                       dtype=array.dtype, crs=grid.crs_wkt, transform=rasterio.Affine(*grid.transform),
                       nodata=nodata) as ds:
        ds.write(array, 1)
    return str(path)


def test_real_reference_against_itself_and_a_perturbed_copy(lulc, eopatch_dir, tmp_path):
    grid = read_eopatch(eopatch_dir).grid(*lulc.shape)
    counts, labels, mapped = compare_raster(_write(tmp_path / "same.tif", lulc, grid), lulc, budget_bytes=40 * 500)
    report = assess_confusion(counts, labels, read_legend(), mapped, pixel_area_m2(grid))
    assert report["overall_accuracy"] == 1 and report["kappa"] == 1 and labels == [1, 2, 3, 4, 8]
    assert report["area_adjusted"]["overall_accuracy"]["estimate"] == pytest.approx(1.0)
    assert pixel_area_m2(grid) == pytest.approx(100.0, rel=0.01)

    rng = np.random.default_rng(5)
    noisy = lulc.astype(np.uint8).copy()
    flip = rng.random(lulc.shape) < 0.2
    noisy[flip] = rng.choice([1, 2, 3, 4, 8], flip.sum())
    noisy[rng.random(lulc.shape) < 0.05] = 255
    counts, labels, mapped = compare_raster(_write(tmp_path / "noisy.tif", noisy, grid, 255), lulc,
                                            budget_bytes=40 * 700)
    report = assess_confusion(counts, labels, read_legend(), mapped)
    keep = (lulc != 0) & (noisy != 255) & (noisy != 0)
    truth, pred = lulc[keep].astype(int), noisy[keep].astype(int)
    assert report["n_samples"] == keep.sum()
    assert report["overall_accuracy"] == pytest.approx((truth == pred).mean())
    ids = np.array(labels)
    table = (truth[:, None] == ids)[:, :, None] & (pred[:, None] == ids)[:, None, :]
    assert np.array_equal(np.array(report["confusion"]["counts"]), table.sum(axis=0))
    tp = np.array([(truth == i).__and__(pred == i).sum() for i in ids])
    f1 = 2 * tp / np.array([(truth == i).sum() + (pred == i).sum() for i in ids])
    support = np.array([(truth == i).sum() for i in ids])
    assert report["f1_weighted"] == pytest.approx((f1 * support).sum() / support.sum())
    assert report["f1_macro"] == pytest.approx(f1.mean())
    po = (truth == pred).mean()
    pe = sum((truth == i).mean() * (pred == i).mean() for i in ids)
    assert report["kappa"] == pytest.approx((po - pe) / (1 - pe))
    valid = (noisy != 255) & (noisy != 0)
    assert mapped == {int(i): int((noisy[valid] == i).sum()) for i in np.unique(noisy[valid])}


def test_map_and_reference_without_a_shared_class_are_refused(lulc, eopatch_dir, tmp_path):
    """A map coded 101..108 against the reference's 1..8 (another legend) would report OA 0.000."""
    grid = read_eopatch(eopatch_dir).grid(*lulc.shape)
    recoded = np.where(lulc == 0, 0, lulc + 100).astype(np.uint8)
    with pytest.raises(ValueError) as error:
        compare_raster(_write(tmp_path / "recoded.tif", recoded, grid), lulc)
    message = str(error.value)
    assert "share no class id" in message and "different legends" in message
    assert "reference holds class ids 1, 2, 3, 4, 8 and the map 101, 102, 103, 104, 108" in message
    # one shared class is enough: a poor map is a map
    recoded[lulc == 2] = 2
    counts, labels, _ = compare_raster(_write(tmp_path / "one.tif", recoded, grid), lulc)
    assert labels == [1, 2, 3, 4, 8, 101, 103, 104, 108] and np.trace(counts) == (lulc == 2).sum()


def test_report_files_offline_escaped_and_valid_json(tmp_path):
    legend = Legend([LegendClass(1, "<b>crops</b> & co", "#ffff00"), LegendClass(2, "forest", "#054907")])
    report = assess(np.array([1, 1, 2, 3]), np.array([1, 2, 2, 2]), legend, {1: 10, 2: 20}, 100.0)
    html_path, json_path = tmp_path / "r" / "report.html", tmp_path / "r" / "report.json"
    write_report(html_path, json_path, report, "Test <report>", notes=["random split: optimistic"],
                 extra_sections=[("Feature importances", "<p>NDVI first</p>")])
    text = html_path.read_text(encoding="utf-8")
    assert text.count("<svg") == 2 and "&lt;b&gt;crops&lt;/b&gt; &amp; co" in text and "<b>crops" not in text
    assert "Test &lt;report&gt;" in text and "random split: optimistic" in text and "<p>NDVI first</p>" in text
    assert not re.search(r"https?://", text) and "<script" not in text and "<link" not in text
    assert "#ffff00" in text  # class colours on the axes
    data = json.loads(json_path.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(c))
    assert data["title"] == "Test <report>" and data["overall_accuracy"] == pytest.approx(0.5)
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.html", "report.json"]

"""eolulc:importsafe through processing.run and qgis_process.bin, on products written like the real
ones (tests/safe_products.py) holding the real L1C scenes."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from safe_products import L2A_BANDS, dns_from_reflectance, write_product  # noqa: E402

ALG = "eolulc:importsafe"
JUNE = datetime(2023, 6, 14, 10, 15, 59)


@pytest.fixture(scope="module")
def l2a_folder(tmp_path_factory, reference_scenes):
    """Two zipped L2A products (baselines 05.09 and 02.13) with SCL clouds in the upper rows."""
    root = tmp_path_factory.mktemp("products")
    scl = np.full((30, 30), 4, np.uint8)
    scl[:5] = 9
    scl[5:7] = 3
    written = [
        write_product(root, "L2A", dns_from_reflectance(reference_scenes[i, :60, :60], L2A_BANDS, add),
                      when, baseline=baseline, zipped=True, scl=scl)
        for i, (when, baseline, add) in enumerate(((JUNE, "05.09", -1000), (datetime(2020, 5, 3, 10, 5), "02.13", 0)))
    ]
    return root, written


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_processing_run_imports_l2a_with_scl_mask(run_alg, l2a_folder, tmp_path):
    from eolulc.core.timestack import open_stack

    root, (new, old) = l2a_folder
    outputs = {"OUTPUT": tmp_path / "stack.tif", "OUTPUT_MASK": tmp_path / "clm.tif",
               "OUTPUT_SCL": tmp_path / "scl.tif"}
    result = run_alg(ALG, {"INPUT_FOLDER": str(root), "BANDS": "B04,B8,B11", "MASK_DILATION": 1,
                           **{k: str(v) for k, v in outputs.items()}})
    assert result["DATES"] == 2 and Path(result["OUTPUT_MASK"]) == outputs["OUTPUT_MASK"]
    with open_stack(str(outputs["OUTPUT"])) as stack:
        info, data = stack.info, stack.read()
    assert info.bands == ("B04", "B08", "B11") and info.dates[0] == datetime(2020, 5, 3, 10, 5)
    assert info.offsets[0] == pytest.approx(-0.1) and info.scales[0] == pytest.approx(1e-4)
    np.testing.assert_array_equal(data[1, ..., 0], new.dns["B04"])
    np.testing.assert_array_equal(data[0, ..., 0], old.dns["B04"].astype(int) + 1000)
    with open_stack(str(outputs["OUTPUT_MASK"])) as stack:
        mask = stack.read()[..., 0]
        fractions = json.loads(stack.info.tags["EOLULC_VALID_FRACTION"])
    assert mask[:, :14].all() and not mask[:, 15:].any()  # rows 0-13 cloud or shadow, dilated by 1
    assert fractions == [pytest.approx(45 / 60)] * 2


def test_extent_reads_a_window(run_alg, l2a_folder, tmp_path):
    from eolulc.core.timestack import open_stack

    root, (new, _) = l2a_folder
    result = run_alg(ALG, {"LAYERS": [str(new.path)], "EXTENT": "500080,500280,5199620,5199820 [EPSG:32633]",
                           "BANDS": "B02", "OUTPUT": str(tmp_path / "w.tif")})
    with open_stack(result["OUTPUT"]) as stack:
        data = stack.read()
    assert data.shape == (1, 20, 20, 1)
    np.testing.assert_array_equal(data[0, ..., 0], new.dns["B02"][20:40, 10:30])


@pytest.mark.parametrize("change, parameter, text", [
    ({"INPUT_FOLDER": "EMPTY"}, "INPUT_FOLDER", "holds no Sentinel-2 product"),
    ({"EXTENT": "600000,601000,5000000,5001000 [EPSG:32633]"}, "EXTENT", "no product's footprint meets"),
    ({"BANDS": "B04,B10"}, "BANDS", "lacks the band(s) B10"),
    ({"SCL_CLOUD_CLASSES": "3,cloud"}, "SCL_CLOUD_CLASSES", "not a comma-separated list"),
])
def test_bad_input_names_parameter_and_leaves_nothing(run_alg, l2a_folder, tmp_path, change, parameter, text):
    root, _ = l2a_folder
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    params = {"INPUT_FOLDER": str(root), "OUTPUT": str(out / "a.tif"), "OUTPUT_MASK": str(out / "b.tif")}
    params.update({k: (str(tmp_path / "empty") if v == "EMPTY" else v) for k, v in change.items()})
    with pytest.raises(QgsProcessingException) as error:
        run_alg(ALG, params)
    assert f"({parameter})" in str(error.value) and text in str(error.value)
    assert _files(out) == []


def test_l1c_mask_output_and_truncated_zip_are_refused(run_alg, l2a_folder, tmp_path, reference_scenes):
    product = write_product(tmp_path / "in", "L1C", dns_from_reflectance(reference_scenes[4, :60, :60]), JUNE,
                            zipped=True)
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match=r"\(OUTPUT_MASK\): needs L2A products"):
        run_alg(ALG, {"LAYERS": [str(product.path)], "OUTPUT": str(out / "a.tif"), "OUTPUT_MASK": str(out / "m.tif")})
    broken = tmp_path / "broken" / product.path.name
    broken.parent.mkdir()
    broken.write_bytes(product.path.read_bytes()[:5000])
    with pytest.raises(QgsProcessingException, match=r"\(INPUT_FOLDER\): .*damaged or incomplete"):
        run_alg(ALG, {"INPUT_FOLDER": str(broken.parent), "OUTPUT": str(out / "a.tif")})
    root, _ = l2a_folder
    with pytest.raises(QgsProcessingException, match=r"mix processing levels: 1 L1C and 2 L2A"):
        run_alg(ALG, {"INPUT_FOLDER": str(root), "LAYERS": [str(product.path)], "OUTPUT": str(out / "a.tif")})
    assert _files(out) == []


def test_qgis_process_help_and_run(qgis_process, l2a_folder, tmp_path):
    helped = qgis_process("help", ALG)
    assert helped.returncode == 0, helped.stderr
    assert "SCL_CLOUD_CLASSES" in helped.stdout and ".SAFE.zip" in helped.stdout
    root, (new, _) = l2a_folder
    rc, result, text = qgis_process.run(ALG, {"INPUT_FOLDER": root, "OUTPUT": tmp_path / "stack.tif",
                                              "OUTPUT_MASK": tmp_path / "clm.tif"})
    assert rc == 0, text
    assert Path(result["results"]["OUTPUT_MASK"]) == tmp_path / "clm.tif"
    from eolulc.core.timestack import open_stack

    with open_stack(str(tmp_path / "stack.tif")) as stack:
        assert stack.info.n_dates == 2 and stack.info.n_bands == 12
        np.testing.assert_array_equal(stack.read(dates=[1])[0, ..., stack.info.band_index("B08")], new.dns["B08"])
    rc, _, text = qgis_process.run(ALG, {"INPUT_FOLDER": tmp_path / "missing", "OUTPUT": tmp_path / "x.tif"})
    assert rc != 0 and "(INPUT_FOLDER)" in text and "Traceback" not in text
    assert not (tmp_path / "x.tif").exists()

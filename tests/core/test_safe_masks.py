"""The products' own quality masks on import: no-data and saturated pixels become nodata, from
MSK_QUALIT rasters (baseline 04.00 and later) or MSK_NODATA / MSK_SATURA GML (older baselines),
in products written like the real ones (tests/safe_products.py) with the real L1C scenes."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from safe_products import dns_from_reflectance, write_product  # noqa: E402

from eolulc.core.safe import read_product  # noqa: E402
from eolulc.core.safe_import import group_by_day, import_safe, scan_products, target_grid  # noqa: E402
from eolulc.core.safe_masks import gml_polygons  # noqa: E402
from eolulc.core.timestack import open_stack  # noqa: E402

JUNE = datetime(2023, 6, 14, 10, 15, 59)
SIZE = 60
#: (band, defect, (row0, row1, col0, col1) in 10 m pixels)
DEFECTS = [("B04", "NODATA", (0, 10, 0, 20)), ("B11", "SATURATED", (20, 40, 20, 40)),
           ("B02", "PARTIALLY_CORRECTED", (40, 60, 0, 60))]


def _import(path, tmp_path):
    products = scan_products([path])
    grid = target_grid(group_by_day(products), 10)
    result = import_safe(products, tmp_path / "stack.tif", grid)
    with open_stack(str(tmp_path / "stack.tif")) as stack:
        return result, stack.info, stack.read()[0]


@pytest.mark.parametrize("baseline, zipped, kind", [("05.09", True, "MSK_QUALIT"), ("04.00", False, "MSK_QUALIT"),
                                                    ("03.01", False, "MSK_NODATA"), ("02.07", True, "MSK_SATURA")])
def test_no_data_and_saturated_pixels_become_nodata(baseline, zipped, kind, tmp_path, reference_scenes):
    offset = -1000 if float(baseline) >= 4 else 0
    dns = dns_from_reflectance(reference_scenes[0, :SIZE, :SIZE], add_offset=offset)
    written = write_product(tmp_path, "L1C", dns, JUNE, baseline=baseline, zipped=zipped, defects=DEFECTS)
    granule, = read_product(written.path).granules
    assert set(granule.quality) == set(dns)  # every band has its masks, in the baseline's format
    assert any(kind in p for p in granule.quality["B11"])
    result, info, data = _import(written.path, tmp_path)
    b04, b11, b02, b03 = (info.band_index(b) for b in ("B04", "B11", "B02", "B03"))
    # no data (B04, 10 m): exactly the masked pixels, the rest the written numbers
    expected = dns["B04"].astype(int)
    expected[:10, :20] = 0
    np.testing.assert_array_equal(data[..., b04], expected)
    # saturated (B11, 20 m, bilinear onto 10 m): nodata inside, valid away from the box
    assert (data[21:39, 21:39, b11] == 0).all()
    outside = np.ones((SIZE, SIZE), bool)
    outside[18:42, 18:42] = False
    assert (data[..., b11][outside] > 0).all()
    # cross-talk (partially corrected) is no defect: B02 as written; an untouched band too
    np.testing.assert_array_equal(data[..., b02], dns["B02"].astype(int))
    np.testing.assert_array_equal(data[..., b03], dns["B03"].astype(int))
    assert result.defective_pixels == 10 * 20 + 10 * 10  # B04 at 10 m, B11 at 20 m


def test_products_without_quality_masks_import_as_before(tmp_path, reference_scenes):
    dns = dns_from_reflectance(reference_scenes[0, :SIZE, :SIZE], add_offset=-1000)
    written = write_product(tmp_path, "L1C", dns, JUNE)
    assert read_product(written.path).granules[0].quality == {}
    result, info, data = _import(written.path, tmp_path)
    assert result.defective_pixels == 0
    np.testing.assert_array_equal(data[..., info.band_index("B04")], dns["B04"])


def test_gml_masks_as_the_processor_writes_them():
    """An empty mask, and the kinds: MSK_NODATA keeps only QT_NODATA_PIXELS, MSK_SATURA all."""
    empty = (b'<?xml version="1.0" encoding="UTF-8"?>\n<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0" '
             b'xmlns:gml="http://www.opengis.net/gml/3.2" gml:id="S2B_OPER_MSK_SATURA_VGS1_20200929T213343_A018629_'
             b'T10SEH_B01_MSIL1C">\n  <gml:name>MSK_SATURA pixels mask</gml:name>\n  <eop:maskMembers/>\n</eop:Mask>')
    assert gml_polygons(empty, "MSK_SATURA_B01.gml") == []
    from safe_products import _gml_mask

    both = _gml_mask("S2B_OPER_MSK_NODATA_X_B04_MSIL1C", "NODATA", 32633,
                     [("QT_NODATA_PIXELS", (0, 0, 10, 10)), ("QT_PARTIALLY_CORRECTED_PIXELS", (20, 20, 30, 30))])
    shapes = gml_polygons(both.encode(), "S2B_OPER_MSK_NODATA_X_B04_MSIL1C.gml")
    assert len(shapes) == 1 and shapes[0]["coordinates"][0][0] == (0.0, 10.0)  # 3-D posList read as x, y
    with pytest.raises(ValueError, match="not readable XML"):
        gml_polygons(b"<eop:Mask", "MSK_NODATA_B04.gml")

"""The 2016 multi-granule layout (baseline 02.xx: one product holding a GRANULE folder per tile,
long S2A_OPER_ names, bare IMAGE_IDs in S2A_OPER_MTD_SAFL1C_...xml): metadata of every granule,
import of only the granules meeting the extent, their GML quality masks."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from safe_products import dns_from_reflectance, write_product_2016  # noqa: E402

from eolulc.core.safe import read_product  # noqa: E402
from eolulc.core.safe_import import group_by_day, import_safe, meeting_grid, scan_products, target_grid  # noqa: E402
from eolulc.core.timestack import open_stack  # noqa: E402

SENSING = datetime(2016, 9, 5, 10, 0, 32)
SIZE, ULY = 60, 5200020.0
#: Three neighbouring granules overlapping by 60 m, as tiles do; the third one's bands are damaged.
ULX = {"33TVM": 499980.0, "33TWM": 500520.0, "33TXM": 501060.0}


@pytest.fixture(scope="module")
def product(tmp_path_factory, reference_scenes):
    root = tmp_path_factory.mktemp("s2_2016")
    dns = {tile: dns_from_reflectance(reference_scenes[i, :SIZE, :SIZE]) for i, tile in enumerate(ULX)}
    path = write_product_2016(root, [(t, ULX[t], ULY, dns[t]) for t in ULX], SENSING, zipped=True,
                              damaged=("33TXM",), defects=[("B04", "NODATA", (0, 10, 0, 20))])
    return path, dns


def _import(path, tmp_path, bounds):
    products = scan_products([path])
    grid = target_grid(group_by_day(products), 10, "EPSG:32633", bounds)
    result = import_safe(products, tmp_path / "stack.tif", grid)
    with open_stack(str(tmp_path / "stack.tif")) as stack:
        return result, grid, stack.info, stack.read()[0]


def test_metadata_of_every_granule(product):
    path, _ = product
    assert Path(path).name.startswith("S2A_OPER_PRD_MSIL1C_PDMC_")
    meta = read_product(path)
    assert (meta.level, meta.baseline, meta.quantification, meta.offsets) == ("L1C", "02.04", 10000.0, {})
    assert meta.sensing_time.replace(microsecond=0) == SENSING
    assert [g.tile for g in meta.granules] == list(ULX)
    for granule in meta.granules:
        assert granule.crs == "EPSG:32633"
        assert granule.bounds == (ULX[granule.tile], ULY - 600, ULX[granule.tile] + 600, ULY)
        assert granule.bands["B8A"].endswith(f"_T{granule.tile}_B8A.jp2") and "/vsizip/" in granule.bands["B8A"]
        assert len(granule.bands) == 13 and granule.resolutions["B01"] == 60
        assert any("S2A_OPER_MSK_NODATA_" in p for p in granule.quality["B04"])


def test_only_the_granules_meeting_the_extent_are_read(product, tmp_path):
    """The extent over the first two granules: their mosaic (the first granule wins the overlap),
    each one's no-data mask applied; the damaged third granule is never opened."""
    path, dns = product
    result, grid, info, data = _import(path, tmp_path, (499980, ULY - 600, 501060, ULY))
    assert [g.tile for g in meeting_grid(read_product(path), grid)] == ["33TVM", "33TWM"]
    assert (grid.width, grid.height) == (108, 60)
    b04 = info.band_index("B04")
    expected = dns["33TVM"]["B04"].astype(int)
    expected[:10, :20] = 0  # MSK_NODATA of the first granule
    np.testing.assert_array_equal(data[:, :60, b04], expected)
    second = dns["33TWM"]["B04"][:, 6:54].astype(int)
    second[:10, :14] = 0  # the second granule's own mask (its columns 0-19; 0-5 lie under the first)
    np.testing.assert_array_equal(data[:, 60:, b04], second)
    assert result.defective_pixels == 2 * 10 * 20  # the box in both granules' own B04 masks


def test_an_extent_inside_one_granule_reads_that_granule_only(product, tmp_path):
    path, dns = product
    _, grid, info, data = _import(path, tmp_path, (500600, ULY - 300, 501000, ULY - 100))
    assert [g.tile for g in meeting_grid(read_product(path), grid)] == ["33TWM"]
    np.testing.assert_array_equal(data[..., info.band_index("B08")], dns["33TWM"]["B08"][10:30, 8:48])


def test_a_damaged_granule_meeting_the_extent_is_named(product, tmp_path):
    path, _ = product
    with pytest.raises(ValueError) as error:
        _import(path, tmp_path, (501100, ULY - 300, 501500, ULY - 100))
    assert "T33TXM_B01.jp2" in str(error.value)  # the damaged granule, named by its file
    assert not (tmp_path / "stack.tif").exists()

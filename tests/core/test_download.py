"""core/download.py and core/stac.py against a STAC API and file server on 127.0.0.1
(tests/stac_server.py): the real pystac-client search and GDAL /vsicurl/ range reads of COGs
written from the real L1C scenes."""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stac_server import EXTENT_UTM, SERIES, TILE_SIDE_PX, StacServer, series_items, write_series  # noqa: E402

from eolulc.core.download import download, plan_grid, work_folder  # noqa: E402
from eolulc.core.progress import Cancelled, Progress  # noqa: E402
from eolulc.core.stac import CATALOGUES, Catalogue, CatalogueError, Credentials, catalogue_for, dn_offset  # noqa: E402
from eolulc.core.timestack import open_stack  # noqa: E402

BANDS = ["B02", "B04", "B08", "B11"]
FAST = {"attempts": 4, "backoff": 0.05, "gdal_retry_delay": 0.05}


@pytest.fixture(scope="module")
def series(tmp_path_factory, reference_scenes):
    root = tmp_path_factory.mktemp("cogs")
    return root, write_series(root, reference_scenes)


def _run(server: StacServer, out: Path, catalogue: Catalogue | None = None, logs: list | None = None, **kwargs):
    arguments = dict(bands=BANDS, output_mask=out / "mask.tif", report_path=out / "report.json", **FAST)
    arguments.update(kwargs)
    progress = arguments.pop("progress", None) or Progress(on_log=(logs.append if logs is not None else None))
    return download(catalogue or catalogue_for("custom", server.url), "L2A", EXTENT_UTM, "EPSG:32633",
                    date(2021, 1, 1), date(2023, 12, 31), out / "stack.tif", progress=progress, **arguments)


def _expected(written: dict, item_id: str, right: str | None, band: str = "B04") -> np.ndarray:
    """What the stack holds on the 100 x 100 px grid: tile A's pixels, tile B's right of x = 510240
    (col 64), all on the -1000 offset (``R * 10000 + 1000``)."""
    a = written[item_id]
    out = a["dns"][band][400:500, 960:1024].astype(np.int64) + 1000 - a["add"]
    full = np.zeros((100, 100), np.int64)
    full[:, :64] = out
    if right:
        b = written[right]
        full[:, 64:] = b["dns"][band][400:500, 124:160].astype(np.int64) + 1000 - b["add"]
    return full


def test_downloads_windows_into_a_stack_with_true_reflectance_and_scl_mask(series, tmp_path):
    root, written = series
    with StacServer(root) as server:
        server.items = series_items(server, written)
        result = _run(server, tmp_path)
        served = dict(server.bytes)
    with open_stack(str(tmp_path / "stack.tif")) as stack:
        info, data = stack.info, stack.read()
    ids = [s[0] for s in SERIES]
    assert [d.date() for d in info.dates] == [date(2021, 6, 1), date(2023, 3, 10), date(2023, 5, 4)]
    assert info.bands == tuple(BANDS)
    assert info.scales[0] == pytest.approx(1e-4) and info.offsets[0] == pytest.approx(-0.1)
    # baseline 03.00, Earth Search's harmonised 05.09 and raw 05.09 (offset in the pixels) on one scale
    np.testing.assert_array_equal(data[0, ..., 1], _expected(written, ids[0], None)[:, :] * (np.arange(100) < 64))
    np.testing.assert_array_equal(data[1, ..., 1], _expected(written, ids[1], ids[2]))  # one day, two tiles mosaicked
    np.testing.assert_array_equal(data[2, ..., 1], _expected(written, ids[3], None) * (np.arange(100) < 64))
    reflectance = data[1, 50, 10, 1] * info.scales[1] + info.offsets[1]
    assert reflectance == pytest.approx(written[ids[1]]["dns"]["B04"][450, 970] / 10000, abs=1e-6)
    with open_stack(str(tmp_path / "mask.tif")) as stack:
        mask = stack.read()[..., 0]
    assert mask[1, :40, :64].all() and not mask[1, 40:].any() and not mask[1, :, 64:].any()
    assert (mask[0, :, 64:] == 255).all()  # no tile there that day: nodata
    # only windows travel: each 10 m band file gave a small part of itself
    for item_id in ids[:4]:
        for band in ("B02", "B04", "B08"):
            size = (root / item_id / f"{band}.tif").stat().st_size
            assert 0 < served[f"{item_id}/{band}.tif"] < 0.2 * size, (item_id, band)
    assert not any(k.startswith(ids[4]) for k in served)  # 95 % cloud: filtered by the search
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["found"] == 5 and len(report["used"]) == 4
    assert report["skipped"] == [{"id": ids[5], "reason": "asset(s) B08 missing from the item"}]
    assert result.fetched_scenes == ids[:4]


def test_storm_of_503s_and_a_dropped_connection_are_retried(series, tmp_path):
    root, written = series
    ids = [s[0] for s in SERIES]
    with StacServer(root) as server:
        server.items = series_items(server, written)
        server.faults[f"{ids[1]}/B04.tif"] = [503] * 6 + ["drop", "drop", 429]
        server.faults[f"{ids[3]}/B08.tif"] = ["drop", "cut"]
        logs: list[str] = []
        _run(server, tmp_path, logs=logs)
        assert server.requests[f"{ids[1]}/B04.tif"] > 9 and not server.faults[f"{ids[1]}/B04.tif"]
        assert not server.faults[f"{ids[3]}/B08.tif"]
    with open_stack(str(tmp_path / "stack.tif")) as stack:
        data = stack.read()
    np.testing.assert_array_equal(data[1, ..., 1], _expected(written, ids[1], ids[2]))
    np.testing.assert_array_equal(data[2, ..., 2], _expected(written, ids[3], None, "B08") * (np.arange(100) < 64))
    assert not any("skipped" in line for line in logs if ids[1] in line)


def test_a_band_failing_every_try_skips_its_scene_and_the_next_run_fetches_it(series, tmp_path):
    root, written = series
    ids = [s[0] for s in SERIES]
    with StacServer(root) as server:
        server.items = series_items(server, written)
        server.faults[f"{ids[3]}/B02.tif"] = [500] * 200
        result = _run(server, tmp_path, attempts=2)
        assert [s["id"] for s in result.report["skipped"]] == [ids[5], ids[3]]
        assert "failed" in result.report["skipped"][1]["reason"]
        server.faults.clear()
        server.reset_counts()
        again = _run(server, tmp_path)
    assert again.fetched_scenes == [ids[3]] and again.cached_scenes == ids[:3]
    assert len(again.report["dates"]) == 3


def test_an_interrupted_run_resumes_without_fetching_finished_scenes(series, tmp_path):
    from osgeo import gdal

    root, written = series
    ids = [s[0] for s in SERIES]
    with StacServer(root) as server:
        server.items = series_items(server, written)
        state = {"stop": False}

        def on_log(line: str) -> None:
            if "bands," in line and "fetched" in line:
                state["stop"] = True  # the user cancels once the first scene is in

        with pytest.raises(Cancelled):
            _run(server, tmp_path, progress=Progress(is_canceled=lambda: state["stop"], on_log=on_log),
                 connections=1)
        # cancel leaves no stack, no mask, no report and no temporaries next to them
        assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.download"]
        finished = [p.parent.name for p in work_folder(tmp_path / "stack.tif").rglob("scene.json")]
        assert finished and len(finished) < 4
        gdal.VSICurlClearCache()
        server.reset_counts()
        result = _run(server, tmp_path)
        for item_id in ids[:4]:
            fetched = server.requested(item_id + "/")
            assert (fetched == 0) == (item_id in finished), item_id
    assert sorted(result.cached_scenes) == sorted(finished)
    with open_stack(str(tmp_path / "stack.tif")) as stack:
        np.testing.assert_array_equal(stack.read()[1, ..., 1], _expected(written, ids[1], ids[2]))


def test_credentials_are_sent_but_never_shown(series, tmp_path):
    root, written = series
    secret = "s3cr3t-Pa55word"
    with StacServer(root, credentials=("alice", secret)) as server:
        server.items = series_items(server, written)
        logs: list[str] = []
        _run(server, tmp_path, logs=logs, credentials=Credentials("alice", secret))
        assert server.served() > 0
        with pytest.raises(CatalogueError) as refused:
            _run(server, tmp_path / "wrong", credentials=Credentials("alice", "wrong-password"))
        with pytest.raises(CatalogueError) as anonymous:
            _run(server, tmp_path / "none")
    assert refused.value.kind == anonymous.value.kind == "credentials" and "HTTP 401" in str(refused.value)
    texts = logs + [str(refused.value), str(anonymous.value), (tmp_path / "report.json").read_text()]
    assert not any(secret in text or "wrong-password" in text for text in texts)
    assert secret not in repr(Credentials("alice", secret))


def test_signed_urls_like_planetary_computer(series, tmp_path):
    root, written = series
    with StacServer(root, token="abc123") as server:
        server.items = series_items(server, written)
        signed = Catalogue("pc", "signed", server.url, {"L2A": "sentinel-2-l2a"},
                           CATALOGUES["planetary_computer"].assets, "query",
                           token_url=server.url + "/token/{collection}")
        logs: list[str] = []
        result = _run(server, tmp_path, catalogue=signed, logs=logs)
        with pytest.raises(CatalogueError) as unsigned:
            _run(server, tmp_path / "unsigned")
    assert len(result.report["dates"]) == 3
    assert unsigned.value.kind == "credentials"
    assert not any("abc123" in line for line in logs) and "abc123" not in json.dumps(result.report)


def test_paging_and_the_cloud_filter_reach_the_catalogue(series, tmp_path):
    root, written = series
    with StacServer(root, page_size=2) as server:
        server.items = series_items(server, written)
        result = _run(server, tmp_path, max_cloud=20.0)
        searches = list(server.searches)
    assert len(searches) == 2 and result.report["found"] == 4  # 4 hits of at most 20 %, two per page
    assert searches[0]["filter"] == {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 20.0]}
    assert len(result.report["dates"]) == 2  # 30 % on 2023-05-04 left out


def test_clear_errors(series, tmp_path):
    root, written = series
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    down = catalogue_for("custom", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(CatalogueError) as error:
        download(down, "L2A", EXTENT_UTM, "EPSG:32633", date(2023, 1, 1), date(2023, 2, 1), tmp_path / "s.tif",
                 attempts=1, backoff=0.01)
    assert error.value.kind == "unreachable" and "cannot reach" in str(error.value)
    with pytest.raises(CatalogueError, match="runs backwards") as error:
        download(down, "L2A", EXTENT_UTM, "EPSG:32633", date(2023, 2, 1), date(2023, 1, 1), tmp_path / "s.tif")
    with pytest.raises(CatalogueError, match="more than the limit of 10,000 km") as error:
        download(down, "L2A", (400000, 5000000, 600000, 5200000), "EPSG:32633", date(2023, 1, 1), date(2023, 2, 1),
                 tmp_path / "s.tif")
    assert error.value.kind == "extent"
    with StacServer(root) as server:
        server.items = series_items(server, written)
        with pytest.raises(CatalogueError, match="no usable L2A scene") as error:
            download(catalogue_for("custom", server.url), "L2A", EXTENT_UTM, "EPSG:32633", date(2019, 1, 1),
                     date(2019, 12, 31), tmp_path / "s.tif")
    assert error.value.kind == "no_scenes" and not (tmp_path / "s.tif").exists()
    with pytest.raises(CatalogueError, match="has no L1C collection"):
        download(CATALOGUES["planetary_computer"], "L1C", EXTENT_UTM, "EPSG:32633", date(2023, 1, 1),
                 date(2023, 2, 1), tmp_path / "s.tif")


def test_offsets_and_grid_rules():
    from datetime import datetime

    applied = {"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True}
    assert dn_offset(applied, datetime(2023, 1, 1)) == 0
    assert dn_offset({"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": False},
                     datetime(2023, 1, 1)) == -1000
    assert dn_offset({"s2:processing_baseline": "03.01"}, datetime(2021, 1, 1)) == 0
    assert dn_offset({}, datetime(2022, 3, 1)) == -1000 and dn_offset({}, datetime(2021, 3, 1)) == 0
    grid, bbox = plan_grid((15.0, 46.0, 15.1, 46.1), "EPSG:4326", 10.0)
    assert "32633" in grid.crs_wkt or "UTM zone 33N" in grid.crs_wkt
    assert 750 < grid.width < 800 and bbox == pytest.approx((15.0, 46.0, 15.1, 46.1))
    assert TILE_SIDE_PX == 1024


LIVE = os.environ.get("EOLULC_NETWORK") == "1"


@pytest.mark.network
@pytest.mark.skipif(not LIVE, reason="set EOLULC_NETWORK=1 when the network is there")
@pytest.mark.parametrize("key", ["earth_search", "planetary_computer", "cdse"])
def test_live_catalogue(key, tmp_path):
    """One small real download per catalogue (CDSE needs EOLULC_CDSE_KEY / EOLULC_CDSE_SECRET)."""
    credentials = Credentials(os.environ.get("EOLULC_CDSE_KEY", ""), os.environ.get("EOLULC_CDSE_SECRET", ""))
    download(CATALOGUES[key], "L2A", (14.50, 46.05, 14.52, 46.06), "EPSG:4326", date(2023, 7, 1),
                      date(2023, 7, 31), tmp_path / "s.tif", output_mask=tmp_path / "m.tif", bands=["B04", "B08"],
                      max_cloud=50, credentials=credentials if key == "cdse" else None,
                      s3_options={"AWS_S3_ENDPOINT": "eodata.dataspace.copernicus.eu", "AWS_VIRTUAL_HOSTING": "FALSE"}
                      if key == "cdse" else None)
    with open_stack(str(tmp_path / "s.tif")) as stack:
        data = stack.read()
    assert data.shape[0] >= 1 and (data > 0).mean() > 0.5

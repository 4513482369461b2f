"""core/sentinelhub_source.py against the loopback Sentinel Hub (tests/sh_server.py): the real
``sentinelhub`` OAuth session, Catalog search and Process API requests, with an expired token, a
storm of 503s, a dropped connection, wrong credentials, resume and cancel."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sh_server import CLIENT_ID, CLIENT_SECRET, ShServer, grid_values  # noqa: E402

from eolulc.core.progress import Cancelled, Progress  # noqa: E402
from eolulc.core.sentinelhub_source import (  # noqa: E402
    CDSE_SH_URL,
    CDSE_TOKEN_URL,
    SH_BASE_URL,
    OAuthClient,
    download_sentinelhub,
    token_url_for,
)
from eolulc.core.stac import CatalogueError  # noqa: E402
from eolulc.core.timestack import open_stack  # noqa: E402

EXTENT = (509000.0, 5195000.0, 510000.0, 5196000.0)  # 1 x 1 km, 100 x 100 px at 10 m
BANDS = ["B04", "B08"]
FAST = {"attempts": 4, "backoff": 0.05}
ACCOUNT = OAuthClient(CLIENT_ID, CLIENT_SECRET)
#: the configured days that pass the 80 % filter and have data: 2023-03-04, -05-13 (left half), -07-22
USED = (0, 1, 3)


def _run(server: ShServer, out: Path, level: str = "L2A", logs: list | None = None, **kwargs):
    arguments = dict(bands=BANDS, output_mask=out / "mask.tif", report_path=out / "report.json", **FAST)
    arguments.update(kwargs)
    progress = arguments.pop("progress", None) or Progress(on_log=(logs.append if logs is not None else None))
    account = arguments.pop("account", ACCOUNT)
    return download_sentinelhub(account, level, EXTENT, "EPSG:32633", date(2023, 1, 1), date(2023, 12, 31),
                                out / "stack.tif", base_url=server.url, progress=progress, **arguments)


def _expected_mask(day: int) -> np.ndarray:
    data = grid_values("dataMask", day, EXTENT, 100, 100)
    return np.where(data == 0, 255, grid_values("CLM", day, EXTENT, 100, 100)).astype(np.uint8)


@pytest.mark.parametrize("level", ["L2A", "L1C"])
def test_days_become_a_stack_of_true_reflectance_and_a_cloud_mask(tmp_path, level):
    logs: list[str] = []
    with ShServer() as server:
        result = _run(server, tmp_path, level, logs)
        assert server.tokens_issued == 1
        assert server.process_calls == ["2023-03-04", "2023-05-13", "2023-07-22", "2023-08-01"]
    report = result.report
    assert report["dates"] == ["2023-03-04T10:00:05", "2023-05-13T10:00:05", "2023-07-22T10:00:05"]
    assert report["skipped"] == [{"id": f"sentinelhub_{level}_20230801", "reason": "no data in the extent on that day"}]
    assert report["catalogue"] == "Sentinel Hub" and report["found"] == 4  # the 95 % day is filtered by the catalogue
    with open_stack(str(tmp_path / "stack.tif")) as stack:
        assert stack.info.bands == ("B04", "B08")
        assert stack.info.scales == (1e-4, 1e-4) and stack.info.offsets == (0.0, 0.0)
        data = stack.read()
    for t, day in enumerate(USED):
        for b, band in enumerate(BANDS):
            expected = grid_values(band, day, EXTENT, 100, 100) * grid_values("dataMask", day, EXTENT, 100, 100)
            np.testing.assert_array_equal(data[t, ..., b], expected)
    with open_stack(str(tmp_path / "mask.tif")) as mask:
        assert mask.info.bands == ("CLM",) and mask.info.nodata == 255
        np.testing.assert_array_equal(mask.read()[..., 0], np.stack([_expected_mask(d) for d in USED]))
    assert not any(CLIENT_SECRET in line for line in logs) and CLIENT_SECRET not in json.dumps(report)


def test_an_extent_over_the_largest_answer_is_asked_in_pieces(tmp_path):
    with ShServer() as server:
        result = _run(server, tmp_path, max_request_px=40, max_cloud=20.0)  # 100 x 100 px: 3 x 3 requests
        assert server.process_calls == ["2023-03-04"] * 9 + ["2023-07-22"] * 9 + ["2023-08-01"] * 9
    assert result.report["dates"] == ["2023-03-04T10:00:05", "2023-07-22T10:00:05"]
    with open_stack(str(tmp_path / "stack.tif")) as stack:
        np.testing.assert_array_equal(stack.read()[0, ..., 0], grid_values("B04", 0, EXTENT, 100, 100))
    with open_stack(str(tmp_path / "mask.tif")) as mask:
        np.testing.assert_array_equal(mask.read()[0, ..., 0], _expected_mask(0))


def test_l1c_without_a_mask_asks_for_no_clm(tmp_path):
    with ShServer() as server:
        result = _run(server, tmp_path, "L1C", output_mask=None)
        scripts = [json.loads(b)["evalscript"] for b in server.bodies if '"evalscript"' in b]
    assert len(result.report["dates"]) == 3 and not (tmp_path / "mask.tif").exists()
    assert scripts and not any("CLM" in s for s in scripts)


def test_an_expired_token_is_replaced_and_the_request_repeated(tmp_path):
    with ShServer() as server:
        server.expire_after = 1  # every token handed out is refused after the first answer
        result = _run(server, tmp_path)
        assert server.tokens_issued == 2
    assert len(result.report["dates"]) == 3 and not result.report["skipped"][:-1]


def test_a_503_storm_a_dropped_connection_and_a_rate_limit_are_retried(tmp_path):
    with ShServer() as server:
        # a 429 is waited out (Retry-After), then three failures: the fourth try of the first day answers
        server.faults = [429, 503, 503, "drop"]
        result = _run(server, tmp_path)
        assert not server.faults and server.process_calls[0] == "2023-03-04"
    assert len(result.report["dates"]) == 3 and len(result.report["skipped"]) == 1


def test_a_day_failing_every_try_is_skipped_then_fetched_on_the_next_run(tmp_path):
    with ShServer() as server:
        server.faults = [503] * 4  # the first day fails all four tries
        first = _run(server, tmp_path)
        assert first.report["skipped"][0]["id"] == "sentinelhub_L2A_20230304"
        assert "run again" in first.report["skipped"][0]["reason"]
        assert len(first.report["dates"]) == 2
        calls = len(server.process_calls)
        second = _run(server, tmp_path)
        assert server.process_calls[calls:] == ["2023-03-04"]  # only the missing day is fetched
    assert len(second.report["dates"]) == 3
    assert second.fetched_scenes == ["sentinelhub_L2A_20230304"] and len(second.cached_scenes) == 2


def test_cancel_leaves_no_stack_and_the_next_run_resumes(tmp_path):
    state = {"stop": False}

    def on_log(line: str) -> None:
        if "KiB received" in line:
            state["stop"] = True  # the user cancels once the first day is in

    with ShServer() as server:
        with pytest.raises(Cancelled):
            _run(server, tmp_path, progress=Progress(is_canceled=lambda: state["stop"], on_log=on_log))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.download"]
        assert server.process_calls == ["2023-03-04"]
        result = _run(server, tmp_path)
        assert server.process_calls == ["2023-03-04", "2023-05-13", "2023-07-22", "2023-08-01"]
        again = _run(server, tmp_path)
        assert len(server.process_calls) == 4  # a finished run fetches nothing
    assert result.cached_scenes == ["sentinelhub_L2A_20230304"]
    assert again.fetched_scenes == [] and len(again.cached_scenes) == 3


def test_debug_logging_never_shows_the_secret_or_a_token(tmp_path, caplog):
    """requests-oauthlib's debug lines print the token request's body (the client secret)."""
    with caplog.at_level(logging.DEBUG), ShServer() as server:
        server.expire_after = 1
        _run(server, tmp_path)
        tokens = [b for b in server.bodies if "client_secret" in b]
    assert len(tokens) == 2 and caplog.records  # two token requests, and debug lines were written
    assert CLIENT_SECRET not in caplog.text and "tok-" not in caplog.text


def test_wrong_or_missing_credentials_get_one_clear_line(tmp_path):
    with ShServer() as server:
        with pytest.raises(CatalogueError) as wrong:
            _run(server, tmp_path, account=OAuthClient(CLIENT_ID, "not-the-secret"))
        with pytest.raises(CatalogueError) as missing:
            _run(server, tmp_path, account=OAuthClient("", ""))
        assert not server.process_calls
    assert wrong.value.kind == missing.value.kind == "credentials"
    assert "refused the OAuth client (invalid_client)" in str(wrong.value)
    assert "authentication configuration" in str(wrong.value) and "not-the-secret" not in str(wrong.value)
    assert "needs an account" in str(missing.value)
    assert "not-the-secret" not in repr(OAuthClient(CLIENT_ID, "not-the-secret"))
    assert not (tmp_path / "stack.tif").exists()


def test_bad_input_is_refused_before_any_request(tmp_path):
    with ShServer() as server:
        with pytest.raises(CatalogueError) as large:
            _run(server, tmp_path, max_area_km2=0.5)
        with pytest.raises(CatalogueError) as backwards:
            download_sentinelhub(ACCOUNT, "L2A", EXTENT, "EPSG:32633", date(2023, 12, 31), date(2023, 1, 1),
                                 tmp_path / "stack.tif", base_url=server.url)
        with pytest.raises(CatalogueError) as none:
            _run(server, tmp_path, max_cloud=1.0)
        assert server.process_calls == []
    assert large.value.kind == "extent" and "MAX_AREA_KM2" in str(large.value)
    assert backwards.value.kind == "period"
    assert none.value.kind == "no_scenes" and "widen the period" in str(none.value)


def test_an_unreachable_service_names_the_address(tmp_path):
    with pytest.raises(CatalogueError) as down:
        download_sentinelhub(ACCOUNT, "L2A", EXTENT, "EPSG:32633", date(2023, 1, 1), date(2023, 1, 31),
                             tmp_path / "stack.tif", base_url="http://127.0.0.1:9", attempts=1, backoff=0.01)
    assert down.value.kind == "unreachable" and "127.0.0.1:9" in str(down.value)
    assert CLIENT_SECRET not in str(down.value)


def test_token_endpoints_of_the_deployments():
    assert token_url_for("https://services.sentinel-hub.com") == \
        "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token"
    assert token_url_for(CDSE_SH_URL) == CDSE_TOKEN_URL


LIVE = os.environ.get("EOLULC_NETWORK") == "1"


@pytest.mark.network
@pytest.mark.skipif(not LIVE, reason="set EOLULC_NETWORK=1 when the network is there")
def test_live_sentinel_hub(tmp_path):
    """One small real download (EOLULC_SH_CLIENT_ID / EOLULC_SH_CLIENT_SECRET, and EOLULC_SH_BASE_URL
    for another deployment such as https://sh.dataspace.copernicus.eu)."""
    account = OAuthClient(os.environ.get("EOLULC_SH_CLIENT_ID", ""), os.environ.get("EOLULC_SH_CLIENT_SECRET", ""))
    assert account, "set EOLULC_SH_CLIENT_ID and EOLULC_SH_CLIENT_SECRET for the live Sentinel Hub test"
    download_sentinelhub(account, "L1C", (14.50, 46.05, 14.52, 46.06), "EPSG:4326", date(2023, 7, 1),
                         date(2023, 7, 31), tmp_path / "s.tif", output_mask=tmp_path / "m.tif", bands=["B04", "B08"],
                         max_cloud=50, base_url=os.environ.get("EOLULC_SH_BASE_URL", "") or SH_BASE_URL)
    with open_stack(str(tmp_path / "s.tif")) as stack:
        data = stack.read()
    assert data.shape[0] >= 1 and (data > 0).mean() > 0.5

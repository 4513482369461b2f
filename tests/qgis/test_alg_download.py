"""eolulc:download through processing.run and qgis_process.bin, against the loopback STAC API and
file server (tests/stac_server.py) holding COGs written from the real L1C scenes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from auth_db import LogRecorder, basic_auth_config  # noqa: E402  (before QGIS starts)
from stac_server import EXTENT_UTM, StacServer, series_items, write_series  # noqa: E402

ALG = "eolulc:download"
EXTENT = f"{EXTENT_UTM[0]},{EXTENT_UTM[2]},{EXTENT_UTM[1]},{EXTENT_UTM[3]} [EPSG:32633]"
SECRET = "pa55-w0rd-never-shown"


@pytest.fixture(scope="module")
def served(tmp_path_factory, reference_scenes):
    root = tmp_path_factory.mktemp("cogs")
    written = write_series(root, reference_scenes, bands=("B04", "B08"))
    with StacServer(root, credentials=("bob", SECRET)) as server:
        server.items = series_items(server, written)
        yield server


def _parameters(server: StacServer, out: Path, **extra) -> dict:
    return {"EXTENT": EXTENT, "START": "2021-01-01", "END": "2023-12-31", "CATALOGUE": 4, "STAC_URL": server.url,
            "BANDS": "B04,B08", "OUTPUT": str(out / "stack.tif"), "OUTPUT_MASK": str(out / "mask.tif"),
            "OUTPUT_REPORT": str(out / "report.json"), **extra}


def test_processing_run_downloads_with_an_auth_config(run_alg, served, tmp_path):
    from eolulc.core.timestack import open_stack

    feedback = LogRecorder()
    result = run_alg(ALG, _parameters(served, tmp_path, AUTHCFG=basic_auth_config("bob", SECRET)), feedback)
    assert result["DATES"] == 3
    with open_stack(result["OUTPUT"]) as stack:
        assert stack.info.bands == ("B04", "B08") and stack.read().shape == (3, 100, 100, 2)
    with open_stack(result["OUTPUT_MASK"]) as stack:
        assert stack.read()[1, :40, :64].all()
    report = Path(result["OUTPUT_REPORT"]).read_text()
    assert json.loads(report)["skipped"][0]["reason"] == "asset(s) B08 missing from the item"
    assert SECRET not in report and not any(SECRET in line for line in feedback.lines)
    assert any("4 used (4 fetched, 0 reused)" in line for line in feedback.lines)


@pytest.mark.parametrize("change, parameter, text", [
    ({"AUTHCFG": "WRONG"}, "AUTHCFG", "refused the credentials (HTTP 401)"),
    ({}, "AUTHCFG", "refused the credentials (HTTP 401)"),
    ({"START": "2023-12-31", "END": "2023-01-01"}, "END", "the period runs backwards"),
    ({"STAC_URL": "http://127.0.0.1:9"}, "CATALOGUE", "cannot reach custom STAC API"),
    ({"MAX_AREA_KM2": 1, "EXTENT": "509000,511000,5195000,5196000 [EPSG:32633]"}, "EXTENT",
     "covers 2 km², more than the limit of 1 km²"),
    ({"START": "2019-01-01", "END": "2019-12-31"}, "EXTENT", "no usable L2A scene"),
    ({"LEVEL": 1}, "OUTPUT_MASK", "needs L2A"),
])
def test_bad_input_gets_one_clear_line(run_alg, served, tmp_path, change, parameter, text):
    if change.get("AUTHCFG") == "WRONG":
        change = {"AUTHCFG": basic_auth_config("bob", "not-the-password")}
    elif parameter == "AUTHCFG":
        pass
    else:
        change = {"AUTHCFG": basic_auth_config("bob", SECRET), **change}
    with pytest.raises(QgsProcessingException) as error:
        run_alg(ALG, _parameters(served, tmp_path, **change))
    message = str(error.value)
    assert f"({parameter})" in message and text in message, message
    assert SECRET not in message and "not-the-password" not in message
    assert not (tmp_path / "stack.tif").exists()


def test_qgis_process_downloads_then_resumes(qgis_process, tmp_path, reference_scenes):
    root = tmp_path / "cogs"
    written = write_series(root, reference_scenes, bands=("B04",))
    with StacServer(root) as server:
        server.items = series_items(server, written)
        parameters = {k: v for k, v in _parameters(server, tmp_path / "out").items() if k != "OUTPUT_MASK"}
        parameters["BANDS"] = "B04"
        code, parsed, text = qgis_process.run(ALG, parameters)
        assert code == 0, text
        assert parsed["results"]["DATES"] == 4  # B08 is not asked for: the scene lacking it is used
        first = server.requested()
        code, parsed, text = qgis_process.run(ALG, parameters)
        assert code == 0, text
        assert server.requested() == first  # the second run fetched nothing: every scene was finished
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["reused"]) == 5 and not report["fetched"]


def test_without_pystac_client_the_message_says_how_to_install_it(run_alg, served, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pystac_client", None)  # as if it were not installed
    with pytest.raises(QgsProcessingException) as error:
        run_alg(ALG, _parameters(served, tmp_path))
    # the pip name (what the user installs), not the import name
    assert "pystac-client" in str(error.value) and "Install Python dependencies" in str(error.value)
    assert not (tmp_path / "stack.tif").exists()

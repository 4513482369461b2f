"""eolulc:download with CATALOGUE Sentinel Hub through processing.run and qgis_process.bin, against
the loopback Sentinel Hub (tests/sh_server.py), the OAuth client in the QGIS authentication DB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from auth_db import MASTER, LogRecorder, basic_auth_config  # noqa: E402  (before QGIS starts)
from sh_server import CLIENT_ID, CLIENT_SECRET, ShServer  # noqa: E402

ALG = "eolulc:download"
SENTINEL_HUB = 3
EXTENT = "509000,510000,5195000,5196000 [EPSG:32633]"


def _parameters(server: ShServer, out: Path, **extra) -> dict:
    return {"EXTENT": EXTENT, "START": "2023-01-01", "END": "2023-12-31", "CATALOGUE": SENTINEL_HUB,
            "SH_BASE_URL": server.url, "LEVEL": 1, "BANDS": "B04,B08", "OUTPUT": str(out / "stack.tif"),
            "OUTPUT_MASK": str(out / "mask.tif"), "OUTPUT_REPORT": str(out / "report.json"), **extra}


def test_processing_run_downloads_l1c_with_the_services_cloud_mask(run_alg, tmp_path):

    from eolulc.core.timestack import open_stack

    feedback = LogRecorder()
    with ShServer() as server:
        server.expire_after = 2  # the token is refused after two days: a new one is fetched
        result = run_alg(ALG, _parameters(server, tmp_path, AUTHCFG=basic_auth_config(CLIENT_ID, CLIENT_SECRET)),
                         feedback)
        assert server.tokens_issued == 2
    assert result["DATES"] == 3
    with open_stack(result["OUTPUT"]) as stack:
        assert stack.info.bands == ("B04", "B08") and stack.read().shape == (3, 100, 100, 2)
    with open_stack(result["OUTPUT_MASK"]) as mask:
        values = mask.read()
        assert mask.info.bands == ("CLM",) and values[0, :50, :50].all() and not values[0, 50:, 50:].any()
        assert (values[1, :, 50:] == 255).all()  # 2023-05-13 has data only in the left half
    report = Path(result["OUTPUT_REPORT"]).read_text()
    assert json.loads(report)["catalogue"] == "Sentinel Hub"
    assert CLIENT_SECRET not in report and not any(CLIENT_SECRET in line for line in feedback.lines)
    summary = "4 scenes found, 3 used (3 fetched, 0 reused), 1 skipped; 3 dates"
    assert any(summary in line for line in feedback.lines), feedback.lines


@pytest.mark.parametrize("change, parameter, text", [
    ({"AUTHCFG": "WRONG"}, "AUTHCFG", "refused the OAuth client (invalid_client)"),
    ({}, "AUTHCFG", "Sentinel Hub needs an account"),
    ({"SH_BASE_URL": "http://127.0.0.1:9"}, "SH_BASE_URL", "cannot get a token"),
    ({"MAX_AREA_KM2": 1, "EXTENT": "509000,511000,5195000,5196000 [EPSG:32633]"}, "EXTENT",
     "covers 2 km², more than the limit of 1 km²"),
    ({"START": "2023-12-31", "END": "2023-01-01"}, "END", "the period runs backwards"),
])
def test_bad_input_gets_one_clear_line(run_alg, tmp_path, change, parameter, text):
    if change.get("AUTHCFG") == "WRONG":
        change = {"AUTHCFG": basic_auth_config(CLIENT_ID, "not-the-secret")}
    elif parameter != "AUTHCFG":
        change = {"AUTHCFG": basic_auth_config(CLIENT_ID, CLIENT_SECRET), **change}
    with ShServer() as server:
        with pytest.raises(QgsProcessingException) as error:
            run_alg(ALG, _parameters(server, tmp_path, **change))
        assert not server.process_calls
    message = str(error.value)
    assert f"({parameter})" in message and text in message, message
    assert CLIENT_SECRET not in message and "not-the-secret" not in message
    assert not (tmp_path / "stack.tif").exists()


def test_qgis_process_downloads_then_resumes_with_the_auth_db(qgis_process, tmp_path):
    """qgis_process reads the same authentication DB, unlocked by QGIS_AUTH_PASSWORD_FILE."""
    from qgis.core import QgsApplication

    authcfg = basic_auth_config(CLIENT_ID, CLIENT_SECRET)
    password_file = tmp_path / "master.txt"
    password_file.write_text(MASTER)
    env = dict(qgis_process.env, QGIS_AUTH_DB_DIR_PATH=str(Path(QgsApplication.qgisAuthDatabaseFilePath()).parent),
               QGIS_AUTH_PASSWORD_FILE=str(password_file))

    def run(parameters: dict) -> tuple[int, dict, str]:
        args = ["--json", "run", ALG, "--"] + [f"{k}={v}" for k, v in parameters.items()]
        done = subprocess.run([_binary(), *args], env=env, capture_output=True, text=True, timeout=600)
        text = done.stdout + done.stderr
        parsed = json.loads(done.stdout[done.stdout.index("{"):]) if "{" in done.stdout else {}
        return done.returncode, parsed, text

    with ShServer() as server:
        parameters = _parameters(server, tmp_path / "out", AUTHCFG=authcfg, LEVEL=0)
        code, parsed, text = run(parameters)
        assert code == 0, text
        assert parsed["results"]["DATES"] == 3
        calls = list(server.process_calls)
        code, parsed, text = run(parameters)
        assert code == 0, text
        assert server.process_calls == calls  # the second run fetched nothing: every day was finished
    assert CLIENT_SECRET not in text
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["reused"]) == 3 and not report["fetched"]


def _binary() -> str:
    from conftest import QGIS_PROCESS

    return QGIS_PROCESS


def test_without_sentinelhub_the_message_says_how_to_install_it(run_alg, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentinelhub", None)  # as if it were not installed
    with ShServer() as server:
        with pytest.raises(QgsProcessingException) as error:
            run_alg(ALG, _parameters(server, tmp_path, AUTHCFG=basic_auth_config(CLIENT_ID, CLIENT_SECRET)))
    assert "sentinelhub" in str(error.value) and "Install Python dependencies" in str(error.value)
    assert not (tmp_path / "stack.tif").exists()

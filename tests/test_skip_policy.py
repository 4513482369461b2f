"""The skip policy (tests/skip_policy.py): a skip of a test not marked ``network`` or ``gpu``
fails the pytest run, so a fresh clone cannot pass while testing less. Checked on a small test
suite run by a real pytest in a subprocess, through its exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from skip_policy import fail_on_unexpected_skips, pytest_collectreport, pytest_runtest_logreport
from skip_policy import pytest_terminal_summary


def pytest_sessionfinish(session, exitstatus):
    fail_on_unexpected_skips(session)
"""

OPTIONAL = """
import pytest


def test_runs():
    assert True


@pytest.mark.network
def test_needs_the_network():
    pytest.skip("offline")


@pytest.mark.gpu
@pytest.mark.skipif(True, reason="no GPU")
def test_needs_a_gpu():
    pass


@pytest.mark.xfail(reason="a known bug")
def test_known_bug():
    assert False
"""

PLAIN_SKIPS = """
import pytest


@pytest.fixture
def data():
    pytest.skip("data not found")


def test_in_the_test():
    pytest.skip("not ready yet")


def test_in_a_fixture(data):
    pass


@pytest.mark.skipif(True, reason="tool missing")
def test_skipif():
    pass
"""

MODULE_SKIP = """
import pytest

pytest.importorskip("no_such_module_for_eolulc_tests")


def test_never_collected():
    pass
"""


def run_suite(folder: Path, files: dict[str, str]) -> subprocess.CompletedProcess:
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    network: n\n    gpu: g\n")
    (folder / "conftest.py").write_text(CONFTEST)
    for name, text in files.items():
        (folder / name).write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(folder / "pytest.ini"),
         "--rootdir", str(folder), *files],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )


def test_optional_skips_and_xfail_pass(tmp_path: Path) -> None:
    done = run_suite(tmp_path / "optional", {"test_optional.py": OPTIONAL})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 2 skipped, 1 xfailed" in done.stdout
    assert "not marked optional" not in done.stdout


def test_any_other_skip_fails_the_run_and_is_listed(tmp_path: Path) -> None:
    done = run_suite(tmp_path / "plain", {"test_optional.py": OPTIONAL, "test_plain.py": PLAIN_SKIPS})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "skips of tests not marked optional: the run fails" in done.stdout
    for name, reason in (("test_in_the_test", "not ready yet"), ("test_in_a_fixture", "data not found"),
                         ("test_skipif", "tool missing")):
        assert f"test_plain.py::{name}: {reason}" in done.stdout
    assert "test_needs_the_network" not in done.stdout.split("not marked optional")[1]


def test_a_module_level_skip_fails_the_run(tmp_path: Path) -> None:
    done = run_suite(tmp_path / "module", {"test_optional.py": OPTIONAL, "test_module.py": MODULE_SKIP})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "test_module.py (whole module): could not import 'no_such_module_for_eolulc_tests'" in done.stdout

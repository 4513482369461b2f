"""pytest hooks that fail the run when a test skips without being marked optional.

A skip hides a feature that goes untested while the run reports success (a missing data file,
a missing tool, a forgotten "not ready yet" guard). Only tests marked with one of
:data:`OPTIONAL_MARKERS` (they need what a plain machine lacks) may skip; any other skip, at
collection or in a test or fixture, is listed at the end and turns exit status 0 into 1.
``tests/conftest.py`` imports these hooks; ``tests/test_skip_policy.py`` checks them.
"""

from __future__ import annotations

import pytest

#: Markers of the only tests that may skip (registered in pyproject.toml).
OPTIONAL_MARKERS = ("network", "gpu")

_UNEXPECTED_SKIPS: list[str] = []


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return text.removeprefix("Skipped: ")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember skips (``pytest.skip`` in a fixture or the test, ``skipif``, ``importorskip``)
    of tests not marked optional; expected failures (xfail) are not skips."""
    if report.skipped and not hasattr(report, "wasxfail") and not set(OPTIONAL_MARKERS) & set(report.keywords):
        _UNEXPECTED_SKIPS.append(f"{report.nodeid}: {_reason(report)}")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A module-level skip skips every test in the module: never optional."""
    if report.skipped:
        _UNEXPECTED_SKIPS.append(f"{report.nodeid} (whole module): {_reason(report)}")


def fail_on_unexpected_skips(session: pytest.Session) -> None:
    """Call from ``pytest_sessionfinish``: a run that would pass fails (exit status 1)."""
    if _UNEXPECTED_SKIPS and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    if _UNEXPECTED_SKIPS:
        terminalreporter.section("skips of tests not marked optional: the run fails", red=True)
        for line in _UNEXPECTED_SKIPS:
            terminalreporter.line(line, red=True)
        terminalreporter.line(f"only tests marked {' or '.join(OPTIONAL_MARKERS)} may skip: make the others run "
                              "(or fail with a message naming the fix)")

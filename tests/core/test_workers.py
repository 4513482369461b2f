"""The shared worker pool runner: a worker that dies costs only the task that killed it."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from eolulc.core.progress import Cancelled
from eolulc.core.workers import run_in_workers


def test_a_dead_worker_costs_only_the_task_that_kills_it(tmp_path):
    """``once`` SIGKILLs its worker the first time only, ``always`` every time: the tasks the broken
    pools were running run again alone, so only ``always`` is lost, and only when it ran alone."""

    def work(folder: str, task: str) -> str:
        marker = Path(folder) / "died"
        if task == "always" or (task == "once" and not marker.exists()):
            if task == "once":
                marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return task

    broken: list[str] = []
    lost: list[tuple[str, bool]] = []

    def on_lost(task: str, error: BaseException, alone: bool) -> str | None:
        lost.append((task, alone))
        return f"lost {task}" if alone else None

    tasks = ["a", "once", "b", "always", "c", "d"]
    results = list(run_in_workers(tasks, lambda pool, task: pool.submit(work, str(tmp_path), task), 2,
                                  sys.executable, on_lost, lambda: False,
                                  broken=lambda error: broken.append(type(error).__name__)))
    assert sorted(results) == ["a", "b", "c", "d", "lost always", "once"]
    assert len(broken) >= 2 and ("always", False) in lost and lost.count(("always", True)) == 1
    assert all(alone is False for task, alone in lost if task != "always")


def test_in_threads_cancel_lets_the_running_finish_then_raises():
    asked: list[bool] = []

    def canceled() -> bool:
        asked.append(True)
        return len(asked) > 2

    results = []
    with pytest.raises(Cancelled):
        for result in run_in_workers(range(5), lambda pool, task: pool.submit(int, task), 1, None,
                                     lambda *_: None, canceled, finished=lambda task, result: result + 10):
            results.append(result)
    assert results == [10, 11]


def test_other_errors_become_results_or_are_raised():
    def submit(pool, task: int):
        return pool.submit(lambda: 1 // task)

    failed = lambda task, error: type(error).__name__  # noqa: E731
    results = run_in_workers([1, 0, 2], submit, 2, None, lambda *_: None, lambda: False, failed=failed)
    assert sorted(map(str, results)) == ["0", "1", "ZeroDivisionError"]
    with pytest.raises(ZeroDivisionError):
        list(run_in_workers([0], submit, 1, None, lambda *_: None, lambda: False))

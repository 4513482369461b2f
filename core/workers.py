"""Worker processes started from inside QGIS: which Python interpreter runs them, and the
process pool that survives a worker's death.

Inside QGIS ``sys.executable`` is not a Python to start workers with (the QGIS program, or for
the embedded Python whatever ``python3`` is first on PATH); joblib's loky pools, used by the
experiments' variants and the batch pipeline's tiles, start ``sys.executable``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from .progress import Cancelled

T = TypeVar("T")
R = TypeVar("R")


def _is_python(path: str | Path) -> bool:
    name = Path(path).name.lower()
    return name.startswith("python") and not name.startswith("pythonw") and "config" not in name


def _runnable(path: str | Path) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def worker_python(executable: str | None = None, exec_prefix: str | None = None,
                  base_executable: str | None = None, platform: str | None = None,
                  version: tuple[int, int] | None = None, base_prefix: str | None = None) -> str | None:
    """The Python interpreter to start local worker processes with; ``None`` when there is none.

    Inside QGIS ``sys.executable`` is unreliable: the QGIS program on Linux and macOS
    (``qgis-bin.exe`` on Windows), or, for QGIS's embedded Python, whatever ``python3`` comes
    first on PATH (a pyenv or conda one that cannot load QGIS's modules). So a Python-named
    ``sys.executable`` or ``sys._base_executable`` is taken only when it lies inside
    ``sys.exec_prefix`` or ``sys.base_exec_prefix``; then the interpreter inside those prefixes
    (QGIS's own), then one beside the executable. Arguments default to this interpreter's
    values (they are parameters for the tests).
    """
    executable = sys.executable if executable is None else executable
    if exec_prefix is None:
        exec_prefix = sys.exec_prefix
        base_prefix = getattr(sys, "base_exec_prefix", exec_prefix) if base_prefix is None else base_prefix
    base_prefix = exec_prefix if base_prefix is None else base_prefix
    if base_executable is None:
        base_executable = getattr(sys, "_base_executable", "") or ""
    platform = sys.platform if platform is None else platform
    major, minor = version or sys.version_info[:2]
    prefixes = [Path(p) for p in dict.fromkeys((exec_prefix, base_prefix)) if p]
    candidates: list[Path] = []
    for given in (executable, base_executable):
        if given and _is_python(given) and any(p in Path(given).parents for p in prefixes):
            candidates.append(Path(given))
    if platform == "win32":
        names: tuple[str, ...] = ("python.exe", "python3.exe")
        folders = list(prefixes)
    else:
        names = (f"python{major}.{minor}", f"python{major}", "python")
        folders = [p / "bin" for p in prefixes]
    if executable and not _is_python(executable):
        here = Path(executable).parent
        folders += [here / "bin", here]
    candidates += [folder / name for folder in folders for name in names]
    return next((str(c) for c in candidates if _runnable(c)), None)


@contextlib.contextmanager
def interpreter_for_workers(python: str) -> Iterator[None]:
    """Start loky's worker processes (and its resource tracker) with ``python``. loky starts
    ``sys.executable`` on Linux and macOS and its own module attribute on Windows, and has no
    setter, so both are swapped while the pool runs and restored afterwards."""
    try:
        from joblib.externals.loky.backend import spawn
    except ImportError:
        spawn = None
    saved_executable = sys.executable
    saved_spawn = getattr(spawn, "_python_exe", None)
    if python == saved_executable:
        yield
        return
    sys.executable = python
    if spawn is not None:
        spawn._python_exe = python
    try:
        yield
    finally:
        sys.executable = saved_executable
        if spawn is not None and saved_spawn is not None:
            spawn._python_exe = saved_spawn


def _broken_pool_errors() -> tuple[type[BaseException], ...]:
    from concurrent.futures.process import BrokenProcessPool

    try:
        from joblib.externals.loky.process_executor import BrokenProcessPool as LokyBroken
    except ImportError:
        return (BrokenProcessPool,)
    return BrokenProcessPool, LokyBroken


def run_in_workers(
    tasks: Iterable[T],
    submit: Callable[[Executor, T], Future],
    workers: int,
    python: str | None,
    lost: Callable[[T, BaseException, bool], R | None],
    canceled: Callable[[], bool],
    *,
    finished: Callable[[T, R], R] | None = None,
    failed: Callable[[T, BaseException], R] | None = None,
    broken: Callable[[BaseException], None] | None = None,
    idle_timeout: float = 60,
    pools: list | None = None,
) -> Iterator[R]:
    """Results of ``tasks`` in completion order, at most ``workers`` at a time in joblib's loky
    worker processes started with ``python`` (threads of this process when ``None``, for want of
    an interpreter). ``submit(pool, task)`` starts a task; one is submitted only after
    ``canceled()`` said no: once it says yes, those running finish, then :class:`Cancelled` is raised.

    A worker process that dies (killed for memory, a crash in a library) breaks the pool and takes
    every task it was running with it, and which of them killed it is unknown: ``broken(error)`` is
    told once, then ``lost(task, error, alone)`` for each such task gives the result that reports it
    lost, or ``None`` to run it again alone in a fresh one-worker pool (``alone``: it already was),
    so that only a task that kills its worker by itself is lost; the others go on in a fresh pool.
    ``finished(task, result)`` amends a task's result before it is yielded; ``failed(task, error)``
    turns any other error of a task into its result (without it the error is raised). The process
    pools used are appended to ``pools`` for the caller to shut down (later calls reuse their
    workers); without ``pools`` the pool is shut down at the end (idle workers would otherwise keep
    ``qgis_process`` waiting for their timeout)."""
    errors = _broken_pool_errors()
    queue: deque[T] = deque(tasks)
    suspects: deque[T] = deque()
    stopped = False
    pool: Executor | None = None
    context = interpreter_for_workers(python) if python else contextlib.nullcontext()
    with context:
        try:
            while (queue or suspects) and not stopped:
                alone = bool(suspects)
                pending, size = (suspects, 1) if alone else (queue, workers)
                if python is None:
                    pool = ThreadPoolExecutor(max_workers=size)
                else:
                    from joblib.externals.loky import get_reusable_executor

                    pool = get_reusable_executor(max_workers=size, timeout=idle_timeout)
                    if pools is not None:
                        pools.append(pool)
                in_flight: dict[Future, T] = {}
                error: BaseException | None = None
                try:
                    while (pending or in_flight) and error is None:
                        while pending and len(in_flight) < size and not stopped:
                            if canceled():
                                stopped = True
                                break
                            task = pending.popleft()
                            in_flight[submit(pool, task)] = task
                        if not in_flight:
                            break
                        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                        for future in done:
                            try:
                                result, ran = future.result(), True
                            except errors as died:
                                error = died
                                continue
                            except Exception as other:
                                if failed is None:
                                    raise
                                result, ran = failed(in_flight[future], other), False
                            task = in_flight.pop(future)
                            yield finished(task, result) if ran and finished is not None else result
                finally:
                    if python is None:
                        pool.shutdown(wait=True)
                if error is None:
                    continue
                # the pool is gone: what it was running failed with it
                if broken is not None:
                    broken(error)
                for future, task in in_flight.items():
                    if future.done() and not future.cancelled() and future.exception() is None:
                        result = future.result()
                        yield result if finished is None else finished(task, result)
                        continue
                    given_up = lost(task, error, alone)
                    if given_up is None:
                        suspects.append(task)
                    else:
                        yield given_up
        finally:
            if python is not None and pools is None and pool is not None:
                pool.shutdown(wait=True)
    if stopped:
        raise Cancelled("canceled by the user")

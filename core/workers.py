"""Worker processes started from inside QGIS: how many run at once, which Python interpreter
runs them, the process pool that survives a worker's death, and the engines that run the batch
pipeline's tile tasks on it (or on a ``dask.distributed`` cluster).

One place for the execution machinery, so that the experiments' variants and the batch's tiles
size their workers by the same rule (:func:`plan_workers`) and run on the same pool
(:func:`run_in_workers`). Inside QGIS ``sys.executable`` is not a Python to start workers with
(the QGIS program, or for the embedded Python whatever ``python3`` is first on PATH); joblib's
loky pools start ``sys.executable``, hence :func:`worker_python`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from .blocks import available_memory
from .progress import Cancelled, Progress

T = TypeVar("T")
R = TypeVar("R")
#: Seconds an idle local worker process waits for the next task before it exits.
WORKER_IDLE_TIMEOUT = 60


@dataclass
class WorkerPlan:
    """How many tasks run at once, with how many threads each, and why. The fields are named for
    the experiment's variants, whose report shows :meth:`as_dict`; for the batch a task is a tile."""

    workers: int
    #: Threads per task: the CPUs shared out when several run at once, ``None`` when one runs
    #: alone (it may use every core).
    threads: int | None
    variant_mb: float
    available_mb: float | None
    cpus: int
    reason: str

    def as_dict(self) -> dict:
        return {"workers": self.workers, "threads_per_variant": self.threads, "variant_budget_mb": self.variant_mb,
                "available_mb": self.available_mb, "cpus": self.cpus, "reason": self.reason}


def plan_workers(requested: int, n_tasks: int | None, task_bytes: int, cpus: int | None = None,
                 available: int | None = None, unit: str = "variant") -> WorkerPlan:
    """Tasks at once: ``requested`` (0 = as many as the CPUs) bounded by the CPUs, the number of
    tasks (``None``: not bounded by it, e.g. the batch's tiles, which a pool reuses) and the
    available memory divided by one task's budget ``task_bytes`` (everything one worker holds,
    interpreter included); 1 runs them one after the other. ``unit`` names a task in the reason.
    The experiments' variants and the batch's tiles both use this rule."""
    cpus = max(1, cpus or os.cpu_count() or 1)
    available = available_memory() if available is None else available
    wanted = cpus if requested <= 0 else requested
    by_memory = max(1, available // task_bytes) if available else wanted
    workers = int(max(1, min(wanted, cpus, wanted if n_tasks is None else n_tasks, by_memory)))
    mb = task_bytes / 2**20
    have = None if available is None else available / 2**20
    limits = [f"{'requested' if requested > 0 else 'automatic'} {wanted}", f"{cpus} CPU(s)"]
    if n_tasks is not None:
        limits.append(f"{n_tasks} {unit}(s)")
    if available:
        limits.append(f"{have:.0f} MB available / {mb:.0f} MB per {unit} = {available // task_bytes}")
    reason = f"{workers} at once (the least of: {'; '.join(limits)})"
    return WorkerPlan(workers, max(1, cpus // workers) if workers > 1 else None, mb, have, cpus, reason)


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


# ---------------------------------------------------------------------------- the engines
#: A task of the engines: its name, the function and its arguments (the batch's tile steps).
Task = tuple[str, Callable, tuple]


def attempt(function: Callable, retries: int, name: str, *args) -> dict:
    """Run ``function(*args)``, retrying ``retries`` times; never raises (the outcome is returned)."""
    errors = []
    for number in range(1, retries + 2):
        try:
            return {"name": name, "ok": True, "result": function(*args), "attempts": number}
        except Exception as error:  # noqa: BLE001 (any failure of a tile is reported, not fatal)
            errors.append(f"{type(error).__name__}: {error}")
            last = traceback.format_exc()
    return {"name": name, "ok": False, "message": errors[-1], "attempts": len(errors), "traceback": last}


def run_tasks(tasks: Sequence[Task], executor: str, workers: int, retries: int, progress: Progress,
              client=None, python: str | None = None, pools: list | None = None) -> Iterable[dict]:
    """Outcomes of ``(name, function, args)`` tasks, in completion order. Each task is scheduled
    only after ``progress.canceled()`` said no: cancel stops scheduling new tiles (those running
    finish), then raises :class:`Cancelled`. ``python``: the interpreter of local worker
    processes; ``None`` runs the tiles in threads of this process. The process pools used are
    appended to ``pools`` (the caller shuts them down when the batch is over)."""
    canceled: list[bool] = []

    def go_on() -> bool:
        if progress.canceled():
            canceled.append(True)
            return False
        return True

    if executor == "dask":
        yield from _run_dask(tasks, client, workers, retries, go_on)
    elif workers <= 1 and python is None:
        for name, function, args in tasks:
            if not go_on():
                break
            yield attempt(function, retries, name, *args)
    else:
        yield from _run_local(tasks, workers, retries, go_on, python, pools if pools is not None else [])
    if canceled:
        raise Cancelled("canceled by the user")


def _describe_broken(error: BaseException) -> str:
    """A broken pool's error with its cause (the worker's own traceback when it sent one)."""
    text = f"{type(error).__name__}: {error}"
    lines = [line.strip() for line in str(error.__cause__ or "").splitlines() if line.strip().strip('"')]
    return f"{text}; {lines[-1]}" if lines else text


def _run_local(tasks: Sequence[Task], workers: int, retries: int, go_on: Callable[[], bool],
               python: str | None, pools: list) -> Iterator[dict]:
    """Tasks on joblib's loky process pool (threads when ``python`` is ``None``), at most
    ``workers`` at a time (:func:`run_in_workers`). When a worker process dies the pool breaks and
    every task it was running is charged one attempt; those with attempts left are then run alone
    in a fresh one-worker pool (so a tile that kills its worker cannot take the others down with
    it again), the rest in a fresh pool."""
    charged: dict[str, int] = {}

    def submit(pool: Executor, task: Task) -> Future:
        name, function, args = task
        return pool.submit(attempt, function, retries - charged.get(name, 0), name, *args)

    def finished(task: Task, outcome: dict) -> dict:
        outcome["attempts"] += charged.get(task[0], 0)
        return outcome

    def lost(task: Task, error: BaseException, alone: bool) -> dict | None:
        name = task[0]
        charged[name] = charged.get(name, 0) + 1
        if charged[name] <= retries:
            return None
        return {"name": name, "ok": False, "attempts": charged[name],
                "message": f"its worker process failed ({_describe_broken(error)})"}

    return run_in_workers(tasks, submit, workers, python, lost, lambda: not go_on(), finished=finished,
                          idle_timeout=WORKER_IDLE_TIMEOUT, pools=pools)


def _run_dask(tasks: Sequence[Task], client, workers: int, retries: int, go_on: Callable[[], bool]) -> Iterator[dict]:
    """At most ``workers`` tasks in flight on the cluster; the next is submitted when one ends.
    A task whose worker dies is moved to another worker by the scheduler itself (up to its
    ``allowed-failures``, then ``KilledWorker``, reported); a task lost otherwise (a connection
    dropped) is submitted once more."""
    from dask.distributed import as_completed

    try:
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover (distributed always has it)
        KilledWorker = ()  # noqa: N806
    import dask

    allowed = int(dask.config.get("distributed.scheduler.allowed-failures", 3))
    pending = as_completed(loop=client.loop)
    queue: deque[Task] = deque(tasks)
    lost: dict[str, int] = {}
    in_flight: dict = {}
    stopped = False

    def submit(task: Task) -> None:
        name, function, args = task
        future = client.submit(attempt, function, retries - lost.get(name, 0), name, *args,
                               key=f"eolulc-{name}-{time.time_ns()}", pure=False)
        in_flight[future.key] = task
        pending.add(future)

    while queue and len(in_flight) < workers:
        if not go_on():
            stopped = True
            break
        submit(queue.popleft())
    for future in pending:
        task = in_flight.pop(future.key)
        name = task[0]
        try:
            outcome = future.result()
            outcome["attempts"] += lost.get(name, 0)
        except KilledWorker as error:
            outcome = {"name": name, "ok": False, "attempts": allowed + 1 + lost.get(name, 0),
                       "message": f"its worker died on every try ({type(error).__name__}: {error})"}
        except Exception as error:  # noqa: BLE001 (a lost task is retried or reported, not fatal)
            lost[name] = lost.get(name, 0) + 1
            if lost[name] <= retries and not stopped:
                submit(task)
                continue
            outcome = {"name": name, "ok": False, "attempts": lost[name], "message": f"{type(error).__name__}: {error}"}
        yield outcome
        while queue and len(in_flight) < workers and not stopped:
            if not go_on():
                stopped = True
                break
            submit(queue.popleft())


@contextlib.contextmanager
def dask_client(scheduler: str | None):
    try:
        from dask.distributed import Client, default_client
    except ImportError:
        raise ValueError("running on a Dask cluster needs the Python package 'dask[distributed]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=30, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise ValueError(f"cannot reach the Dask scheduler at '{scheduler}': {error}") from None
        with client:
            yield client
    else:
        try:
            yield default_client()
        except ValueError:
            raise ValueError("give the Dask scheduler's address (tcp://host:8786)") from None

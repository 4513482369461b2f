"""Plumbing shared by the benchmark scripts: this checkout as the ``eolulc`` package, temporary
folders removed at exit, the process's memory from ``/proc/self/status`` and workers run in a fresh
interpreter that hand back a JSON line.

The scripts run as ``python bench/<name>.py``, so ``bench/`` is ``sys.path[0]`` and they import this
module as ``_common``; their worker subprocesses re-run the script the same way and find it too.
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

REPO = Path(__file__).resolve().parent.parent
#: The real test data the repository carries (see tests/data/README.md); benchmarks read it too.
TEST_DATA = REPO / "tests" / "data"


def package_dir() -> Path:
    """A temporary folder holding an ``eolulc`` symlink to this checkout (removed at exit), so
    ``eolulc.core`` imports whatever the checkout's folder is called."""
    link_dir = Path(tempfile.mkdtemp(prefix="eolulc_pkg_"))
    link = link_dir / "eolulc"
    link.symlink_to(REPO, target_is_directory=True)

    def _remove_link() -> None:
        link.unlink(missing_ok=True)
        link_dir.rmdir()

    atexit.register(_remove_link)
    return link_dir


def import_package(link_dir: Path | str | None = None) -> Path:
    """Put ``link_dir`` (a new :func:`package_dir` if ``None``) first on ``sys.path``; the folder."""
    link_dir = package_dir() if link_dir is None else Path(link_dir)
    if str(link_dir) not in sys.path:
        sys.path.insert(0, str(link_dir))
    return link_dir


def temp_dir(prefix: str, parent: Path | str | None = None, remove: bool = True) -> Path:
    """A new temporary folder (in ``parent``, the system's if ``None``), removed at exit if ``remove``."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if remove:
        atexit.register(shutil.rmtree, path, True)
    return path


def proc_status_kb(key: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmHWM``, ``VmRSS``); ``ru_maxrss`` elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss_kb() -> int:
    """Peak resident memory of this process so far, kB (``VmHWM``)."""
    return proc_status_kb("VmHWM")


def run_measured(command: Sequence[str], env: Mapping[str, str] | None = None, stdout: Any = None,
                 poll_seconds: float = 0.05) -> tuple[int, float, float]:
    """Run ``command``; its exit code, wall seconds and peak RSS in MB.

    The peak is the child's own ``VmHWM`` read while it runs, not ``wait4``'s ``ru_maxrss``: that
    one also counts the fork of the calling process before ``exec``, so a benchmark holding a
    large array reported it as the child's peak. ``VmHWM`` only grows, so the last value read
    (at most ``poll_seconds`` before the end) holds every earlier peak."""
    start = time.perf_counter()
    process = subprocess.Popen(list(command), env=env, stdout=stdout, stderr=subprocess.STDOUT)
    peak_kb = 0
    status_path = f"/proc/{process.pid}/status"
    while process.poll() is None:
        try:
            with open(status_path, encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(poll_seconds)
    return process.returncode, time.perf_counter() - start, peak_kb / 1024


def print_result(prefix: str, result: Mapping[str, Any]) -> None:
    """Hand ``result`` back to :func:`run_json` as one ``prefix``-tagged JSON line on stdout."""
    print(prefix + json.dumps(result), flush=True)


def run_json(command: Sequence[str], prefix: str, env: Mapping[str, str] | None = None,
             what: str = "worker") -> dict[str, Any]:
    """Run ``command`` to its end; the JSON of its first stdout line starting with ``prefix``."""
    done = subprocess.run(list(command), capture_output=True, text=True, env=env, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(prefix):
            return json.loads(line[len(prefix):])
    raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")

"""All-or-nothing outputs: write under temporary names, rename only when everything succeeded.

A step that fails or is canceled half-way must leave no half-written file where the user asked
for an output, and must never clobber an existing file with a broken one.

A process killed outright (SIGKILL, power cut, QGIS crashing) cannot remove its temporaries, and
they can be large (a stack of tens of MB), so every run into a folder first removes the stale
temporaries of earlier runs there (:func:`remove_stale_temporaries`), and a failed run removes
its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import time
import uuid
from pathlib import Path
from typing import Iterator, Sequence

#: A temporary whose writer cannot be asked (written on another machine, or by a version that did
#: not record its writer) is stale once nobody has written to it for this long.
UNKNOWN_WRITER_AGE_S = 24 * 3600

# ``.<stem>.part-<pid>-<host>-<random><suffix>`` and GDAL's ``.aux.xml`` beside it; the older form
# ``.<stem>.part-<random><suffix>`` (no writer recorded) is still recognised. Anything else, such
# as ``map.part-12345678.tif`` or ``.map.part-x.tif``, is not ours and is never touched.
_TEMPORARY = re.compile(
    r"\..+\.part-(?:(?P<pid>[0-9]{1,10})-(?P<host>[0-9a-f]{8})-)?[0-9a-f]{8}(?:\.[^.]+)?(?:\.aux\.xml)?")


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A hidden name in the same folder (so the final rename is atomic) with the same suffix
    (so GDAL and friends still recognise the format), naming the process that writes it (so that
    a later run can tell a dead writer's leftovers from a live writer's file)."""
    final = Path(path)
    return final.with_name(f".{final.stem}.part-{os.getpid()}-{_host_tag()}-{uuid.uuid4().hex[:8]}{final.suffix}")


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine; True where that cannot be told (keep the file)."""
    if pid <= 0:
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.OpenProcess.restype = ctypes.c_void_p
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() != 87  # ERROR_INVALID_PARAMETER: no such process
        try:
            code = ctypes.c_ulong()
            return not kernel32.GetExitCodeProcess(ctypes.c_void_p(handle), ctypes.byref(code)) or code.value == 259
        finally:
            kernel32.CloseHandle(ctypes.c_void_p(handle))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's process
        return True
    try:  # Linux: a killed process that its parent has not reaped yet is a zombie, not a writer
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _stale(match: re.Match, mtime: float, started: float) -> bool:
    pid, host = match.group("pid"), match.group("host")
    if pid is not None and host == _host_tag():
        return int(pid) != os.getpid() and not _process_alive(int(pid))
    return mtime < started - UNKNOWN_WRITER_AGE_S


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of :func:`atomic_outputs` in ``folder`` whose writer is gone; return them.

    A temporary's name records the writer's process id and machine. It is removed only when that
    process no longer runs on this machine: a live writer's file is never touched, however long
    it has not been written to (GDAL may keep blocks in memory for minutes), and a killed
    writer's file goes at the very next run. Files of this process are kept (it removes its own
    on failure). A reused process id keeps a dead writer's file until a later run: the safe side.
    A temporary from another machine (a shared folder) or without a recorded writer is removed
    only once nobody has written to it for :data:`UNKNOWN_WRITER_AGE_S`. Only names of exactly
    our pattern are considered; errors (a file gone meanwhile, or still open on Windows) are
    ignored, as cleaning up must never fail a run.
    """
    started = time.time()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or not _stale(match, entry.stat().st_mtime, started):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _remove_quietly(path: Path) -> None:
    for candidate in (path, Path(f"{path}.aux.xml")):
        with contextlib.suppress(OSError):  # FileNotFoundError, or a file Windows still holds open
            candidate.unlink()


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | os.PathLike | None]) -> Iterator[list[Path | None]]:
    """Yield a temporary path for each output path (``None`` stays ``None``).

    On normal exit every temporary file is renamed onto its final path (replacing what was
    there); on any exception, cancel included, or when an output was not written, all temporary
    files are removed and the final paths are left untouched. The output folders are first
    cleared of stale temporaries (:func:`remove_stale_temporaries`), and again after a failure.
    """
    finals = [Path(p) if p is not None else None for p in paths]
    seen: set[Path] = set()
    folders: dict[Path, None] = {}
    for final in finals:
        if final is None:
            continue
        resolved = final.resolve()
        if resolved in seen:
            raise ValueError(f"the same output file is given twice: {final}")
        seen.add(resolved)
        if not final.parent.is_dir():
            final.parent.mkdir(parents=True, exist_ok=True)
        folders[final.parent] = None
    for folder in folders:
        remove_stale_temporaries(folder)
    temps = [temporary_sibling(f) if f is not None else None for f in finals]
    pairs = [(temp, final) for temp, final in zip(temps, finals) if temp is not None and final is not None]
    moved = 0
    try:
        yield temps
        for temp, final in pairs:
            if not temp.exists():
                raise RuntimeError(f"output {final} was not written")
        for temp, final in pairs:
            os.replace(temp, final)
            moved += 1
            aux = Path(f"{temp}.aux.xml")
            if aux.exists():
                os.replace(aux, Path(f"{final}.aux.xml"))
    except BaseException:
        for temp, _ in pairs[moved:]:
            _remove_quietly(temp)
        for folder in folders:
            remove_stale_temporaries(folder)
        raise

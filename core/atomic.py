"""All-or-nothing outputs: write under temporary names, rename only when everything succeeded.

A step that fails or is canceled half-way must leave no half-written file where the user asked
for an output, and must never clobber an existing file with a broken one.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator, Sequence


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A hidden name in the same folder (so the final rename is atomic) with the same suffix
    (so GDAL and friends still recognise the format)."""
    final = Path(path)
    return final.with_name(f".{final.stem}.part-{uuid.uuid4().hex[:8]}{final.suffix}")


def _remove_quietly(path: Path) -> None:
    for candidate in (path, Path(f"{path}.aux.xml")):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | os.PathLike | None]) -> Iterator[list[Path | None]]:
    """Yield a temporary path for each output path (``None`` stays ``None``).

    On normal exit every temporary file is renamed onto its final path (replacing what was
    there); on any exception, cancel included, all temporary files are removed and the final
    paths are left untouched.
    """
    finals = [Path(p) if p is not None else None for p in paths]
    seen: set[Path] = set()
    for final in finals:
        if final is None:
            continue
        resolved = final.resolve()
        if resolved in seen:
            raise ValueError(f"the same output file is given twice: {final}")
        seen.add(resolved)
        if not final.parent.is_dir():
            final.parent.mkdir(parents=True, exist_ok=True)
    temps = [temporary_sibling(f) if f is not None else None for f in finals]
    try:
        yield temps
    except BaseException:
        for temp in temps:
            if temp is not None:
                _remove_quietly(temp)
        raise
    for temp, final in zip(temps, finals):
        if temp is None or final is None:
            continue
        if not temp.exists():
            raise RuntimeError(f"output {final} was not written")
        os.replace(temp, final)
        aux = Path(f"{temp}.aux.xml")
        if aux.exists():
            os.replace(aux, Path(f"{final}.aux.xml"))

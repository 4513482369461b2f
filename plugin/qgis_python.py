"""Which Python is QGIS's: the interpreter of the running installation, and where to find QGIS's
own when ``dependencies.py`` is run with another one (a pyenv or conda ``python3`` first on PATH).

Imports nothing from QGIS and nothing from the plugin: ``dependencies.py`` runs as a command.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

#: The dependency command (``<QGIS's python> plugin/dependencies.py status``).
COMMAND = Path(__file__).resolve().with_name("dependencies.py")


def python_executable() -> str:
    """The Python interpreter of the running installation.

    Inside QGIS ``sys.executable`` is unreliable: it may be ``qgis-bin.exe``, or, for an
    embedded Python, whatever ``python3`` comes first on PATH (a pyenv or conda one that cannot
    import qgis). The interpreter inside ``sys.exec_prefix`` is the installation's own.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if sys.platform == "win32":
        candidates = [Path(sys.exec_prefix) / name for name in ("python.exe", "python3.exe")]
    else:
        candidates = [Path(sys.exec_prefix) / "bin" / name for name in (f"python{version}", "python3", "python")]
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python") and Path(sys.exec_prefix).resolve() in exe.resolve().parents:
        candidates.insert(0, exe)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return str(exe) if exe.name.lower().startswith("python") else "python3"


def is_qgis_python() -> bool:
    """Whether this interpreter can import QGIS (looked up, not imported: cheap)."""
    try:
        return importlib.util.find_spec("qgis") is not None and importlib.util.find_spec("qgis.core") is not None
    except (ImportError, ValueError):
        return False


def qgis_python_candidates() -> list[str]:
    """Where QGIS's Python usually is on this operating system (existing files only)."""
    if sys.platform == "win32":
        patterns = [r"C:\OSGeo4W*\bin\python3.exe", r"C:\OSGeo4W*\apps\Python3*\python.exe",
                    r"C:\Program Files\QGIS *\apps\Python3*\python.exe"]
    elif sys.platform == "darwin":
        patterns = ["/Applications/QGIS*.app/Contents/MacOS/bin/python3"]
    else:
        patterns = ["/usr/bin/python3"]
    return sorted({path for pattern in patterns for path in glob.glob(pattern)})


def find_qgis_python() -> str | None:
    """The first candidate that can import qgis (checked in a child process), if any."""
    # (the same file as sys.executable may still be the answer: a venv's python links to it; the
    # child gets no PYTHONPATH or PYTHONHOME, which belong to the Python that was run instead)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    for candidate in qgis_python_candidates():
        if candidate == sys.executable:
            continue
        try:
            done = subprocess.run([candidate, "-c", "import importlib.util as u, sys; "
                                   "sys.exit(u.find_spec('qgis') is None)"], capture_output=True, timeout=30, env=env)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return candidate
    return None


QGIS_PYTHON_HELP = """\
QGIS's Python is the one that can import qgis.core:
  Linux (QGIS from the distribution's packages): /usr/bin/python3 (not a pyenv or conda python3
    that may come first on PATH; Flatpak: flatpak run --command=python3 org.qgis.qgis)
  macOS: /Applications/QGIS.app/Contents/MacOS/bin/python3 (QGIS-LTR.app for the LTR)
  Windows: python3 in the OSGeo4W Shell (Start menu, next to QGIS)
  Any: in QGIS, Plugins > EO LULC > Install Python dependencies... needs no command at all."""


def not_qgis_python_message() -> str:
    found = find_qgis_python()
    text = (f"{sys.executable} is not QGIS's Python (it cannot import qgis.core), so this is about another "
            "Python than the one QGIS runs.\n")
    if found:
        text += f'QGIS\'s Python appears to be {found}: "{found}" "{COMMAND}" status\n'
    return text + QGIS_PYTHON_HELP

"""Python packages EO LULC needs, and a painless way to install them.

QGIS comes with its own Python, and installing packages into it is the most common complaint
about classification plugins. EO LULC never touches that Python: the packages of
``requirements.txt`` that are missing are pip-installed into a folder the plugin owns, one per
Python version, which is *appended* to ``sys.path`` (what QGIS already has always wins, so GDAL
and numpy are never shadowed). numpy is pinned to the version QGIS has, so nothing pip brings in
needs another numpy.

This module imports nothing from QGIS so it also runs as a command with QGIS's Python::

    python3 plugin/dependencies.py status
    python3 plugin/dependencies.py install

(on Windows, in the OSGeo4W shell: ``python3 "%APPDATA%\\QGIS\\QGIS3\\profiles\\default\\python\\plugins\\eolulc\\plugin\\dependencies.py" install``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

PLUGIN_DIR = Path(__file__).resolve().parent.parent
REQUIREMENTS = PLUGIN_DIR / "requirements.txt"

#: pip distribution name -> module imported from it, where they differ.
IMPORT_NAMES = {"scikit-learn": "sklearn", "opencv-python-headless": "cv2"}


def deps_dir() -> Path:
    """The plugin's own package folder: ``EOLULC_DEPS_DIR``, else a per-user data folder,
    one subfolder per Python version (wheels are built for one)."""
    override = os.environ.get("EOLULC_DEPS_DIR")
    if override:
        base = Path(override)
    elif sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home())) / "EOLULC" / "python-packages"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support" / "EOLULC" / "python-packages"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "eolulc" / "python-packages"
    return base / f"py{sys.version_info.major}{sys.version_info.minor}"


def activate() -> None:
    """Append the plugin's package folder to ``sys.path`` (after everything QGIS has)."""
    folder = str(deps_dir())
    if os.path.isdir(folder) and folder not in sys.path:
        sys.path.append(folder)
        importlib.invalidate_caches()


def requirements(path: Path = REQUIREMENTS) -> list[str]:
    """The requirement lines of ``requirements.txt`` (comments dropped)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def distribution_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]


def import_name(distribution: str) -> str:
    return IMPORT_NAMES.get(distribution.lower(), distribution.replace("-", "_").lower())


def missing_modules(modules: Iterable[str]) -> list[str]:
    """Modules that cannot be imported (checked without importing them)."""
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found or sys.modules.get(module, 0) is None:
            missing.append(module)
    return missing


def missing_requirements(path: Path = REQUIREMENTS) -> list[str]:
    """Requirement lines of ``requirements.txt`` whose package is not importable."""
    return [req for req in requirements(path) if missing_modules([import_name(distribution_name(req))])]


def python_executable() -> str:
    """A Python interpreter of the running installation (inside QGIS ``sys.executable`` may be
    ``qgis`` or ``qgis-bin.exe``, which cannot run pip)."""
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python"):
        return str(exe)
    names = ["python.exe", "python3.exe"] if sys.platform == "win32" else [
        f"python{sys.version_info.major}.{sys.version_info.minor}", "python3", "python"]
    for folder in (Path(sys.exec_prefix), Path(sys.exec_prefix) / "bin", exe.parent):
        for name in names:
            if (folder / name).is_file():
                return str(folder / name)
    return "python3"


def install_command_text() -> str:
    """The exact command a user can paste to install the missing packages."""
    return f'"{python_executable()}" "{Path(__file__).resolve()}" install'


def missing_message(modules: Sequence[str]) -> str:
    """What to tell a user whose QGIS lacks ``modules``."""
    names = ", ".join(modules)
    return (
        f"EO LULC needs the Python package(s) {names}, not installed in QGIS's Python. "
        "Install them from the menu Plugins > EO LULC > Install Python dependencies..., "
        f"or run this command and restart QGIS: {install_command_text()}"
    )


def pip_command(target: Path, requirement_lines: Sequence[str], constraints: Path, extra: Sequence[str] = ()) -> list[str]:
    return [
        python_executable(), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
        "--upgrade", "--target", str(target), "-c", str(constraints), *extra, *requirement_lines,
    ]


def install(
    requirement_lines: Sequence[str] | None = None,
    target: Path | None = None,
    extra_pip_args: Sequence[str] = (),
    on_output: Callable[[str], None] | None = None,
) -> Path:
    """pip-install ``requirement_lines`` (default: the missing ones of requirements.txt) into
    ``target`` (default :func:`deps_dir`), keeping numpy at the version QGIS has. Returns the
    folder; raises ``RuntimeError`` with pip's output if pip fails."""
    target = deps_dir() if target is None else Path(target)
    lines = list(missing_requirements() if requirement_lines is None else requirement_lines)
    if not lines:
        return target
    target.mkdir(parents=True, exist_ok=True)
    pins = []
    try:
        import numpy

        pins.append(f"numpy=={numpy.__version__}")
    except ImportError:
        pass
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(pins) + "\n")
        constraints = Path(handle.name)
    try:
        command = pip_command(target, lines, constraints, extra_pip_args)
        process = subprocess.run(command, capture_output=True, text=True)
    finally:
        constraints.unlink(missing_ok=True)
    output = process.stdout + process.stderr
    if on_output is not None:
        on_output(output)
    if process.returncode != 0:
        raise RuntimeError(f"pip failed ({process.returncode}):\n{output}")
    # numpy installed as a dependency must never shadow QGIS's own
    activate()
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install or check the Python packages EO LULC needs.")
    parser.add_argument("action", choices=["status", "install", "path"])
    parser.add_argument("--target", type=Path, default=None, help="folder to install into (default: %(default)s)")
    parser.add_argument("pip_args", nargs="*", help="extra arguments for pip, after --")
    args = parser.parse_args(argv)
    if args.target is not None:
        os.environ["EOLULC_DEPS_DIR"] = str(args.target)
    activate()
    if args.action == "path":
        print(deps_dir())
        return 0
    missing = missing_requirements()
    if args.action == "status":
        print(f"package folder: {deps_dir()}")
        print("missing: " + (", ".join(missing) if missing else "nothing, all requirements are importable"))
        return 1 if missing else 0
    if not missing:
        print("All requirements are already importable; nothing to install.")
        return 0
    print(f"Installing {', '.join(missing)} into {deps_dir()} ...")
    try:
        install(missing, extra_pip_args=args.pip_args, on_output=print)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print("Done. Restart QGIS if it is running.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

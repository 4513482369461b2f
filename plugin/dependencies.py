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

(on Windows, in the OSGeo4W shell, with the plugin's path:
``python3 "%APPDATA%\\QGIS\\QGIS3\\profiles\\default\\python\\plugins\\eolulc\\plugin\\dependencies.py" install``).
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


def missing_modules(modules: Iterable[str], try_import: bool = True) -> list[str]:
    """Modules that cannot be imported. With ``try_import`` they are imported, so a package that is
    present but broken (built against another numpy, say) counts as missing; without, only
    looked up (cheap, for QGIS start-up)."""
    missing = []
    for module in modules:
        try:
            if try_import:
                importlib.import_module(module)
                found = True
            else:
                found = sys.modules.get(module, 0) is not None and importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


def missing_requirements(path: Path = REQUIREMENTS, try_import: bool = False) -> list[str]:
    """Requirement lines of ``requirements.txt`` whose package is not importable (looked up only,
    unless ``try_import``)."""
    return [
        req for req in requirements(path)
        if missing_modules([import_name(distribution_name(req))], try_import=try_import)
    ]


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


def pip_command(
    target: Path, requirement_lines: Sequence[str], constraints: Path, extra: Sequence[str] = ()
) -> list[str]:
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
    # the new packages are usable at once; appended, so QGIS's own numpy and GDAL still win
    if target == deps_dir():
        activate()
    elif str(target) not in sys.path:
        sys.path.append(str(target))
        importlib.invalidate_caches()
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install or check the Python packages EO LULC needs.")
    parser.add_argument("action", choices=["status", "install", "path"])
    parser.add_argument(
        "--target", type=Path, default=None,
        help="base folder, like EOLULC_DEPS_DIR: packages go into <folder>/py<version> (default: per-user data)",
    )
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

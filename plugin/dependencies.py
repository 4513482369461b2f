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


#: A requirement line whose comment starts with this is optional: the plugin runs without it
#: (slower), so its absence is not reported as missing and a failed install of it is no error.
OPTIONAL_MARK = "optional"


def requirements(path: Path = REQUIREMENTS, optional: bool = False) -> list[str]:
    """The required (or, with ``optional``, the optional) requirement lines of
    ``requirements.txt``, comments dropped."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        requirement, _, comment = line.partition("#")
        requirement = requirement.strip()
        if requirement and bool(re.match(rf"{OPTIONAL_MARK}\b", comment.strip().lower())) == optional:
            lines.append(requirement)
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


def missing_requirements(path: Path = REQUIREMENTS, try_import: bool = False, optional: bool = False) -> list[str]:
    """Required (or, with ``optional``, optional) requirement lines of ``requirements.txt``
    whose package is not importable (looked up only, unless ``try_import``)."""
    return [
        req for req in requirements(path, optional)
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
    requirements_path: Path = REQUIREMENTS,
    optional_lines: Sequence[str] | None = None,
) -> Path:
    """pip-install ``requirement_lines`` (default: the missing required ones of requirements.txt),
    then in a second pip run ``optional_lines`` (default: the missing optional ones when
    ``requirement_lines`` is the default) into ``target`` (default
    :func:`deps_dir`), keeping numpy at the version QGIS has. Returns the folder; raises
    ``RuntimeError`` with pip's output if pip fails for a required package. An optional package
    pip cannot install (no release for this numpy, say) is only reported in the output."""
    target = deps_dir() if target is None else Path(target)
    lines = list(missing_requirements(requirements_path) if requirement_lines is None else requirement_lines)
    if optional_lines is not None:
        optional = list(optional_lines)
    else:
        optional = missing_requirements(requirements_path, optional=True) if requirement_lines is None else []
    outputs = []
    if lines:
        returncode, output = _pip(target, lines, extra_pip_args)
        outputs.append(output)
        if returncode != 0:
            if on_output is not None:
                on_output(output)
            raise RuntimeError(f"pip failed ({returncode}):\n{output}")
    if optional:
        returncode, output = _pip(target, optional, extra_pip_args)
        outputs.append(output)
        if returncode != 0:
            outputs.append(f"The optional package(s) {', '.join(optional)} could not be installed; "
                           "EO LULC gives the same results without them, slower.")
    if on_output is not None and outputs:
        on_output("\n".join(outputs))
    # the new packages are usable at once; appended, so QGIS's own numpy and GDAL still win
    if target == deps_dir():
        activate()
    elif str(target) not in sys.path:
        sys.path.append(str(target))
        importlib.invalidate_caches()
    return target


def _pip(target: Path, lines: Sequence[str], extra_pip_args: Sequence[str]) -> tuple[int, str]:
    """One pip run into ``target`` with numpy pinned to QGIS's version: exit status and output."""
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
        process = subprocess.run(pip_command(target, lines, constraints, extra_pip_args), capture_output=True,
                                 text=True)
    finally:
        constraints.unlink(missing_ok=True)
    return process.returncode, process.stdout + process.stderr


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
    missing, optional = missing_requirements(), missing_requirements(optional=True)
    if args.action == "status":
        print(f"package folder: {deps_dir()}")
        print("missing: " + (", ".join(missing) if missing else "nothing, all requirements are importable"))
        if optional:
            print(f"optional, missing: {', '.join(optional)} (same results without, slower)")
        return 1 if missing else 0
    if not missing and not optional:
        print("All requirements are already importable; nothing to install.")
        return 0
    print(f"Installing {', '.join(missing + optional)} into {deps_dir()} ...")
    try:
        install(extra_pip_args=args.pip_args, on_output=print)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print("Done. Restart QGIS if it is running.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

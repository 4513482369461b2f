"""Python packages EO LULC needs, and a painless way to install them.

QGIS comes with its own Python, and installing packages into it is the most common complaint
about classification plugins. EO LULC never touches that Python: the distributions that are
missing are pip-installed into a folder the plugin owns, one per Python version, which is
*appended* to ``sys.path`` (what QGIS already has always wins, so GDAL and numpy are never
shadowed).

What to install is decided by pip's own resolver run against QGIS's Python as it is (its
site-packages and the plugin's folder, with numpy pinned to QGIS's version): numpy, scipy and
whatever else QGIS's Python already has at an acceptable version are reused, and only the missing
distributions are installed, each pinned, without dependencies (``--target`` alone would ignore
every installed package and install second copies of numpy and scipy).

This module imports nothing from QGIS so it also runs as a command with *QGIS's* Python (which
one that is: ``plugin/qgis_python.py``; the command says so when run with another Python)::

    <QGIS's python> plugin/dependencies.py status     # what is missing (no network)
    <QGIS's python> plugin/dependencies.py plan       # what would be installed, and its size
    <QGIS's python> plugin/dependencies.py install [--extra deep]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

if __package__:
    from .qgis_python import QGIS_PYTHON_HELP, is_qgis_python, not_qgis_python_message, python_executable
else:  # run as a command: plugin/ is sys.path[0]
    from qgis_python import QGIS_PYTHON_HELP, is_qgis_python, not_qgis_python_message, python_executable

PLUGIN_DIR = Path(__file__).resolve().parent.parent
#: ``EOLULC_REQUIREMENTS`` names another requirements file (a packager's, or a test's).
REQUIREMENTS = Path(os.environ.get("EOLULC_REQUIREMENTS") or PLUGIN_DIR / "requirements.txt")

#: module imported -> pip distribution that provides it, where the names differ.
DISTRIBUTIONS = {
    "cv2": "opencv-python-headless", "sklearn": "scikit-learn", "skimage": "scikit-image", "PIL": "pillow",
    "yaml": "PyYAML", "dateutil": "python-dateutil", "osgeo": "GDAL", "pystac_client": "pystac-client",
}
#: pip distribution (lower case) -> module imported from it, where they differ.
IMPORT_NAMES = {dist.lower(): module for module, dist in DISTRIBUTIONS.items()}


@dataclass(frozen=True)
class Extra:
    """Packages a user may add in the installer's confirmation (off by default)."""

    name: str
    label: str
    requirements: tuple[str, ...]
    modules: tuple[str, ...]
    pip_args: tuple[str, ...] = ()


#: PyTorch's CPU build: the default wheels of PyPI carry CUDA on Linux (GBs) that nobody needs.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
EXTRAS = {
    "deep": Extra("deep", "deep classifiers (TempCNN, L-TAE: PyTorch, CPU build)", ("torch>=2.1",), ("torch",),
                  ("--index-url", TORCH_CPU_INDEX)),  # that index has torch's dependencies too
}


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


#: A requirement line whose comment starts with this is optional: the plugin runs without it (its
#: comment says what it adds: speed, or one algorithm), so its absence is not reported as missing
#: and a failed install of it is no error.
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


def optional_purposes(path: Path = REQUIREMENTS) -> dict[str, str]:
    """What each optional requirement adds, from its comment ("optional: <purpose>"), by
    distribution name."""
    purposes = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        requirement, _, comment = line.partition("#")
        match = re.match(rf"{OPTIONAL_MARK}\b:?\s*(.*)", comment.strip(), flags=re.IGNORECASE)
        if requirement.strip() and match:
            purposes[distribution_name(requirement.strip())] = match.group(1).strip()
    return purposes


def describe_optional(requirement_lines: Sequence[str], path: Path = REQUIREMENTS) -> str:
    """``numba (compiles the hottest loops ...); pystac-client (searches STAC catalogues ...)``."""
    purposes = optional_purposes(path)
    names = [distribution_name(line) for line in requirement_lines]
    return "; ".join(f"{name} ({purposes[name]})" if purposes.get(name) else name for name in names)


def distribution_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def import_name(distribution: str) -> str:
    return IMPORT_NAMES.get(distribution.lower(), distribution.replace("-", "_").lower())


def pip_name(module: str) -> str:
    """The pip distribution to install for an importable ``module`` (``cv2`` ->
    ``opencv-python-headless``): from :data:`DISTRIBUTIONS`, else the top-level name."""
    top = module.split(".")[0]
    return DISTRIBUTIONS.get(top, top.replace("_", "-"))


def missing_modules(modules: Iterable[str], try_import: bool = True) -> list[str]:
    """Modules that cannot be imported. With ``try_import`` they are imported, so a package that is
    present but broken (built against another numpy, say) counts as missing; without, only
    looked up (cheap, for QGIS start-up). The plugin's folder is activated first, so packages
    installed since QGIS started (from the command line) are found without a restart."""
    activate()
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


def missing_extras() -> list[Extra]:
    """The extras whose modules are not importable."""
    return [extra for extra in EXTRAS.values() if missing_modules(extra.modules, try_import=False)]


def install_command_text() -> str:
    """The exact command a user can paste to install the missing packages."""
    return f'"{python_executable()}" "{Path(__file__).resolve()}" install'


def missing_message(modules: Sequence[str]) -> str:
    """What to tell a user whose QGIS lacks ``modules``: the pip packages to install (the module
    name only where it differs), where to click, and the command. No restart is needed: the
    algorithms look for the plugin's package folder each time they run."""
    names = ", ".join(
        pip_name(m) if canonical(pip_name(m)) == canonical(m) else f"{pip_name(m)} (module {m})" for m in modules
    )
    return (
        f"EO LULC needs the Python package(s) {names}, not installed in QGIS's Python. "
        "Install them from the menu Plugins > EO LULC > Install Python dependencies... (no restart needed), "
        f"or run this command: {install_command_text()}"
    )


# ---------------------------------------------------------------- what to install
@dataclass(frozen=True)
class Package:
    """One distribution pip's resolver says must be installed."""

    name: str
    version: str
    url: str = ""
    size: int | None = None  # bytes to download; None when the index did not say


@dataclass
class Plan:
    """What one group of requirements (required, optional or an extra) needs installed."""

    label: str
    required: bool = True
    packages: list[Package] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # in QGIS's Python at another version: reused, not duplicated
    pip_args: tuple[str, ...] = ()
    error: str = ""  # an optional group pip could not resolve (no release for this Python, no network)

    @property
    def download_bytes(self) -> int:
        return sum(p.size or 0 for p in self.packages)

    def summary(self) -> str:
        """``"14 packages, 96.3 MB to download"`` (sizes the index did not give are counted apart)."""
        if self.error:
            return "cannot be installed here"
        unknown = sum(p.size is None for p in self.packages)
        text = f"{len(self.packages)} package{'s' * (len(self.packages) != 1)}, {megabytes(self.download_bytes)}"
        return text + " to download" + (f" (+{unknown} of unknown size)" if unknown else "")


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


#: Runs pip with the running interpreter's folders appended to sys.path (after the child's own,
#: as QGIS appends the plugin's folder), so pip counts what they hold as installed.
_PIP_WITH_PATHS = (
    "import json, runpy, sys; sys.path.extend(p for p in json.loads(sys.argv[1]) if p not in sys.path); "
    "sys.argv = ['pip'] + sys.argv[2:]; runpy.run_module('pip', run_name='__main__', alter_sys=True)"
)


def _visible_paths(target: Path) -> list[str]:
    return [p for p in sys.path if p and os.path.isdir(p)] + [str(target)]


def installed_elsewhere(target: Path) -> dict[str, str]:
    """Distributions QGIS's Python has outside the plugin's folder: canonical name -> version.
    A copy in the plugin's folder (appended to sys.path) could never replace them."""
    paths = [p for p in _visible_paths(target)[:-1] if Path(p).resolve() != Path(target).resolve()]
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=paths):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonical(name), dist.version)
    return found


def _constraints_text() -> str:
    """numpy pinned to QGIS's: GDAL and QGIS are built against it, so nothing may need another."""
    try:
        return f"numpy=={importlib.metadata.version('numpy')}\n"
    except importlib.metadata.PackageNotFoundError:
        return ""


def plan(
    requirement_lines: Sequence[str], label: str = "required", required: bool = True,
    pip_args: Sequence[str] = (), target: Path | None = None, sizes: bool = True,
) -> Plan:
    """Resolve ``requirement_lines`` with pip (``--dry-run --report``) against QGIS's Python and the
    plugin's folder: the distributions to install, each with its download size (asked from the
    index with HEAD requests) unless ``sizes`` is off. A required group that pip cannot resolve
    raises ``RuntimeError`` with pip's output; an optional one comes back with ``error`` set."""
    target = deps_dir() if target is None else Path(target)
    result = Plan(label, required, pip_args=tuple(pip_args))
    if not requirement_lines:
        return result
    with tempfile.TemporaryDirectory(prefix="eolulc-pip-") as tmp:
        report, constraints = Path(tmp) / "report.json", Path(tmp) / "constraints.txt"
        constraints.write_text(_constraints_text(), encoding="utf-8")
        command = [
            python_executable(), "-c", _PIP_WITH_PATHS, json.dumps(_visible_paths(target)), "install", "--dry-run",
            "--quiet", "--report", str(report), "--disable-pip-version-check", "--no-input", "-c", str(constraints),
            *pip_args, *requirement_lines,
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not report.is_file():
            result.error = f"pip could not resolve {', '.join(requirement_lines)} ({done.returncode}):\n" + (
                done.stdout + done.stderr)
            if required:
                raise RuntimeError(result.error)
            return result
        items = json.loads(report.read_text(encoding="utf-8")).get("install", [])
    elsewhere = installed_elsewhere(target)
    for item in items:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if canonical(name) in elsewhere:
            result.kept.append(f"{name} {elsewhere[canonical(name)]} (pip asked for {version})")
        else:
            result.packages.append(Package(name, version, item.get("download_info", {}).get("url", "")))
    cuda = [p.name for p in result.packages if canonical(p.name).startswith("nvidia-")]
    if cuda:  # PyPI's torch for Linux: GBs of CUDA libraries the CPU-only classifiers never use
        result.error, result.packages = f"pip chose a CUDA build (it would bring {', '.join(cuda)})", []
        if required:
            raise RuntimeError(result.error)
        return result
    if sizes:
        result.packages = [Package(p.name, p.version, p.url, size) for p, size in
                           zip(result.packages, download_sizes([p.url for p in result.packages]))]
    return result


def download_sizes(urls: Sequence[str]) -> list[int | None]:
    """Bytes behind each URL: a local file's size, or an HTTP HEAD's Content-Length (None when
    the server does not say or cannot be reached)."""

    def size(url: str) -> int | None:
        parsed = urllib.parse.urlparse(url)
        try:
            if parsed.scheme == "file":
                return os.path.getsize(urllib.request.url2pathname(parsed.path))
            if parsed.scheme in ("http", "https"):
                request = urllib.request.Request(url.split("#")[0], method="HEAD")
                with urllib.request.urlopen(request, timeout=20) as response:
                    length = response.headers.get("Content-Length")
                    return int(length) if length else None
        except (OSError, ValueError):
            return None
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(size, urls))


def plans(
    requirements_path: Path = REQUIREMENTS, extras: Iterable[str] = (), pip_args: Sequence[str] = (),
    target: Path | None = None, sizes: bool = True,
) -> list[Plan]:
    """Plans for the missing required lines, the missing optional ones and each chosen extra
    that is not installed yet (in that order; empty groups left out)."""
    groups = [("required", True, missing_requirements(requirements_path), tuple(pip_args)),
              ("optional (faster)", False, missing_requirements(requirements_path, optional=True), tuple(pip_args))]
    for extra in missing_extras():
        if extra.name in extras:
            groups.append((extra.label, False, list(extra.requirements), (*extra.pip_args, *pip_args)))
    return [plan(lines, label, required, args, target, sizes) for label, required, lines, args in groups if lines]


def install_plans(
    to_install: Sequence[Plan], target: Path | None = None, on_output: Callable[[str], None] | None = None,
) -> Path:
    """pip-install each plan's packages, pinned and without dependencies (the plan already has
    them), into ``target`` (default :func:`deps_dir`), then make them importable at once.
    Raises ``RuntimeError`` with pip's output when a required group fails; a failed optional
    group is only reported."""
    target = deps_dir() if target is None else Path(target)
    outputs = []
    for group in to_install:
        if group.kept:
            outputs.append(f"Reused from QGIS's Python, not installed again: {', '.join(group.kept)}")
        if group.error:
            outputs.append(f"The {group.label} packages could not be installed; EO LULC works without them.\n"
                           + group.error)
            continue
        if not group.packages:
            continue
        target.mkdir(parents=True, exist_ok=True)
        command = [python_executable(), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                   "--no-deps", "--upgrade", "--target", str(target), *group.pip_args,
                   *(f"{p.name}=={p.version}" for p in group.packages)]
        done = subprocess.run(command, capture_output=True, text=True)
        outputs.append(done.stdout + done.stderr)
        if done.returncode != 0:
            if group.required:
                if on_output is not None:
                    on_output("\n".join(outputs))
                raise RuntimeError(f"pip failed ({done.returncode}):\n{done.stdout + done.stderr}")
            outputs.append(f"The {group.label} packages could not be installed; EO LULC works without them, "
                           f"missing only what they add: {describe_optional([p.name for p in group.packages])}.")
    if on_output is not None and outputs:
        on_output("\n".join(outputs))
    # the new packages are usable at once; appended, so QGIS's own numpy and GDAL still win
    if target == deps_dir():
        activate()
    elif str(target) not in sys.path:
        sys.path.append(str(target))
        importlib.invalidate_caches()
    return target


def install(
    requirement_lines: Sequence[str] | None = None,
    target: Path | None = None,
    extra_pip_args: Sequence[str] = (),
    on_output: Callable[[str], None] | None = None,
    requirements_path: Path = REQUIREMENTS,
    optional_lines: Sequence[str] | None = None,
    extras: Iterable[str] = (),
) -> Path:
    """Plan and install ``requirement_lines`` (default: the missing required ones of
    requirements.txt), then ``optional_lines`` (default: the missing optional ones when
    ``requirement_lines`` is the default) and the chosen ``extras``. Returns the folder."""
    if requirement_lines is None and optional_lines is None:
        groups = plans(requirements_path, extras, extra_pip_args, target)
    else:
        lines = missing_requirements(requirements_path) if requirement_lines is None else list(requirement_lines)
        groups = [plan(lines, "required", True, extra_pip_args, target),
                  plan(list(optional_lines or ()), "optional (faster)", False, extra_pip_args, target)]
    return install_plans(groups, target, on_output)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install or check the Python packages EO LULC needs, with "
                                     "QGIS's Python.\n\n" + QGIS_PYTHON_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["status", "plan", "install", "path"])
    parser.add_argument(
        "--target", type=Path, default=None,
        help="base folder, like EOLULC_DEPS_DIR: packages go into <folder>/py<version> (default: per-user data)",
    )
    parser.add_argument("--extra", action="append", default=[], choices=sorted(EXTRAS),
                        help="also install an extra: " + "; ".join(f"{e.name}: {e.label}" for e in EXTRAS.values()))
    parser.add_argument("--json", action="store_true", help="plan: print the plans as JSON")
    parser.add_argument("--without-qgis", action="store_true",
                        help="install for a Python that is not QGIS's (a worker of the batch pipeline)")
    parser.add_argument("pip_args", nargs="*", help="extra arguments for pip, after --")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)  # (argparse mixes positionals around options)
    args = parser.parse_args(argv[:split])
    args.pip_args = argv[split + 1:]
    if args.target is not None:
        os.environ["EOLULC_DEPS_DIR"] = str(args.target)
    activate()
    if args.action == "path":
        print(deps_dir())
        return 0
    in_qgis = is_qgis_python()
    if not in_qgis:
        print(not_qgis_python_message(), file=sys.stderr)
        if args.action == "install" and not args.without_qgis:
            print("Nothing installed (use --without-qgis to install for this Python anyway).", file=sys.stderr)
            return 2
    missing, optional = missing_requirements(), missing_requirements(optional=True)
    if args.action == "status":
        print(f"python: {sys.executable}" + ("" if in_qgis else " (NOT QGIS's Python)"))
        print(f"package folder: {deps_dir()}")
        print("missing: " + (", ".join(missing) if missing else "nothing, all requirements are importable"))
        if optional:
            print(f"optional, missing: {describe_optional(optional)}")
        for extra in missing_extras():
            print(f"extra {extra.name} not installed: {extra.label} (install --extra {extra.name})")
        return 1 if missing else (0 if in_qgis else 2)
    try:
        groups = plans(extras=args.extra, pip_args=args.pip_args)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    if args.action == "plan" and args.json:
        print(json.dumps([{"label": g.label, "required": g.required, "error": g.error, "kept": g.kept,
                           "packages": [p.__dict__ for p in g.packages]} for g in groups], indent=1))
        return 0
    if not any(g.packages for g in groups):
        print("All requirements are already importable; nothing to install.")
        return 0
    for group in groups:
        print(f"{group.label}: {group.summary()}")
        print("  " + ", ".join(f"{p.name} {p.version}" for p in group.packages))
        if group.kept:
            print("  reused from this Python, not installed again: " + ", ".join(group.kept))
    if args.action == "plan":
        return 0
    print(f"Installing into {deps_dir()} ...")
    try:
        install_plans(groups, on_output=print)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print("Done. A running QGIS finds the packages the next time an algorithm runs (no restart needed).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

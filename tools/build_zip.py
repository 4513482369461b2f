"""Build the zip that QGIS's "Plugins > Manage and Install Plugins > Install from ZIP" takes.

The zip holds one top folder, ``eolulc/`` (QGIS names the installed plugin folder after it), with
only what the plugin needs at run time. Top-level entries are listed explicitly so that a new
development folder (tests, benchmarks, CI, build outputs) can never leak into a release; inside
them, caches and editor droppings are excluded by pattern. Entries are sorted and time-stamped
with a fixed date, so the same tree always gives the same bytes.

Usage, from the repository root, with any Python 3.9+::

    python3 tools/build_zip.py                     # -> dist/eolulc-<version>.zip
    python3 tools/build_zip.py --output /tmp/out   # -> /tmp/out/eolulc-<version>.zip
    python3 tools/build_zip.py --output my.zip     # -> my.zip
"""

from __future__ import annotations

import argparse
import configparser
import fnmatch
import os
import sys
import zipfile
from pathlib import Path
from typing import Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "eolulc"

#: Top-level entries a working plugin cannot do without (the build fails if one is missing).
REQUIRED = ("__init__.py", "metadata.txt", "LICENSE", "requirements.txt", "core", "plugin", "processing", "resources")
#: Top-level entries shipped when they exist.
OPTIONAL = ("README.md", "CHANGELOG.md", "docs", "i18n")
#: Names excluded at any depth inside the included entries.
EXCLUDED = (
    "__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".ruff_cache", ".mypy_cache", "tests",
    ".git", ".git*", ".DS_Store", "Thumbs.db", "*~", "*.swp", "*.orig", "*.rej", "*.aux.xml",
)
#: 1980-01-01, the earliest time a zip can hold: same tree, same bytes.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def plugin_version(repo: Path = REPO) -> str:
    """``version`` of ``metadata.txt`` (raw parser: the free text may hold ``%``)."""
    parser = configparser.RawConfigParser()
    parser.read(repo / "metadata.txt", encoding="utf-8")
    version = parser.get("general", "version", fallback="").strip()
    if not version:
        raise ValueError(f"no [general] version in {repo / 'metadata.txt'}")
    return version


def is_excluded(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDED)


def plugin_files(repo: Path = REPO) -> Iterator[tuple[Path, str]]:
    """(file on disk, path inside the zip) of everything shipped, sorted by zip path."""
    missing = [name for name in REQUIRED if not (repo / name).exists()]
    if missing:
        raise FileNotFoundError(f"missing from {repo}: {', '.join(missing)}")
    found: list[tuple[Path, str]] = []
    for name in REQUIRED + OPTIONAL:
        top = repo / name
        if not top.exists():
            continue
        if top.is_file():
            found.append((top, name))
            continue
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not is_excluded(d)]
            for file in files:
                path = Path(folder) / file
                if not is_excluded(file) and path.is_file():
                    found.append((path, path.relative_to(repo).as_posix()))
    yield from sorted(found, key=lambda item: item[1])


def _entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    info.external_attr = mode << 16
    info.create_system = 3  # unix, so the modes are honoured when unpacked
    return info


def build(output: Path, repo: Path = REPO) -> Path:
    """Write the plugin zip to ``output`` (written aside, then renamed: never a half zip)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.part")
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            folders: set[str] = set()
            for path, relative in plugin_files(repo):
                parts = f"{PLUGIN_NAME}/{relative}".split("/")
                for depth in range(1, len(parts)):
                    folder = "/".join(parts[:depth]) + "/"
                    if folder not in folders:
                        folders.add(folder)
                        archive.writestr(_entry(folder, 0o40755), b"")
                info = _entry("/".join(parts), 0o100644)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
        os.replace(temporary, output)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return output


def default_name(repo: Path = REPO) -> str:
    return f"{PLUGIN_NAME}-{plugin_version(repo)}.zip"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the EO LULC plugin zip for QGIS's 'Install from ZIP'.")
    parser.add_argument(
        "--output", type=Path, default=None,
        help="zip file (ending in .zip) or folder to write eolulc-<version>.zip into (default: dist/)",
    )
    args = parser.parse_args(argv)
    output = args.output if args.output is not None else REPO / "dist"
    try:
        if output.suffix.lower() != ".zip":
            output = output / default_name()
        print(build(output.resolve()))
    except (OSError, ValueError) as error:
        print(f"build_zip: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

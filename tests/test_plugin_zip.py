"""The release zip (tools/build_zip.py): what is inside, and that QGIS loads the plugin from it
exactly as "Install from ZIP" leaves it, with nothing pointing at the repository."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from conftest import PLUGIN_NAME, QGIS_PROCESS, REPO, qgis_process_env

BUILD_ZIP = REPO / "tools" / "build_zip.py"
REQUIRED_FILES = (
    "metadata.txt", "__init__.py", "LICENSE", "requirements.txt",
    "plugin/__init__.py", "plugin/dependencies.py", "plugin/plugin.py",
    "processing/__init__.py", "processing/base.py", "processing/provider.py",
    "core/__init__.py", "resources/icons/eolulc.svg",
)
#: Path components that must never appear in the zip (dev folders, caches, VCS).
FORBIDDEN_PARTS = {
    "tests", "bench", "tools", ".ci", ".venv", "dist", "__pycache__", ".pytest_cache", ".ruff_cache",
    ".git", ".gitignore", "pyproject.toml", "requirements-dev.txt", "notebooks",
}


def load_build_zip() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_zip", BUILD_ZIP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_clean(names: list[str]) -> None:
    for name in names:
        parts = name.rstrip("/").split("/")
        assert parts[0] == PLUGIN_NAME, name
        assert not FORBIDDEN_PARTS & set(parts), name
        assert not name.endswith((".pyc", ".pyo", ".aux.xml")), name


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    """The zip of this repository, built by the command users run."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, str(BUILD_ZIP), "--output", str(out)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.parent == out.resolve()
    return path


def test_zip_name_and_version(plugin_zip: Path) -> None:
    version = load_build_zip().plugin_version()
    assert plugin_zip.name == f"eolulc-{version}.zip"
    with zipfile.ZipFile(plugin_zip) as archive:
        metadata = archive.read(f"{PLUGIN_NAME}/metadata.txt").decode("utf-8")
    assert f"version={version}" in metadata


def test_zip_holds_the_plugin_and_nothing_else(plugin_zip: Path) -> None:
    with zipfile.ZipFile(plugin_zip) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
    assert names == sorted(names)
    assert_clean(names)
    # the tests and their real data (tests/data, about 12 MB) stay out of the release
    assert not [name for name in names if name.startswith(f"{PLUGIN_NAME}/tests/")]
    # nor does the demo's synthetic scene generator (only the demo, tests and benchmarks use it)
    assert not [name for name in names if name.startswith(f"{PLUGIN_NAME}/demo/") or "synthetic" in name]
    data_files = {path.name for path in (REPO / "tests" / "data").rglob("*") if path.is_file()} - {"README.md"}
    assert {"REFERENCE_SCENES.npy", "NDVI.npy", "LULC.gpkg"} <= data_files
    assert not [name for name in names if name.rsplit("/", 1)[-1] in data_files]
    for required in REQUIRED_FILES:
        assert f"{PLUGIN_NAME}/{required}" in names
    assert (f"{PLUGIN_NAME}/README.md" in names) == (REPO / "README.md").is_file()
    # every runtime module of the repository ships
    for folder in ("core", "plugin", "processing"):
        for module in (REPO / folder).rglob("*.py"):
            relative = module.relative_to(REPO)
            if "__pycache__" not in relative.parts and "tests" not in relative.parts:
                assert f"{PLUGIN_NAME}/{relative.as_posix()}" in names


def test_zip_is_reproducible(plugin_zip: Path, tmp_path: Path) -> None:
    again = load_build_zip().build(tmp_path / "again.zip")
    assert again.read_bytes() == plugin_zip.read_bytes()


def test_dev_files_never_leak_in(tmp_path: Path) -> None:
    """A tree with every kind of junk planted: only the runtime files come out."""
    tree = tmp_path / "repo"
    for name in ("metadata.txt", "__init__.py", "LICENSE", "requirements.txt", "README.md"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("x\n")
    (tree / "metadata.txt").write_text("[general]\nname=EO LULC\nversion=9.9\nabout=100% honest\n")
    wanted = ["core/a.py", "plugin/b.py", "processing/c.py", "resources/icons/i.svg", "resources/help/h.html"]
    junk = [
        "core/__pycache__/a.cpython-311.pyc", "core/stale.pyc", "processing/.ruff_cache/x",
        "plugin/.pytest_cache/v/x", "resources/map.tif.aux.xml", "resources/.gitignore", "core/tests/test_a.py",
        "tests/test_x.py", "bench/b.py", "tools/build_zip.py", ".ci/run", ".venv/bin/python", "dist/old.zip",
        ".git/HEAD", ".gitignore", "pyproject.toml", "requirements-dev.txt", "notebooks/play.ipynb",
        "plugin/b.py~", "core/.a.py.swp", "demo/synthetic.py",
    ]
    for name in wanted + junk:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("x\n")
    build_zip = load_build_zip()
    with zipfile.ZipFile(build_zip.build(tmp_path / "out.zip", repo=tree)) as archive:
        files = sorted(name for name in archive.namelist() if not name.endswith("/"))
    expected = ["LICENSE", "README.md", "__init__.py", "metadata.txt", "requirements.txt", *wanted]
    assert files == sorted(f"{PLUGIN_NAME}/{name}" for name in expected)
    assert build_zip.plugin_version(tree) == "9.9"

    (tree / "LICENSE").unlink()
    with pytest.raises(FileNotFoundError, match="LICENSE"):
        build_zip.build(tmp_path / "broken.zip", repo=tree)
    assert not (tmp_path / "broken.zip").exists()


@pytest.mark.cli
def test_qgis_loads_the_plugin_from_the_unpacked_zip(plugin_zip: Path, tmp_path: Path) -> None:
    """Unpacked where "Install from ZIP" puts it, enabled in the profile, no QGIS_PLUGINPATH."""
    if not Path(QGIS_PROCESS).exists():
        pytest.fail(f"{QGIS_PROCESS} not found: run tools/setup.sh")
    env = qgis_process_env(tmp_path / "unused", tmp_path)
    env.pop("QGIS_PLUGINPATH", None)
    plugins = Path(env["QGIS_CUSTOM_CONFIG_PATH"]) / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(plugin_zip) as archive:
        archive.extractall(plugins)
    assert (plugins / PLUGIN_NAME / "metadata.txt").is_file()
    assert not any(REPO == Path(p).resolve() for p in env["PYTHONPATH"].split(":") if p)

    def qgis(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=120)

    listed = qgis("list")
    assert listed.returncode == 0, listed.stderr
    for algorithm in ("eolulc:importeopatch", "eolulc:buildtimestack"):
        assert algorithm in listed.stdout, listed.stdout[-2000:] + listed.stderr[-2000:]
    loaded = qgis("plugins")
    assert f"* {PLUGIN_NAME}" in loaded.stdout, loaded.stdout


def test_kernel_warm_up_runs_from_the_unpacked_zip(plugin_zip: Path, tmp_path: Path) -> None:
    """The warm-up the desktop plugin starts uses only what the zip ships (no demo generator)."""
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(plugin_zip) as archive:
        archive.extractall(plugins)
    cache = tmp_path / "numba"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"NUMBA_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, str(plugins / PLUGIN_NAME / "core" / "warmup.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    markers = list(cache.glob("*.warm"))
    assert len(markers) == 1 and markers[0].read_text() == "warmed\n"

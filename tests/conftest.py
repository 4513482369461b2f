"""Shared test set-up: the plugin imported as the package ``eolulc``, real QGIS in-process,
``qgis_process.bin`` with the plugin enabled in a throw-away profile, and the real data that the
repository carries in ``tests/data`` (see its README). A missing data file fails the tests that
need it; so does any skip of a test not marked optional (``network``, ``gpu``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "tools"))
from qgis_env import PLUGIN_NAME, throwaway_profile_env  # noqa: E402
from skip_policy import (  # noqa: E402, F401  (hooks: pytest finds them here)
    fail_on_unexpected_skips,
    pytest_collectreport,
    pytest_runtest_logreport,
    pytest_terminal_summary,
)

#: The real test data, inside the repository (never outside it: a fresh clone tests everything).
TEST_DATA = REPO / "tests" / "data"

# The plugin is imported as a package (never put the plugin folder itself on sys.path: its
# processing/ would shadow QGIS's processing). A symlink gives it the installed folder name.
# ``python -m pytest`` puts the current folder first on sys.path; from the repository root that
# would make the plugin's processing/ shadow QGIS's own processing package.
sys.path[:] = [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != REPO]
_PLUGINS_DIR = Path(tempfile.mkdtemp(prefix="eolulc-plugins-"))
(_PLUGINS_DIR / PLUGIN_NAME).symlink_to(REPO, target_is_directory=True)
sys.path.insert(0, str(_PLUGINS_DIR))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_PLUGINS_DIR, ignore_errors=True)
    fail_on_unexpected_skips(session)


@pytest.fixture(scope="session")
def plugins_dir() -> Path:
    """Folder holding the plugin as ``eolulc`` (what QGIS_PLUGINPATH points at)."""
    return _PLUGINS_DIR


def data_file(name: str) -> Path:
    """``tests/data/<name>``; fails (never skips) when the repository lacks it."""
    path = TEST_DATA / name
    if not path.exists():
        pytest.fail(f"test data {path} is missing: the repository carries it in tests/data (see its README); "
                    "restore it with git checkout -- tests/data")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The repository's real test data folder (``tests/data``)."""
    data_file("TestEOPatch")
    data_file("REFERENCE_SCENES.npy")
    return TEST_DATA


@pytest.fixture(scope="session")
def eopatch_dir(data_dir: Path) -> Path:
    return data_dir / "TestEOPatch"


@pytest.fixture(scope="session")
def reference_scenes(data_dir: Path):
    import numpy as np

    return np.load(data_dir / "REFERENCE_SCENES.npy")


@pytest.fixture
def numba_kernels():
    """The compiled kernels. numba is optional for users but a test requirement (requirements.txt,
    installed by tools/setup.sh): without it the kernel tests fail instead of passing unchecked."""
    from eolulc.core.compiled import kernels

    module = kernels()
    if module is None:
        pytest.fail("numba cannot be imported: run tools/setup.sh (requirements.txt installs it)")
    return module


#: TestEOPatch frames that REFERENCE_SCENES.npy holds, in its order (see tests/data/README.md).
SCENE_FRAMES = (2, 1, 4, 3, 0)


def write_scene_stack(path: Path, eopatch: Path, scenes, digital_numbers: bool = False) -> Path:
    """The real L1C scenes as a 5-date, 13-band time stack on the TestEOPatch grid; as float32
    reflectance or as uint16 digital numbers with scale metadata."""
    import numpy as np

    from eolulc.core.eopatch import read_eopatch
    from eolulc.core.sentinel2 import L1C_BANDS
    from eolulc.core.timestack import StackInfo, StackWriter

    patch = read_eopatch(eopatch)
    dates = tuple(patch.timestamps[f] for f in SCENE_FRAMES)
    if digital_numbers:
        data = np.round(scenes.astype(np.float64) * 10000).astype(np.uint16)
        info = StackInfo(patch.grid(101, 100), dates, L1C_BANDS, "uint16", nodata=0, scales=(1e-4,) * 13)
    else:
        data = scenes
        info = StackInfo(patch.grid(101, 100), dates, L1C_BANDS, "float32", nodata=float("nan"))
    with StackWriter(str(path), info) as writer:
        writer.write(data)
    return path


@pytest.fixture(scope="session")
def scene_stack(tmp_path_factory, eopatch_dir, reference_scenes) -> Path:
    """REFERENCE_SCENES.npy as a float32 reflectance time stack."""
    return write_scene_stack(tmp_path_factory.mktemp("scenes") / "l1c.tif", eopatch_dir, reference_scenes)


@pytest.fixture(scope="session")
def scene_stack_dn(tmp_path_factory, eopatch_dir, reference_scenes) -> Path:
    """REFERENCE_SCENES.npy as uint16 digital numbers with scale 1e-4 in the metadata."""
    return write_scene_stack(tmp_path_factory.mktemp("scenes") / "l1c_dn.tif", eopatch_dir, reference_scenes, True)


@pytest.fixture(scope="session")
def scene_reference(scene_stack, eopatch_dir):
    """LULC.gpkg's polygons rasterized on the scene stack's grid (both EPSG:32633)."""
    from osgeo import ogr

    from eolulc.core.reference import rasterize_polygons
    from eolulc.core.timestack import read_info

    grid = read_info(str(scene_stack)).grid
    dataset = ogr.Open(str(eopatch_dir / "vector_timeless/LULC.gpkg"))
    layer = dataset.GetLayer()
    shapes, names = [], {}
    for feature in layer:
        class_id = int(feature.GetField("LULC_ID"))
        shapes.append((json.loads(feature.GetGeometryRef().ExportToJson()), class_id))
        names.setdefault(class_id, feature.GetField("LULC_NAME"))
    del layer, dataset
    return rasterize_polygons(shapes, grid, names)


# ---------------------------------------------------------------- QGIS in-process
_QGIS: dict[str, Any] = {}


def _forget_plugin_processing() -> None:
    """pytest puts the repository on sys.path when it treats the plugin folder as a package (it
    does when the clone's folder name is no valid package name); then ``import processing`` would
    find the plugin's processing/ instead of QGIS's. Undo that before QGIS's is imported."""
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != REPO]
    for name in [m for m in sys.modules if m == "processing" or m.startswith("processing.")]:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(REPO)):
            del sys.modules[name]


@pytest.fixture(scope="session")
def qgis_app():
    """A real QgsApplication with Processing and the eolulc provider (created once)."""
    if "app" not in _QGIS:
        _forget_plugin_processing()
        from qgis.core import QgsApplication

        app = QgsApplication([], False)
        app.initQgis()
        sys.path.append(os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))
        from processing.core.Processing import Processing

        Processing.initialize()
        from eolulc.processing.provider import EoLulcProvider

        provider = EoLulcProvider()
        QgsApplication.processingRegistry().addProvider(provider)
        _QGIS.update(app=app, provider=provider)
    return _QGIS["app"]


@pytest.fixture
def run_alg(qgis_app):
    """``run_alg("eolulc:x", params, feedback=None)`` through ``processing.run``."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    import processing

    def run(algorithm: str, parameters: dict[str, Any], feedback=None) -> dict[str, Any]:
        context = QgsProcessingContext()
        return processing.run(algorithm, parameters, context=context, feedback=feedback or QgsProcessingFeedback())

    return run


# ---------------------------------------------------------------- qgis_process
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"


class QgisProcess:
    """Runs ``qgis_process.bin`` with the plugin enabled in a throw-away profile."""

    def __init__(self, plugin_path: Path, root: Path) -> None:
        self.env = qgis_process_env(plugin_path, root)

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [QGIS_PROCESS, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def run(self, algorithm: str, parameters: dict[str, Any], timeout: float = 600) -> tuple[int, dict | None, str]:
        """``--json run``; returns (exit code, parsed JSON or None, stderr+stdout text)."""
        args = ["--json", "run", algorithm, "--"] + [f"{k}={v}" for k, v in parameters.items()]
        done = self(*args, timeout=timeout)
        parsed = None
        try:
            parsed = json.loads(done.stdout[done.stdout.index("{"):])
        except ValueError:
            parsed = None
        return done.returncode, parsed, done.stdout + done.stderr


def qgis_process_env(plugin_path: Path, root: Path) -> dict[str, str]:
    """Environment of a throw-away QGIS profile that has the plugin in ``plugin_path`` enabled."""
    return throwaway_profile_env(plugin_path, root)


@pytest.fixture(scope="session")
def qgis_process(plugins_dir: Path, tmp_path_factory) -> QgisProcess:
    if not Path(QGIS_PROCESS).exists():
        pytest.fail(f"{QGIS_PROCESS} not found: run tools/setup.sh")
    return QgisProcess(plugins_dir, tmp_path_factory.mktemp("qgis-profile"))

"""plugin/dependencies.py for real: an offline pip install into the plugin's own folder, the
command line, and what a user whose QGIS lacks a package sees (in-process and qgis_process).

A package is made "absent" with ``sys.modules[name] = None`` set before anything imports it
(in a ``sitecustomize`` for child processes): the real rasterio cannot be uninstalled from the
system Python, and a fake package on ``sys.path`` would be *found* by ``find_spec``, which is
what ``missing_modules`` relies on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import QGIS_PROCESS, REPO, qgis_process_env

from eolulc.plugin import dependencies

SCRIPT = REPO / "plugin" / "dependencies.py"
PY_TAG = f"py{sys.version_info.major}{sys.version_info.minor}"
INSTALL_HINT = 'dependencies.py" install'


def make_wheel(folder: Path, name: str = "eolulc_fake_dep", version: str = "1.0", requires: tuple[str, ...] = (),
               padding: int = 0) -> Path:
    """A minimal pure-Python wheel written by hand (what pip needs, nothing more), depending on
    ``requires``; ``padding`` bytes of incompressible data make its size known."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{name}/__init__.py": f'VALUE = "{name} {version}"\n',
        f"{name}/padding.txt": base64.b64encode(os.urandom(padding)).decode() if padding else "",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: eolulc-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def blocker(folder: Path, *modules: str) -> Path:
    """A folder whose ``sitecustomize`` makes ``modules`` unimportable, as if not installed."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["import sys"] + [f"sys.modules[{m!r}] = None" for m in modules]
    (folder / "sitecustomize.py").write_text("\n".join(lines) + "\n")
    return folder


def python_env(plugins_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a fresh venv Python that can ``import eolulc`` (and nothing more)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EOLULC_DEPS_DIR")}
    env["PYTHONPATH"] = str(plugins_dir)
    env.update(extra)
    return env


def command_in(message: str) -> list[str]:
    """The pasteable command at the end of :func:`dependencies.missing_message`."""
    return shlex.split(message.rsplit("run this command:", 1)[1].strip().splitlines()[0])


# ---------------------------------------------------------------- install and activation
def test_offline_install_lands_in_the_plugin_folder(tmp_path: Path, plugins_dir: Path, monkeypatch) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    base = tmp_path / "deps"
    target = base / PY_TAG
    # install() ends with activate(): keep it off the user's real folder and this sys.path
    monkeypatch.setenv("EOLULC_DEPS_DIR", str(base))
    monkeypatch.setattr(sys, "path", list(sys.path))
    output: list[str] = []
    result = dependencies.install(
        ["eolulc_fake_dep"], target=target,
        extra_pip_args=["--no-index", "--find-links", str(wheels)], on_output=output.append,
    )
    assert result == target
    assert (target / "eolulc_fake_dep" / "__init__.py").is_file()
    assert (target / "eolulc_fake_dep-1.0.dist-info" / "METADATA").is_file()
    assert "eolulc_fake_dep" in "".join(output)

    probe = textwrap.dedent(
        """
        import importlib.util, json, site, sys
        before = importlib.util.find_spec("eolulc_fake_dep") is not None
        import eolulc
        import eolulc_fake_dep
        print(json.dumps({"before": before, "value": eolulc_fake_dep.VALUE, "file": eolulc_fake_dep.__file__,
                          "path": sys.path, "site": site.getsitepackages()}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=python_env(plugins_dir, EOLULC_DEPS_DIR=str(base)),
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["before"] is False  # only the plugin package makes the folder visible
    assert seen["value"] == "eolulc_fake_dep 1.0"
    assert Path(seen["file"]).parent.parent == target
    # appended after everything the interpreter has, so QGIS's own packages always win
    path = [str(Path(p).resolve()) for p in seen["path"]]
    assert path[-1] == str(target.resolve())
    for site_dir in seen["site"]:
        if str(Path(site_dir).resolve()) in path:
            assert path.index(str(Path(site_dir).resolve())) < len(path) - 1


def test_an_optional_package_pip_cannot_install_is_no_error(tmp_path: Path, monkeypatch) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("eolulc_fake_dep\neolulc_optional_absent>=1  # optional: faster when present\n")
    assert dependencies.missing_requirements(requirements) == ["eolulc_fake_dep"]
    assert dependencies.missing_requirements(requirements, optional=True) == ["eolulc_optional_absent>=1"]
    monkeypatch.setenv("EOLULC_DEPS_DIR", str(tmp_path / "deps"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    output: list[str] = []
    target = dependencies.install(target=tmp_path / "deps" / PY_TAG, requirements_path=requirements,
                                  extra_pip_args=["--no-index", "--find-links", str(wheels)],
                                  on_output=output.append)
    assert (target / "eolulc_fake_dep" / "__init__.py").is_file()
    text = "".join(output)
    assert "could not be installed" in text and "eolulc_optional_absent>=1" in text


def test_failed_pip_raises_with_pip_output(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="eolulc_not_a_wheel"):
        dependencies.install(
            ["eolulc_not_a_wheel"], target=tmp_path / "deps",
            extra_pip_args=["--no-index", "--find-links", str(tmp_path)],
        )


# ---------------------------------------------------------------- command line
def test_status_in_the_dev_venv_finds_everything(tmp_path: Path, plugins_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "status"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=python_env(plugins_dir, EOLULC_DEPS_DIR=str(tmp_path / "deps")),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "missing: nothing" in done.stdout
    assert f"package folder: {tmp_path / 'deps' / PY_TAG}" in done.stdout


def test_status_reports_a_missing_requirement(tmp_path: Path, plugins_dir: Path) -> None:
    env = python_env(plugins_dir, EOLULC_DEPS_DIR=str(tmp_path / "deps"))
    env["PYTHONPATH"] = os.pathsep.join([str(blocker(tmp_path / "block", "lightgbm")), env["PYTHONPATH"]])
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "status"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "missing: lightgbm>=4.0" in done.stdout


def test_path_prints_the_folder(tmp_path: Path, plugins_dir: Path) -> None:
    def path(*args: str, **env: str) -> str:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "path", *args], cwd=tmp_path, capture_output=True, text=True,
            timeout=60, env=python_env(plugins_dir, **env),
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert path(EOLULC_DEPS_DIR=str(tmp_path / "a")) == str(tmp_path / "a" / PY_TAG)
    assert path("--target", str(tmp_path / "b")) == str(tmp_path / "b" / PY_TAG)
    assert path().endswith(os.path.join("eolulc", "python-packages", PY_TAG))


def test_missing_requirements_of_a_requirements_file(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# comment line\nnumpy>=1.20  # QGIS has it\n\neolulc-surely-absent>=1.0\nscipy\n"
        "eolulc_also_absent[extra]; python_version>'3'\neolulc-optional-absent  # optional: faster\n"
        "numpy  # optionally newer: still required\n"
    )
    assert dependencies.requirements(requirements) == [
        "numpy>=1.20", "eolulc-surely-absent>=1.0", "scipy", "eolulc_also_absent[extra]; python_version>'3'", "numpy"
    ]
    assert dependencies.requirements(requirements, optional=True) == ["eolulc-optional-absent"]
    assert dependencies.missing_requirements(requirements) == [
        "eolulc-surely-absent>=1.0", "eolulc_also_absent[extra]; python_version>'3'"
    ]


# ---------------------------------------------------------------- a QGIS without rasterio
IN_QGIS = """
import sys
sys.modules["rasterio"] = None  # before QGIS or the plugin import anything
import json, os
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qgis.core import QgsApplication, QgsProcessingException
app = QgsApplication([], False)
app.initQgis()
sys.path.append(os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))
from processing.core.Processing import Processing
Processing.initialize()
import processing
from eolulc.processing.provider import EoLulcProvider
provider = EoLulcProvider()
QgsApplication.processingRegistry().addProvider(provider)
seen = {"algorithms": [a.id() for a in provider.algorithms()], "error": None, "type": None}
try:
    processing.run("eolulc:importeopatch", {"INPUT": sys.argv[1], "OUTPUT": sys.argv[2]})
except Exception as error:
    seen["type"] = type(error).__name__
    seen["error"] = str(error)
print("RESULT " + json.dumps(seen))
sys.stdout.flush()
QgsApplication.processingRegistry().removeProvider(provider)
app.exitQgis()
"""


@pytest.mark.qgis
def test_missing_rasterio_in_process(tmp_path: Path, plugins_dir: Path, eopatch_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", IN_QGIS, str(eopatch_dir), str(tmp_path / "out.tif")], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
        env=python_env(plugins_dir, EOLULC_DEPS_DIR=str(tmp_path / "deps"), QT_QPA_PLATFORM="offscreen"),
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout[-2000:] + done.stderr[-3000:]
    seen = json.loads(lines[0][len("RESULT "):])
    assert {"eolulc:importeopatch", "eolulc:buildtimestack"} <= set(seen["algorithms"])
    assert seen["type"] == "QgsProcessingException", seen
    assert "rasterio" in seen["error"] and INSTALL_HINT in seen["error"], seen["error"]
    python, script, action = command_in(seen["error"])
    assert Path(python).is_file() and Path(script).resolve() == SCRIPT.resolve() and action == "install"
    assert not (tmp_path / "out.tif").exists()


@pytest.fixture(scope="module")
def qgis_process_without_rasterio(tmp_path_factory, plugins_dir: Path, eopatch_dir: Path) -> dict:
    """``qgis_process.bin list`` and ``run`` with rasterio blocked, on a machine whose first
    ``python3`` on PATH is not QGIS's Python (pyenv, conda: common on Linux and macOS)."""
    if not Path(QGIS_PROCESS).exists():
        pytest.fail(f"{QGIS_PROCESS} not found: run tools/setup.sh")
    root = tmp_path_factory.mktemp("no-rasterio")
    env = qgis_process_env(plugins_dir, root / "profile")
    env["PYTHONPATH"] = os.pathsep.join([str(blocker(root / "block", "rasterio")), env["PYTHONPATH"]])
    env["EOLULC_DEPS_DIR"] = str(root / "deps")
    other_python = root / "bin" / "python3"
    other_python.parent.mkdir()
    other_python.write_text("#!/bin/sh\necho 'not QGIS Python' >&2\nexit 3\n")
    other_python.chmod(0o755)
    env["PATH"] = os.pathsep.join([str(other_python.parent), env.get("PATH", "")])

    def qgis(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=120)

    output = root / "out.tif"
    return {
        "list": qgis("list"),
        "run": qgis("run", "eolulc:importeopatch", "--", f"INPUT={eopatch_dir}", f"OUTPUT={output}"),
        "output": output,
    }


@pytest.mark.cli
def test_missing_rasterio_in_qgis_process(qgis_process_without_rasterio: dict) -> None:
    listed = qgis_process_without_rasterio["list"]
    assert listed.returncode == 0, listed.stderr
    assert "eolulc:importeopatch" in listed.stdout and "eolulc:buildtimestack" in listed.stdout

    ran = qgis_process_without_rasterio["run"]
    text = ran.stdout + ran.stderr
    assert ran.returncode != 0, text
    assert "rasterio" in text and INSTALL_HINT in text, text[-3000:]
    assert not qgis_process_without_rasterio["output"].exists()
    _, script, action = command_in(text[text.index("EO LULC needs"):])
    assert Path(script).resolve() == SCRIPT.resolve() and action == "install"


@pytest.mark.cli
def test_install_command_names_qgis_python(qgis_process_without_rasterio: dict) -> None:
    ran = qgis_process_without_rasterio["run"]
    text = ran.stdout + ran.stderr
    python, _, _ = command_in(text[text.index("EO LULC needs"):])
    checked = subprocess.run(
        [python, "-c", "import qgis.core"], capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert checked.returncode == 0, f"{python}: {checked.stderr}"


def test_a_package_that_fails_to_import_counts_as_missing(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "eolulc_broken_dep"
    package.mkdir()
    (package / "__init__.py").write_text('raise ImportError("built against another numpy")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert dependencies.missing_modules(["eolulc_broken_dep"]) == ["eolulc_broken_dep"]



# ---------------------------------------------------------------- only what QGIS's Python lacks
#: Debian's QGIS runs this Python: numpy, scipy, GDAL and rasterio come from Debian's packages.
QGIS_PYTHON = "/usr/bin/python3"


def _plan_json(python: str, tmp_path: Path, requirements: Path, wheels: Path, *args: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EOLULC_DEPS_DIR")}
    env["EOLULC_REQUIREMENTS"] = str(requirements)
    done = subprocess.run(
        [python, str(SCRIPT), "plan", "--json", "--target", str(tmp_path / "deps"), *args,
         "--", "--no-index", "--find-links", str(wheels)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_plan_installs_only_what_qgis_python_lacks(tmp_path: Path) -> None:
    """Real pip resolving for Debian's QGIS Python, offline, on wheels made here: a classifier
    needing numpy and scipy plus a helper package. The index also offers newer numpy and scipy
    (what pip's ``--target``, which ignores installed packages, took before): the plan installs
    the two missing distributions only, and says their download size."""
    if not Path(QGIS_PYTHON).is_file():
        pytest.fail(f"{QGIS_PYTHON} not found: run tools/setup.sh (QGIS from Debian)")
    wheels = tmp_path / "wheels"
    sizes = {
        "eolulc_fake_lgbm": make_wheel(wheels, "eolulc_fake_lgbm", "4.0",
                                       ("numpy>=1.17", "scipy", "eolulc_fake_helper>=1"), padding=300_000),
        "eolulc_fake_helper": make_wheel(wheels, "eolulc_fake_helper", "1.2", ("numpy",), padding=100_000),
    }
    for name in ("numpy", "scipy", "rasterio"):
        make_wheel(wheels, name, "99.0")  # newer than Debian's: must not be taken
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("rasterio>=1.3\nscipy>=1.9\neolulc_fake_lgbm>=4.0\n")
    groups = _plan_json(QGIS_PYTHON, tmp_path, requirements, wheels)
    assert [g["label"] for g in groups] == ["required"]
    planned = {p["name"]: p for p in groups[0]["packages"]}
    assert set(planned) == {"eolulc_fake_lgbm", "eolulc_fake_helper"}, planned
    assert groups[0]["kept"] == []
    for name, wheel in sizes.items():
        assert planned[name]["size"] == wheel.stat().st_size > 100_000
    # the counterfactual: what --target (ignoring installed packages) resolves on the same index
    report = tmp_path / "target.json"
    subprocess.run([QGIS_PYTHON, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--report",
                    str(report), "--no-index", "--find-links", str(wheels), "-r", str(requirements)],
                   check=True, capture_output=True, timeout=300)
    took = {item["metadata"]["name"] for item in json.loads(report.read_text())["install"]}
    assert {"numpy", "scipy", "rasterio"} <= took


def test_plan_reuses_what_the_plugin_folder_has(tmp_path: Path) -> None:
    """A distribution already in the plugin's folder (an earlier install) is not planned again."""
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "eolulc_fake_lgbm", "4.0", ("eolulc_fake_helper",))
    make_wheel(wheels, "eolulc_fake_helper", "1.2")
    installed = tmp_path / "deps" / PY_TAG
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheels),
                    "--target", str(installed), "eolulc_fake_helper"], check=True, capture_output=True, timeout=300)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("eolulc_fake_lgbm\n")
    groups = _plan_json(sys.executable, tmp_path, requirements, wheels)
    assert [p["name"] for p in groups[0]["packages"]] == ["eolulc_fake_lgbm"]


def test_missing_message_names_the_pip_package() -> None:
    message = dependencies.missing_message(["cv2", "rasterio", "skimage"])
    assert "opencv-python-headless (module cv2)" in message
    assert "scikit-image (module skimage)" in message and "rasterio," in message
    assert "restart QGIS" not in message and "no restart needed" in message


def test_a_package_installed_after_start_is_found_without_restart(tmp_path: Path, monkeypatch) -> None:
    """The command-line install while QGIS runs: the folder did not exist when the plugin was
    loaded; the next check finds it."""
    base = tmp_path / "deps"
    monkeypatch.setenv("EOLULC_DEPS_DIR", str(base))
    monkeypatch.setattr(sys, "path", list(sys.path))
    dependencies.activate()  # what the plugin's import did: nothing yet
    assert dependencies.missing_modules(["eolulc_late_dep"]) == ["eolulc_late_dep"]
    package = base / PY_TAG / "eolulc_late_dep"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    assert dependencies.missing_modules(["eolulc_late_dep"]) == []


def test_status_with_a_python_that_is_not_qgis_says_which_is(tmp_path: Path, plugins_dir: Path) -> None:
    """A pyenv ``python3`` first on PATH cannot import qgis: status says so, names QGIS's Python
    (Debian's /usr/bin/python3 here) and refuses to install for the wrong one."""
    env = python_env(plugins_dir, EOLULC_DEPS_DIR=str(tmp_path / "deps"))
    env["PYTHONPATH"] = os.pathsep.join([str(blocker(tmp_path / "block", "qgis")), env["PYTHONPATH"]])
    status = subprocess.run([sys.executable, str(SCRIPT), "status"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=env)
    assert status.returncode == 2, status.stdout + status.stderr
    assert "is not QGIS's Python" in status.stderr and "NOT QGIS's Python" in status.stdout
    assert f"QGIS's Python appears to be {QGIS_PYTHON}" in status.stderr
    for where in ("Linux", "macOS", "Windows"):
        assert where in status.stderr
    install = subprocess.run([sys.executable, str(SCRIPT), "install"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120, env=env)
    assert install.returncode == 2 and "Nothing installed" in install.stderr
    assert not (tmp_path / "deps").exists()


def test_optional_packages_say_what_they_add_not_same_results_slower():
    """pystac-client enables an algorithm; numba only speeds things up: each says its own purpose."""
    text = dependencies.describe_optional(dependencies.requirements(optional=True))
    assert "numba (compiles the hottest loops" in text
    assert "pystac-client (searches STAC catalogues for the download algorithm" in text

"""The environment of a throw-away QGIS profile with the EO LULC plugin enabled (for
``qgis_process.bin`` and the desktop application), shared by the demo and the tests."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

PLUGIN_NAME = "eolulc"


def throwaway_profile_env(plugins_dir: Path, root: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """``plugins_dir`` holds the plugin folder (named ``eolulc``); ``root`` receives the profile.
    The venv's packages are put on PYTHONPATH so QGIS's embedded Python sees them."""
    home, config, runtime = root / "home", root / "config", root / "runtime"
    for folder in (home, config, runtime):
        folder.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    ini = config / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text(f"[PythonPlugins]\n{PLUGIN_NAME}=true\n")
    env = dict(os.environ if base is None else base)
    site = sysconfig.get_paths()["purelib"]
    env.update(
        HOME=str(home),
        QGIS_CUSTOM_CONFIG_PATH=str(config),
        XDG_RUNTIME_DIR=str(runtime),
        QT_QPA_PLATFORM=env.get("QT_QPA_PLATFORM", "offscreen"),
        QGIS_PLUGINPATH=str(plugins_dir),
        PYTHONPATH=os.pathsep.join(p for p in (site, env.get("PYTHONPATH", "")) if p),
        PYTHONWARNINGS="ignore::DeprecationWarning",
    )
    return env

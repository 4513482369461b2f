"""A throw-away QGIS authentication database for the tests that give credentials through
``AUTHCFG`` (the download tests), and a feedback that keeps what an algorithm logs, so they can
assert that no secret is shown.

Import this module before QGIS starts (at a test module's top): the in-process QGIS reads
``QGIS_AUTH_DB_DIR_PATH`` when it initialises.
"""

from __future__ import annotations

import os
import tempfile

from qgis.core import QgsProcessingFeedback

os.environ.setdefault("QGIS_AUTH_DB_DIR_PATH", tempfile.mkdtemp(prefix="eolulc-auth-"))

#: The master password of the throw-away database (qgis_process reads it from a file).
MASTER = "eolulc-test-master"


def basic_auth_config(username: str, password: str) -> str:
    """A new Basic configuration holding ``username`` and ``password``; its id."""
    from qgis.core import QgsApplication, QgsAuthMethodConfig

    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword(MASTER, True)
    config = QgsAuthMethodConfig("Basic")
    config.setName(f"test {username}/{len(password)}")
    config.setConfig("username", username)
    config.setConfig("password", password)
    assert manager.storeAuthenticationConfig(config)
    return config.id()


class LogRecorder(QgsProcessingFeedback):
    """Keeps every line the algorithm logs (``lines``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:
        self.lines.append(info)
        super().pushInfo(info)

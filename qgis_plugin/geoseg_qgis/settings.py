# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the plugin keeps its one real setting (geoseg's interpreter) and the worker logs."""
from __future__ import annotations

import time
from pathlib import Path

from qgis.core import QgsApplication, QgsSettings

from .worker import resolve_interpreter

KEY_PYTHON = "geoseg/python"
KEEP_LOGS = 20


def configured_python() -> str:
    """The interpreter path saved in the plugin settings ('' when unset)."""
    return str(QgsSettings().value(KEY_PYTHON, "", type=str))


def set_configured_python(path: str) -> None:
    QgsSettings().setValue(KEY_PYTHON, path.strip())


def interpreter() -> str:
    """The interpreter to run geoseg with (setting, else ``GEOSEG_PYTHON``); ``WorkerError`` if unusable."""
    return resolve_interpreter(configured_python())


def new_log_path(task: str) -> Path:
    """A fresh log file for one worker run in the QGIS profile; old logs beyond ``KEEP_LOGS`` are pruned."""
    folder = Path(QgsApplication.qgisSettingsDirPath()) / "geoseg" / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.glob("*.log"))[:-KEEP_LOGS]:
        old.unlink(missing_ok=True)
    return folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{task}-{time.perf_counter_ns() % 10**6:06d}.log"

# SPDX-License-Identifier: GPL-2.0-or-later
"""``geoseg info --json`` without freezing the dialog: a QProcess whose result arrives as a signal.

The worker imports torch, which takes seconds; the dialog asks for info whenever the layer or the model
changes, so these calls must not block the GUI thread.
"""
from __future__ import annotations

from typing import Any

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, pyqtSignal

from .worker import ENV_VAR, WHERE, WORKER_CWD, WorkerError, clean_env, info_command, parse_info


class InfoQuery(QObject):
    """One ``geoseg info`` call; emits ``succeeded(dict)`` or ``failed(str)`` exactly once."""

    succeeded = pyqtSignal(dict)
    failed = pyqtSignal(str)

    def __init__(self, python: str, path: str | None = None, model: str | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.python = python
        self.command = info_command(python, path, model)
        self.process = QProcess(self)
        env = QProcessEnvironment()
        for key, value in clean_env().items():
            env.insert(key, value)
        self.process.setProcessEnvironment(env)
        self.process.setWorkingDirectory(WORKER_CWD)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self.data: dict[str, Any] | None = None
        self.error: str | None = None

    def start(self) -> None:
        self.process.start(self.command[0], self.command[1:])

    def cancel(self) -> None:
        """Forget this query (the layer or model changed): no signal will come from it."""
        self.process.blockSignals(True)
        self.blockSignals(True)
        self.process.kill()
        self.process.waitForFinished(2000)

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        out = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        err = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        if status != QProcess.NormalExit:
            self.error = (f"the geoseg worker crashed: run `{' '.join(self.command)}` in a terminal to see why")
            self.failed.emit(self.error)
            return
        try:
            self.data = parse_info(code, out, err, self.python)
        except WorkerError as exc:
            self.error = str(exc)
            self.failed.emit(self.error)
            return
        self.succeeded.emit(self.data)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.FailedToStart:
            self.error = (f"could not start geoseg's interpreter {self.python!r}: fix it in {WHERE} "
                          f"(or {ENV_VAR})")
            self.failed.emit(self.error)

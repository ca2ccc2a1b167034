# SPDX-License-Identifier: GPL-2.0-or-later
"""The background task: one geoseg run with progress and Cancel, then its layers added and styled."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import Qgis, QgsProject, QgsTask

from . import environment, settings
from .messages import push
from .results import ClassMapOutputs, ObjectOutputs, summary_lines
from .worker import WorkerCanceled, WorkerError, WorkerResult, WorkerRun


def guarded(work: Callable[[], None], log: str) -> tuple[str | None, bool]:
    """Run a task's work off the GUI thread: (the message for the user or None, whether it succeeded).

    A cancel is no error; a WorkerError is the user's message; anything else is a bug in the plugin,
    reported with the log instead of lost in QGIS's task manager.
    """
    try:
        work()
    except WorkerCanceled:
        return None, False
    except WorkerError as exc:
        return str(exc), False
    except Exception as exc:  # noqa: BLE001 - a bug in the plugin: report it instead of losing it
        return f"the geoseg plugin failed: {exc!r} ({log})", False
    return None, True


class GeosegTask(QgsTask):
    """Runs a ``WorkerRun`` off the GUI thread; ``finished`` (GUI thread) loads outputs and reports.

    Cancel (task manager or ``cancel()``) interrupts the worker; the run removes every output it wrote.
    ``alive`` holds the Python side of running tasks: without it a task whose dialog is gone would be
    garbage-collected while QGIS's task manager still runs it, and ``finished`` would never be called.
    """

    alive: set["GeosegTask"] = set()

    def __init__(self, what: str, worker: WorkerRun, outputs: ClassMapOutputs | ObjectOutputs,
                 message_bar: Any, project: QgsProject | None = None) -> None:
        super().__init__(f"geoseg: {what}", QgsTask.CanCancel)  # the task manager shows no other title
        self.what = what  # e.g. "segment scene.tif": messages add only the bar's own "geoseg" title
        self.worker = worker
        self.outputs = outputs
        self.message_bar = message_bar
        self.project = project or QgsProject.instance()
        self.result: WorkerResult | None = None
        self.error: str | None = None
        self.layers: list[Any] = []
        GeosegTask.alive.add(self)

    def run(self) -> bool:
        def work() -> None:
            self.result = self.worker.run(is_canceled=self.isCanceled, on_progress=self.setProgress)

        self.error, ok = guarded(work, f"worker log: {self.worker.log_path}")
        return ok

    def finished(self, ok: bool) -> None:
        GeosegTask.alive.discard(self)
        if ok and self.result is not None:
            try:
                self.layers = self.outputs.add(self.project, self.result.dones)
            except ValueError as exc:
                self.error = str(exc)
            else:
                push(self.message_bar, Qgis.Success,
                     f"{self.what}: done in {self.result.seconds:.1f} s, {self.outputs.described(self.result.dones)}",
                     details="\n".join(summary_lines(self.result.dones, self.result.seconds)))
                return
        if self.error:
            push(self.message_bar, Qgis.Critical, f"{self.what} failed: {self.error}", details=self.error)
        else:
            push(self.message_bar, Qgis.Info, f"{self.what}: canceled, no outputs were kept", duration=10)


class EnvironmentTask(QgsTask):
    """Makes a new environment for geoseg off the GUI thread (``environment.create``), then points the
    plugin's interpreter setting to it and calls ``on_ready(python)`` on the GUI thread."""

    alive: set["EnvironmentTask"] = set()  # see GeosegTask.alive

    def __init__(self, commands: list[list[str]], folder: Path, log_path: Path, message_bar: Any,
                 on_ready: Callable[[str], None] = lambda python: None) -> None:
        super().__init__(f"geoseg: new environment in {folder}", QgsTask.CanCancel)
        self.commands, self.folder, self.log_path = commands, folder, log_path
        self.message_bar = message_bar
        self.on_ready = on_ready
        self.python: str | None = None
        self.error: str | None = None
        EnvironmentTask.alive.add(self)

    def run(self) -> bool:
        def work() -> None:
            self.python = environment.create(self.commands, self.folder, self.log_path, self.isCanceled,
                                             self.setProgress)

        self.error, ok = guarded(work, f"log: {self.log_path}")
        return ok

    def finished(self, ok: bool) -> None:
        EnvironmentTask.alive.discard(self)
        if ok and self.python:
            settings.set_configured_python(self.python)
            push(self.message_bar, Qgis.Success, f"new environment ready: geoseg runs with {self.python}",
                 details="made with:\n" + "\n".join(" ".join(c) for c in self.commands)
                         + f"\nlog: {self.log_path}")
            try:
                self.on_ready(self.python)
            except RuntimeError:  # the dialog was deleted meanwhile (plugin unloaded): the setting is saved
                pass
        elif self.error:
            push(self.message_bar, Qgis.Critical, f"new environment failed: {self.error}", details=self.error)
        else:
            push(self.message_bar, Qgis.Info, f"new environment in {self.folder}: canceled, the folder was "
                 "removed", duration=10)

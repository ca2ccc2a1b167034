# SPDX-License-Identifier: GPL-2.0-or-later
"""The background task: one geoseg run with progress and Cancel, then its layers added and styled."""
from __future__ import annotations

from typing import Any

from qgis.core import Qgis, QgsProject, QgsTask

from .messages import push
from .results import add_outputs, summary_lines
from .worker import WorkerCanceled, WorkerError, WorkerResult, WorkerRun


class GeosegTask(QgsTask):
    """Runs a ``WorkerRun`` off the GUI thread; ``finished`` (GUI thread) loads outputs and reports.

    Cancel (task manager or ``cancel()``) interrupts the worker; the run removes every output it wrote.
    ``alive`` holds the Python side of running tasks: without it a task whose dialog is gone would be
    garbage-collected while QGIS's task manager still runs it, and ``finished`` would never be called.
    """

    alive: set["GeosegTask"] = set()

    def __init__(self, what: str, worker: WorkerRun, classmap: str | None, polygons: str | None,
                 message_bar: Any, project: QgsProject | None = None) -> None:
        super().__init__(f"geoseg: {what}", QgsTask.CanCancel)  # the task manager shows no other title
        self.what = what  # e.g. "segment scene.tif": messages add only the bar's own "geoseg" title
        self.worker = worker
        self.classmap, self.polygons = classmap, polygons
        self.message_bar = message_bar
        self.project = project or QgsProject.instance()
        self.result: WorkerResult | None = None
        self.error: str | None = None
        self.layers: list[Any] = []
        GeosegTask.alive.add(self)

    def run(self) -> bool:
        try:
            self.result = self.worker.run(is_canceled=self.isCanceled, on_progress=self.setProgress)
        except WorkerCanceled:
            return False
        except WorkerError as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - a bug in the plugin: report it instead of losing it
            self.error = f"the geoseg plugin failed: {exc!r} (worker log: {self.worker.log_path})"
            return False
        return True

    def finished(self, ok: bool) -> None:
        GeosegTask.alive.discard(self)
        if ok and self.result is not None:
            try:
                self.layers = add_outputs(self.project, self.classmap, self.polygons)
            except ValueError as exc:
                self.error = str(exc)
            else:
                names = ", ".join(layer.name() for layer in reversed(self.layers))
                push(self.message_bar, Qgis.Success,
                     f"{self.what}: done in {self.result.seconds:.1f} s, added {names}",
                     details="\n".join(summary_lines(self.result.dones, self.result.seconds)))
                return
        if self.error:
            push(self.message_bar, Qgis.Critical, f"{self.what} failed: {self.error}", details=self.error)
        else:
            push(self.message_bar, Qgis.Info, f"{self.what}: canceled, no outputs were kept", duration=10)

"""Progress reporting shared by every long job (predict, vectorize, train).

Three modes: ``rich`` (a bar on stderr for people), ``json`` (one JSON event per line on stdout for
programs such as the QGIS plugin) and ``none``. Library code only calls ``start``/``advance``/``warn``/``done``.

The JSON lines are the event protocol of :mod:`geoseg.events` (the models, the schema the plugin checks, and
examples of every line): this reporter writes its start, progress, warning and done events; the CLI writes
the rest (epoch, metrics, error) through the same module.
"""
from __future__ import annotations

import sys
import time
import warnings
from typing import Any, Literal, Protocol

from geoseg.events import (BaseEvent, ProgressEvent, StartEvent, Task, WarningEvent, done_event,
                           write_event)

ProgressMode = Literal["rich", "json", "none"]


class Reporter(Protocol):
    def start(self, total: int, unit: str = "tiles", megapixels: float | None = None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def done(self, **summary: Any) -> None: ...
    def warn(self, message: str) -> None: ...


class GeosegWarning(UserWarning):
    """Something the user should know (a tolerable mismatch), not an error."""


class NullReporter:
    """Reports no progress; the default for library calls. Warnings go to Python's warnings."""

    def warn(self, message: str) -> None:
        warnings.warn(message, GeosegWarning, stacklevel=3)

    def start(self, total: int, unit: str = "tiles", megapixels: float | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def done(self, **summary: Any) -> None:
        pass


class JsonReporter:
    """One protocol event (geoseg.events) per line, progress throttled to ``min_interval`` s except the last step."""

    def __init__(self, task: Task, stream: Any = None, min_interval: float = 0.25) -> None:
        self.task = task
        self.stream = stream if stream is not None else sys.stdout
        self.min_interval = min_interval
        self.total = 0
        self.count = 0
        self.t0 = time.perf_counter()
        self.last = 0.0

    def emit(self, event: BaseEvent) -> None:
        write_event(event, self.stream)

    def start(self, total: int, unit: str = "tiles", megapixels: float | None = None) -> None:
        self.total, self.count, self.t0 = total, 0, time.perf_counter()
        self.emit(StartEvent(task=self.task, total=total, unit=unit, megapixels=megapixels))

    def advance(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if now - self.last >= self.min_interval or self.count >= self.total:
            self.last = now
            elapsed = now - self.t0
            rate = self.count / elapsed if elapsed > 0 else 0.0
            self.emit(ProgressEvent(task=self.task, done=self.count, total=self.total, elapsed_s=round(elapsed, 3),
                                    rate=round(rate, 3)))

    def warn(self, message: str) -> None:
        self.emit(WarningEvent(task=self.task, message=message))

    def done(self, **summary: Any) -> None:
        """The done event of this task; ``summary`` holds a run summary's keys (geoseg.summaries)."""
        self.emit(done_event(self.task, {"elapsed_s": round(time.perf_counter() - self.t0, 3), **summary}))


class RichReporter:
    """A rich progress bar on stderr: count, rate (and MP/s when the work has an area), ETA."""

    def __init__(self, task: str) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.task_name = task
        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=self.console, transient=False)
        self.task_id: Any = None
        self.mp_per_unit = 0.0
        self.t0 = time.perf_counter()

    def start(self, total: int, unit: str = "tiles", megapixels: float | None = None) -> None:
        self.mp_per_unit = (megapixels / total) if megapixels and total else 0.0
        self.unit = unit
        self.t0 = time.perf_counter()
        self.progress.start()
        self.task_id = self.progress.add_task(f"{self.task_name} ({unit})", total=total, rate="")

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task_id, n)
        done = self.progress.tasks[0].completed
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rate = f"{done / elapsed:.1f} {self.unit}/s"
        if self.mp_per_unit:
            rate += f" {done * self.mp_per_unit / elapsed:.2f} MP/s"
        self.progress.update(self.task_id, rate=rate)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    def done(self, **summary: Any) -> None:
        if self.task_id is not None:
            self.progress.stop()


def make_reporter(mode: ProgressMode | None, task: Task) -> Reporter:
    """The reporter for a CLI ``--progress`` value (``None`` means silent)."""
    if mode == "json":
        return JsonReporter(task)
    if mode == "rich":
        return RichReporter(task)
    return NullReporter()

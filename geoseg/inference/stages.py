"""Overlap the stages of a job with threads and bounded queues: read ahead, and write behind.

``prefetch`` runs a producer iterator in a thread so reading (GDAL releases the GIL) overlaps the model;
``WriteBehind`` runs a consumer in a thread so blending and compressed writes overlap the next forward
pass. Both keep order, bound memory by their queue size, and re-raise a worker's exception in the caller.

Every wait is timed (:data:`POLL_S`) and checks whether the other side has gone: an interrupted run
used to hang now and then in an untimed queue or lock wait (1 Ctrl-C in 20 waited 10 minutes).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()
#: How often a waiting stage looks up to see whether it should give up.
POLL_S = 0.1
#: How long an interrupted run waits for a stage thread stuck in a read or write before leaving it
#: (daemon threads end with the process).
JOIN_S = 5.0


def _offer(items: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; True when it went in."""
    while not stop.is_set():
        try:
            items.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _take(items: queue.Queue, alive: Callable[[], bool]) -> object:
    """The next item; raises if the producer died without saying so (it always says so, unless killed)."""
    while True:
        try:
            return items.get(timeout=POLL_S)
        except queue.Empty:
            if not alive():
                try:
                    return items.get_nowait()
                except queue.Empty:
                    raise RuntimeError("a pipeline thread ended without a result") from None


def prefetch(make: Callable[[], Iterator[T]], depth: int, name: str = "geoseg-reader") -> Iterator[T]:
    """Items of ``make()`` produced in a background thread, at most ``depth`` ahead of the consumer."""
    items: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in make():
                if not _offer(items, item, stop):
                    return
            _offer(items, _DONE, stop)
        except BaseException as err:  # handed to the consumer
            _offer(items, err, stop)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = _take(items, thread.is_alive)
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=JOIN_S)


class WriteBehind(Generic[T]):
    """Calls ``consume(item)`` for each ``put`` item, in order, in a background thread."""

    def __init__(self, consume: Callable[[T], None], depth: int, name: str = "geoseg-writer"):
        self.consume = consume
        self.items: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.error: BaseException | None = None
        self.stop = threading.Event()            # set by abort(): drop what is queued, end soon
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                item = self.items.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            if self.error is None and not self.stop.is_set():
                try:
                    self.consume(item)
                except BaseException as err:  # re-raised in the producer's thread
                    self.error = err

    def put(self, item: T) -> None:
        while True:
            if self.error is not None:
                raise self.error
            if not self.thread.is_alive():
                raise RuntimeError("the writer thread has ended")
            try:
                self.items.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait until every item is consumed; raise the consumer's error, if any."""
        while self.error is None and self.thread.is_alive():
            try:
                self.items.put(_DONE, timeout=POLL_S)
                break
            except queue.Full:
                continue
        while self.error is None and self.thread.is_alive():
            self.thread.join(timeout=POLL_S)
        if self.error is not None:
            self.abort()
            raise self.error

    def abort(self) -> None:
        """Stop now: queued items are dropped, the thread ends after the item it is consuming."""
        self.stop.set()
        self.thread.join(timeout=JOIN_S)

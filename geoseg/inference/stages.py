"""Overlap the stages of a job with threads and bounded queues: read ahead, and write behind.

``prefetch`` runs a producer iterator in a thread so reading (GDAL releases the GIL) overlaps the model;
``WriteBehind`` runs a consumer in a thread so blending and compressed writes overlap the next forward
pass. Both keep order, bound memory by their queue size, and re-raise a worker's exception in the caller.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(make: Callable[[], Iterator[T]], depth: int, name: str = "geoseg-reader") -> Iterator[T]:
    """Items of ``make()`` produced in a background thread, at most ``depth`` ahead of the consumer."""
    items: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in make():
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as err:  # handed to the consumer
            items.put(err)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)


class WriteBehind(Generic[T]):
    """Calls ``consume(item)`` for each ``put`` item, in order, in a background thread."""

    def __init__(self, consume: Callable[[T], None], depth: int, name: str = "geoseg-writer"):
        self.consume = consume
        self.items: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.items.get()
            if item is _DONE:
                return
            if self.error is None:
                try:
                    self.consume(item)
                except BaseException as err:  # re-raised in the producer's thread
                    self.error = err

    def put(self, item: T) -> None:
        if self.error is not None:
            raise self.error
        self.items.put(item)

    def close(self) -> None:
        """Wait until every item is consumed; raise the consumer's error, if any."""
        self.items.put(_DONE)
        self.thread.join()
        if self.error is not None:
            raise self.error

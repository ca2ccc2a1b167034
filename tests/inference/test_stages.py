"""The pipeline's threads never leave a run waiting: errors travel, and stopping is prompt."""
from __future__ import annotations

import threading
import time

import pytest

from geoseg.inference.stages import WriteBehind, prefetch


def test_a_consumer_that_leaves_early_stops_the_producer_promptly() -> None:
    produced = []

    def endless():  # noqa: ANN202
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    items = prefetch(endless, depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    t0 = time.monotonic()
    items.close()
    assert time.monotonic() - t0 < 2
    assert not any(t.name == "geoseg-reader" and t.is_alive() for t in threading.enumerate())


def test_a_producer_error_reaches_the_consumer() -> None:
    def failing():  # noqa: ANN202
        yield 1
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        list(prefetch(failing, depth=1))


def test_write_behind_keeps_order_and_raises_the_consumer_error() -> None:
    seen: list[int] = []
    sink = WriteBehind(seen.append, depth=2)
    for i in range(20):
        sink.put(i)
    sink.close()
    assert seen == list(range(20))

    def failing(item: int) -> None:
        raise ValueError(f"bad {item}")

    sink = WriteBehind(failing, depth=1)
    with pytest.raises(ValueError, match="bad 0"):
        for i in range(5):
            sink.put(i)
        sink.close()


def test_abort_drops_queued_items_and_returns_at_once() -> None:
    release = threading.Event()
    consumed: list[int] = []

    def slow(item: int) -> None:
        release.wait(5)
        consumed.append(item)

    sink = WriteBehind(slow, depth=3)
    for i in range(4):
        sink.put(i)
    release.set()
    t0 = time.monotonic()
    sink.abort()
    assert time.monotonic() - t0 < 2
    assert len(consumed) <= 1 and not sink.thread.is_alive()

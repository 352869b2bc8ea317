"""The core's three small bridges, without a sandbox: waiting for a condition, following a blocking
stream from a thread, and running a coroutine on the background loop from a plain thread."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import anyio
import pytest

from jupyter_sandbox.sync import call, cancel_and_wait, start
from jupyter_sandbox.threads import follow, poll_until


def test_poll_until_returns_when_the_check_holds_with_growing_waits():
    checks: list[float] = []

    async def third_time() -> bool:
        checks.append(time.monotonic())
        return len(checks) == 3

    assert anyio.run(lambda: poll_until(third_time, 5, interval=0.01, most=0.02)) is True
    gaps = [b - a for a, b in zip(checks, checks[1:])]
    assert len(checks) == 3 and gaps[0] >= 0.01 and gaps[1] >= 0.02


def test_poll_until_gives_up_after_the_timeout_and_a_check_may_raise():
    async def never() -> bool:
        return False

    began = time.monotonic()
    assert anyio.run(lambda: poll_until(never, 0.1, interval=0.01, most=0.05)) is False
    assert 0.1 <= time.monotonic() - began < 1.0

    async def broken() -> bool:
        raise ValueError("the daemon failed")

    with pytest.raises(ValueError):
        anyio.run(lambda: poll_until(broken, 5))


class FakeStream:
    """A docker-py stream: blocks between items, and close() unblocks a read (as closing its socket does)."""

    def __init__(self, items: list[Any], then_block: bool = True):
        self.items = items
        self.then_block = then_block
        self.closed = threading.Event()
        self.opened_in = ""

    def __iter__(self) -> Iterator[Any]:
        self.opened_in = threading.current_thread().name
        yield from self.items
        if self.then_block:
            self.closed.wait(10)

    def close(self) -> None:
        self.closed.set()


def test_follow_yields_a_streams_items_and_closes_it_when_the_consumer_stops():
    stream = FakeStream(["a", "b", "c"])

    async def first_two() -> list[Any]:
        seen = []
        async for item in follow(lambda: stream):
            seen.append(item)
            if len(seen) == 2:
                break
        return seen

    assert anyio.run(first_two) == ["a", "b"]
    assert stream.closed.wait(5), "stopping early must close the stream (it unblocks the reading thread)"
    assert stream.opened_in != threading.main_thread().name


def test_follow_ends_with_the_stream_and_passes_its_error_on():
    async def everything(make: Any) -> list[Any]:
        return [item async for item in follow(make)]

    assert anyio.run(everything, lambda: FakeStream([1, 2], then_block=False)) == [1, 2]

    def broken() -> Any:
        raise ConnectionError("engine went away")

    with pytest.raises(ConnectionError):
        anyio.run(everything, broken)


def test_the_portal_bridge_runs_on_the_loop_and_a_cancel_waits_for_the_cleanup():
    assert call(anyio.sleep, 0) is None
    cleaned = threading.Event()

    async def long_task() -> None:
        try:
            await anyio.sleep(30)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.1)  # a cleanup that takes a while (a kill inside, a removal)
            cleaned.set()

    future, finished = start(long_task)
    time.sleep(0.05)
    cancel_and_wait(future, finished, timeout=10)
    assert cleaned.is_set() and future.cancelled()

"""Running docker-py's blocking calls and streams off the event loop, and waiting for a condition on it."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import threading
import time
from typing import Any, AsyncGenerator, Awaitable, Callable, Iterator, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from anyio import from_thread

T = TypeVar("T")


async def run_sync(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking function in a worker thread and return its result.

    Cancelling the caller abandons the thread's result (the call itself runs
    to its end), so only use it for calls with a bounded duration.
    """
    return await anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs), abandon_on_cancel=True)


class _End:
    def __init__(self, error: BaseException | None = None):
        self.error = error


async def iterate_in_thread(
    make_iterator: Callable[[], Iterator[T]],
    *,
    close: Callable[[], None] | None = None,
    buffer: int = 16,
) -> AsyncGenerator[T, None]:
    """Iterate a blocking iterator in a daemon thread, with back-pressure.

    The thread is a plain daemon thread, not one of anyio's workers, so any
    number of long-lived streams (log follows, exec output) can run at once
    without starving short calls.

    Args:
        make_iterator: Called in the thread to open the blocking iterator.
        close: Called when the consumer stops early, to unblock the thread
            (for example by closing the underlying socket).
        buffer: Items read ahead of the consumer.
    """
    send, receive = anyio.create_memory_object_stream[Any](buffer)
    token = anyio.lowlevel.current_token()

    def pump() -> None:
        end = _End()
        try:
            for item in make_iterator():
                from_thread.run(send.send, item, token=token)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return
        except BaseException as error:  # handed to the consumer below
            end = _End(error)
        try:
            from_thread.run(send.send, end, token=token)
            from_thread.run_sync(send.close, token=token)
        except (
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            RuntimeError,
            concurrent.futures.CancelledError,
        ):  # the consumer was cancelled while we handed over
            pass

    threading.Thread(target=pump, name="jupyter-sandbox-stream", daemon=True).start()
    try:
        async with receive:
            async for item in receive:
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
    finally:
        if close is not None:
            close()


async def follow(open_stream: Callable[[], Any]) -> AsyncGenerator[Any, None]:
    """Iterate a blocking docker-py stream (a followed container log, the engine's events) from a daemon thread.

    ``open_stream`` is called in the thread; when the consumer stops early the
    stream is closed, which unblocks the thread's read.  Every follower of the
    engine goes through here.
    """
    holder: dict[str, Any] = {}

    def opened() -> Iterator[Any]:
        holder["stream"] = open_stream()
        return iter(holder["stream"])

    def close() -> None:
        if holder.get("stream") is not None:
            with contextlib.suppress(Exception):  # already closed, or its connection already dropped
                holder["stream"].close()

    async with contextlib.aclosing(iterate_in_thread(opened, close=close)) as items:
        async for item in items:
            yield item


async def poll_until(check: Callable[[], Awaitable[bool]], timeout: float, *, interval: float = 0.01, most: float = 0.2) -> bool:
    """Await ``check()`` until it returns true (then True), or until ``timeout`` seconds have passed (False).

    The waits between checks start at ``interval`` and double up to ``most``
    (equal values: a fixed period).  ``check`` may raise to stop early.  For
    what no event announces: a socket appearing, an exec's exit code, a state
    read from the engine.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await anyio.sleep(delay)
        delay = min(delay * 2, most)

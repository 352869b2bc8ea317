"""Commands in a sandbox with their output streamed into the cell as it is produced.

The command runs on the core's event loop; its output comes back to the
calling thread through a queue and is written to ``sys.stdout`` /
``sys.stderr`` there (so it lands in the cell that runs it, stderr shown
red).  A kernel interrupt cancels the task, which kills the process tree
inside the sandbox, and the call returns only after that kill finished;
for docker commands, the containers the command created are removed too.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator

import anyio

from .errors import SandboxError
from .process import AsyncProcess, TextDecoder
from .sandbox import AsyncSandbox
from .sync import Sandbox, call, cancel_and_wait
from .sync import start as start_task

END = object()
"""Queue marker: the background task has really finished (its cleanup included)."""
POLL_SECONDS = 0.2
"""How often a waiting thread wakes to notice a kernel interrupt sent without a signal."""
CLEANUP_SECONDS = 30.0
"""How long an interrupted call waits for the core's cleanup (a kill inside, a removal)."""


def wait_for_items(items: "queue.Queue[Any]") -> Iterator[Any]:
    """Yield queued items until :data:`END`; a KeyboardInterrupt is raised within :data:`POLL_SECONDS`."""
    while True:
        try:
            item = items.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        if item is END:
            return
        yield item


@dataclass
class CommandResult:
    """How a streamed command ended.

    Attributes:
        exit_code: Its exit status.
        hint: The likely cause and fix of a failure, if the core knows one, or advice for a command that
            succeeded without doing what it is meant to (e.g. an inner ``-p`` that publishes nothing).
    """

    exit_code: int
    hint: str | None = None


Writer = Callable[[str, str], None]


def write_to_cell(stream: str, text: str) -> None:
    """Write output to this thread's stdout or stderr (the cell's streams in a kernel) and flush."""
    target = sys.stdout if stream == "stdout" else sys.stderr
    target.write(text)
    target.flush()


Starter = Callable[[AsyncSandbox], Awaitable[AsyncProcess]]
"""Starts the process on the core's loop, e.g. ``lambda core: core.docker("ps")``."""


async def _run(sandbox: Sandbox, start: Starter, needs_daemon: bool, output: "queue.Queue[Any]") -> AsyncProcess:
    core = sandbox.core
    if needs_daemon and not core.daemon_known_ready:
        await core.wait_ready()  # may take a while: stays interruptible (the start below checks again, quickly)
    # Once started, the process must be known to the code that kills it: no cancellation in between.
    with anyio.CancelScope(shield=True):
        process = await start(core)
    decoder = TextDecoder()
    async with contextlib.aclosing(process.output()) as chunks:  # leaving early kills the process inside
        async for chunk in chunks:
            text = decoder.decode(chunk)
            if text:
                output.put((chunk.stream, text))
    for stream in ("stdout", "stderr"):
        rest = decoder.flush(stream)
        if rest:
            output.put((stream, rest))
    return process


def run_streamed(
    sandbox: Sandbox, start: Starter, *, needs_daemon: bool = False, write: Writer = write_to_cell, output: "queue.Queue[Any] | None" = None
) -> CommandResult:
    """Start a process in the sandbox and stream its output while it runs.

    Args:
        sandbox: Where to run it.
        start: Starts the process on the core's loop (see :func:`run_command`, :func:`run_docker`).
        needs_daemon: Wait (interruptibly) for the sandbox's Docker daemon first.
        write: Called with ``(stream, text)`` for each piece of output, in the calling thread.
        output: The queue ``write`` is fed from; other threads may put ``(stream, text)`` in it too.

    Raises:
        SandboxError: If it could not run, or timed out (it has been killed).
        KeyboardInterrupt: If interrupted; it has been killed inside the sandbox by then.
    """
    output = output if output is not None else queue.Queue()
    outcome: dict[str, Any] = {}

    async def task() -> None:
        try:
            outcome["process"] = await _run(sandbox, start, needs_daemon, output)
        except BaseException as error:
            outcome["error"] = error
            raise
        finally:
            output.put(END)

    future, finished = start_task(task)
    try:
        for stream, text in wait_for_items(output):
            write(stream, text)
    except KeyboardInterrupt:
        cancel_and_wait(future, finished, CLEANUP_SECONDS)
        raise
    if "error" in outcome:
        raise outcome["error"]
    process: AsyncProcess = outcome["process"]
    code = process.exit_code if process.exit_code is not None else -1
    return CommandResult(code, process.hint)


def run_command(sandbox: Sandbox, argv: list[str], *, timeout: float | None = None, write: Writer = write_to_cell) -> CommandResult:
    """Run ``argv`` (no shell) in the sandbox, streaming its output (see :func:`run_streamed`)."""
    return run_streamed(sandbox, lambda core: core.exec(argv, timeout=timeout), write=write)


def run_docker(sandbox: Sandbox, argv: list[str], *, timeout: float | None = None, write: Writer = write_to_cell) -> CommandResult:
    """Run ``docker ARGV...`` against the sandbox's own daemon, streaming its output.

    Killing an interrupted docker client does not stop the containers it
    made (they belong to the daemon), so an interrupt also removes the
    containers created while the command ran (see :func:`remove_containers_created_since`).
    """
    since = time.time()  # gVisor's clock is the host's, so the inner daemon's event times compare
    try:
        return run_streamed(sandbox, lambda core: core.docker(*argv, timeout=timeout), needs_daemon=True, write=write)
    except KeyboardInterrupt:
        removed = remove_containers_created_since(sandbox, since)
        if removed:
            write("stderr", f"interrupted: removed {len(removed)} container(s) the command had created\n")
        raise


def remove_containers_created_since(sandbox: Sandbox, since: float) -> list[str]:
    """Force-remove the inner containers created after ``since`` (Unix time); returns their ids."""

    async def remove() -> list[str]:
        until = time.time()
        events = await sandbox.core.docker(
            "events",
            "--since",
            f"{since:.3f}",
            "--until",
            f"{until:.3f}",
            "--filter",
            "type=container",
            "--filter",
            "event=create",
            "--format",
            "{{.ID}}",
            timeout=CLEANUP_SECONDS,
        )
        await events.wait()
        ids = sorted(set(events.stdout_text.split()))
        if ids:
            removal = await sandbox.core.docker("rm", "--force", *ids, timeout=CLEANUP_SECONDS)
            await removal.wait()
        return ids

    try:
        return call(remove)
    except SandboxError:
        return []


def load_image(sandbox: Sandbox, image: str, *, timeout: float | None = None, write: Writer = write_to_cell) -> CommandResult:
    """Copy an image from the host engine into the sandbox's daemon, streaming ``docker load``'s output
    and, for a load taking over a second, the bytes sent and MB/s once a second."""
    output: "queue.Queue[Any]" = queue.Queue()
    report = load_progress(lambda line: output.put(("stderr", line)))  # written by the calling thread
    return run_streamed(
        sandbox, lambda core: core.docker.load(image, timeout=timeout, on_progress=report), needs_daemon=True, write=write, output=output
    )


def save_image(
    sandbox: Sandbox, image: str, *, tag: str | None = None, replace: bool = False, timeout: float | None = None, write: Writer = write_to_cell
) -> CommandResult:
    """Copy an image from the sandbox's daemon into the host engine, streaming the host ``docker load``'s
    output and, for a copy taking over a second, the bytes sent and MB/s once a second."""
    output: "queue.Queue[Any]" = queue.Queue()
    report = load_progress(lambda line: output.put(("stderr", line)))
    return run_streamed(
        sandbox,
        lambda core: core.docker.save(image, timeout=timeout, tag=tag, replace=replace, on_progress=report),
        needs_daemon=True,
        write=write,
        output=output,
    )


def load_progress(say: Callable[[str], None], every: float = 1.0) -> Callable[[int, float], None]:
    """An ``on_progress`` for loads: says ``sent N MB (R MB/s)`` once a second, from the first second on."""
    last = {"at": 0.0}

    def report(sent: int, seconds: float) -> None:
        if seconds >= last["at"] + every:
            last["at"] = seconds
            say(f"sent {sent / 1e6:.0f} MB in {seconds:.0f} s ({sent / 1e6 / seconds:.0f} MB/s)\n")

    return report

"""Terminal views: live phase bars for a create, and tables, rendered with rich."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .events import PhaseTracker, ProgressEvent
from .status import SandboxInfo, time_left_text

STATUS_STYLE = {"pending": "dim", "running": "yellow", "done": "green", "failed": "bold red"}
STATE_STYLE = {"starting": "yellow", "ready": "green", "failed": "bold red", "stopped": "dim", "gone": "dim", "paused": "cyan"}
ICONS = {"pending": "·", "done": "✔", "failed": "✘"}


def phase_table(tracker: PhaseTracker, now: float | None = None) -> Table:
    """A table with one row per phase: status, name, duration and message."""
    table = Table.grid(padding=(0, 1))
    table.add_column(width=2)
    table.add_column(min_width=26)
    table.add_column(justify="right", min_width=7)
    table.add_column(overflow="fold")
    for row in tracker.rows:
        style = STATUS_STYLE[row.status]
        if row.status == "running":
            icon: Any = Spinner("dots", style="yellow")
            ticking = (now - row.started) if (now is not None and row.started is not None) else None
            duration = f"{ticking:.1f}s" if ticking is not None else ""
        else:
            icon = Text(ICONS[row.status], style=style)
            duration = f"{row.duration:.2f}s" if row.duration is not None else ""
        table.add_row(icon, Text(row.phase.label, style=style), Text(duration, style="dim"), Text(row.message, style="dim"))
    return table


class LiveProgress:
    """Renders a create's phases live in a terminal (or as plain lines when not a TTY).

    Feed it events with :meth:`__call__` from any thread.
    """

    def __init__(self, name: str, docker: bool, console: Console | None = None, restored: bool = False):
        self.console = console or Console(stderr=True)
        self.tracker = PhaseTracker(docker, restored=restored)
        self.name = name
        self._start = time.monotonic()
        self._live: Live | None = None

    def __enter__(self) -> "LiveProgress":
        if self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=12, transient=False, get_renderable=self._render)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)

    def _render(self) -> Group:
        elapsed = self.tracker.elapsed if self.tracker.final else time.monotonic() - self._start
        title = Text.assemble(("Sandbox ", "bold"), (self.name, "bold cyan"), (f"  {elapsed:.1f}s", "dim"))
        return Group(title, phase_table(self.tracker, None if self.tracker.final else elapsed))

    def __call__(self, event: ProgressEvent) -> None:
        self.tracker.update(event)
        if self._live is None and event.state != "started":
            mark = ICONS.get("failed" if event.state == "failed" else "done")
            self.console.print(f"{mark} {event.elapsed:6.2f}s  {event.label:<26} {event.message}", highlight=False)


class JsonLines:
    """Writes each event as one JSON line (``--json``)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def __call__(self, event: ProgressEvent) -> None:
        self.write({"event": "progress", **event.to_dict()})

    def write(self, data: dict[str, Any]) -> None:
        """Write one object as a line and flush."""
        self.stream.write(json.dumps(data) + "\n")
        self.stream.flush()


def sandbox_table(infos: list[SandboxInfo]) -> Table:
    """The ``ls`` table."""
    table = Table(box=None, header_style="bold")
    limits = any(info.ttl is not None or info.idle_timeout is not None for info in infos)
    columns = ("NAME", "STATE", "DOCKER", "IMAGE", "CPU", "MEMORY", "DISK", "NETWORK", "UPTIME", "OWNER")
    for column in columns + (("TIME LEFT",) if limits else ()):
        table.add_column(column, no_wrap=True, overflow="ignore" if column == "IMAGE" else "ellipsis")
    for info in infos:
        uptime = info.uptime
        table.add_row(
            info.name + (" (pool)" if info.pool else ""),
            Text(info.state, style=STATE_STYLE.get(info.state, "")),
            "yes" if info.docker else "no",
            info.image,
            f"{info.cpu:g}" if info.cpu else "-",
            info.memory or "-",
            info.disk or "-",
            info.network,
            _duration(uptime) if uptime is not None else "-",
            info.owner,
            *((time_left_text(info),) if limits else ()),
        )
    return table


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"

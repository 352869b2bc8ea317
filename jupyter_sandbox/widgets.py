"""The live startup widget: one row per phase, a progress bar, the outcome and the dockerd log tail.

Plain ipywidgets (no custom JavaScript).  Its model is the core's
:class:`~jupyter_sandbox.events.PhaseTracker`.  Events arrive on the core's
event-loop thread and are rendered there; a small ticker thread redraws the
running phase's spinner and elapsed time until the startup ends.  Every
redraw holds a lock (events, ticks and the final outcome come from three
threads) and batches each widget's changes with ``hold_sync()``.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as widgets

from .errors import SandboxError
from .events import PhaseRow, PhaseTracker, ProgressEvent
from .progress import ready_text

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
TICK_SECONDS = 0.1
COLORS = {"pending": "#9e9e9e", "running": "#b26a00", "done": "#2e7d32", "failed": "#c62828"}
ICONS = {"pending": "·", "done": "✔", "failed": "✘"}
MONO = "font-family: var(--jp-code-font-family, monospace); font-size: var(--jp-code-font-size, 13px);"


LOG_HEADING = "Last lines of the dockerd log:"


def log_tail_of(error: BaseException | None, event: ProgressEvent | None) -> str:
    """The dockerd log tail that explains a failure: from the error, else the failed event's detail."""
    tail = getattr(error, "log_tail", "") or ""
    if not tail and event is not None and event.state == "failed":
        tail = event.detail
    tail = tail.strip("\n")
    return tail[len(LOG_HEADING) :].lstrip("\n") if tail.startswith(LOG_HEADING) else tail


def row_html(row: PhaseRow, ticking: float | None = None, frame: int = 0) -> str:
    """One phase as an HTML line: icon, label, duration (or ticking elapsed time) and message."""
    color = COLORS[row.status]
    if row.status == "running":
        icon = SPINNER[frame % len(SPINNER)]
        timing = f"{ticking:.1f} s" if ticking is not None else ""
    else:
        icon = ICONS[row.status]
        timing = f"{row.duration:.2f} s" if row.duration is not None else ""
    message_style = f"color: {COLORS['failed']}; font-weight: bold;" if row.status == "failed" else "color: #757575;"
    return (
        f'<div style="display: flex; gap: 0.8em; line-height: 1.6; {MONO}">'
        f'<span style="width: 1.2em; color: {color};">{icon}</span>'
        f'<span style="width: 17em; color: {color if row.status != "done" else "inherit"};">{html.escape(row.phase.label)}</span>'
        f'<span style="width: 5em; text-align: right; color: #757575;">{timing}</span>'
        f'<span style="{message_style} white-space: nowrap; overflow: hidden; text-overflow: ellipsis;">'
        f"{html.escape(row.message)}</span></div>"
    )


class StartupWidget:
    """A create's phases, live, as ipywidgets.

    Call the object with each :class:`ProgressEvent` (from any thread), then
    :meth:`show_error` or let the final event close it.  ``widget.box`` is
    the ipywidgets container; displaying the object displays it.

    Args:
        name: The sandbox's name.
        docker: Whether the create starts a Docker daemon (decides the phases).
        tick: Seconds between redraws of the running phase's elapsed time.
    """

    def __init__(self, name: str, docker: bool, *, tick: float = TICK_SECONDS, restored: bool = False):
        self.name = name
        self.docker = docker
        self.tracker = PhaseTracker(docker, restored=restored)
        self.title = widgets.HTML()
        self.rows = [widgets.HTML() for _ in self.tracker.rows]
        self.bar = widgets.IntProgress(
            value=0,
            min=0,
            max=len(self.tracker.rows),
            bar_style="info",
            description=f"0/{len(self.tracker.rows)}",
            layout=widgets.Layout(width="32em"),
        )
        self.outcome = widgets.HTML()
        self.log = widgets.Output()
        self.log_box = widgets.Accordion(
            children=[self.log], titles=("dockerd log (last lines)",), selected_index=None, layout=widgets.Layout(display="none")
        )
        self.box = widgets.VBox([self.title, *self.rows, self.bar, self.outcome, self.log_box])
        self.error: BaseException | None = None
        self._tick = tick
        self._frame = 0
        self._origin: float | None = None
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None
        self._render()

    @property
    def state(self) -> str:
        """``starting``, ``ready`` or ``failed``."""
        final = self.tracker.final
        if self.error is not None or (final is not None and final.state == "failed"):
            return "failed"
        return "ready" if final is not None else "starting"

    live_events = True
    """Takes events on the core's loop thread as they happen (see :mod:`jupyter_sandbox.progress`)."""

    def show(self) -> None:
        """Display the widget in the current cell and start ticking."""
        from IPython.display import display

        display(self)
        self.start()

    def start(self) -> "StartupWidget":
        """Start the ticker thread that redraws the running phase's elapsed time."""
        if self._ticker is None and not self._stopped.is_set():
            self._ticker = threading.Thread(target=self._run_ticker, name=f"sandbox-widget-{self.name}", daemon=True)
            self._ticker.start()
        return self

    def finish(self, error: BaseException | None = None) -> None:
        """The create ended: stop ticking, and show the error if it failed."""
        if error is not None:
            self.show_error(error)
        self.stop()

    def stop(self) -> None:
        """Stop ticking (the widget keeps its last state)."""
        self._stopped.set()

    def _run_ticker(self) -> None:
        while not self._stopped.wait(self._tick):
            with self._lock:
                self._frame += 1
                self._render(only_running=True)

    def __call__(self, event: ProgressEvent) -> None:
        """Apply one event (events after the final one, such as a later removal, are ignored)."""
        with self._lock:
            if self.tracker.final is not None:
                return
            if self._origin is None:
                self._origin = time.monotonic() - event.elapsed
            self.tracker.update(event)
            if self.tracker.final is not None:
                self.stop()
            self._render()

    def show_error(self, error: BaseException) -> None:
        """Show why the create failed: the cause, the fix and the dockerd log tail."""
        with self._lock:
            self.error = error
            self.stop()
            self._render()

    def _elapsed(self) -> float:
        if self.tracker.final is not None or self._origin is None:
            return self.tracker.elapsed
        return time.monotonic() - self._origin

    def _render(self, only_running: bool = False) -> None:
        elapsed = self._elapsed()
        for row, view in zip(self.tracker.rows, self.rows):
            if only_running and row.status != "running":
                continue
            ticking = max(0.0, elapsed - row.started) if row.status == "running" and row.started is not None else None
            value = row_html(row, ticking, self._frame)
            if view.value != value:
                view.value = value
        self.title.value = (
            f'<div style="{MONO}"><b>Sandbox</b> <code>{html.escape(self.name)}</code> '
            f'<span style="color: #757575;">{self.state} · {elapsed:.1f} s</span></div>'
        )
        if only_running:
            return
        done = sum(row.status == "done" for row in self.tracker.rows)
        with self.bar.hold_sync():
            self.bar.value = done
            self.bar.description = f"{done}/{len(self.tracker.rows)}"
            self.bar.bar_style = {"starting": "info", "ready": "success", "failed": "danger"}[self.state]
        self._render_outcome()

    def _render_outcome(self) -> None:
        final = self.tracker.final
        if self.state == "ready" and final is not None:
            self.outcome.value = f'<div style="{MONO} color: {COLORS["done"]}; font-weight: bold;">✔ {ready_text(self.docker, final.elapsed)}</div>'
        elif self.state == "failed":
            self.outcome.value = self._failure_html(final)
            tail = log_tail_of(self.error, final)
            shown = "".join(output.get("text", "") for output in self.log.outputs)
            if tail and shown != tail + "\n":
                self.log.outputs = ()  # never `with out:` from a thread: set the outputs directly
                self.log.append_stdout(tail + "\n")
                self.log_box.layout.display = None

    def _failure_html(self, final: ProgressEvent | None) -> str:
        error = self.error
        cause = error.message if isinstance(error, SandboxError) else (final.message if final else str(error or ""))
        fix = error.fix if isinstance(error, SandboxError) else None
        parts = [f'<div style="{MONO} color: {COLORS["failed"]}; font-weight: bold;">✘ {html.escape(cause)}</div>']
        if fix:
            parts.append(f'<div style="{MONO}"><b>How to fix:</b> {html.escape(fix)}</div>')
        return "".join(parts)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.box._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = f"Sandbox {self.name}: startup progress (live widget)"
        return bundle

"""How a create's progress shows in a kernel: the live widget, or plain text lines where widgets cannot show.

The choice, in order: the ``progress`` argument (``--progress`` of the magic),
then the ``JUPYTER_SANDBOX_PROGRESS`` environment variable, then detection:
a kernel with ipywidgets gets the widget; terminal IPython, plain Python and
anything without a kernel get text.  Frontends that cannot render widgets
although a kernel runs (nbconvert, nbval) are told with the variable:
``notebooks/conftest.py`` sets ``JUPYTER_SANDBOX_PROGRESS=text`` for nbval.

Both views take the same calls: ``show()``, then ``view(event)`` for each
event, then ``finish(error)``.  The widget wants events on the core's loop
thread as they happen (``live_events``); the text view prints them from the
waiting thread, so its lines land in the cell that runs the create, in order.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from .errors import SpecError
from .events import PhaseTracker, ProgressEvent

PROGRESS_ENV = "JUPYTER_SANDBOX_PROGRESS"
MODES = ("auto", "widget", "text")
ICONS = {"done": "✔", "failed": "✘"}


def widgets_can_show() -> bool:
    """True inside a kernel (which has comms to a frontend) with ipywidgets installed."""
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:
        return False
    if getattr(get_ipython(), "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def choose_mode(requested: str | None = "auto") -> str:
    """Resolve ``auto`` (the argument, then ``$JUPYTER_SANDBOX_PROGRESS``) into ``widget`` or ``text``.

    Raises:
        SpecError: For a mode other than ``auto``, ``widget`` or ``text``.
    """
    mode = (requested or "auto").lower()
    if mode == "auto":
        mode = os.environ.get(PROGRESS_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise SpecError("progress", f"{mode!r} is not a progress mode", fix="use auto, widget or text")
    if mode == "auto":
        mode = "widget" if widgets_can_show() else "text"
    return mode


def ready_text(
    docker: bool, seconds: float, *, version: str = "", name: str = "", pool: bool = False, snapshot: str | None = None, digits: int = 2
) -> str:
    """What every face says when a create is ready (the one place this text is built).

    Args:
        docker: Whether the sandbox has a Docker daemon (``Docker daemon ...``, else ``Sandbox ...``).
        seconds: The create's duration.
        version: The inner daemon's version, when known (``Docker 27.3.1 ready in ...``).
        name: The sandbox's name, for lines that do not show it elsewhere (``... in demo ready in ...``).
        pool: It was taken from the warm pool (`` (warm pool)``).
        snapshot: It was forked from this snapshot (`` (from snapshot TAG)``).
        digits: Decimals of the seconds (the phase views show 1, events 2).
    """
    what = (f"Docker {version}" if version else "Docker daemon") if docker else "Sandbox"
    where = f" in {name}" if name else ""
    how = " (warm pool)" if pool else (f" (from snapshot {snapshot})" if snapshot else "")
    return f"{what}{where} ready in {seconds:.{digits}f} s{how}"


class TextProgress:
    """A create's phases as plain lines: a header, one line per finished phase, the outcome.

    Nothing is redrawn or cleared, so the output is the same in a terminal, a
    log, an exported notebook and nbval (after sanitizing the timings).

    Args:
        name: The sandbox's name.
        docker: Whether the create starts a Docker daemon.
        stream: Where to print (default: ``sys.stdout`` at the time of each print).
    """

    live_events = False

    def __init__(self, name: str, docker: bool, stream: TextIO | None = None, restored: bool = False):
        self.name = name
        self.docker = docker
        self.tracker = PhaseTracker(docker, restored=restored)
        self._stream = stream
        self._printed: set[str] = set()

    def _print(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def show(self) -> None:
        """Print the header line."""
        self._print(f"Sandbox {self.name}: starting{' (Docker inside)' if self.docker else ''}")

    def __call__(self, event: ProgressEvent) -> None:
        """Print the lines of phases this event finished (a phase is printed once)."""
        if self.tracker.final is not None:
            return
        self.tracker.update(event)
        for row in self.tracker.rows:
            if row.status in ICONS and row.phase.value not in self._printed:
                self._printed.add(row.phase.value)
                duration = f"{row.duration:.2f} s" if row.duration is not None else ""
                self._print(f"  {ICONS[row.status]} {row.phase.label:<26} {duration:>7}  {row.message}".rstrip())

    def finish(self, error: BaseException | None = None) -> None:
        """Print the outcome line (the error itself is shown by whoever raises it)."""
        final = self.tracker.final
        if error is None and final is not None and final.state == "done":
            self._print(f"✔ {ready_text(self.docker, final.elapsed)}")
        else:
            phase = final.label if final is not None else "startup"
            self._print(f"✘ Sandbox {self.name} failed at: {phase}")


def make_view(mode: str, name: str, docker: bool, restored: bool = False) -> Any:
    """The progress view for a resolved mode (``widget`` or ``text``); ``restored``: a fork's phases."""
    if mode == "widget":
        from .widgets import StartupWidget

        return StartupWidget(name, docker, restored=restored)
    return TextProgress(name, docker, restored=restored)

"""Pure logic of the progress views (no sandbox): synthetic events in, widget values and text lines out."""

from __future__ import annotations

import io
import time

import pytest

from jupyter_sandbox.errors import DockerdCrashed, SpecError
from jupyter_sandbox.events import DOCKER_PHASES, ProgressEvent
from jupyter_sandbox.progress import PROGRESS_ENV, TextProgress, choose_mode
from jupyter_sandbox.widgets import StartupWidget, log_tail_of


def event(phase: str, state: str, elapsed: float, message: str = "", detail: str = "") -> ProgressEvent:
    return ProgressEvent("demo", phase, state, elapsed, message, detail)


def test_the_running_phase_ticks_without_events_and_stops_at_the_end():
    widget = StartupWidget("demo", docker=True, tick=0.01).start()
    widget(event("image_check", "started", 0.0))
    before = widget.rows[0].value
    deadline = time.monotonic() + 30
    while widget.rows[0].value == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert widget.rows[0].value != before, "the spinner and elapsed time advance on their own"
    for index, phase in enumerate(DOCKER_PHASES):
        widget(event(phase.value, "done", 0.1 * (index + 1)))
    widget._ticker.join(30)
    assert not widget._ticker.is_alive() and widget.state == "ready"
    frozen = [row.value for row in widget.rows]
    widget(event("removed", "done", 99.0))  # a later removal does not touch the finished view
    assert [row.value for row in widget.rows] == frozen
    assert f"ready in {0.1 * len(DOCKER_PHASES):.2f} s" in widget.outcome.value


def test_a_failure_shows_cause_fix_and_the_log_once():
    widget = StartupWidget("demo", docker=True)
    widget(event("image_check", "done", 0.1))
    widget(event("socket", "failed", 0.5, "dockerd exited with code 1", "Last lines of the dockerd log:\nboom"))
    assert widget.log.outputs[0]["text"] == "boom\n"  # the panel's title already says what it is
    error = DockerdCrashed("dockerd exited with code 1 in sandbox 'demo'.", exit_code=1, log_tail="boom", fix="read the log")
    widget.finish(error)
    assert widget.state == "failed" and widget.bar.bar_style == "danger"
    assert "read the log" in widget.outcome.value and len(widget.log.outputs) == 1
    assert widget.log_box.layout.display is None


def test_log_tail_prefers_the_error_and_drops_the_heading():
    assert log_tail_of(None, event("socket", "failed", 1, detail="Last lines of the dockerd log:\na\nb")) == "a\nb"
    assert log_tail_of(DockerdCrashed("x", exit_code=1, log_tail="from error"), None) == "from error"
    assert log_tail_of(None, event("socket", "done", 1, detail="not a failure")) == ""


def test_text_lines_one_per_finished_phase_in_order():
    stream = io.StringIO()
    view = TextProgress("demo", docker=True, stream=stream)
    view.show()
    # A sandbox from the warm pool reports several phases done at once, some without a start.
    for index, phase in enumerate(DOCKER_PHASES):
        view(event(phase.value, "done", 0.25 * (index + 1), f"message {index}"))
    view(event("ready", "done", 9.0))  # repeated final: printed once
    view.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "Sandbox demo: starting (Docker inside)"
    assert [line[4:30].strip() for line in lines[1:-1]] == [phase.label for phase in DOCKER_PHASES]
    assert lines[1] == "  ✔ Image found                 0.25 s  message 0"
    assert lines[-1] == f"✔ Docker daemon ready in {0.25 * len(DOCKER_PHASES):.2f} s"


def test_progress_mode_argument_then_environment_then_detection(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert choose_mode("auto") == "text"  # no kernel here: widgets could not show
    assert choose_mode("widget") == "widget"
    monkeypatch.setenv(PROGRESS_ENV, "widget")
    assert choose_mode("auto") == "widget" and choose_mode("text") == "text"
    monkeypatch.setenv(PROGRESS_ENV, "fancy")
    with pytest.raises(SpecError, match="not a progress mode"):
        choose_mode("auto")


def test_every_ready_line_comes_from_one_function():
    from jupyter_sandbox.progress import ready_text

    assert ready_text(True, 1.234) == "Docker daemon ready in 1.23 s"
    assert ready_text(False, 0.5) == "Sandbox ready in 0.50 s"
    assert ready_text(True, 1.234, version="27.3.1") == "Docker 27.3.1 ready in 1.23 s"
    assert ready_text(False, 0.5, version="27.3.1") == "Sandbox ready in 0.50 s"  # no daemon, no version
    assert ready_text(True, 0.031, pool=True) == "Docker daemon ready in 0.03 s (warm pool)"
    assert ready_text(True, 0.8, snapshot="base") == "Docker daemon ready in 0.80 s (from snapshot base)"
    assert ready_text(True, 1.25, name="demo") == "Docker daemon in demo ready in 1.25 s"
    assert ready_text(True, 1.25, digits=1) == "Docker daemon ready in 1.2 s"


def test_no_other_module_builds_a_ready_line():
    import pathlib
    import re

    root = pathlib.Path(__file__).parent.parent
    sources = [*(root / "jupyter_sandbox").glob("*.py"), *(root / "server_ext" / "jupyter_sandbox_server").glob("*.py")]
    builders = [path.name for path in sources if path.name != "progress.py" and re.search(r"ready in \{|ready in %", path.read_text())]
    assert builders == [], "build the 'ready in' text with progress.ready_text"

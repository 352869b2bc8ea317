"""%sandbox create through a real IPython shell, on real runsc sandboxes: phases, widget model, failures,
bad arguments, interrupts and a create watched from two places."""

from __future__ import annotations

import _thread
import io
import threading

import pytest
from IPython.core.error import UsageError
from sandbox_test_support import Tripwire, creates_nothing, unique_name

from jupyter_sandbox import labels as L
from jupyter_sandbox.errors import DockerdCrashed, SandboxError, SpecError
from jupyter_sandbox.events import DOCKER_PHASES
from jupyter_sandbox.notebook import session
from jupyter_sandbox.progress import ready_text
from jupyter_sandbox.widgets import StartupWidget

pytestmark = pytest.mark.integration


def containers_named(engine_client, name: str) -> list:
    return engine_client.containers.list(all=True, filters={"label": f"{L.NAME}={name}"})


def test_text_progress_shows_every_phase_in_order_and_returns_the_current_sandbox(shell, capsys, no_leaks):
    name = unique_name("mg-text")
    sandbox = shell.run_line_magic("sandbox", f"create --docker --name {name} --progress text")
    try:
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert lines[0] == f"Sandbox {name}: starting (Docker inside)"
        labels = [phase.label for phase in DOCKER_PHASES]
        phase_lines = lines[1 : 1 + len(labels)]
        assert [line[4:30].strip() for line in phase_lines] == labels
        assert all(line.startswith("  ✔ ") for line in phase_lines)
        assert lines[-1].startswith("✔ Docker daemon ready in ") and lines[-1].endswith(" s")
        # One figure: the outcome line, the ready phase and every other process's view (the status) agree.
        assert lines[-1] == f"✔ {ready_text(True, sandbox.ready_seconds)}"
        assert [e.elapsed for e in sandbox.events if e.phase == "ready"] == [sandbox.ready_seconds]
        assert sandbox.status().ready_seconds == sandbox.ready_seconds
        done = [e.phase for e in sandbox.events if e.state == "done"]
        assert done == [p.value for p in DOCKER_PHASES]
        assert session().current == name and name in session().owned
        assert sandbox.status().owner == "kernel"
    finally:
        shell.run_line_magic("sandbox", f"rm {name}")


def test_image_load_shows_a_phase_per_image_and_the_image_is_there(shell, capsys, test_images, no_leaks):
    name = unique_name("st-mg")
    tiny = test_images["tiny"]
    sandbox = shell.run_line_magic("sandbox", f"create --docker --name {name} --memory 1Gi --disk 512Mi --image-load {tiny} --progress text")
    try:
        lines = capsys.readouterr().out.splitlines()
        loaded = [i for i, line in enumerate(lines) if f"Image loaded: {tiny}" in line]
        ready = [i for i, line in enumerate(lines) if line[4:30].strip() == "Ready"]
        assert len(loaded) == 1 and ready and loaded[0] < ready[0], lines
        images = sandbox.docker.images(quiet=True, filter=f"reference={tiny}")
        assert images.wait() == 0 and images.stdout.read().strip()
        assert sandbox.core.spec.disk == 512 * 2**20
    finally:
        shell.run_line_magic("sandbox", f"rm {name}")


def test_widget_model_ends_ready(shell, no_leaks):
    name = unique_name("mg-widget")
    sandbox = shell.run_line_magic("sandbox", f"create --docker --name {name} --progress widget")
    try:
        widget = session().views[name]
        assert isinstance(widget, StartupWidget)
        assert widget.state == "ready"
        assert [row.status for row in widget.tracker.rows] == ["done"] * len(DOCKER_PHASES)
        assert all("✔" in row.value for row in widget.rows)
        assert widget.bar.value == widget.bar.max == len(DOCKER_PHASES) and widget.bar.bar_style == "success"
        assert "Docker daemon ready in" in widget.outcome.value
        assert widget.log_box.layout.display == "none" and not widget.log.outputs
        widget._ticker.join(5)
        assert not widget._ticker.is_alive(), "the elapsed-time ticker must stop when the startup ends"
        assert sandbox.status().state == "ready"
    finally:
        shell.run_line_magic("sandbox", f"rm {name}")


def test_widget_model_ends_failed_with_cause_fix_and_log_tail(shell, test_images, no_leaks):
    name = unique_name("mg-crash")
    with pytest.raises(DockerdCrashed) as caught:
        shell.run_line_magic("sandbox", f"create --docker --name {name} --image {test_images['dockerd_exits']} --progress widget")
    widget = session().views[name]
    assert widget.state == "failed" and widget.bar.bar_style == "danger"
    failed = [(row, view) for row, view in zip(widget.tracker.rows, widget.rows) if row.status == "failed"]
    assert len(failed) == 1 and "✘" in failed[0][1].value and "dockerd exited with code 1" in failed[0][1].value
    assert "How to fix:" in widget.outcome.value and caught.value.message in widget.outcome.value.replace("&#x27;", "'")
    assert widget.log_box.layout.display is None
    assert "refusing to start on purpose" in widget.log.outputs[0]["text"]
    rendered = "\n".join(caught.value._render_traceback_())
    assert "DockerdCrashed" in rendered and "How to fix:" in rendered and "Traceback" not in rendered
    assert name not in session().sandboxes and session().current != name


@pytest.mark.parametrize(
    "line",
    [
        "create --docker --memory 4Gb",
        "create --docker --cpu -1",
        "create --docker --name ../x",
        "create --docker --network bridge",
        "create --docker --bogus",
        "create --docker extra-positional",
        "ls --docker",
        "explode",
        "create --docker --disk lots",
        "create --docker --memory 1Gi --disk 2Gi",
        "ls --disk 1Gi",
    ],
)
def test_bad_arguments_give_the_message_and_create_nothing(shell, engine_client, line, no_leaks):
    with creates_nothing(engine_client), pytest.raises((UsageError, SpecError)) as caught:
        shell.run_line_magic("sandbox", line)
    if isinstance(caught.value, UsageError) and "only applies" not in str(caught.value):
        assert "usage: %sandbox" in str(caught.value)
    if isinstance(caught.value, SpecError):
        assert "How to fix:" in str(caught.value)


def test_help_is_generated_from_the_arguments(shell, capsys):
    shell.run_line_magic("sandbox", "--help")
    text = capsys.readouterr().out
    for option in ("--docker", "--name", "--image", "--cpu", "--memory", "--network", "--env", "--timeout", "--keep", "--progress", "--all"):
        assert option in text
    assert text.startswith("usage: %sandbox [-h] [--docker]")
    assert "exec and load: stop the command after this many seconds" in " ".join(text.split())
    assert text.strip().removeprefix("usage:").strip() in shell.find_line_magic("sandbox").__doc__  # as %sandbox?


def test_interrupting_a_create_removes_the_half_made_sandbox(shell, engine_client, test_images, no_leaks, monkeypatch):
    name = unique_name("mg-intr")
    # dockerd-silent never opens its socket: the create is guaranteed to still be waiting when interrupted.
    tripwire = Tripwire("dockerd started", lambda: threading.Thread(target=_thread.interrupt_main).start())
    monkeypatch.setattr("sys.stdout", tripwire)
    with pytest.raises(KeyboardInterrupt):
        shell.run_line_magic("sandbox", f"create --docker --name {name} --image {test_images['dockerd_silent']} --timeout 120 --progress text")
    monkeypatch.undo()
    assert tripwire.fired
    assert containers_named(engine_client, name) == []
    assert name not in session().jobs and name not in session().sandboxes


def test_a_create_running_elsewhere_is_watched_not_started_twice(shell, engine_client, test_images, no_leaks, monkeypatch):
    name = unique_name("mg-join")
    first_outcome: dict = {}
    in_flight = threading.Event()

    class Gate(io.StringIO):
        """Both creates print here: the first one's line releases the second, the second one's interrupts it."""

        fired = False

        def write(self, text: str) -> int:
            written = super().write(text)
            seen = self.getvalue().count("dockerd started")
            if seen >= 1:
                in_flight.set()
            if seen >= 2 and not self.fired:
                self.fired = True
                threading.Thread(target=_thread.interrupt_main).start()
            return written

    def first() -> None:
        try:
            session().create(name, docker=True, image=test_images["dockerd_silent"], timeout=120, progress="text")
        except BaseException as error:  # noqa: BLE001 - recorded for the assertions
            first_outcome["error"] = error

    gate = Gate()
    monkeypatch.setattr("sys.stdout", gate)
    thread = threading.Thread(target=first)
    thread.start()
    assert in_flight.wait(60)
    # dockerd-silent never answers, so the first create is still running: the second one must watch it.
    with pytest.raises(KeyboardInterrupt):
        shell.run_line_magic("sandbox", f"create --docker --name {name} --image {test_images['dockerd_silent']} --progress text")
    thread.join(60)
    monkeypatch.undo()
    assert gate.getvalue().count("Image found") == 2, "the second create replays the phases of the running one"
    assert "already exists" not in gate.getvalue()
    assert isinstance(first_outcome.get("error"), SandboxError) and "interrupted" in str(first_outcome["error"])
    assert containers_named(engine_client, name) == []


def test_creating_the_same_name_again_reuses_this_kernels_sandbox(shell, capsys, no_leaks):
    name = unique_name("mg-again")
    first = shell.run_line_magic("sandbox", f"create --name {name} --progress text")
    try:
        again = shell.run_line_magic("sandbox", f"create --name {name} --progress text")
        assert again is first
        assert "already exists in this kernel: using it" in capsys.readouterr().out
        with pytest.raises(SandboxError, match="another spec"):
            shell.run_line_magic("sandbox", f"create --docker --name {name} --progress text")
    finally:
        shell.run_line_magic("sandbox", f"rm {name}")


def test_a_name_another_sandbox_has_is_said_once_and_nothing_starts(shell, capsys, no_leaks):
    from jupyter_sandbox.errors import SandboxExists
    from jupyter_sandbox.sync import Sandbox

    name = unique_name("mg-taken")
    other = Sandbox.create(name, owner="test", use_pool=False)  # another process's, as far as this kernel knows
    try:
        with pytest.raises(SandboxExists, match="already exists; nothing was created") as raised:
            shell.run_line_magic("sandbox", f"create --name {name} --progress text")
        shown = capsys.readouterr()
        assert "starting" not in shown.out and "failed at" not in shown.out, "no view of a create that never began"
        assert "%sandbox rm" in raised.value._render_traceback_()[1]
        assert other.status().state == "ready", "the existing sandbox is untouched"
    finally:
        other.terminate()


def test_kept_sandboxes_survive_the_session_and_use_reattaches(shell, capsys, engine_client):
    name = unique_name("mg-keep")
    shell.run_line_magic("sandbox", f"create --name {name} --keep --progress text")
    try:
        assert name not in session().owned
        assert name not in session().shutdown()
        assert containers_named(engine_client, name), "a kept sandbox outlives the kernel's cleanup"
        session().forget(name)
        again = shell.run_line_magic("sandbox", f"use {name}")
        assert again.name == name and session().current == name
        assert f"Using sandbox {name} (ready)." in capsys.readouterr().out
        assert again.status().owner == "kernel-kept"
    finally:
        shell.run_line_magic("sandbox", f"rm {name}")
    assert containers_named(engine_client, name) == []


def test_unloading_the_extension_terminates_the_kernels_sandboxes(shell, engine_client, no_leaks):
    name = unique_name("mg-unload")
    shell.run_line_magic("sandbox", f"create --name {name} --progress text")
    shell.run_line_magic("unload_ext", "jupyter_sandbox")
    try:
        assert not containers_named(engine_client, name)
        assert shell.find_line_magic("sandbox") is None and shell.find_cell_magic("sandbox_docker") is None
    finally:
        shell.run_line_magic("load_ext", "jupyter_sandbox")
    assert shell.find_line_magic("sandbox") is not None

"""Unit tests of the pure logic: init-script protocol, phase tracking, states, flags, pid marker, hints."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_sandbox.bootstrap import InitReportParser, diagnose
from jupyter_sandbox.docker import explain_failure, to_flags
from jupyter_sandbox.events import EventBus, PhaseTracker, ProgressEvent
from jupyter_sandbox.process import Chunk, TextDecoder
from jupyter_sandbox.runtimes import WANTED_RUNTIMES, RuntimeConflict, merge_into, runtime_for
from jupyter_sandbox.status import derive_state

OUTPUT = """\
@@jupyter-sandbox booted done 0.41 kernel 4.4.0
noise the parser ignores
@@jupyter-sandbox dockerd_present started 0.43
@@jupyter-sandbox-log level=error msg="boom"
@@jupyter-sandbox-log failed to start daemon
@@jupyter-sandbox socket failed 1.2 dockerd exited with code 1
"""


def test_parser_handles_any_chunking():
    whole = InitReportParser().feed(OUTPUT)
    for size in (1, 3, 7, 64):
        parser = InitReportParser()
        pieces = []
        for start in range(0, len(OUTPUT), size):
            pieces += parser.feed(OUTPUT[start : start + size])
        assert pieces == whole
    assert [r.phase for r in whole] == ["booted", "dockerd_present", "socket"]
    assert whole[0].uptime == 0.41 and whole[0].message == "kernel 4.4.0"
    assert whole[2].log_tail == 'level=error msg="boom"\nfailed to start daemon'


@given(st.text())
def test_parser_never_crashes(text):
    InitReportParser().feed(text)


def test_state_derivation():
    reports = InitReportParser().feed(OUTPUT.replace("socket failed", "socket done") + "@@jupyter-sandbox ready done 1.5 Docker 20.10\n")
    assert derive_state("running", reports)[0] == "ready"
    assert derive_state("running", reports[:2])[0] == "starting"
    assert derive_state("exited", reports)[0] == "stopped"
    assert derive_state(None, reports)[0] == "gone"
    crashed = reports + InitReportParser().feed("@@jupyter-sandbox daemon failed 9.0 dockerd exited with code 137\n")
    assert derive_state("running", crashed) == ("failed", "dockerd exited with code 137")
    restarting = crashed + InitReportParser().feed("@@jupyter-sandbox daemon started 10.0 restarting dockerd\n")
    assert derive_state("running", restarting)[0] == "starting"


def event(phase, state, elapsed, message=""):
    return ProgressEvent("t", phase, state, elapsed, message)


def test_tracker_marks_the_phase_being_waited_for():
    tracker = PhaseTracker(docker=True)
    tracker.update(event("image_check", "started", 0.0))
    tracker.update(event("image_check", "done", 0.1))
    assert tracker.current.phase.value == "sandbox_start"
    tracker.update(event("sandbox_start", "done", 0.6))
    row = tracker.rows[1]
    assert row.status == "done" and round(row.duration, 2) == 0.5
    tracker.update(event("socket", "failed", 1.0, "dockerd exited with code 1"))
    assert tracker.final is not None and next(r for r in tracker.rows if r.phase.value == "socket").status == "failed"
    assert tracker.current is None


def test_each_preloaded_image_gets_a_row_before_ready():
    tracker = PhaseTracker(docker=True, images=["a:1"])
    tracker.update(event("answering", "done", 1.0))
    tracker.update(event("load:b:2", "started", 1.1))
    tracker.update(event("load:b:2", "started", 2.1, "b:2: 50 of ~100 MB, 50 MB/s"))  # progress keeps the start
    names = [row.phase.value for row in tracker.rows]
    assert names[-3:] == ["load:a:1", "load:b:2", "ready"]
    assert tracker.rows[-2].phase.label == "Image loaded: b:2" and tracker.current is tracker.rows[-3]
    assert event("load:b:2", "done", 1.2).label == "Image loaded: b:2"
    tracker.update(event("load:b:2", "done", 3.1))
    assert round(tracker.rows[-2].duration, 2) == 2.0 and tracker.rows[-2].status == "done"
    assert "storage" in names and PhaseTracker(docker=False).rows[-1].phase.value == "ready"


def test_bus_replays_history_to_late_listeners():
    bus = EventBus()
    bus.publish(event("image_check", "started", 0))
    seen = []
    bus.add_listener(seen.append)
    bus.publish(event("image_check", "done", 0.1))
    assert [e.state for e in seen] == ["started", "done"]


def test_flags():
    assert to_flags({"rm": True, "network": "host", "detach": False, "env": {"A": "1"}, "p": ["80:80", "81:81"], "x": None}) == [
        "--rm",
        "--network=host",
        "--env=A=1",
        "-p=80:80",
        "-p=81:81",
    ]


def test_decoder_survives_split_and_invalid_utf8():
    decoder = TextDecoder()
    snowman = "☃".encode()
    assert decoder.decode(Chunk("stdout", snowman[:1])) == ""
    assert decoder.decode(Chunk("stdout", snowman[1:] + b"\xff")) == "☃\ufffd"


def test_hints():
    assert "load" in explain_failure(["docker", "pull", "x"], "dial tcp: lookup registry: no route to host", "none")
    assert "Compose v2" in explain_failure(["docker", "compose", "up"], "docker: 'compose' is not a docker command.", "none")
    assert explain_failure(["docker", "ps"], "", "none") is None
    assert "--pid=host" in explain_failure(["docker", "exec", "c", "true"], "OCI runtime exec failed: error executing setns process", "none")
    assert "runsc 20240729" in diagnose('level=fatal msg="Devices cgroup isn\'t mounted"')


def test_runtime_lookup_and_merge():
    registered = dict(WANTED_RUNTIMES)
    assert runtime_for("none", registered) == "runsc"
    assert runtime_for("host", registered) == "runsc-host"
    assert runtime_for("host", {"runc": {"path": "runc"}}) is None
    config = {"runtimes": {"other": {"path": "/x"}}, "debug": True}
    assert merge_into(config) and config["debug"] and "other" in config["runtimes"]
    assert not merge_into(config)


def test_an_older_runtime_of_ours_is_updated_and_says_so():
    config = {"runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--net-raw"]}}}
    changes = merge_into(config)
    assert any(line.startswith("updated runtime runsc:") and "(was " in line for line in changes)
    assert config["runtimes"]["runsc"] == WANTED_RUNTIMES["runsc"]


def test_an_admins_runtime_of_our_name_is_never_replaced_silently():
    theirs = {"path": "/opt/gvisor/runsc", "runtimeArgs": ["--platform=kvm"]}
    config = {"runtimes": {"runsc": dict(theirs)}}
    with pytest.raises(RuntimeConflict) as caught:
        merge_into(config)
    assert "did not write" in str(caught.value) and "JUPYTER_SANDBOX_REPLACE_RUNTIMES=1" in str(caught.value)
    assert config["runtimes"]["runsc"] == theirs
    assert merge_into(config, replace_foreign=True) and config["runtimes"]["runsc"] == WANTED_RUNTIMES["runsc"]


def test_loading_the_magics_imports_neither_the_cli_nor_rich():
    """Every kernel loads the magics: they share the CLI's option definitions, not its module (rich, consoles)."""
    import subprocess
    import sys

    code = "import sys, jupyter_sandbox.magics; print(sorted(m for m in ('rich', 'jupyter_sandbox.cli') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"

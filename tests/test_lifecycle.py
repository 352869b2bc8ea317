"""Time limits without sandboxes: parsing, labels, the activity marker, time left."""

from __future__ import annotations

import json
import os
import time

import pytest

from jupyter_sandbox import labels as L
from jupyter_sandbox import lifecycle
from jupyter_sandbox.errors import SpecError
from jupyter_sandbox.spec import SandboxSpec, format_duration, parse_duration
from jupyter_sandbox.status import derive_state, info_from_container


@pytest.mark.parametrize(
    "text,seconds",
    [
        (5, 5.0),
        ("5", 5.0),
        ("5s", 5.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        (" 2H ", 7200.0),
        (None, None),
        ("", None),
    ],
)
def test_durations_parse(text, seconds):
    assert parse_duration(text, "ttl") == seconds


@pytest.mark.parametrize("value", [-5, "-5", "-1h", 0, 0.5, "31d", 40 * 86400, "soon", "5 weeks", True, float("nan"), float("inf"), [5]])
def test_bad_durations_name_the_field_and_the_fix(value):
    with pytest.raises(SpecError) as caught:
        SandboxSpec.parse("x", idle_timeout=value)
    assert caught.value.field == "idle_timeout" and caught.value.fix


def test_rest_bodies_take_the_limits_and_labels_hold_the_deadline():
    spec = SandboxSpec.from_dict({"name": "x", "ttl": "2h", "idle_timeout": 60})
    assert (spec.ttl, spec.idle_timeout) == (7200.0, 60.0)
    labels = L.sandbox_labels(spec, "test")
    assert float(labels[L.EXPIRES]) == pytest.approx(float(labels[L.CREATED]) + 7200, abs=0.01)
    assert lifecycle.limits_of(labels) == (7200.0, 60.0)
    restored = L.spec_from_labels(labels)
    assert (restored.ttl, restored.idle_timeout) == (7200.0, 60.0)
    assert L.EXPIRES not in L.sandbox_labels(SandboxSpec.parse("y"), "test")


def test_expiry_and_formatting():
    labels = {L.EXPIRES: f"{time.time() - 3:.3f}", L.SPEC: json.dumps({"ttl": 5})}
    assert lifecycle.expired(labels) and not lifecycle.expired({})
    assert "its ttl of 5s ran out 3s ago" in lifecycle.expired_message("demo", labels)
    assert [format_duration(s) for s in (0, 59, 60, 61, 3600, 5400, 86400, 90000)] == ["0s", "59s", "1m", "1m01s", "1h", "1h30m", "1d", "1d1h"]


def test_the_activity_marker_moves_the_last_activity(tmp_path, monkeypatch):
    monkeypatch.setenv(lifecycle.STATE_DIR_ENV, str(tmp_path))
    created = time.time() - 100
    attrs = {
        "Id": "c0ffee",
        "Config": {"Labels": {L.CREATED: f"{created:.3f}", L.SPEC: json.dumps({"idle_timeout": 30})}},
        "State": {"Status": "running", "Running": True, "StartedAt": "0001-01-01T00:00:00Z"},
    }
    assert lifecycle.idle_for(attrs) == (30.0, pytest.approx(100, abs=1))
    lifecycle.touch("c0ffee")
    assert os.path.exists(tmp_path / "activity" / "c0ffee")
    assert lifecycle.idle_for(attrs)[1] < 1
    info = info_from_container(attrs, [])
    assert info.idle_timeout == 30 and info.last_activity == pytest.approx(time.time(), abs=1)
    lifecycle.forget("c0ffee")
    assert not os.path.exists(tmp_path / "activity" / "c0ffee")


def test_a_paused_container_is_paused_not_stopped():
    assert derive_state("paused", []) == ("paused", "paused: its next use resumes it")


def test_markers_of_vanished_containers_are_pruned_after_a_grace(tmp_path, monkeypatch):
    monkeypatch.setenv(lifecycle.STATE_DIR_ENV, str(tmp_path))
    for name in ("kept", "vanished", "fresh"):
        lifecycle.touch(name)
    old = time.time() - 120
    for name in ("kept", "vanished"):
        os.utime(tmp_path / "activity" / name, (old, old))
    lifecycle.prune({"kept"})
    assert sorted(os.listdir(tmp_path / "activity")) == ["fresh", "kept"]

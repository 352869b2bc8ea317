"""One "ready in" figure: the creator's ``ready_seconds``, recorded for every other process's views."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_sandbox import labels as L
from jupyter_sandbox.lifecycle import STATE_DIR_ENV
from jupyter_sandbox.spec import SandboxSpec
from jupyter_sandbox.status import forget_ready, info_from_container, ready_seconds_of, record_ready


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    return tmp_path


def attrs(container_id: str, status: str = "running") -> dict[str, Any]:
    spec = SandboxSpec(name="pn-ready", docker=False)
    return {
        "Id": container_id,
        "Name": "/pn-ready",
        "State": {"Status": status, "Running": status == "running"},
        "Config": {"Labels": L.sandbox_labels(spec, "cli")},
    }


def test_the_recorded_figure_is_read_back_exactly() -> None:
    record_ready("c1", 1.23456789)
    assert ready_seconds_of("c1") == 1.23456789
    forget_ready("c1")
    assert ready_seconds_of("c1") is None
    assert ready_seconds_of("") is None


def test_a_damaged_record_gives_no_figure_rather_than_another(state_dir: Any) -> None:
    (state_dir / "ready").mkdir()
    (state_dir / "ready" / "c2.json").write_text("not json")
    assert ready_seconds_of("c2") is None


def test_the_info_carries_it_only_once_ready() -> None:
    from jupyter_sandbox.bootstrap import InitReport

    record_ready("c3", 0.875)
    ready = [InitReport("ready", "done", 0.5, "Sandbox ready")]
    assert info_from_container(attrs("c3"), ready).ready_seconds == 0.875
    assert info_from_container(attrs("c3"), []).ready_seconds is None  # still starting
    assert info_from_container(attrs("c3"), ready).to_dict()["ready_seconds"] == 0.875

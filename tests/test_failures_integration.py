"""Every failure path on real sandboxes: the error names the cause and the fix, and nothing is left behind."""

from __future__ import annotations

import os

import pytest
from sandbox_test_support import creates_nothing, unique_name

from jupyter_sandbox.errors import (
    DaemonTimeout,
    DockerdCrashed,
    ImageNotFound,
    NoDockerd,
    SandboxExists,
    SpecError,
)
from jupyter_sandbox.sync import Sandbox

pytestmark = pytest.mark.integration


def test_image_without_dockerd(test_images, no_leaks):
    with pytest.raises(NoDockerd) as caught:
        Sandbox.create(docker=True, image=test_images["no_dockerd"], owner="test")
    text = str(caught.value)
    assert "has no dockerd" in text and "jupyter sandbox image build --docker" in text


def test_dockerd_that_exits_at_once(test_images, no_leaks):
    events = []
    with pytest.raises(DockerdCrashed) as caught:
        Sandbox.create(docker=True, image=test_images["dockerd_exits"], owner="test", on_event=events.append)
    error = caught.value
    assert error.exit_code == 1
    assert "refusing to start on purpose" in error.log_tail
    assert "dockerd exited with code 1" in str(error)
    assert events[-1].state == "failed" and "refusing to start on purpose" in events[-1].detail


def test_dockerd_that_never_opens_its_socket_times_out_naming_the_phase(test_images, no_leaks):
    with pytest.raises(DaemonTimeout) as caught:
        Sandbox.create(docker=True, image=test_images["dockerd_silent"], timeout=3, owner="test")
    error = caught.value
    assert error.phase == "socket"
    assert "stuck in phase 'socket'" in str(error)
    assert "never opening the socket" in error.log_tail
    assert "raise the timeout" in str(error)


def test_image_not_found(no_leaks):
    with pytest.raises(ImageNotFound) as caught:
        Sandbox.create(docker=True, image="no-such-image:never", owner="test")
    assert "docker pull no-such-image:never" in str(caught.value)


@pytest.mark.parametrize("fields", [{"memory": "4Gb"}, {"cpu": -1}, {"name": "../x"}, {"timeout": "soon"}, {"network": "bridge"}])
def test_bad_specs_create_nothing(fields, engine_client, no_leaks):
    with creates_nothing(engine_client), pytest.raises(SpecError):
        Sandbox.create(docker=True, owner="test", **fields)


def test_duplicate_name_is_refused_and_the_first_sandbox_kept(no_leaks):
    name = f"dup-{os.getpid()}"
    with Sandbox.create(name, owner="test") as first:
        with pytest.raises(SandboxExists, match="already exists"):
            Sandbox.create(name, owner="test")
        assert first.status().state == "ready"


def test_network_mode_sandbox_is_the_default_and_starts(no_leaks):
    with Sandbox.create(unique_name("test"), owner="test", use_pool=False) as sandbox:
        info = sandbox.status()
        assert sandbox.spec.network == "sandbox" and info.state == "ready"
        assert info.egress == "public" and info.address


def test_host_network_sandbox_sees_the_host_interfaces(no_leaks):
    from jupyter_sandbox.sync import HostNetworkWarning

    with pytest.warns(HostNetworkWarning, match="the host's network namespace"):  # said, every time
        sandbox = Sandbox.create(network="host", owner="test")
    with sandbox:
        routes = sandbox.run(["cat", "/proc/net/dev"]).stdout.read()
        assert "lo:" in routes and len(routes.splitlines()) > 3


def test_a_listener_that_raises_never_kills_the_sandbox(test_images, no_leaks, caplog):
    """A broken view (an on_event callback, a widget) is logged and skipped; the create goes on."""
    seen = []

    def broken_view(event) -> None:
        seen.append(event.phase)
        raise RuntimeError("a view that always fails")

    sandbox = Sandbox.create(image=test_images["tiny"], owner="test", use_pool=False, on_event=broken_view)
    try:
        assert sandbox.status().state == "ready"
        assert "ready" in seen and "booted" in seen
        assert "a progress listener" in caplog.text and "a view that always fails" in caplog.text
    finally:
        sandbox.terminate()

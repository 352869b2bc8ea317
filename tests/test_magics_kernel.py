"""The magics in a real ipykernel (as Jupyter runs them): the widget over comms, a kernel interrupt,
and the kernel's sandboxes terminated at shutdown unless kept, re-attached after a restart."""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest
from jupyter_client.manager import KernelManager, start_new_kernel
from sandbox_test_support import unique_name

from jupyter_sandbox import labels as L
from jupyter_sandbox.events import DOCKER_PHASES
from jupyter_sandbox.progress import PROGRESS_ENV

pytestmark = pytest.mark.integration
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def kernel() -> Iterator[tuple[KernelManager, Any]]:
    """A fresh python3 kernel with the extension loaded (progress left to auto-detection)."""
    env = {key: value for key, value in os.environ.items() if key != PROGRESS_ENV}
    manager, client = start_new_kernel(kernel_name="python3", env=env, startup_timeout=60)
    run(client, "%load_ext jupyter_sandbox")
    try:
        yield manager, client
    finally:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=False)


def run(client: Any, code: str, timeout: float = 180) -> list[dict[str, Any]]:
    """Execute code; return its iopub messages (the reply status must be ok)."""
    messages: list[dict[str, Any]] = []
    reply = client.execute_interactive(code, output_hook=messages.append, timeout=timeout)
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert reply["content"]["status"] == "ok", errors
    return messages


def stdout_of(messages: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def sandbox_exists(engine_client: Any, name: str) -> bool:
    return bool(engine_client.containers.list(all=True, filters={"label": f"{L.NAME}={name}"}))


def test_create_in_a_kernel_shows_the_live_widget_over_comms(kernel, engine_client):
    manager, client = kernel
    name = unique_name("mk-widget")
    try:
        messages = run(client, f"sb = %sandbox create --docker --name {name}")
        shown = [m["content"]["data"] for m in messages if m["msg_type"] == "display_data"]
        assert len(shown) == 1 and WIDGET_VIEW in shown[0]
        assert shown[0]["text/plain"] == f"Sandbox {name}: startup progress (live widget)"
        opened = {m["content"]["data"]["state"]["_model_name"] for m in messages if m["msg_type"] == "comm_open"}
        assert {"VBoxModel", "HTMLModel", "IntProgressModel", "AccordionModel", "OutputModel"} <= opened
        updates = [m["content"]["data"]["state"] for m in messages if m["msg_type"] == "comm_msg" and m["content"]["data"].get("method") == "update"]
        phases = len(DOCKER_PHASES)
        assert {"value": phases, "bar_style": "success", "description": f"{phases}/{phases}"} in updates  # batched with hold_sync
        assert any("Docker daemon ready in" in str(update.get("value", "")) for update in updates)
        assert stdout_of(run(client, "print(sb.status().state, sb.status().owner)")) == "ready kernel\n"
    finally:
        manager.shutdown_kernel(now=False)
    assert not sandbox_exists(engine_client, name), "the kernel's shutdown terminates its sandboxes"


def test_a_kernel_interrupt_stops_the_docker_command_inside(kernel, test_images):
    manager, client = kernel
    name = unique_name("mk-intr")
    run(client, f"sb = %sandbox create --docker --name {name} --progress text\n%sandbox load {test_images['tiny']}")
    msg_id = client.execute(f"%%sandbox_docker\nrun --rm {test_images['tiny']} sh -c 'echo started; sleep 4949'\n")
    seen, interrupted, errors = "", False, []
    while True:
        message = client.get_iopub_msg(timeout=120)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            seen += content["text"]
            if "started" in seen and not interrupted:
                manager.interrupt_kernel()  # a real SIGINT, as Jupyter sends it
                interrupted = True
        elif kind == "error":
            errors.append(content["ename"])
        elif kind == "status" and content["execution_state"] == "idle":
            break
    assert interrupted and errors == ["KeyboardInterrupt"]
    processes = stdout_of(run(client, "%sandbox exec -- ps -eo args"))
    assert "ps -eo args" in processes and "sleep 4949" not in processes
    run(client, f"%sandbox rm {name}")


def test_kept_sandboxes_survive_a_restart_and_use_reattaches(kernel, engine_client):
    manager, client = kernel
    gone, kept = unique_name("mk-gone"), unique_name("mk-kept")
    try:
        run(client, f"a = %sandbox create --name {gone} --progress text\nb = %sandbox create --name {kept} --keep --progress text")
        manager.restart_kernel(now=False)
        client.wait_for_ready(timeout=60)
        assert not sandbox_exists(engine_client, gone), "the restart's shutdown terminated the kernel's sandbox"
        assert sandbox_exists(engine_client, kept)
        out = stdout_of(run(client, f"%load_ext jupyter_sandbox\nsb = %sandbox use {kept}\nprint(sb.name)"))
        assert out == f"Using sandbox {kept} (ready).\n{kept}\n"
        assert stdout_of(run(client, "%sandbox exec -- echo still here")) == "still here\n"
        run(client, f"%sandbox rm {kept}")
    finally:
        for name in (gone, kept):
            for container in engine_client.containers.list(all=True, filters={"label": f"{L.NAME}={name}"}):
                container.remove(force=True)
    assert not sandbox_exists(engine_client, kept)

"""The startup widget in a real JupyterLab, driven by headless Debian Chromium through playwright.

Runs the quickstart's create cell, checks what the page shows (one row per phase, the
progress bar, the outcome line), catches the widget live on a startup that is guaranteed to
hang (a dockerd that never answers), and saves screenshots under ``test-output/``.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from typing import Iterator

import pytest
from test_browser_e2e import CHROMIUM, CHROMIUM_ARGS

from jupyter_sandbox import labels as L
from jupyter_sandbox.events import DOCKER_PHASES
from jupyter_sandbox.progress import PROGRESS_ENV

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = pathlib.Path(__file__).resolve().parent.parent
OUTPUT = REPO / "test-output"
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def quickstart_create_cell() -> str:
    notebook = json.loads((REPO / "notebooks" / "quickstart.ipynb").read_text())
    return next("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code" and "%sandbox create" in "".join(cell["source"]))


def notebook_json(cells: list[str]) -> str:
    return json.dumps(
        {
            "cells": [
                {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": source}
                for i, source in enumerate(cells)
            ],
            "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, test_images, engine_client) -> Iterator[str]:
    """A JupyterLab server on a free port with the demo notebook; yields the notebook's URL."""
    root = tmp_path_factory.mktemp("lab")
    cells = [
        "%load_ext jupyter_sandbox",
        quickstart_create_cell(),
        "%sandbox rm",
        f"hung = %sandbox create --docker --image {test_images['dockerd_silent']} --timeout 12",
    ]
    (root / "demo.ipynb").write_text(notebook_json(cells))
    port, token = free_port(), secrets.token_hex(16)
    env = {key: value for key, value in os.environ.items() if key != PROGRESS_ENV}
    # The user's own Jupyter config and running servers stay out of it.
    env.update(JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_RUNTIME_DIR=str(root / "runtime"))
    # No "get notified about Jupyter news?" toast over the screenshots.
    notification = root / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))
    log = open(root / "lab.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            "--allow-root",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None",
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.workspaces_dir={root / 'workspaces'}",
            f"--LabApp.user_settings_dir={root / 'settings'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    assert server.poll() is None, (root / "lab.log").read_text()
    try:
        yield f"http://127.0.0.1:{port}/lab/tree/demo.ipynb?token={token}"
    finally:
        kernels = children_of(server.pid)
        server.send_signal(signal.SIGTERM)  # the server shuts its kernels down: they terminate their sandboxes
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if OUTPUT.exists():
            shutil.copy(root / "lab.log", OUTPUT / "lab-server.log")
        leaked = [c for c in engine_client.containers.list(all=True, filters={"label": f"{L.OWNER}=kernel"}) if c.labels.get(L.OWNER_PID) in kernels]
        for container in leaked:
            container.remove(force=True)
        assert not leaked, f"the Lab kernel left sandboxes behind: {[c.name for c in leaked]}"


def children_of(pid: int) -> set[str]:
    """The pids (as label strings) of a process's direct children."""
    children = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    children.add(entry)
        except (OSError, ValueError, IndexError):
            continue
    return children


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright  # the test extra; browsers come from Debian, not downloads

    assert os.path.exists(CHROMIUM), "run scripts/setup-test-host.sh (installs Debian's chromium)"
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(lab)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
        wait_for_idle_kernel(page, timeout=90)
        yield page
        browser.close()


def wait_for_idle_kernel(page, timeout: float) -> None:
    """Wait for the notebook's kernel to be idle, answering any dialog Lab raises meanwhile (a kernel choice)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    dialogs: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dialogs += dismiss_dialogs(page)
        try:
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=2_000)
            return
        except PlaywrightTimeout:
            continue
    page.screenshot(path=str(OUTPUT / "lab-kernel-not-idle.png"))
    pytest.fail(f"the notebook's kernel was not idle after {timeout:g} s; dialogs Lab raised: {dialogs or 'none'}")


def prompt(page, index: int) -> str:
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt").inner_text()


def dismiss_dialogs(page) -> list[str]:
    """Close the modal dialogs Lab raised on its own (they swallow clicks); return their texts.

    A kernel choice is accepted (the notebook asks for python3); any other dialog is cancelled,
    or acknowledged when it has only one button. Each one is reported as a warning and saved as
    a screenshot, so a run that met one says which.
    """
    seen: list[str] = []
    dialogs = page.locator(".jp-Dialog")
    while dialogs.count() and len(seen) < 5:
        dialog = dialogs.first
        text = " ".join(dialog.inner_text().split())
        seen.append(text)
        warnings.warn(f"JupyterLab raised a dialog by itself: {text[:400]!r}", stacklevel=2)
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / f"lab-dialog-{secrets.token_hex(3)}.png"))
        if dialog.locator("select").count() or "Select Kernel" in text:
            button = dialog.locator(".jp-Dialog-button.jp-mod-accept")
        elif dialog.locator(".jp-Dialog-button.jp-mod-reject").count():
            button = dialog.locator(".jp-Dialog-button.jp-mod-reject")
        else:
            button = dialog.locator(".jp-Dialog-button")
        button.last.click(timeout=10_000)
        dialog.wait_for(state="detached", timeout=10_000)
    return seen


def run_cell(page, index: int, wait: bool = True) -> None:
    """Run one cell with Shift+Enter (again if Lab was not ready to take it); optionally wait for its end."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    dialogs: list[str] = []
    for _ in range(5):
        dialogs += dismiss_dialogs(page)
        try:
            cell.locator(".jp-InputArea-editor").click(timeout=10_000)
        except PlaywrightTimeout:  # a dialog came up between the look and the click: dismiss it, again
            continue
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(
                f"() => /\\[(\\*|\\d+)\\]/.test(document.querySelectorAll('.jp-Notebook .jp-Cell')[{index}]"
                ".querySelector('.jp-InputPrompt').innerText)",
                timeout=10_000,
            )
            break
        except PlaywrightTimeout:  # Lab did not take the keypress yet
            continue
    else:
        page.screenshot(path=str(OUTPUT / f"lab-cell-{index}-not-run.png"))
        pytest.fail(f"Lab did not run cell {index} after 5 tries; dialogs it raised: {dialogs or 'none'}")
    if wait:
        page.wait_for_function(
            f"() => /\\[\\d+\\]/.test(document.querySelectorAll('.jp-Notebook .jp-Cell')[{index}].querySelector('.jp-InputPrompt').innerText)",
            timeout=120_000,
        )


def output_text(page, index: int) -> str:
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-Cell-outputArea").inner_text()


def test_quickstart_create_renders_the_widget_in_lab(page, engine_client):
    run_cell(page, 0)
    run_cell(page, 1, wait=False)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(1)
    live_saved = False
    deadline = time.monotonic() + 120
    while "Docker daemon ready in" not in (text := output_text(page, 1)) and time.monotonic() < deadline:
        if not live_saved and any(frame in text for frame in SPINNER):
            cell.screenshot(path=str(OUTPUT / "lab-widget-quickstart-live.png"))
            live_saved = True
    text = output_text(page, 1)
    cell.screenshot(path=str(OUTPUT / "lab-widget-quickstart-ready.png"))
    assert "Docker daemon ready in" in text, text
    for label in ("Image found", "Sandbox booted (gVisor)", "dockerd started", "Daemon answering", "Ready"):
        assert label in text
    phases = len(DOCKER_PHASES)
    assert text.count("✔") == phases + 1  # every phase and the outcome line
    assert f"{phases}/{phases}" in text and cell.locator(".progress-bar-success").count() == 1
    name = re.search(r"Sandbox (sb-[0-9a-f]{6})", text).group(1)
    assert engine_client.containers.list(filters={"label": f"{L.NAME}={name}"}), "a real sandbox stands behind it"
    run_cell(page, 2)
    page.wait_for_function(f"document.body.innerText.includes('removed {name}')", timeout=60_000)


def test_a_hung_startup_ticks_live_then_shows_the_cause_fix_and_log(page):
    run_cell(page, 3, wait=False)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(3)
    # Wait until the phase dockerd hangs in is the running one, spinning, with a second or more on its clock.
    page.wait_for_function(
        "() => /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]\\s*Docker socket up\\s*[1-9]/.test(document.querySelectorAll('.jp-Notebook .jp-Cell')[3].innerText)", timeout=60_000
    )
    first = output_text(page, 3)
    cell.screenshot(path=str(OUTPUT / "lab-widget-live.png"))
    # The running phase's elapsed time ticks on its own (no event arrives while dockerd hangs).
    page.wait_for_function("(before) => document.querySelectorAll('.jp-Notebook .jp-Cell')[3].innerText !== before", arg=first, timeout=30_000)
    page.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-Cell')[3].innerText.includes('How to fix')", timeout=60_000)
    cell.get_by_text("dockerd log (last lines)").click()
    page.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-Cell')[3].innerText.includes('never opening the socket')", timeout=30_000)
    text = output_text(page, 3)
    cell.screenshot(path=str(OUTPUT / "lab-widget-failed.png"))
    assert "✘" in text and "stuck in phase 'socket'" in text and "raise the timeout" in text
    assert text.count("Last lines of the dockerd log") == 1  # in the error output; the panel has its own title
    assert "DaemonTimeout" in text  # the error output under the widget, without a traceback
    assert "Traceback" not in text and "docker/api" not in text

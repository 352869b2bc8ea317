"""The panel's live detail views, the Terminate confirmation naming the notebook, and
``%%sandbox_docker`` cells highlighted as shell: in real JupyterLab under Chromium.

Uses the Lab server and browser of :mod:`test_browser_e2e` (which loads this checkout's
build of the extension, and checks it does).  Screenshots land in ``test-output/``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest
from sandbox_test_support import container_exists, unique_name
from test_browser_e2e import (  # noqa: F401  (fixtures, used as parameters)
    OUTPUT,
    browser,
    card,
    jp_asyncio_loop,
    jp_server_cleanup,
    lab_url,
    open_panel,
    panel,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLI = [sys.executable, "-m", "jupyter_sandbox.cli"]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``jupyter sandbox ARGS`` (output kept)."""
    return subprocess.run([*CLI, *args], check=check, capture_output=True, text=True)


def server_api(lab_url: str, path: str, method: str = "GET", body: Any = None) -> Any:
    """Call the Lab server's REST API with its token; the JSON answer."""
    parts = urlsplit(lab_url)
    request = urllib.request.Request(
        f"{parts.scheme}://{parts.netloc}/{path}?{parts.query}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if text else None


def notebook(lab_url: str, path: str, *sources: str) -> None:
    """Save a Python notebook with these code cells on the Lab server."""
    cells = [{"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None} for source in sources]
    content = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    server_api(lab_url, f"api/contents/{path}", "PUT", {"type": "notebook", "format": "json", "content": content})


def open_notebook(page: Any, lab_url: str, path: str) -> Any:
    """Load Lab (a fresh workspace) with the notebook open; its panel."""
    page.goto(lab_url.format(workspace=f"dt-{secrets.token_hex(4)}/tree/{path}"))
    page.locator("#jupyterlab-splash").wait_for(state="detached")
    notebook_panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    notebook_panel.locator(".jp-Cell .cm-content").first.wait_for()
    return notebook_panel


def test_dockerd_log_and_containers_follow_their_sandbox_until_it_is_gone(panel: Any, test_images: dict[str, str]) -> None:
    page = panel
    name = unique_name("dt-live")
    tiny = test_images["tiny"]
    ticker = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.3; done"
    try:
        cli("create", "--docker", "--name", name)
        cli("load", name, tiny)
        cli("docker", name, "--", "run", "-d", "--name", "ticker", tiny, "busybox", "sh", "-c", ticker)
        card(page, name).locator('.jp-SandboxBadge[data-state="ready"]').wait_for()

        card(page, name).locator(".jp-SandboxAction-logs").click()
        log = page.locator(".jp-SandboxLogView:not(.lm-mod-hidden)")
        log.locator("pre", has_text="API listen").wait_for()
        harmless = log.locator(".jp-SandboxLogLine.jp-mod-harmless")
        assert harmless.count() >= 3
        assert harmless.first.get_attribute("title").startswith("Expected under gVisor: ")
        assert log.locator('.jp-SandboxLiveView-status[data-state="following"]').count() == 1
        cli("docker", name, "--", "run", "--rm", tiny, "busybox", "true")  # writes new dockerd lines
        log.locator("pre", has_text="shim disconnected").wait_for()  # arrived without a reload
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "detail-dockerd-log.png"))

        card(page, name).locator(".jp-SandboxAction-containers").click()
        view = page.locator(".jp-SandboxContainersView:not(.lm-mod-hidden)")
        view.locator('tr[data-name="ticker"][data-running="true"]').wait_for()
        cli("docker", name, "--", "run", "-d", "--name", "second", tiny, "busybox", "sleep", "600")
        view.locator('tr[data-name="second"]').wait_for(timeout=15_000)  # the view re-reads by itself

        view.locator('tr[data-name="ticker"] .jp-SandboxAction-containerLogs').click()
        container_log = page.locator(".jp-SandboxContainerLogView:not(.lm-mod-hidden)")
        container_log.locator("pre", has_text="tick 3").wait_for()
        seen = container_log.locator(".jp-SandboxLogLine").count()
        deadline = time.monotonic() + 15
        while container_log.locator(".jp-SandboxLogLine").count() <= seen:  # following: more ticks come
            assert time.monotonic() < deadline, "the container log did not follow"
            time.sleep(0.3)
        page.screenshot(path=str(OUTPUT / "detail-container-log.png"))

        page.locator('.lm-TabBar-tab:has-text("containers: ' + name + '")').click()
        view.locator('tr[data-name="ticker"] .jp-SandboxAction-stopContainer').click()
        view.locator('tr[data-name="ticker"][data-running="false"]').wait_for()
        page.locator('.lm-TabBar-tab:has-text("logs: ' + name + '/ticker")').click()
        container_log.locator('.jp-SandboxLiveView-status[data-state="ended"]', has_text="stopped").wait_for()

        page.locator('.lm-TabBar-tab:has-text("containers: ' + name + '")').click()
        view.locator('tr[data-name="second"] .jp-SandboxAction-removeContainer').click()
        page.locator(".jp-Dialog", has_text="Remove container “second”").locator(".jp-Dialog-button.jp-mod-warn").click()
        view.locator('tr[data-name="second"]').wait_for(state="detached")
        page.screenshot(path=str(OUTPUT / "detail-containers.png"))

        cli("rm", name)
        view.locator('.jp-SandboxLiveView-status[data-state="gone"]', has_text=f"Sandbox “{name}” is gone").wait_for()
        page.locator('.lm-TabBar-tab:has-text("dockerd log: ' + name + '")').click()
        log.locator('.jp-SandboxLiveView-status[data-state="gone"]', has_text=f"Sandbox “{name}” is gone").wait_for()
        page.screenshot(path=str(OUTPUT / "detail-gone.png"))
    finally:
        cli("rm", name, check=False)


def test_terminate_names_the_notebook_whose_kernel_uses_the_sandbox(browser: Any, lab_url: str) -> None:
    name = unique_name("dt-nb")
    path = f"analysis-{secrets.token_hex(2)}.ipynb"
    notebook(lab_url, path, f"%load_ext jupyter_sandbox\n%sandbox create --name {name}")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(120_000)
    try:
        cells = open_notebook(page, lab_url, path)
        page.locator(".jp-StatusBar-TextItem", has_text="(ipykernel) | Idle").wait_for()  # its kernel is up
        cells.locator(".jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        cells.locator(".jp-InputPrompt", has_text="[1]").wait_for()  # executed (its create has ended)
        if not page.locator(".jp-SandboxPanel").is_visible():
            page.locator('.lm-TabBar-tab[data-id="jupyter-sandbox-panel"]').click()
        card(page, name).locator('.jp-SandboxBadge[data-state="ready"]').wait_for()
        card(page, name).locator(".jp-SandboxAction-terminate").click()
        dialog = page.locator(".jp-Dialog", has_text=f"Terminate “{name}”")
        dialog.wait_for()
        assert f"It is used by notebook {path}" in dialog.inner_text()
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "detail-terminate-used-by.png"))
        dialog.locator(".jp-Dialog-button.jp-mod-warn").click()
        card(page, name).wait_for(state="detached")
        assert not container_exists(name)
    finally:
        cli("rm", name, check=False)
        page.close()


def token_color(cell: Any, text: str) -> str:
    """The computed color of the editor span holding exactly ``text`` in a cell ('' if none)."""
    return cell.evaluate(
        """(cell, text) => {
        const span = [...cell.querySelectorAll('.cm-line span')].find(s => s.textContent === text);
        return span ? getComputedStyle(span).color : '';
    }""",
        text,
    )


def test_sandbox_docker_cells_are_highlighted_as_shell(browser: Any, lab_url: str) -> None:
    path = f"magic-{secrets.token_hex(2)}.ipynb"
    line = 'run --rm busybox echo "hi"'
    notebook(lab_url, path, f"%%sandbox_docker\n{line}", line)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(120_000)
    try:
        cells = open_notebook(page, lab_url, path)
        magic, python = cells.locator(".jp-CodeCell").nth(0), cells.locator(".jp-CodeCell").nth(1)
        string_color = page.evaluate("""() => {
            const probe = document.createElement('span');
            probe.style.color = 'var(--jp-mirror-editor-string-color)';
            document.body.appendChild(probe);
            const color = getComputedStyle(probe).color;
            probe.remove();
            return color;
        }""")
        deadline = time.monotonic() + 60  # both highlighted: the Python cell once its language is loaded
        while token_color(magic, '"hi"') != string_color or token_color(python, '"hi"') != string_color:
            assert time.monotonic() < deadline, (token_color(magic, '"hi"'), token_color(python, '"hi"'), string_color)
            time.sleep(0.3)
        assert token_color(magic, "echo") != token_color(python, "echo")
        # Shell: `echo` a builtin, `--rm` an option; as Python they are a plain name and operators.
        assert token_color(magic, "--rm") not in ("", token_color(python, "--"))
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "detail-sandbox-docker-cell-shell.png"))

        # Without the magic on its first line the cell is Python again.
        magic.locator(".cm-content").click()
        page.keyboard.press("Control+Home")
        page.keyboard.press("Delete")
        page.keyboard.press("Delete")
        deadline = time.monotonic() + 10
        while token_color(magic, "echo") != token_color(python, "echo"):
            assert time.monotonic() < deadline, "the cell stayed shell after its magic was removed"
            time.sleep(0.3)
    finally:
        page.close()

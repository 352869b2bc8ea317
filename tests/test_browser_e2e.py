"""End to end in a real browser: JupyterLab with the Sandboxes panel, driven by Playwright.

Uses Debian's Chromium (``scripts/setup-test-host.sh`` installs it; Playwright
cannot download browsers here) against ``jupyter lab`` started as a
subprocess on a free loopback port with a token.  Screenshots land in
``test-output/``.

Lab loads the Lab extension built in this checkout (``jupyter_sandbox/labextension``,
from ``cd labextension && npm run build:prod``) through a private
``extra_labextensions_path``, ahead of whatever build the Python environment
points at, so the page runs the code under test.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from sandbox_test_support import container_exists, unique_name

from jupyter_sandbox import labels as L

SCHEMA_ID = "https://events.jupyter.org/jupyter_sandbox/sandbox/v1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "test-output"
BUILD = REPO / "jupyter_sandbox" / "labextension"
STARTUP_TIMEOUT = 120.0
UI_TIMEOUT_MS = 120_000

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def jp_asyncio_loop() -> Iterator[None]:
    """No in-process server here: when the server tests load pytest-jupyter, keep its loop
    fixture away from the loop Playwright's sync API is running."""
    yield None


@pytest.fixture
def jp_server_cleanup() -> Iterator[None]:
    """Nothing to clean: the Lab server of this module is a subprocess (see jp_asyncio_loop)."""
    yield


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def built_entry() -> str:
    """The file name of this checkout's built remote entry (what the Lab under test must load)."""
    return Path(json.loads((BUILD / "package.json").read_text())["jupyterlab"]["_build"]["load"]).name


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running ``jupyter lab`` (with our extensions) and a URL template (``{workspace}``) with its token."""
    home = tmp_path_factory.mktemp("lab")
    entries = sorted(BUILD.glob("static/remoteEntry.*.js"))
    if not entries:
        pytest.fail(f"no Lab extension built in {BUILD}: run `cd labextension && npm run build:prod`")
    extensions = home / "labextensions"
    extensions.mkdir()
    (extensions / "jupyter-sandbox").symlink_to(BUILD)  # found before the environment's share/jupyter/labextensions
    terminal_settings = home / "settings" / "@jupyterlab" / "terminal-extension"
    terminal_settings.mkdir(parents=True)  # xterm.js draws on a canvas; its screen-reader rows give the text to read
    (terminal_settings / "plugin.jupyterlab-settings").write_text('{"screenReaderMode": true}')
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    env.pop(L.SERVER_ENV, None)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={home}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.extra_labextensions_path={extensions}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = open(home / "lab.log", "wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"{base}/sandbox/api/sandboxes?token={token}", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"jupyter lab did not start:\n{(home / 'lab.log').read_text()[-3000:]}")
        time.sleep(0.2)
    with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=30) as response:
        page_config = response.read().decode()
    assert entries[-1].name in page_config, f"Lab does not load this checkout's build ({entries[-1].name})"
    try:
        yield f"{base}/lab/workspaces/{{workspace}}?token={token}"
    finally:
        process.send_signal(signal.SIGTERM)  # the server removes the sandboxes it created
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def panel(browser: Any, lab_url: str) -> Iterator[Any]:
    """A Lab page with the Sandboxes panel open."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    WEBSOCKETS[id(page)] = []
    page.on("websocket", lambda socket: WEBSOCKETS[id(page)].append(socket.url))
    open_panel(page, lab_url)
    yield page
    page.close()
    WEBSOCKETS.pop(id(page), None)


def open_panel(page: Any, lab_url: str) -> None:
    """Load Lab in a fresh workspace and open the Sandboxes panel."""
    page.goto(lab_url.format(workspace=f"e2e-{secrets.token_hex(4)}"))  # a fresh layout for every page
    page.locator("#jupyterlab-splash").wait_for(state="detached")  # the layout is restored by then
    if not page.locator(".jp-SandboxPanel").is_visible():  # a restored layout may have it open already
        page.locator('.lm-TabBar-tab[data-id="jupyter-sandbox-panel"]').click()
    page.locator(".jp-SandboxPanel").wait_for(state="visible")


WEBSOCKETS: dict[int, list[str]] = {}
"""URLs of the websockets each open page opened."""


def card(page: Any, name: str) -> Any:
    """The panel's card of one sandbox."""
    return page.locator(f'.jp-SandboxCard[data-sandbox-name="{name}"]')


def record_card_states(page: Any, name: str) -> None:
    """Remember, in the page, every (state, phases done) the card shows as it changes."""
    page.evaluate(
        """name => {
        window.__cardStates = [];
        const look = () => {
            const card = document.querySelector(`.jp-SandboxCard[data-sandbox-name="${name}"]`);
            if (!card) return;
            const done = card.querySelectorAll('.jp-SandboxPhase[data-status="done"]').length;
            const seen = `${card.dataset.state}:${done}`;
            if (window.__cardStates[window.__cardStates.length - 1] !== seen) window.__cardStates.push(seen);
        };
        new MutationObserver(look).observe(document.body, {subtree: true, childList: true, attributes: true});
    }""",
        name,
    )


def test_create_watch_phases_and_terminate_from_the_panel(panel: Any) -> None:
    page = panel
    name = f"e2e-{os.getpid()}-{secrets.token_hex(2)}"
    OUTPUT.mkdir(exist_ok=True)
    record_card_states(page, name)
    page.locator(".jp-SandboxPanel-create").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator('input[name="name"]').fill(name)
    assert dialog.locator('input[name="docker"]').is_checked()
    dialog.locator('input[name="memory"]').fill("1Gi")
    page.screenshot(path=str(OUTPUT / "sandbox-create-form.png"))
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    try:
        card(page, name).locator('.jp-SandboxBadge[data-state="ready"]').wait_for()
        states = page.evaluate("window.__cardStates")
        assert any(s.startswith("starting:") and int(s.split(":")[1]) >= 1 for s in states), states
        assert states[-1].startswith("ready:")
        # The phases came over jupyter-server's event bus (Lab's event manager), not a websocket of ours.
        opened = WEBSOCKETS[id(page)]
        assert any("/api/events/subscribe" in url for url in opened), opened
        assert not any("/sandbox/api/" in url for url in opened), opened
        phases = card(page, name).locator(".jp-SandboxPhase")
        assert phases.locator('xpath=self::*[@data-status="done"]').count() == phases.count() >= 8
        assert "1Gi memory" in card(page, name).inner_text()
        card(page, name).locator(".jp-SandboxCard-phases summary").click()
        page.screenshot(path=str(OUTPUT / "sandbox-panel-ready.png"))

        card(page, name).locator(".jp-SandboxAction-logs").click()
        page.locator(".jp-SandboxLogView pre", has_text="API listen").wait_for()
        card(page, name).locator(".jp-SandboxAction-containers").click()
        page.locator(".jp-SandboxContainersView", has_text="No containers").wait_for()
        page.screenshot(path=str(OUTPUT / "sandbox-log-and-containers.png"))

        card(page, name).locator(".jp-SandboxAction-terminate").click()
        page.locator(".jp-Dialog", has_text=f"Terminate “{name}”").locator(".jp-Dialog-button.jp-mod-warn").click()
        card(page, name).wait_for(state="detached")
        assert not container_exists(name)
    finally:
        if container_exists(name):
            subprocess.run([sys.executable, "-m", "jupyter_sandbox.cli", "rm", name], check=False)


def test_a_sandbox_created_by_the_cli_appears_with_its_phases(panel: Any) -> None:
    page = panel
    name = f"e2e-cli-{os.getpid()}-{secrets.token_hex(2)}"
    record_card_states(page, name)
    cli = [sys.executable, "-m", "jupyter_sandbox.cli"]
    try:
        subprocess.run([*cli, "create", "--docker", "--name", name], check=True, capture_output=True)
        badge = card(page, name).locator('.jp-SandboxBadge[data-state="ready"]')
        badge.wait_for()
        assert "by cli" in card(page, name).inner_text()
        for phase in ("booted", "dockerd_started", "answering", "ready"):
            assert card(page, name).locator(f'.jp-SandboxPhase[data-phase="{phase}"][data-status="done"]').count() == 1
        OUTPUT.mkdir(exist_ok=True)
        card(page, name).locator(".jp-SandboxCard-phases summary").click()
        page.screenshot(path=str(OUTPUT / "sandbox-panel-cli.png"))
    finally:
        subprocess.run([*cli, "rm", name], check=False, capture_output=True)
    card(page, name).locator('.jp-SandboxBadge[data-state="gone"]').wait_for()
    card(page, name).locator(".jp-SandboxAction-dismiss").click()
    card(page, name).wait_for(state="detached")


def test_emissions_the_panel_missed_are_read_again_from_the_server(browser: Any, lab_url: str) -> None:
    """The bus's websocket loses the emission that says a sandbox is ready: the next one's ``seq``
    skips, and the panel reads ``GET watch`` again (what it does after Lab reconnects the bus)."""
    name = f"e2e-gap-{os.getpid()}-{secrets.token_hex(2)}"
    dropped: list[int] = []
    reads: list[str] = []

    def relay(route: Any) -> None:
        server = route.connect_to_server()

        def from_server(message: str | bytes) -> None:
            data = json.loads(message) if isinstance(message, str) else {}
            info = data.get("sandbox") or {}
            if data.get("schema_id") == SCHEMA_ID and info.get("name") == name and info.get("state") == "ready":
                dropped.append(data["seq"])
                return
            route.send(message)

        server.on_message(from_server)

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.route_web_socket(re.compile(r".*/api/events/subscribe.*"), relay)
    page.on("request", lambda request: reads.append(request.url) if "/sandbox/api/watch" in request.url else None)
    cli = [sys.executable, "-m", "jupyter_sandbox.cli"]
    try:
        open_panel(page, lab_url)
        subprocess.run([*cli, "create", "--name", name], check=True, capture_output=True)
        card(page, name).locator('.jp-SandboxBadge[data-state="ready"]').wait_for()
        assert dropped, "the ready state was not emitted on the bus"
        assert len(reads) >= 2, reads
    finally:
        subprocess.run([*cli, "rm", name], check=False, capture_output=True)
        page.close()


def test_a_web_app_in_a_sandbox_opens_in_a_lab_tab_in_an_origin_of_its_own(panel: Any, test_images: dict[str, str]) -> None:
    """A page with a stylesheet, an image and a script, served by an inner container through the proxy."""
    from jupyter_sandbox.sandbox import AsyncSandbox
    from jupyter_sandbox.sync import Sandbox, call

    page = panel
    name = unique_name("px-e2e")
    sandbox = Sandbox(call(AsyncSandbox.create, name=name, docker=True, network="sandbox", owner="test", use_pool=False))
    try:
        sandbox.files.upload(str(Path(__file__).parent / "data" / "site"), "/root/site")
        assert sandbox.docker.load(test_images["tiny"]).wait() == 0
        assert (
            sandbox.docker.run(
                test_images["tiny"], "busybox", "httpd", "-f", "-p", "8000", "-h", "/site", detach=True, network="host", volume="/root/site:/site"
            ).wait()
            == 0
        )
        card(page, name).locator(".jp-SandboxAction-ports").click()
        page.locator('.jp-SandboxPortsView tr[data-port="8000"] .jp-SandboxAction-openPort').click()
        page.locator(".jp-SandboxPortFrame iframe").wait_for()
        frame = page.frame_locator(".jp-SandboxPortFrame iframe")
        frame.locator("#script", has_text="script ran").wait_for()
        frame.locator("#own-api", has_text="own app answered 200").wait_for()
        frame.locator("#jupyter-api", has_text="Jupyter API blocked").wait_for()
        assert frame.locator("#cookie").text_content().startswith("cookies blocked")
        assert frame.locator("#title").evaluate("e => getComputedStyle(e).color") == "rgb(200, 30, 30)"
        assert frame.locator("#logo").evaluate("e => e.naturalWidth") == 40
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "proxy-lab-tab.png"))
    finally:
        sandbox.terminate()


def test_snapshot_a_sandbox_and_fork_it_from_the_panel(panel: Any) -> None:
    page = panel
    token = f"{os.getpid()}-{secrets.token_hex(2)}"
    source, fork, tag = f"e2e-src-{token}", f"e2e-fork-{token}", f"e2e-tag-{token}"
    cli = [sys.executable, "-m", "jupyter_sandbox.cli"]
    try:
        subprocess.run([*cli, "create", "--network", "none", "--name", source], check=True, capture_output=True)
        card(page, source).locator('.jp-SandboxBadge[data-state="ready"]').wait_for()
        card(page, source).locator(".jp-SandboxAction-snapshot").click()
        asked = page.locator(".jp-Dialog", has_text=f"Snapshot {source}")
        asked.locator("input").fill(tag)
        asked.locator(".jp-Dialog-button.jp-mod-accept").click()
        deadline = time.monotonic() + 60
        while tag not in subprocess.run([*cli, "snapshots"], capture_output=True, text=True).stdout:
            assert time.monotonic() < deadline, "the snapshot never appeared"
            time.sleep(0.5)
        page.locator(".jp-SandboxPanel-fork").click()
        picker = page.locator(".jp-Dialog", has_text="Fork which snapshot?")
        label = picker.locator("option", has_text=tag).inner_text()
        picker.locator("select").select_option(label=label)
        picker.locator(".jp-Dialog-button.jp-mod-accept").click()
        named = page.locator(".jp-Dialog", has_text=f"New sandbox from {tag}")
        named.locator("input").fill(fork)
        named.locator(".jp-Dialog-button.jp-mod-accept").click()
        card(page, fork).locator('.jp-SandboxBadge[data-state="ready"]').wait_for()
        assert card(page, fork).locator('.jp-SandboxPhase[data-phase="restored"][data-status="done"]').count() == 1
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "sandbox-panel-fork.png"))
    finally:
        subprocess.run([*cli, "rm", source, fork], check=False, capture_output=True)
        subprocess.run([*cli, "snapshot", "rm", tag], check=False, capture_output=True)


def test_terminal_usage_and_the_status_bar_count(panel: Any) -> None:
    """A shell inside a sandbox in Lab's own terminal, its live CPU and memory on the card, the running count."""
    from jupyter_sandbox.sandbox import AsyncSandbox
    from jupyter_sandbox.sync import Sandbox, call

    page = panel
    name = unique_name("e2e-term")
    sandbox = Sandbox(call(AsyncSandbox.create, name=name, memory="768Mi", cpu=1, owner="test", use_pool=False))
    try:
        this = card(page, name)
        this.locator('.jp-SandboxBadge[data-state="ready"]').wait_for()
        usage = this.locator(".jp-SandboxCard-usage")
        usage.wait_for()
        assert re.fullmatch(r"CPU [\d.]+% \(limit 1 CPU\) · memory [\d.]+ (KiB|MiB) / 768 MiB \(\d+%\)", usage.inner_text()), usage.inner_text()
        status = page.locator(".jp-SandboxStatus")
        deadline = time.monotonic() + 30
        while True:  # other processes may start or stop sandboxes meanwhile: compare with the panel at one moment
            shown, running = page.evaluate("""() => [
                document.querySelector('.jp-SandboxStatus').dataset.count,
                document.querySelectorAll('.jp-SandboxCard[data-state="ready"], .jp-SandboxCard[data-state="starting"]').length]""")
            if int(shown) == running >= 1:
                break
            assert time.monotonic() < deadline, f"the status bar says {shown}, the panel shows {running} running"
            time.sleep(0.2)
        assert status.inner_text() == f"Sandboxes: {shown}"
        OUTPUT.mkdir(exist_ok=True)
        this.scroll_into_view_if_needed()
        page.screenshot(path=str(OUTPUT / "sandbox-panel-usage.png"))

        this.locator(".jp-SandboxAction-terminal").click()
        terminal = page.locator(".jp-Terminal").last
        terminal.locator(".xterm-screen").wait_for()
        terminal.locator(".xterm-screen").click()
        page.locator(".lm-TabBar-tab.lm-mod-current", has_text=f"Sandbox {name}").wait_for()  # the tab names the sandbox
        page.keyboard.type("echo hi-$((6*7)) from $(hostname)")
        page.keyboard.press("Enter")
        terminal.locator(".xterm-accessibility", has_text="hi-42 from").wait_for()
        page.keyboard.type("sleep 300")
        page.keyboard.press("Enter")
        page.keyboard.press("Control+c")
        page.keyboard.type("echo after-$((1+1)) $TERM")
        page.keyboard.press("Enter")
        terminal.locator(".xterm-accessibility", has_text="after-2 xterm-256color").wait_for()
        page.screenshot(path=str(OUTPUT / "sandbox-terminal.png"))
    finally:
        sandbox.terminate()


def test_the_shell_magic_shows_a_button_that_opens_the_terminal(panel: Any, lab_url: str) -> None:
    """``%sandbox shell NAME`` in a notebook: Lab renders its output as a button; the button opens the shell."""
    import json

    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from jupyter_sandbox.sandbox import AsyncSandbox
    from jupyter_sandbox.sync import Sandbox, call

    page = panel
    name = unique_name("e2e-magic")
    sandbox = Sandbox(call(AsyncSandbox.create, name=name, owner="test", use_pool=False))
    base, token = lab_url.split("/lab/")[0], lab_url.split("token=")[1]
    notebook = f"shell-{secrets.token_hex(3)}.ipynb"
    cells = [f"%load_ext jupyter_sandbox\n%sandbox shell {name}"]  # one cell: one key press runs it
    content = {
        "cells": [{"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None} for source in cells],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    request = urllib.request.Request(
        f"{base}/api/contents/{notebook}?token={token}", method="PUT", data=json.dumps({"type": "notebook", "content": content}).encode()
    )
    urllib.request.urlopen(request, timeout=30).close()
    try:
        page.goto(lab_url.format(workspace=f"e2e-{secrets.token_hex(4)}").replace("?token=", f"/tree/{notebook}?token="))
        page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
        button = page.locator(".jp-SandboxTerminalOutput-open")
        kernel_dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
        for _ in range(5):  # a key press before the kernel's session is connected is lost, or asks for a kernel
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.keyboard.press("Shift+Enter")
            try:
                page.locator(".jp-SandboxTerminalOutput-open, .jp-Dialog").first.wait_for(timeout=15000)
            except PlaywrightTimeout:
                continue
            if not kernel_dialog.is_visible():
                break
            kernel_dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
            kernel_dialog.wait_for(state="detached")
        button.wait_for()
        assert button.inner_text() == f"Open a terminal in {name}"
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "sandbox-shell-magic.png"))
        button.click()
        terminal = page.locator(".jp-Terminal").last
        terminal.locator(".xterm-screen").wait_for()
        terminal.locator(".xterm-screen").click()
        page.keyboard.type("echo magic-$((6*7))")
        page.keyboard.press("Enter")
        terminal.locator(".xterm-accessibility", has_text="magic-42").wait_for()
    finally:
        sandbox.terminate()

"""The Lab extension's settings ("Sandboxes" in Lab's Settings Editor), in a real browser: what the
create dialog starts with follows them."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest
from test_browser_e2e import OUTPUT, browser, jp_asyncio_loop, jp_server_cleanup, lab_url, open_panel  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLUGIN = "jupyter-sandbox:plugin"


def put_settings(url: str, raw: str) -> None:
    """Save the plugin's user settings through Lab's settings API, as the Settings Editor does."""
    parts = urllib.parse.urlsplit(url.replace("{workspace}", "x"))
    token = urllib.parse.parse_qs(parts.query)["token"][0]
    request = urllib.request.Request(
        f"{parts.scheme}://{parts.netloc}/lab/api/settings/{PLUGIN}",
        method="PUT",
        data=json.dumps({"raw": raw}).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204


def dialog_defaults(chromium: Any, url: str, shot: str) -> tuple[bool, str]:
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    try:
        open_panel(page, url)
        page.locator(".jp-SandboxPanel-create").click()
        dialog = page.locator(".jp-Dialog")
        docker = dialog.locator('input[name="docker"]').is_checked()
        network = dialog.locator('select[name="network"]').input_value()
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / shot))
        dialog.locator(".jp-Dialog-button.jp-mod-reject").click()
        return docker, network
    finally:
        page.close()


def test_the_create_dialog_starts_with_the_users_settings(browser: Any, lab_url: str) -> None:  # noqa: F811
    assert dialog_defaults(browser, lab_url, "settings-defaults.png") == (True, "sandbox")  # the schema's defaults
    put_settings(lab_url, '{"docker": false, "network": "none"}')
    try:
        assert dialog_defaults(browser, lab_url, "settings-changed.png") == (False, "none")
    finally:
        put_settings(lab_url, "{}")

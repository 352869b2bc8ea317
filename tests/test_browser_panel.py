"""The Sandboxes panel's list, header, cards and create form in a real browser (Playwright + Chromium).

Each test uses real sandboxes (names ``pn-...``) and saves a screenshot per step in
``test-output/panel-*.png``, each checked to be an image of something (not blank).
The page has Lab's default sidebar width.
"""

# ruff: noqa: F811  (the fixtures imported from test_browser_e2e are parameters here)
from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import pytest
from sandbox_test_support import container_exists, unique_name
from test_browser_e2e import (  # noqa: F401  (pytest fixtures, used by name)
    OUTPUT,
    browser,
    card,
    jp_asyncio_loop,
    jp_server_cleanup,
    lab_url,
    open_panel,
    panel,
)

from jupyter_sandbox import labels as L

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLI = [sys.executable, "-m", "jupyter_sandbox.cli"]


# -- helpers ----------------------------------------------------------------------


def api(lab_url: str, path: str, method: str = "GET", body: Any = None, prefix: str = "sandbox/api/") -> Any:
    """Call the server's REST API (``/sandbox/api/<path>``) with the Lab's token."""
    parts = urllib.parse.urlsplit(lab_url.format(workspace="x"))
    token = urllib.parse.parse_qs(parts.query)["token"][0]
    url = f"{parts.scheme}://{parts.netloc}/{prefix}{path}"
    request = urllib.request.Request(
        url, method=method, headers={"Authorization": f"token {token}"}, data=None if body is None else json.dumps(body).encode()
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


def png_is_blank(path: Path) -> bool:
    """Whether a PNG is (nearly) one colour: few distinct byte values in its pixel data."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    offset, idat = 8, b""
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            idat += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return len(set(zlib.decompress(idat))) < 16


def shot(target: Any, name: str) -> Path:
    """Screenshot a page or an element into test-output/, and check it shows something."""
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / name
    target.screenshot(path=str(path))
    assert path.stat().st_size > 4000, f"{name} is suspiciously small"
    assert not png_is_blank(path), f"{name} is blank"
    return path


def cli_env() -> dict[str, str]:
    """A plain shell's environment: no Jupyter server id, so its sandboxes are the user's own."""
    env = dict(os.environ)
    env.pop(L.SERVER_ENV, None)
    return env


def cli_create(name: str) -> str:
    """Create a sandbox with the CLI; the "ready in N s" it printed."""
    done = subprocess.run([*CLI, "create", "--name", name], check=True, capture_output=True, text=True, env=cli_env())
    found = re.search(r"ready in \d+\.\d+ s", done.stderr + done.stdout)
    assert found, done.stderr
    return found.group(0)


def cli_rm(name: str) -> None:
    subprocess.run([*CLI, "rm", name], check=False, capture_output=True, env=cli_env())


def cleanup(lab_url: str, *names: str) -> None:
    for name in names:
        if container_exists(name):
            try:
                api(lab_url, f"sandboxes/{name}", "DELETE")
            except OSError:
                cli_rm(name)


def set_filter(page: Any, value: str) -> None:
    page.locator(f'.jp-SandboxPanel-filterButton[data-filter="{value}"]').click()
    page.locator(f'.jp-SandboxPanel-filterButton[data-filter="{value}"][aria-checked="true"]').wait_for()


def set_theme(page: Any, theme: str) -> None:
    """Switch theme with Lab's own command (``apputils:change-theme``), from the Settings menu."""
    page.locator('.lm-MenuBar-itemLabel:text-is("Settings")').click()
    page.locator('.lm-Menu-itemLabel:text-is("Theme")').hover()
    page.locator(f'.lm-Menu-item[data-command="apputils:change-theme"] .lm-Menu-itemLabel:text-is("{theme}")').click()
    page.wait_for_function("theme => document.body.dataset.jpThemeName === theme", arg=theme)
    page.wait_for_timeout(500)  # the theme's stylesheet is applied


# -- item 1 and 5: feedback on create, one "ready in" figure -------------------------


def test_create_keeps_the_form_on_a_wrong_field_then_shows_the_new_card_at_once_with_the_servers_ready_figure(panel: Any, lab_url: str) -> None:
    page = panel
    name = unique_name("pn-create")
    try:
        page.locator(".jp-SandboxPanel-create").click()
        dialog = page.locator(".jp-Dialog")
        dialog.locator('input[name="name"]').fill(name)
        dialog.locator('input[name="docker"]').uncheck()
        dialog.locator('input[name="memory"]').fill("lots")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        # Refused: the dialog stays, with what was typed, the field marked and the server's words beside it.
        note = dialog.locator('.jp-SandboxCreateForm-fieldError[data-field="memory"]')
        note.wait_for()
        assert "memory: 'lots' is not a size" in note.inner_text()
        assert "How to fix" in note.inner_text()
        assert dialog.locator('input[name="memory"].jp-mod-invalid').count() == 1
        assert dialog.locator('input[name="name"]').input_value() == name
        assert dialog.locator('input[name="memory"]').input_value() == "lots"
        assert not dialog.locator('input[name="docker"]').is_checked()
        shot(page, "panel-create-error.png")

        dialog.locator('input[name="memory"]').fill("512Mi")
        assert dialog.locator(".jp-mod-invalid").count() == 0  # typing clears the mark
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        page.locator(".jp-Dialog").wait_for(state="detached")
        # At once: on top of the list, highlighted while it starts.
        new = card(page, name)
        new.wait_for()
        first = page.locator(".jp-SandboxPanel-list > .jp-SandboxCard").first
        assert first.get_attribute("data-sandbox-name") == name
        if new.get_attribute("data-state") == "starting":
            assert "jp-mod-fresh" in (new.get_attribute("class") or "")
        shot(page.locator(".jp-SandboxPanel"), "panel-create-feedback.png")

        new.locator('.jp-SandboxBadge[data-state="ready"]').wait_for()
        assert "jp-mod-fresh" not in (new.get_attribute("class") or "")
        times = new.locator(".jp-SandboxCard-times", has_text="ready in")
        times.wait_for()
        reported = api(lab_url, f"sandboxes/{name}")["ready_seconds"]
        assert isinstance(reported, float) and reported > 0
        assert f"ready in {reported:.2f} s" in times.inner_text()
        watched = next(s for s in api(lab_url, "watch")["sandboxes"] if s["name"] == name)
        assert watched["ready_seconds"] == reported  # one figure, whichever way it is read
        shot(page.locator(".jp-SandboxPanel"), "panel-ready-in.png")
    finally:
        cleanup(lab_url, name)


# -- item 2: a "Recently removed" group, live ones first, a filter ---------------------


def test_removed_sandboxes_collapse_into_a_group_that_clears_and_the_filter_tells_mine_from_all(panel: Any, lab_url: str) -> None:
    page = panel
    mine = unique_name("pn-mine")
    own = [unique_name("pn-cli"), unique_name("pn-cli"), unique_name("pn-cli")]
    try:
        api(lab_url, "sandboxes", "POST", {"name": mine, "docker": False})  # made by the server: "mine"
        said = cli_create(own[0])  # the user's, made outside any server
        card(page, mine).locator('.jp-SandboxBadge[data-state="ready"]').wait_for()
        card(page, own[0]).locator('.jp-SandboxBadge[data-state="ready"]').wait_for()
        # The figure the CLI printed is the one its card shows (another process's clock, recorded once).
        card(page, own[0]).locator(".jp-SandboxCard-times", has_text=said).wait_for(timeout=15_000)
        assert said == f"ready in {api(lab_url, f'sandboxes/{own[0]}')['ready_seconds']:.2f} s"

        set_filter(page, "mine")
        card(page, own[0]).wait_for(state="detached")
        assert card(page, mine).is_visible()
        shot(page.locator(".jp-SandboxPanel"), "panel-filter-mine.png")
        set_filter(page, "server")
        card(page, own[0]).wait_for(state="detached")  # no server label: not this server's
        set_filter(page, "all")
        card(page, own[0]).wait_for()

        cli_rm(own[0])
        group = page.locator(".jp-SandboxPanel-removed")
        group.locator(f'.jp-SandboxCard[data-sandbox-name="{own[0]}"][data-state="gone"]').wait_for()
        # Live ones first, the removed group after them.
        order = page.evaluate("""() => [...document.querySelectorAll('.jp-SandboxCard')]
            .map(c => c.closest('.jp-SandboxPanel-removed') ? 'removed' : 'live')""")
        assert order == sorted(order, key=lambda kind: kind == "removed"), order
        assert card(page, mine).locator("xpath=ancestor::details").count() == 0
        cli_create(own[1])
        cli_rm(own[1])
        group.locator(f'.jp-SandboxCard[data-sandbox-name="{own[1]}"]').wait_for()
        count = group.locator(".jp-SandboxCard").count()  # other users of the host may remove theirs too
        assert count >= 2 and f"Recently removed ({count})" in group.locator("summary").inner_text()
        group.scroll_into_view_if_needed()
        shot(page.locator(".jp-SandboxPanel"), "panel-removed-group.png")

        group.locator(".jp-SandboxPanel-clearRemoved").click()  # one click
        group.wait_for(state="detached")
        assert card(page, mine).is_visible()
        shot(page.locator(".jp-SandboxPanel"), "panel-removed-cleared.png")

        # And by itself, some time after the removal: 5 minutes by default, 3 s with this setting.
        keep_minutes(lab_url, 0.05)
        open_panel(page, lab_url)  # a page reads its settings when it loads
        cli_create(own[2])
        card(page, own[2]).wait_for()
        cli_rm(own[2])
        removed = group.locator(f'.jp-SandboxCard[data-sandbox-name="{own[2]}"]')
        removed.wait_for()
        removed.wait_for(state="detached", timeout=15_000)
    finally:
        keep_minutes(lab_url, None)
        cleanup(lab_url, mine, *own)


def keep_minutes(lab_url: str, minutes: float | None) -> None:
    """Set (None: reset) the panel's ``removedKeepMinutes`` user setting (pages loaded after this see it)."""
    raw = json.dumps({} if minutes is None else {"removedKeepMinutes": minutes})
    api(lab_url, "jupyter-sandbox:plugin", "PUT", {"raw": raw}, prefix="lab/api/settings/")


# -- item 3: readable at the default sidebar width, light and dark ----------------------


def test_the_panel_reads_well_at_the_default_width_in_light_and_dark(panel: Any, lab_url: str) -> None:
    page = panel
    name = unique_name("pn-a-rather-long-sandbox-name-for-a-narrow-sidebar")[:63]
    try:
        api(lab_url, "sandboxes", "POST", {"name": name, "docker": True})
        ready = card(page, name).locator('.jp-SandboxBadge[data-state="ready"]')
        ready.wait_for()
        width = page.locator(".jp-SandboxPanel").bounding_box()["width"]
        assert width < 400, f"not the default sidebar width: {width}"
        for theme, picture in (("JupyterLab Light", "panel-light.png"), ("JupyterLab Dark", "panel-dark.png")):
            set_theme(page, theme)
            # "+ New" on one line, its label inside its own coloured box.
            new = page.locator(".jp-SandboxPanel-create")
            box = page.evaluate("""() => {
                const b = document.querySelector('.jp-SandboxPanel-create');
                const s = getComputedStyle(b);
                return {scroll: b.scrollWidth, client: b.clientWidth, height: b.getBoundingClientRect().height,
                        line: parseFloat(s.lineHeight) || parseFloat(s.fontSize) * 1.5,
                        color: s.color, background: s.backgroundColor};
            }""")
            assert box["scroll"] <= box["client"] and box["height"] < 2 * box["line"] + 12, box
            assert box["color"] != box["background"], box
            assert new.inner_text().strip() == "+ New"
            # Name and image on one line each, cut with an ellipsis, whole in the tooltip.
            for selector, full in ((".jp-SandboxCard-name", name), (".jp-SandboxCard-image", None)):
                element = card(page, name).locator(selector)
                style = element.evaluate("""e => { const s = getComputedStyle(e); const r = e.getBoundingClientRect();
                    return {ws: s.whiteSpace, to: s.textOverflow, h: r.height, lh: parseFloat(s.lineHeight) || 20,
                            title: e.title, text: e.textContent}; }""")
                assert style["ws"] == "nowrap" and style["to"] == "ellipsis", style
                assert style["h"] < 2 * style["lh"], style
                assert style["title"] == (full or style["text"]), style
            # Terminate is set apart from the harmless buttons, and asks first.
            terminate = card(page, name).locator(".jp-SandboxAction-terminate")
            assert terminate.locator("xpath=..").get_attribute("class") == "jp-SandboxCard-dangerActions"
            t = terminate.bounding_box()
            for other in card(page, name).locator(".jp-SandboxCard-safeActions button").all():
                o = other.bounding_box()
                same_row = abs(o["y"] - t["y"]) < 4
                assert not same_row or t["x"] - (o["x"] + o["width"]) >= 12, (o, t)
            shot(page.locator(".jp-SandboxPanel"), picture)
        terminate.click()
        confirm = page.locator(".jp-Dialog", has_text=f"Terminate “{name}”")
        confirm.wait_for()
        shot(page, "panel-terminate-confirm.png")
        confirm.locator(".jp-Dialog-button.jp-mod-reject").click()
        assert card(page, name).locator('.jp-SandboxBadge[data-state="ready"]').is_visible()
    finally:
        try:
            set_theme(page, "JupyterLab Light")  # the theme is a user setting the module's other pages share
        finally:
            cleanup(lab_url, name)

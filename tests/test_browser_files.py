"""A sandbox's files in Lab, in a real browser: the card's "files" button, the `Sandboxes` drive's file
browser, an upload through its upload button (a text file and a chunked binary), the text file open in
an editor tab with an edit saved from there, a notebook opened, and a download from the context menu, byte for byte."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_browser_e2e import (  # noqa: F401 (fixtures)
    OUTPUT,
    browser,
    built_entry,
    card,
    jp_asyncio_loop,
    jp_server_cleanup,
    lab_url,
    open_panel,
    panel,
)

from jupyter_sandbox.sync import Sandbox

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLI = [sys.executable, "-m", "jupyter_sandbox.cli"]


def item(page: Any, name: str) -> Any:
    """The sandbox file browser's row of one entry."""
    return page.locator(".jp-SandboxFiles .jp-DirListing-item").filter(has=page.locator(f'.jp-DirListing-itemText span:text-is("{name}")'))


def test_browse_upload_open_and_download_a_sandboxes_files(browser: Any, lab_url: str, tmp_path: Path) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page.set_default_timeout(int(os.environ.get("UI_TIMEOUT_MS", 120_000)))
    loaded: list[str] = []
    page.on("request", lambda request: loaded.append(request.url))
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    name = f"e2e-files-{os.getpid()}-{secrets.token_hex(2)}"
    text = "hello from the browser test: héllo\n"
    (tmp_path / "hello.txt").write_text(text)
    blob = os.urandom(2 * 1024 * 1024 + 777)  # over Lab's 1 MiB chunk: uploaded in 3 chunks
    (tmp_path / "blob.bin").write_bytes(blob)
    OUTPUT.mkdir(exist_ok=True)
    try:
        open_panel(page, lab_url)
        assert any(url.endswith(built_entry()) for url in loaded), "Lab did not load this checkout's build"
        subprocess.run([*CLI, "create", "--name", name], check=True, capture_output=True)
        card(page, name).locator('.jp-SandboxBadge[data-state="ready"]').wait_for()
        card(page, name).locator(".jp-SandboxAction-files").click()
        files = page.locator(".jp-SandboxFiles")
        files.wait_for(state="visible")
        item(page, "etc").wait_for()
        assert item(page, "tmp").count() == 1
        page.screenshot(path=str(OUTPUT / "files-listing.png"))

        item(page, "root").dblclick()
        files.locator(".jp-BreadCrumbs", has_text="root").wait_for()
        with page.expect_file_chooser() as chooser:
            files.locator('[data-jp-item-name="upload"] button').click()
        chooser.value.set_files([str(tmp_path / "hello.txt"), str(tmp_path / "blob.bin")])
        item(page, "hello.txt").wait_for()
        item(page, "blob.bin").wait_for()
        sandbox = Sandbox.get(name)
        for _ in range(100):  # the last chunk's answer and the listing's refresh may cross
            if sandbox.files.stat("/root/blob.bin").size == len(blob):
                break
            page.wait_for_timeout(100)
        assert sandbox.files.read("/root/hello.txt") == text.encode()
        assert sandbox.files.read("/root/blob.bin") == blob
        page.screenshot(path=str(OUTPUT / "files-uploaded.png"))

        item(page, "hello.txt").dblclick()
        page.locator(".jp-FileEditor .cm-content", has_text="hello from the browser test").wait_for()
        page.locator(".jp-FileEditor .cm-content").click()
        page.keyboard.press("Control+End")
        page.keyboard.type("edited in Lab\n")
        page.keyboard.press("Control+s")
        page.locator(".lm-TabBar-tab.jp-mod-current:not(.jp-mod-dirty)", has_text="hello.txt").wait_for()
        for _ in range(50):
            if sandbox.files.read("/root/hello.txt") == (text + "edited in Lab\n").encode():
                break
            page.wait_for_timeout(100)
        assert sandbox.files.read("/root/hello.txt") == (text + "edited in Lab\n").encode()
        page.screenshot(path=str(OUTPUT / "files-editor.png"))

        notebook = {
            "cells": [{"cell_type": "markdown", "id": "a1", "metadata": {}, "source": ["Notebook in a sandbox"]}],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        sandbox.files.write("/root/note.ipynb", json.dumps(notebook))
        files.locator(".jp-SandboxFiles-refresh").click()
        item(page, "note.ipynb").dblclick()
        page.locator(".jp-NotebookPanel .jp-MarkdownOutput", has_text="Notebook in a sandbox").wait_for()
        page.locator(".jp-Dialog", has_text="Select Kernel").locator(".jp-Dialog-button", has_text="No Kernel").click()
        page.screenshot(path=str(OUTPUT / "files-notebook.png"))

        item(page, "blob.bin").click(button="right")
        with page.expect_download() as download:
            page.locator('.lm-Menu-item[data-command="filebrowser:download"]').click()
        assert download.value.suggested_filename == "blob.bin"
        assert Path(download.value.path()).read_bytes() == blob
        page.screenshot(path=str(OUTPUT / "files-downloaded.png"))
    except Exception:
        page.screenshot(path=str(OUTPUT / "files-failure.png"))
        print("browser console:", *console[-20:], sep="\n")
        print("cards:", page.locator(".jp-SandboxCard").evaluate_all("cards => cards.map(c => `${c.dataset.sandboxName}:${c.dataset.state}`)"))
        raise
    finally:
        subprocess.run([*CLI, "rm", name], check=False, capture_output=True)
        page.close()

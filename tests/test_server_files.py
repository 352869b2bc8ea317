"""The files routes (``sandboxes/<name>/files/<path>``, ``.../download/<path>``) against a real sandbox.

What Lab's drive does through them: list, make a folder, upload a text file and a
3 MB binary in Lab's chunks, read both back, rename, delete, download; links and
errors answer JSON with a fix.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from typing import Any, AsyncIterator

import pytest
from sandbox_test_support import server_config, unique_name
from test_server_api import expect_error, fetch_json, wait_for_state

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.integration

CHUNK = 1024 * 1024  # Lab's uploader sends 1 MiB chunks


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """Enable the extension in the test server."""
    return server_config()


@contextlib.asynccontextmanager
async def new_sandbox(jp_fetch: Any) -> AsyncIterator[str]:
    """A plain sandbox created through the server (removed at the end)."""
    name = unique_name("srv-files")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "docker": False}))
    try:
        assert (await wait_for_state(jp_fetch, name))["state"] == "ready"
        yield name
    finally:
        await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE", raise_error=False)


def files(name: str, path: str = "") -> tuple[str, ...]:
    """The URL parts of a path under ``files/``."""
    return ("sandbox", "api", "sandboxes", name, "files", *[p for p in path.strip("/").split("/") if p])


async def upload_in_chunks(jp_fetch: Any, name: str, path: str, data: bytes) -> dict[str, Any]:
    """Save ``data`` as Lab's uploader does: base64 chunks numbered 1, 2, ... and -1 for the last."""
    answer: dict[str, Any] = {}
    for start in range(0, len(data), CHUNK):
        last = start + CHUNK >= len(data)
        body = {
            "type": "file",
            "format": "base64",
            "content": base64.b64encode(data[start : start + CHUNK]).decode(),
            "chunk": -1 if last else start // CHUNK + 1,
        }
        answer = await fetch_json(jp_fetch, *files(name, path), method="PUT", body=json.dumps(body))
    return answer


async def test_browse_upload_read_rename_delete_and_download(jp_fetch: Any) -> None:
    async with new_sandbox(jp_fetch) as name:
        root = await fetch_json(jp_fetch, *files(name))
        assert root["type"] == "directory" and root["path"] == "/"
        assert {"root", "etc", "tmp"} <= {e["name"] for e in root["content"]}
        etc = next(e for e in root["content"] if e["name"] == "etc")
        assert etc["path"] == "/etc" and etc["type"] == "directory" and etc["last_modified"].endswith("Z")

        made = await fetch_json(jp_fetch, *files(name, "/root"), method="POST", body=json.dumps({"type": "directory"}))
        assert made["path"] == "/root/Untitled Folder"
        await fetch_json(jp_fetch, *files(name, "/root/Untitled Folder"), method="PATCH", body=json.dumps({"path": "/root/up"}))

        text = "héllo from Lab\n"
        saved = await fetch_json(
            jp_fetch, *files(name, "/root/up/hello.txt"), method="PUT", body=json.dumps({"type": "file", "format": "text", "content": text})
        )
        assert saved["size"] == len(text.encode()) and saved["mimetype"] == "text/plain"
        binary = os.urandom(3 * CHUNK + 12345)
        uploaded = await upload_in_chunks(jp_fetch, name, "/root/up/blob.bin", binary)
        assert uploaded["size"] == len(binary)

        listing = await fetch_json(jp_fetch, *files(name, "/root/up"))
        assert sorted((e["name"], e["type"], e["size"]) for e in listing["content"]) == [
            ("blob.bin", "file", len(binary)),
            ("hello.txt", "file", len(text.encode())),
        ]
        read = await fetch_json(jp_fetch, *files(name, "/root/up/hello.txt"), params={"format": "text"})
        assert read["format"] == "text" and read["content"] == text
        read = await fetch_json(jp_fetch, *files(name, "/root/up/blob.bin"))
        assert read["format"] == "base64" and base64.b64decode(read["content"]) == binary
        bare = await fetch_json(jp_fetch, *files(name, "/root/up/blob.bin"), params={"content": "0"})
        assert bare["content"] is None and bare["size"] == len(binary)

        moved = await fetch_json(jp_fetch, *files(name, "/root/up/blob.bin"), method="PATCH", body=json.dumps({"path": "/root/up/data é.bin"}))
        assert moved["name"] == "data é.bin"
        response = await jp_fetch("sandbox", "api", "sandboxes", name, "download", "root", "up", "data é.bin")
        assert response.body == binary
        assert response.headers["Content-Disposition"] == "attachment; filename=\"data _.bin\"; filename*=UTF-8''data%20%C3%A9.bin"
        assert response.headers["Content-Length"] == str(len(binary))
        assert response.headers["Content-Type"] == "application/octet-stream"

        made = await jp_fetch(
            "sandbox", "api", "sandboxes", name, "exec", method="POST", body=json.dumps({"command": ["chmod", "750", "/root/up/hello.txt"]})
        )
        await jp_fetch(*files(name, "/root/up/hello.txt"), method="PUT", body=json.dumps({"content": "#!/bin/sh\n"}))
        made = await jp_fetch(
            "sandbox", "api", "sandboxes", name, "exec", method="POST", body=json.dumps({"command": ["stat", "-c", "%a", "/root/up/hello.txt"]})
        )
        assert json.loads(made.body.splitlines()[0])["text"] == "750\n"  # a rewrite keeps the file's permissions

        await jp_fetch(*files(name, "/root/up/hello.txt"), method="DELETE")
        await jp_fetch(*files(name, "/root/up"), method="DELETE")
        assert "up" not in {e["name"] for e in (await fetch_json(jp_fetch, *files(name, "/root")))["content"]}


async def test_links_and_errors_answer_json_with_a_fix(jp_fetch: Any) -> None:
    """A link to /etc/shadow is listed as a link and never read through (as ``sb.files.read`` refuses it)."""
    async with new_sandbox(jp_fetch) as name:
        made = await jp_fetch(
            "sandbox", "api", "sandboxes", name, "exec", method="POST", body=json.dumps({"command": ["ln", "-s", "/etc/shadow", "/root/shadow"]})
        )
        assert json.loads(made.body.splitlines()[-1]) == {"exit_code": 0}
        listing = await fetch_json(jp_fetch, *files(name, "/root"))
        link = next(e for e in listing["content"] if e["name"] == "shadow")
        assert link["kind"] == "link" and link["type"] == "file"

        for parts in (files(name, "/root/shadow"), ("sandbox", "api", "sandboxes", name, "download", "root", "shadow")):
            error = await expect_error(jp_fetch, 400, *parts)
            assert error["error"] == "unsafe_link" and "'/etc/shadow'" in error["message"] and error["fix"]
        error = await expect_error(
            jp_fetch, 400, *files(name, "/root/shadow"), method="PUT", body=json.dumps({"type": "file", "format": "text", "content": "x"})
        )
        assert error["error"] == "unsafe_link"
        await jp_fetch(*files(name, "/root/shadow"), method="DELETE")  # removes the link, not what it points to
        assert (await fetch_json(jp_fetch, *files(name, "/etc/shadow"), params={"content": "0"}))["kind"] == "file"

        error = await expect_error(jp_fetch, 404, *files(name, "/root/missing.txt"))
        assert error["error"] == "path_not_found" and error["fix"]
        error = await expect_error(jp_fetch, 404, *files("no-such-sandbox-xyz", "/root"))
        assert error["error"] == "not_found" and "no-such-sandbox-xyz" in error["message"]
        error = await expect_error(jp_fetch, 400, "sandbox", "api", "sandboxes", name, "files", method="DELETE")
        assert error["error"] == "wrong_type" and "root folder" in error["message"]
        await fetch_json(jp_fetch, *files(name, "/tmp/a"), method="PUT", body=json.dumps({"type": "directory"}))
        error = await expect_error(jp_fetch, 409, *files(name, "/tmp/a"), method="PATCH", body=json.dumps({"path": "/etc"}))
        assert error["error"] == "path_exists" and error["fix"]
        error = await expect_error(jp_fetch, 400, *files(name, "/tmp"), method="POST", body=json.dumps({"type": "x"}))
        assert error["field"] == "type"
        error = await expect_error(jp_fetch, 400, *files(name, "/tmp"), method="POST", body='{"ext": "/../../x"}')
        assert error["field"] == "ext"
        error = await expect_error(jp_fetch, 400, *files(name, "/tmp/s"), method="PUT", body='{"content": "\\ud800"}')
        assert error["field"] == "content"
        await jp_fetch(*files(name, "/tmp/a/bin"), method="PUT", body=json.dumps({"format": "base64", "content": "/w=="}))
        error = await expect_error(jp_fetch, 400, *files(name, "/tmp/a/bin"), params={"format": "text"})
        assert error["error"] == "wrong_type" and "UTF-8" in error["message"]
        error = await expect_error(jp_fetch, 404, *files(name, "/tmp/nowhere/x"), method="PUT", body=json.dumps({"content": ""}))
        assert "create the folder first" in error["fix"]

        big = 17 << 20  # over the 16 MiB a JSON model carries: opened as a download instead
        made = await jp_fetch(
            "sandbox",
            "api",
            "sandboxes",
            name,
            "exec",
            method="POST",
            body=json.dumps({"command": ["sh", "-c", f"head -c {big} /dev/urandom > /tmp/big"]}),
        )
        assert json.loads(made.body.splitlines()[-1]) == {"exit_code": 0}
        error = await expect_error(jp_fetch, 413, *files(name, "/tmp/big"))
        assert error["error"] == "too_large" and "download" in error["fix"]
        response = await jp_fetch("sandbox", "api", "sandboxes", name, "download", "tmp", "big")
        assert len(response.body) == big and response.headers["Content-Length"] == str(big)

        await jp_fetch("sandbox", "api", "sandboxes", name, "pause", method="POST", body="")
        assert (await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", name))["state"] == "paused"
        assert (await fetch_json(jp_fetch, *files(name, "/tmp/a")))["content"][0]["name"] == "bin"  # a use resumes it
        assert (await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", name))["state"] == "ready"

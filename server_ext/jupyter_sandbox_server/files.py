"""``/sandbox/api/sandboxes/<name>/files/<path>`` and ``.../download/<path>``: a sandbox's files for Lab's drive.

Thin over the core's ``sandbox.files`` (:mod:`jupyter_sandbox.filetree`): every read
and write runs inside the sandbox, a path that is a symbolic link is never read or
written through, and every failure is a JSON error with a fix.  Models are shaped
like jupyter-server's contents models (``type``, ``format``, ``content``,
``last_modified``...) with the sandbox's absolute ``path``; the Lab drive adds its
own prefix.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import posixpath
import urllib.parse
from datetime import datetime, timezone
from typing import Any

import tornado.httputil
import tornado.iostream
import tornado.web
from jupyter_server.auth.decorator import authorized

from jupyter_sandbox.errors import PathExists, SandboxError, SpecError, WrongPathType
from jupyter_sandbox.files import AsyncFiles
from jupyter_sandbox.filetree import Entry, normal_path

from .handlers import SandboxAPIHandler

MAX_CONTENT_BYTES = 16 << 20
"""Largest file returned inside a JSON model (``?content=1``); bigger ones are downloaded."""
MAX_FILE_BODY_BYTES = 24 << 20
"""Largest PUT body: a whole file saved at once, or one chunk of an upload (Lab sends 1 MiB chunks)."""


class FileTooLarge(SandboxError):
    """A file is over the size one JSON answer or body may carry."""

    code = "too_large"
    http_status = 413


def iso(timestamp: float) -> str:
    """Unix time as the ISO 8601 text contents models use."""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat().replace("+00:00", "Z")


def model(entry: Entry) -> dict[str, Any]:
    """A contents model without content: a link is a ``file`` whose ``kind`` says ``link``."""
    directory = entry.kind == "directory"
    mimetype = None if directory or entry.kind != "file" else mimetypes.guess_type(entry.name)[0] or "text/plain"
    return {
        "name": entry.name,
        "path": entry.path,
        "type": "directory" if directory else "file",
        "kind": entry.kind,
        "size": None if directory else entry.size,
        "last_modified": iso(entry.modified),
        "created": iso(entry.modified),
        "mimetype": mimetype,
        "writable": True,
        "format": None,
        "content": None,
    }


def decode_content(body: dict[str, Any]) -> bytes:
    """The bytes a save body carries (``format`` ``text`` or ``base64``; a notebook's JSON ``content``)."""
    content, fmt = body.get("content"), body.get("format")
    if body.get("type") == "notebook":
        return (json.dumps(content, indent=1, ensure_ascii=False) + "\n").encode()
    if not isinstance(content, str):
        raise SpecError("content", "must be a string", fix='send {"type": "file", "format": "text", "content": "..."}')
    if fmt == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise SpecError("content", "is not valid base64", fix="send the file's bytes base64-encoded") from None
    if fmt in (None, "text"):
        try:
            return content.encode()
        except UnicodeEncodeError:  # a lone surrogate escaped in the JSON
            raise SpecError("content", "is not valid Unicode text", fix='send binary files with "format": "base64"') from None
    raise SpecError("format", f"must be 'text' or 'base64', got {fmt!r}", fix='use "format": "base64" for binary files')


class FilesHandler(SandboxAPIHandler):
    """A sandbox's files: GET lists or reads, PUT saves (chunked uploads append), POST makes a new
    untitled file or folder, PATCH renames, DELETE removes."""

    max_body_bytes = MAX_FILE_BODY_BYTES

    async def files(self, name: str) -> AsyncFiles:
        """The sandbox's files (404 for one this server may not see; a paused one resumes on first use)."""
        return await self.manager.files(name)

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str, path: str = "") -> None:
        """``?content=0|1`` (default 1), ``?format=text|base64``: a folder's entries or a file's content."""
        files, path = await self.files(name), normal_path(path or "/")
        want = self.get_query_argument("content", "1") not in ("0", "false")
        fmt = self.get_query_argument("format", None)
        if fmt not in (None, "text", "base64"):
            raise SpecError("format", f"must be 'text' or 'base64', got {fmt!r}", fix="use ?format=base64 for binary files")
        top, entries = await files.list(path)
        answer = model(top)
        if top.kind == "directory":
            if want:
                answer.update(format="json", content=[model(e) for e in entries])
        elif want:
            if top.kind == "file" and top.size > MAX_CONTENT_BYTES:
                raise FileTooLarge(
                    f"{path!r} is {top.size} bytes; files over {MAX_CONTENT_BYTES} bytes are not opened in Lab.",
                    fix="download it (right-click, Download), or read it in a terminal",
                )
            data = b"".join([piece async for piece in files.stream(path)])  # a link or device raises here
            answer.update(self.encoded(path, data, fmt), size=len(data))
        self.write_json(answer)

    @staticmethod
    def encoded(path: str, data: bytes, fmt: str | None) -> dict[str, Any]:
        """``format`` and ``content`` for bytes: text when asked or when they are UTF-8, else base64."""
        if fmt != "base64":
            try:
                return {"format": "text", "content": data.decode()}
            except UnicodeDecodeError:
                if fmt == "text":
                    raise WrongPathType(f"{path!r} is not UTF-8 text.", fix="open it with ?format=base64, or download it") from None
        return {"format": "base64", "content": base64.b64encode(data).decode(), "mimetype": "application/octet-stream"}

    @tornado.web.authenticated
    @authorized
    async def put(self, name: str, path: str = "") -> None:
        """Body ``{"type": "file"|"notebook"|"directory", "format", "content", "chunk"?}``.

        ``chunk`` 1 (or none) writes the file anew; 2, 3... and -1 (the last) append to it.
        """
        body = self.json_body()
        if not isinstance(body, dict):
            raise SpecError("body", "must be a JSON object", fix='send {"type": "file", "format": "text", "content": ""}')
        files, path = await self.files(name), normal_path(path or "/", root=False)
        chunk = body.get("chunk")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk == 0 or chunk < -1):
            raise SpecError("chunk", f"must be 1, 2, 3... or -1 for the last, got {chunk!r}", fix="number chunks from 1")
        if body.get("type") == "directory":
            try:
                await files.mkdir(path)
            except PathExists:
                if (await files.stat(path)).kind != "directory":
                    raise
        else:
            data = decode_content(body)
            if chunk in (None, 1):
                mode = await files.check_writable(path)  # an existing file keeps its permissions (a script its x bit)
                await files.write(path, data, mode=0o644 if mode is None else mode)
            else:
                await files.append(path, data)
        self.write_json(model(await files.stat(path)))

    @tornado.web.authenticated
    @authorized
    async def post(self, name: str, path: str = "") -> None:
        """Body ``{"type": "directory"|"file", "ext": ".txt"?}``: a new untitled one in the folder ``path``; 201."""
        body = self.json_body()
        kind = body.get("type", "file") if isinstance(body, dict) else None
        if kind not in ("directory", "file"):
            raise SpecError("type", f"must be 'directory' or 'file', got {kind!r}", fix='send {"type": "directory"}')
        files, folder = await self.files(name), normal_path(path or "/")
        _, entries = await files.list(folder)
        taken = {e.name for e in entries}
        ext = body.get("ext") or ".txt"
        if not isinstance(ext, str) or "/" in ext or "\0" in ext:
            raise SpecError("ext", f"must be a file name extension such as '.py', got {ext!r}", fix='send e.g. {"ext": ".py"}')
        stem = "Untitled Folder" if kind == "directory" else "untitled"
        suffix = "" if kind == "directory" else (ext if ext.startswith(".") else "." + ext)
        new = next(f"{stem}{n or ''}{suffix}" for n in range(len(taken) + 2) if f"{stem}{n or ''}{suffix}" not in taken)
        target = posixpath.join(folder, new)
        await (files.mkdir(target) if kind == "directory" else files.write(target, b""))
        self.write_json(model(await files.stat(target)), status=201)

    @tornado.web.authenticated
    @authorized
    async def patch(self, name: str, path: str = "") -> None:
        """Body ``{"path": "/new/absolute/path"}``: rename or move (never over an existing one)."""
        body = self.json_body()
        if not isinstance(body, dict) or not isinstance(body.get("path"), str):
            raise SpecError("path", "must be the new absolute path", fix='send {"path": "/root/new-name.txt"}')
        files = await self.files(name)
        await files.rename(normal_path(path or "/", root=False), body["path"])
        self.write_json(model(await files.stat(normal_path(body["path"]))))

    @tornado.web.authenticated
    @authorized
    async def delete(self, name: str, path: str = "") -> None:
        """Remove a file, link (not what it points to) or folder with its contents; 204."""
        await (await self.files(name)).remove(normal_path(path or "/", root=False))
        self.set_status(204)
        self.finish()


class DownloadHandler(SandboxAPIHandler):
    """``GET .../download/<path>``: a file's bytes streamed as they are read, as an attachment."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str, path: str = "") -> None:
        """The file with ``Content-Disposition: attachment`` and its length; errors before the first byte are JSON."""
        files, path = await self.manager.files(name), normal_path(path or "/", root=False)
        top = await files.stat(path)
        pieces = files.stream(path)
        try:
            first = await pieces.__anext__()  # a link, folder or missing file raises here, as JSON
        except StopAsyncIteration:
            first = b""
        filename = posixpath.basename(path)
        fallback = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
        mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        self.set_header("Content-Type", mimetype)
        self.set_header("Content-Disposition", f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(filename)}")
        self.set_header("Content-Length", str(top.size))
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        try:
            self.write(first)
            await self.flush()
            async for piece in pieces:
                self.write(piece)
                await self.flush()
        except tornado.iostream.StreamClosedError:
            await pieces.aclose()  # the browser left: stop reading
            return
        except (SandboxError, tornado.httputil.HTTPOutputError) as error:  # the file changed while read: the headers are out, so cut the answer short
            self.log.warning("jupyter-sandbox: download of %s in %s failed: %s", path, name, error)
            self.request.connection.close()
            return
        self.finish(set_content_type=mimetype)

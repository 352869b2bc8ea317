"""REST handlers under ``/sandbox/api/``: thin, authenticated, errors as JSON.

Every verb is ``@tornado.web.authenticated`` and ``@authorized`` on the
``sandbox`` resource; the work happens in the :class:`SandboxManager` kept in
``web_app.settings``.  Bodies are streamed in (``stream_request_body``) so that
authentication and the size cap (:data:`MAX_BODY_BYTES`) are checked in
``prepare()``, from the headers, before any of the body is read.  A :class:`~jupyter_sandbox.errors.SandboxError` becomes
a response with the error's ``http_status`` and ``to_dict()`` body (plus
``field`` for a bad request field).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import tornado.iostream
import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler

from jupyter_sandbox.daemonlog import notes
from jupyter_sandbox.errors import SandboxError, SpecError
from jupyter_sandbox.events import phase_catalog
from jupyter_sandbox.process import AsyncProcess, TextDecoder

from .manager import SandboxManager

AUTH_RESOURCE = "sandbox"
MANAGER_SETTING = "jupyter_sandbox_manager"
MAX_LOG_LINES = 10000
MAX_BODY_BYTES = 1 << 20
"""Largest request body the sandbox routes accept (their bodies are small JSON objects)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects accepted in a body (deeper ones are refused, never recursed into)."""


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether JSON text nests arrays/objects deeper than ``limit`` (a scan, no recursion; strings skipped)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def error_body(error: SandboxError) -> dict[str, Any]:
    """The JSON body for an error: ``to_dict()``, plus the field name of a spec error."""
    body = error.to_dict()
    if isinstance(error, SpecError) or getattr(error, "field", None):
        body["field"] = error.field  # type: ignore[attr-defined]
    return body


@tornado.web.stream_request_body
class SandboxAPIHandler(APIHandler):
    """Base of the REST handlers: the manager, JSON bodies, and typed errors as JSON responses."""

    auth_resource = AUTH_RESOURCE
    max_body_bytes = MAX_BODY_BYTES
    """Largest body this route accepts (the files routes take file chunks and raise it)."""
    _body_size = 0

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate and check the body's declared size from the headers, before reading the body.

        An unauthenticated request gets 403 and a body over :data:`MAX_BODY_BYTES` gets 413
        here, so neither is read into memory (the connection is closed after the answer).
        """
        self._chunks: list[bytes] = []
        await super().prepare()
        if not self.current_user:
            raise tornado.web.HTTPError(403)
        length = self.request.headers.get("Content-Length")
        if length is not None:
            if not (length.isascii() and length.strip().isdigit()):
                raise tornado.web.HTTPError(400, "Content-Length is not a whole number")
            if int(length) > self.max_body_bytes:
                raise tornado.web.HTTPError(413, f"the body is {int(length)} bytes; the limit is {self.max_body_bytes}")
        self.request.connection.set_max_body_size(self.max_body_bytes)  # a chunked body past it is cut off too

    def data_received(self, chunk: bytes) -> None:
        """Keep the body's chunks, up to :data:`MAX_BODY_BYTES` (past it they are dropped and the request refused)."""
        self._body_size += len(chunk)
        if self._body_size <= self.max_body_bytes and not self._finished:
            self._chunks.append(chunk)

    @property
    def body(self) -> bytes:
        """The request body (streamed in by :meth:`data_received`)."""
        if self._body_size > self.max_body_bytes:
            raise tornado.web.HTTPError(413, f"the body is over the limit of {self.max_body_bytes} bytes")
        return b"".join(getattr(self, "_chunks", []))

    @property
    def manager(self) -> SandboxManager:
        """The server's one :class:`SandboxManager`."""
        return self.settings[MANAGER_SETTING]

    def json_body(self) -> Any:
        """The request body as JSON (a :class:`SpecError` naming ``body`` if it is not)."""
        text = self.body.decode("utf-8", errors="replace") or "{}"
        if json_depth_exceeds(text, MAX_JSON_DEPTH):
            raise SpecError(
                "body",
                f"nests arrays or objects deeper than {MAX_JSON_DEPTH} levels",
                fix='send a flat object, e.g. {"name": "demo", "docker": true}',
            )
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as error:
            raise SpecError("body", f"is not valid JSON ({str(error)[:200]})", fix='send e.g. {"name": "demo", "docker": true}') from None

    def write_json(self, data: Any, status: int = 200) -> None:
        """Finish with a JSON body."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Render a :class:`SandboxError` with its own status and fields; anything else as APIHandler does."""
        error = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(error, SandboxError):
            self.set_status(error.http_status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(error_body(error)))
            return
        super().write_error(status_code, **kwargs)

    async def stream_process(self, process: AsyncProcess, first: dict[str, Any] | None = None) -> None:
        """Answer ``application/x-ndjson``: ``first`` (if given), then ``{"stream", "text"}`` per chunk of the
        process's output as it arrives, then ``{"exit_code": N}`` (with the typed error's fields when it
        failed for a known cause), or the error alone.

        The client leaving ends it at once (even while the process prints nothing, as a
        follower does): leaving ``output()`` kills the process.
        """
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # a proxy in front must pass each line on at once
        decoder = TextDecoder()  # a character split across chunks stays whole

        async def pump() -> None:
            if first is not None:
                self.write(json.dumps(first) + "\n")
                await self.flush()
            try:
                async with contextlib.aclosing(process.output()) as output:
                    async for chunk in output:
                        self.write(json.dumps({"stream": chunk.stream, "text": decoder.decode(chunk)}) + "\n")
                        await self.flush()
                final: dict[str, Any] = {"exit_code": process.exit_code}
                if process.error is not None:  # e.g. the sandbox's disk is full: the typed error beside the code
                    final.update(error_body(process.error))
            except SandboxError as error:
                final = error_body(error)
            self.write(json.dumps(final) + "\n")
            self.finish()

        self._left = asyncio.Event()
        task = asyncio.ensure_future(pump())
        left = asyncio.ensure_future(self._left.wait())
        try:
            await asyncio.wait({task, left}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            left.cancel()
            if not task.done():
                task.cancel()  # the client left: cancelling leaves output(), which kills the process
            with contextlib.suppress(asyncio.CancelledError, tornado.iostream.StreamClosedError):
                await task

    def on_connection_close(self) -> None:
        """The client went away: stop a stream under way (see :meth:`stream_process`)."""
        left = getattr(self, "_left", None)
        if left is not None:
            left.set()
        super().on_connection_close()

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """One line for an expected :class:`SandboxError`, a traceback only for real bugs."""
        if isinstance(value, SandboxError):
            self.log.warning("%s %s: %s", self.request.method, self.request.path, value.message)
            return
        super().log_exception(typ, value, tb)


class SandboxesHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes``: list and create."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """List every sandbox on the engine (``SandboxInfo.to_dict()`` each)."""
        self.write_json(await self.manager.list())

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        """Start a create; answers 202 with the name at once, progress follows on the event bus."""
        spec = self.manager.spec_from_body(self.json_body())
        await self.manager.create(spec)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + spec.name)
        self.write_json({"name": spec.name, "state": "starting", "spec": spec.to_dict(), "warnings": spec.warnings}, status=202)


class WatchHandler(SandboxAPIHandler):
    """``/sandbox/api/watch``: the state that the event bus's sandbox emissions apply to."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """Every sandbox the server follows, with its phases, the engine's state and the last emission's ``seq``."""
        self.write_json(await self.manager.watched())


class PhasesHandler(SandboxAPIHandler):
    """``/sandbox/api/phases``: the startup phases in order and their titles (``events.phase_catalog()``)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """The phase lists and titles views draw rows from."""
        self.write_json(phase_catalog())


class SandboxHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>``: one sandbox."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """The sandbox's state and startup phases."""
        self.write_json(await self.manager.status(name))

    @tornado.web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        """Remove the sandbox and everything in it."""
        await self.manager.terminate(name)
        self.set_status(204)
        self.finish()


class EgressHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>/egress``: the live egress policy of a network-``sandbox`` sandbox."""

    @tornado.web.authenticated
    @authorized
    async def put(self, name: str) -> None:
        """Body ``{"egress": "public" | "none" | [entries]}``; answers the live policy with what entries resolved to."""
        body = self.json_body()
        if not isinstance(body, dict) or set(body) != {"egress"}:
            raise SpecError("body", "must be an object with exactly the field 'egress'", fix='send e.g. {"egress": "none"}')
        self.write_json(await self.manager.set_egress(name, body["egress"]))


class ExecHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>/exec``: run a command, streaming its output as JSON lines."""

    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Body ``{"command": [argv...], "timeout": seconds?}``.

        Answers ``application/x-ndjson``: ``{"stream": "stdout"|"stderr", "text": ...}``
        per chunk as it arrives, then ``{"exit_code": N}`` (or ``{"error": ..., "message": ...}``; both when
        a command failed for a known cause such as a full disk: ``"error": "disk_full"``).
        """
        body = self.json_body()
        if not isinstance(body, dict):
            raise SpecError("body", "must be a JSON object", fix='send e.g. {"command": ["ls", "-l"]}')
        process = await self.manager.exec(name, body.get("command"), body.get("timeout"))
        await self.stream_process(process)


def lines_argument(handler: SandboxAPIHandler, default: str = "200") -> int:
    """The ``?lines=N`` query argument: a whole number from 1 to :data:`MAX_LOG_LINES`."""
    text = handler.get_query_argument("lines", default)
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_LOG_LINES:
        raise SpecError("lines", f"must be a whole number from 1 to {MAX_LOG_LINES}, got {text!r}", fix="use e.g. ?lines=200")
    return int(text)


def flag_argument(handler: SandboxAPIHandler, name: str) -> bool:
    """A yes/no query argument (``true``, ``1``, ``yes``; anything else is no)."""
    return handler.get_query_argument(name, "false").lower() in ("1", "true", "yes")


class LogsHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>/logs``: the dockerd log inside the sandbox."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """``?lines=N`` (default 200) last lines, as ``{"sandbox", "lines", "log", "notes"}``.

        ``notes`` lists the lines expected under gVisor (``{"match", "why"}``, see
        :mod:`jupyter_sandbox.daemonlog`).  With ``?follow=true`` the answer is a stream
        (:meth:`SandboxAPIHandler.stream_process`) whose first line is ``{"notes": [...]}``,
        then the log's lines as dockerd writes them, until the client leaves or the sandbox goes.
        """
        lines = lines_argument(self)
        if flag_argument(self, "follow"):
            await self.stream_process(await self.manager.follow_dockerd_log(name, lines), first={"notes": notes()})
            return
        log = await self.manager.dockerd_log(name, lines)
        self.write_json({"sandbox": name, "lines": lines, "log": log, "notes": notes()})


class ContainersHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>/containers``: the inner ``docker ps``."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """``docker ps --format '{{json .}}'`` as a JSON list (``?all=true`` adds stopped ones)."""
        include_stopped = flag_argument(self, "all")
        self.write_json(await self.manager.containers(name, include_stopped))


class InnerContainerHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>/containers/<container>``: DELETE removes an inner container (running too)."""

    @tornado.web.authenticated
    @authorized
    async def delete(self, name: str, container: str) -> None:
        """``docker rm --force`` in the sandbox; 404 if it has no such container."""
        await self.manager.remove_container(name, container)
        self.set_status(204)
        self.finish()


class InnerContainerStopHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>/containers/<container>/stop``: stop an inner container."""

    @tornado.web.authenticated
    @authorized
    async def post(self, name: str, container: str) -> None:
        """``docker stop``; answers 204 once it has stopped."""
        await self.manager.stop_container(name, container)
        self.set_status(204)
        self.finish()


class InnerContainerLogsHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>/containers/<container>/logs``: an inner container's ``docker logs``."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str, container: str) -> None:
        """``?lines=N`` (default 200) last lines, ``?follow=true`` to keep streaming new ones; always a stream
        (:meth:`SandboxAPIHandler.stream_process`: its stdout and stderr as the container wrote them)."""
        lines = lines_argument(self)
        await self.stream_process(await self.manager.container_logs(name, container, lines, flag_argument(self, "follow")))


class PauseHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>/pause`` and ``.../resume``: freeze and unfreeze a sandbox."""

    @tornado.web.authenticated
    @authorized
    async def post(self, name: str, action: str) -> None:
        """Pause or resume; answers the sandbox's state afterwards (``paused`` or ``ready``)."""
        info = await (self.manager.pause(name) if action == "pause" else self.manager.resume(name))
        self.write_json(info)


class SandboxSnapshotsHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>/snapshots``: checkpoint a sandbox (it keeps running)."""

    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Body ``{"tag": "..."}``; answers 201 with the snapshot (409 if the tag is taken)."""
        body = self.json_body()
        if not isinstance(body, dict) or set(body) != {"tag"}:
            raise SpecError("body", "must be an object with exactly the field 'tag'", fix='send e.g. {"tag": "with-images"}')
        self.write_json(await self.manager.take_snapshot(name, body["tag"]), status=201)


class SnapshotsHandler(SandboxAPIHandler):
    """``/sandbox/api/snapshots`` (list) and ``/sandbox/api/snapshots/<tag>`` (one; DELETE removes it).

    Fork one with ``POST /sandbox/api/sandboxes`` and ``{"snapshot": TAG, "name": ...}``.
    """

    @tornado.web.authenticated
    @authorized
    async def get(self, tag: str | None = None) -> None:
        """Every snapshot this server may see, or one."""
        self.write_json(self.manager.snapshots() if tag is None else self.manager.snapshot(tag).to_dict())

    @tornado.web.authenticated
    @authorized
    async def delete(self, tag: str | None = None) -> None:
        """Remove a snapshot (forks made from it keep running)."""
        if tag is None:
            raise SpecError("tag", "is missing", fix="DELETE /sandbox/api/snapshots/TAG")
        self.manager.remove_snapshot(tag)
        self.set_status(204)
        self.finish()


class PortsHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>/ports``: the TCP ports listening inside, with their proxy URLs."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """``[{"port", "addresses", "reachable", "url"}]``; 409 for a sandbox with network ``none``."""
        self.write_json(await self.manager.ports(name))


class TerminalHandler(SandboxAPIHandler):
    """``/sandbox/api/sandboxes/<name>/terminal``: a Jupyter terminal with a login shell inside the sandbox."""

    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Answers 201 ``{"sandbox", "terminal"}``; open it with Lab's ``terminal:open`` and ``{"name": terminal}``.

        Needs the ``terminals`` permission too: the terminal is one of the server's.
        """
        if not self.authorizer.is_authorized(self, self.current_user, "write", "terminals"):
            raise tornado.web.HTTPError(403, "not allowed to open terminals on this server")
        available = self.settings.get("terminals_available", False)
        terminals = self.settings.get("terminal_manager") if available else None
        self.write_json(await self.manager.open_terminal(name, terminals), status=201)


class UsageHandler(SandboxAPIHandler):
    """``/sandbox/api/stats``: live CPU and memory of every running sandbox this server may see."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """``[{"name", "cpu_percent", "cpu_limit", "memory", "memory_limit", "memory_percent", "pids"}]`` (takes about a second)."""
        self.write_json(await self.manager.usage())

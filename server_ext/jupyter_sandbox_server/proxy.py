"""``<base_url>sandbox/proxy/<name>/<port>/<path>``: a sandbox's port served through the Jupyter server.

HTTP of any method streams both ways with back-pressure: the request body
goes to the sandbox chunk by chunk as it arrives (``stream_request_body``),
the response comes back chunk by chunk, and reading from one side waits
while the other side's buffer drains.  An ``Upgrade`` request (websockets, or
any other protocol) becomes a byte tunnel once the sandbox's app has answered
the handshake.  Every request needs Jupyter's authentication (403 without)
and authorization on the ``sandbox`` resource, and only sandboxes this server
may see are reachable.  The user's Jupyter token and login cookie are never
passed on to the app inside the sandbox.

Not jupyter-server-proxy: its ``ProxyHandler`` reads whole request bodies and
buffers whole responses unless the client asks for ``text/event-stream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import tornado.web
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import httpclient, httputil, iostream
from tornado.simple_httpclient import SimpleAsyncHTTPClient
from tornado.tcpclient import TCPClient

from jupyter_sandbox.errors import SandboxError
from jupyter_sandbox.ports import PROXY_PREFIX

from .handlers import AUTH_RESOURCE, MANAGER_SETTING
from .manager import SandboxManager

CONNECT_TIMEOUT = 10.0
CAPABILITY_MARK = "~"
"""Starts the capability path segment: ``sandbox/proxy/<name>/<port>/~<capability>/<path>``."""
CAPABILITY_HEX = 32
BODY_QUEUE_CHUNKS = 4
"""Request-body chunks held between the browser and the sandbox before reading from the browser waits."""
TUNNEL_CHUNK = 64 * 1024
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def route() -> str:
    """The proxy's route pattern, relative to the server's base URL (an optional capability segment first)."""
    return (
        PROXY_PREFIX + r"/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,62})/(?P<port>[0-9]{1,5})"
        rf"(?:/{re.escape(CAPABILITY_MARK)}(?P<capability>[0-9a-f]{{{CAPABILITY_HEX}}}))?(?P<path>/.*)?"
    )


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@tornado.web.stream_request_body
class SandboxProxyHandler(JupyterHandler):
    """Forwards one request to a port inside a sandbox and streams the answer back."""

    auth_resource = AUTH_RESOURCE
    SUPPORTED_METHODS = METHODS

    def initialize(self) -> None:
        """Per-request state."""
        self._body: asyncio.Queue[bytes | None] | None = None
        self._forwarding: asyncio.Future[None] | None = None
        self._target: tuple[str, int] = ("", 0)

    @property
    def manager(self) -> SandboxManager:
        """The server's one :class:`SandboxManager`."""
        return self.settings[MANAGER_SETTING]

    def check_xsrf_cookie(self) -> None:
        """Left to the app inside the sandbox (it has its own forms); Jupyter's token is still required."""

    # -- every request ------------------------------------------------------

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate (Jupyter's login, or the link's capability) and authorize, find the sandbox, start forwarding."""
        await super().prepare(_redirect_to_login=False)
        name, port, path, capability = (
            self.path_kwargs["name"],
            int(self.path_kwargs["port"]),
            self.path_kwargs["path"],
            self.path_kwargs.get("capability"),
        )
        upgrade = bool(self.request.headers.get("Upgrade"))
        if capability is None:
            await self._check_jupyter_user(upgrade)
        address, container_id = await self.manager.proxy_target(name, port)
        expected = self._capability(name, port, container_id)
        if capability is not None and not hmac.compare_digest(capability, expected):
            raise tornado.web.HTTPError(
                403, "this link to a sandbox port is no longer valid (the sandbox or the server was restarted): open the port again from Jupyter"
            )
        self._target = (address, port)
        if capability is None and self._is_navigation() and self.manager.proxy_csp:
            # A page: continue under the capability path, so its own requests need no Jupyter cookie
            # (a page in an origin of its own sends none).
            self.redirect(f"{self._prefix(expected)}{path or '/'}" + (f"?{self._query()}" if self._query() else ""))
            return
        if not path:
            self.redirect(self._prefix(capability) + "/" + (f"?{self._query()}" if self._query() else ""))
            return
        if capability is not None and self.request.method == "OPTIONS" and "Access-Control-Request-Method" in self.request.headers:
            self._preflight()
            return
        if upgrade:
            if capability is None and not self.check_origin():
                raise tornado.web.HTTPError(403, "cross-origin upgrade refused")
            await self._tunnel(path)
            return
        self._body = asyncio.Queue(BODY_QUEUE_CHUNKS)
        self._forwarding = asyncio.ensure_future(self._forward(path))

    async def _check_jupyter_user(self, upgrade: bool) -> None:
        if self.current_user is None:
            raise tornado.web.HTTPError(403, "log in to Jupyter (or send its token) to open sandbox ports")
        action = "execute" if upgrade else HTTP_METHOD_TO_AUTH_ACTION.get(self.request.method or "", "write")
        if not await ensure_async(self.authorizer.is_authorized(self, self.current_user, action, AUTH_RESOURCE)):
            raise tornado.web.HTTPError(403, f"not authorized to {action} on resource: {AUTH_RESOURCE}")

    def _capability(self, name: str, port: int, container_id: str) -> str:
        """The secret path segment that admits requests to one port of one sandbox container, minted for a user
        who passed Jupyter's authentication and authorization (keyed with the server's cookie secret)."""
        key = self.settings.get("cookie_secret") or b""
        key = key.encode() if isinstance(key, str) else key
        return hmac.new(key, f"{name}\0{port}\0{container_id}".encode(), hashlib.sha256).hexdigest()[:CAPABILITY_HEX]

    def _is_navigation(self) -> bool:
        """Whether a browser is loading this as a page (a tab or an iframe), not as part of one."""
        return self.request.method == "GET" and self.request.headers.get("Sec-Fetch-Mode") == "navigate" and not self.request.headers.get("Upgrade")

    def _query(self) -> str:
        return urlencode([(k, v) for k, v in parse_qsl(self.request.query, keep_blank_values=True) if k != "token"])

    def _preflight(self) -> None:
        """Answer a CORS preflight of a page from the sandbox (its origin is its own) for its own app."""
        self._headers = httputil.HTTPHeaders()
        self.set_status(204)
        self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Access-Control-Allow-Methods", ", ".join(METHODS))
        self.set_header("Access-Control-Allow-Headers", self.request.headers.get("Access-Control-Request-Headers", "*"))
        self.set_header("Access-Control-Max-Age", "600")
        self.finish()

    async def data_received(self, chunk: bytes) -> None:
        """A piece of the request body: queued for the sandbox (waits while the queue is full)."""
        if self._body is not None:
            await self._body.put(chunk)

    @allow_unauthenticated  # prepare() checks Jupyter's user (403 without) or the link's capability
    async def _respond(self, *args: Any, **kwargs: Any) -> None:
        """The request body is complete: wait until the answer has been streamed back."""
        if self._forwarding is None:
            return
        assert self._body is not None
        await self._body.put(None)
        try:
            await self._forwarding
        except asyncio.CancelledError:
            if not self._forwarding.cancelled():
                raise  # this handler itself was cancelled; a cancelled forward means the browser left

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors as plain text a person reads in a browser tab: what happened and how to fix it."""
        error = (kwargs.get("exc_info") or (None, None, None))[1]
        self._headers = httputil.HTTPHeaders()
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if isinstance(error, SandboxError):
            self.set_status(error.http_status)
            self.finish(str(error) + "\n")
            return
        reason = getattr(error, "log_message", None) or self._reason
        self.finish(f"{status_code} {self._reason}: {reason}\n" if reason != self._reason else f"{status_code} {reason}\n")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """One line for an expected :class:`SandboxError`, a traceback only for real bugs."""
        if isinstance(value, SandboxError):
            self.log.warning("%s %s: %s", self.request.method, self.request.path, value.message)
            return
        super().log_exception(typ, value, tb)

    get = head = post = put = patch = delete = options = _respond

    def on_connection_close(self) -> None:
        """The browser left: stop forwarding."""
        if self._forwarding is not None:
            self._forwarding.cancel()
        super().on_connection_close()

    # -- HTTP --------------------------------------------------------------------

    def _client_path(self, path: str) -> str:
        query = self._query()
        return quote(path, safe="/:@!$&'()*+,;=-._~%") + ("?" + query if query else "")

    def _prefix(self, capability: str | None = "") -> str:
        """The URL prefix the app is served under (with the capability segment when there is one)."""
        if capability == "":
            capability = self.path_kwargs.get("capability")
        prefix = url_path_join(self.base_url, PROXY_PREFIX, self.path_kwargs["name"], self.path_kwargs["port"])
        return prefix + (f"/{CAPABILITY_MARK}{capability}" if capability else "")

    def _request_headers(self) -> httputil.HTTPHeaders:
        """The browser's headers less hop-by-hop ones, ``Expect`` (this server already answered it), Jupyter's
        token and Jupyter's cookies."""
        headers = httputil.HTTPHeaders()
        private = self._jupyter_cookie_names()
        for key, value in self.request.headers.get_all():
            lower = key.lower()
            if lower in HOP_BY_HOP or lower == "expect" or (lower == "authorization" and value.lower().startswith("token ")):
                continue
            if lower == "cookie":
                value = "; ".join(c for c in value.split("; ") if c.split("=", 1)[0].strip() not in private)
                if not value:
                    continue
            headers.add(key, value)
        headers["X-Forwarded-Prefix"] = self._prefix()
        headers["X-Forwarded-Proto"] = self.request.protocol
        headers["X-Forwarded-Host"] = self.request.host
        return headers

    def _jupyter_cookie_names(self) -> set[str]:
        names = {"_xsrf"}
        with contextlib.suppress(Exception):
            names.add(self.identity_provider.get_cookie_name(self))
        return names

    async def _body_producer(self, write: Any) -> None:
        assert self._body is not None
        while (chunk := await self._body.get()) is not None:
            await write(chunk)

    async def _forward(self, path: str) -> None:
        host, port = self._target
        has_body = "Content-Length" in self.request.headers or "Transfer-Encoding" in self.request.headers
        started: list[str] = []

        def header_line(line: str) -> None:
            line = line.rstrip("\r\n")
            if line.startswith("HTTP/"):
                start = httputil.parse_response_start_line(line)
                started[:] = [] if start.code < 200 else [line]  # 1xx: wait for the final answer
                if start.code >= 200:
                    self._start_response(start.code, start.reason)
            elif line and started:
                key, value = line.split(":", 1) if ":" in line else (line, "")
                self._copy_response_header(key.strip(), value.strip())

        def body_chunk(chunk: bytes) -> Any:
            self.write(chunk)
            return self.flush()  # awaited by tornado's client: back-pressure

        client = SimpleAsyncHTTPClient(force_instance=True, max_body_size=1 << 62)
        request = httpclient.HTTPRequest(
            f"http://{host_port(host, port)}{self._client_path(path)}",
            method=self.request.method,
            headers=self._request_headers(),
            body_producer=self._body_producer if has_body else None,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            decompress_response=False,
            connect_timeout=CONNECT_TIMEOUT,
            request_timeout=0,
            header_callback=header_line,
            streaming_callback=body_chunk,
        )
        try:
            await client.fetch(request, raise_error=False)
        except (OSError, iostream.StreamClosedError, httpclient.HTTPClientError) as error:
            if started:
                self.log.warning("sandbox proxy: %s ended mid-answer: %s", request.url, error)
                self.request.connection.close()
                return
            raise await self._unreachable(error) from None
        finally:
            client.close()
        if not self._finished:
            self.finish()

    def _start_response(self, code: int, reason: str | None) -> None:
        """The app's status; its headers replace Jupyter's page headers, plus :attr:`SandboxManager.proxy_csp`."""
        self.set_status(code, reason or None)
        self._headers = httputil.HTTPHeaders()
        if self.manager.proxy_csp:
            self.set_header("Content-Security-Policy", self.manager.proxy_csp)
        self.set_header("Referrer-Policy", "no-referrer")  # the capability path stays out of Referer headers
        if self.path_kwargs.get("capability"):
            self.set_header("Access-Control-Allow-Origin", "*")  # the page's own origin is opaque

    def _copy_response_header(self, key: str, value: str) -> None:
        lower = key.lower()
        if lower in HOP_BY_HOP or lower in ("referrer-policy", "access-control-allow-origin"):
            return
        if lower == "location" and value.startswith("/") and not value.startswith("//"):
            value = self._prefix() + value
        if lower == "set-cookie" and self._sets_jupyter_cookie(value):
            self.log.warning("sandbox proxy: dropped a Set-Cookie for a Jupyter cookie from %s", self._target)
            return
        self.add_header(key, value)

    def _sets_jupyter_cookie(self, header: str) -> bool:
        try:
            cookie = SimpleCookie(header)
        except CookieError:
            return True
        return bool(set(cookie) & self._jupyter_cookie_names())

    async def _unreachable(self, error: BaseException) -> SandboxError:
        name, (host, port) = self.path_kwargs["name"], self._target
        return await self.manager.port_unreachable(name, port, f"{host_port(host, port)}: {error}")

    # -- Upgrade (websockets) -------------------------------------------------

    async def _tunnel(self, path: str) -> None:
        """Send the handshake to the sandbox, then relay bytes both ways until either side closes."""
        host, port = self._target
        try:
            upstream = await TCPClient().connect(host, port, timeout=CONNECT_TIMEOUT)
        except (OSError, iostream.StreamClosedError, asyncio.TimeoutError) as error:
            raise await self._unreachable(error) from None
        headers = self._request_headers()
        for key in ("Upgrade", "Connection"):
            if key in self.request.headers:
                headers[key] = self.request.headers[key]
        lines = [f"{self.request.method} {self._client_path(path)} HTTP/1.1"]
        lines += [f"{key}: {value}" for key, value in headers.get_all()]
        downstream = self.detach()
        self.log.info("sandbox proxy: %s %s tunnelled to %s", self.request.method, self.request.uri, host_port(host, port))
        await upstream.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        asyncio.ensure_future(_relay(downstream, upstream))


async def _relay(a: iostream.IOStream, b: iostream.IOStream) -> None:
    """Copy bytes both ways (each write waits for the other side to drain); close both when one ends."""

    async def pipe(source: iostream.IOStream, sink: iostream.IOStream) -> None:
        try:
            while True:
                await sink.write(await source.read_bytes(TUNNEL_CHUNK, partial=True))
        except iostream.StreamClosedError:
            pass
        finally:
            source.close()
            sink.close()

    await asyncio.gather(pipe(a, b), pipe(b, a))

"""The HTTP server: ``ThreadingHTTPServer``, HTTP/1.1 keep-alive, one write per response."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import socketserver
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

from bettorsense.sandbox.api import PREFIXES, handle_api_request
from bettorsense.sandbox.control import PREFIX as CONTROL_PREFIX
from bettorsense.sandbox.control import handle_control_request
from bettorsense.sandbox.oauth import handle_token_request
from bettorsense.sandbox.responses import Response, json_response, phrase
from bettorsense.sandbox.state import SandboxState

logger = logging.getLogger(__name__)

TOKEN_PATH: Final = "/oauth/token"
MAX_BODY: Final = 64 * 1024
HANG_SECONDS: Final = 3600.0


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn(), a reverse DNS lookup that can stall.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bettorsense-sandbox"
    timeout = 130  # idle keep-alive connections are closed after this many seconds, as Kestrel does
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sandbox._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.sandbox._track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes | None:
        """The request body, or None when it is too large or malformed."""
        length = self.headers.get("Content-Length")
        if length is not None:
            if not length.isdigit() or int(length) > MAX_BODY:
                return None
            return self.rfile.read(int(length)) if int(length) else b""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        return b""

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        target = self.path
        if target.startswith(("http://", "https://")):  # absolute-form request target
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        path, _, query = target.partition("?")
        path = path.partition("#")[0]
        body = self._read_body()
        if body is None:
            self.close_connection = True
            response = json_response(
                413, {"error": f"The request body must be well-formed and at most {MAX_BODY} bytes."}
            )
        else:
            try:
                response = self._route(sandbox, path, query, body)
            except Exception:
                logger.exception("Sandbox failed on %s %s", self.command, path)
                response = json_response(500, {"error": "Sandbox internal error."})
        if response.delay and sandbox._stopping.wait(response.delay):
            response.hang = True  # the server is stopping: drop the connection instead
        if response.hang:
            self.close_connection = True
            sandbox._stopping.wait(HANG_SECONDS)
            return
        self._send(response)

    def _route(self, sandbox: SandboxServer, path: str, query: str, body: bytes) -> Response:
        state = sandbox.state
        if path == TOKEN_PATH:
            return handle_token_request(
                state,
                self.command,
                self.headers.get("Content-Type", ""),
                self.headers.get("Authorization"),
                body,
                state.issuer or f"{sandbox.url}/",
            )
        if path.startswith(CONTROL_PREFIX):
            if not (sandbox.allow_remote_control or _is_loopback(self.client_address[0])):
                return json_response(403, {"error": "The control API answers loopback clients only."})
            return handle_control_request(state, self.command, path, query, body)
        return handle_api_request(state, self.command, path, query, self.headers.get("Authorization"))

    def _send(self, response: Response) -> None:
        body = b"" if self.command == "HEAD" else response.body
        lines = [
            f"HTTP/1.1 {response.status} {phrase(response.status)}",
            f"Date: {_http_date(self.server.sandbox.state.clock())}",
            f"Server: {self.server_version}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            *(f"{name}: {value}" for name, value in response.headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if response.drip:
                self._drip(head, body, response.drip, head_too=response.drip_head)
            else:
                self.wfile.write(head + body)
        except OSError:
            self.close_connection = True
        logger.debug("%s %s -> %s", self.command, self.path.partition("?")[0], response.status)

    def _drip(self, head: bytes, body: bytes, every: float, *, head_too: bool = False) -> None:
        dripped = head + body if head_too else body
        if not head_too:
            self.wfile.write(head)
        for index in range(len(dripped)):
            if self.server.sandbox._stopping.wait(every):
                self.close_connection = True
                return
            self.wfile.write(dripped[index : index + 1])


_date_cache: tuple[int, str] = (0, "")


def _http_date(clock_now: float) -> str:
    """The ``Date`` header from the sandbox's clock, the true one that clients' skew is measured against."""
    global _date_cache
    now = int(clock_now)
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class SandboxServer:
    """Serves a :class:`SandboxState` over HTTP in a daemon thread (or in the foreground)."""

    def __init__(
        self,
        state: SandboxState | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        allow_remote_control: bool = False,
    ) -> None:
        self.state = state if state is not None else SandboxState()
        self.host = host
        self.port = port
        self.allow_remote_control = allow_remote_control
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("The sandbox server is already started.")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox:{self.port}", daemon=True
        )
        self._thread.start()
        logger.info("Sandbox serving on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, release hung requests and close open connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logger.info("Sandbox on port %s stopped", self.port)

    def wait(self) -> None:
        """Block until :meth:`stop` is called (from another thread or a signal handler)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> SandboxServer:
        return self.start() if self._httpd is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    # --- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (a wildcard bind is shown as loopback)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}{TOKEN_PATH}"

    def api_url(self, environment: str = "integration") -> str:
        """Base URL of the API: ``integration`` -> ``/ci/api/rg``, ``production`` -> ``/api/rg``."""
        try:
            prefix = PREFIXES[environment]
        except KeyError:
            raise ValueError(f"Unknown environment {environment!r}; use integration or production.") from None
        return f"{self.url}/{'/'.join(prefix)}"

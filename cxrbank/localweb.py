"""A small local web server on 127.0.0.1 that plays remote sites, for the tests and the offline demo."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # many connections open at once in crawl tests: never refuse one
    daemon_threads = True


@dataclass
class Page:
    """One canned response of the test web."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (timeouts)


Handler = Callable[["Request"], Page]


@dataclass
class Request:
    method: str
    path: str  # path with query, as sent
    headers: dict[str, str]
    body: bytes


class LocalWeb:
    """A local web server whose pages tests register: `web.add("/x?y=1", Page(...))`.

    A route is matched on the path with its query first, then on the path alone. A route can
    be a Page, a list of Pages (served in turn, the last one repeated), or a callable taking
    the Request. Every request is logged in `requests` so tests can count them.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Page | list[Page] | Handler] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, page: Page | list[Page] | Handler | bytes | str, **kwargs) -> str:
        """Register a route; bytes/str become a 200 Page with the given headers. Returns its URL."""
        if isinstance(page, str):
            page = page.encode("utf-8")
        if isinstance(page, bytes):
            page = Page(body=page, **kwargs)
        with self._lock:
            self.routes[path] = list(page) if isinstance(page, list) else page
        return self.url(path)

    def reset(self) -> None:
        with self._lock:
            self.routes.clear()
            self.requests.clear()

    def count(self, prefix: str = "") -> int:
        """How many requests were made whose path starts with prefix."""
        return sum(1 for r in self.requests if r.path.startswith(prefix))

    def _respond(self, request: Request) -> Page:
        with self._lock:
            self.requests.append(request)
            route = self.routes.get(request.path)
            if route is None:
                route = self.routes.get(urlsplit(request.path).path)
            if isinstance(route, list):
                page = route.pop(0) if len(route) > 1 else route[0]
                return page
        if route is None:
            return Page(body=b"not found", status=404, headers={"Content-Type": "text/plain"})
        if callable(route):
            return route(request)
        return route

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        web = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, dict(self.headers.items()), body)
                page = web._respond(request)
                if page.delay:
                    time.sleep(page.delay)
                try:
                    self.send_response(page.status)
                    headers = {"Content-Type": "text/html; charset=utf-8", **page.headers}
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(page.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(page.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_HEAD = _serve

            def log_message(self, format: str, *args: object) -> None:
                return

        return _Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

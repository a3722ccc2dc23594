"""A small real HTTP server on 127.0.0.1 for the fetch, URL and feed tests.

Each test sets the routes it needs; the server answers them, honours ``If-None-Match``
against a route's ETag and ``If-Modified-Since`` against its Last-Modified (304), gzips
when asked to, can stall before or during the body,
and logs every request (path, headers, time) so politeness can be checked.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None  # an HTTP date, e.g. "Tue, 17 Sep 2024 08:15:00 GMT"
    gzip: bool = False
    delay: float = 0.0  # seconds before the response
    trickle: float = 0.0  # seconds between 100-byte pieces of the body


def _not_modified(route: Route, headers: dict[str, str]) -> bool:
    """RFC 9110: If-None-Match decides when sent; else If-Modified-Since, by date."""
    if "if-none-match" in headers:
        return route.etag is not None and headers["if-none-match"] == route.etag
    since = headers.get("if-modified-since")
    if not (route.last_modified and since):
        return False
    try:
        return parsedate_to_datetime(route.last_modified) <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # an unreadable date: answer in full


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    at: float


class LocalWeb:
    """Serves ``routes`` on a free loopback port until :meth:`close`."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        web = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                web.requests.append(Request(self.path, headers, time.monotonic()))
                route = web.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                time.sleep(route.delay)
                if _not_modified(route, headers):
                    self.send_response(304)
                    if route.etag:
                        self.send_header("ETag", route.etag)
                    if route.last_modified:
                        self.send_header("Last-Modified", route.last_modified)
                    self.end_headers()
                    return
                body = route.body
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                if route.etag:
                    self.send_header("ETag", route.etag)
                if route.last_modified:
                    self.send_header("Last-Modified", route.last_modified)
                if route.gzip and "gzip" in headers.get("accept-encoding", ""):
                    body = gzip.compress(body)
                    self.send_header("Content-Encoding", "gzip")
                for key, value in route.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if route.trickle:
                        for start in range(0, len(body), 100):
                            self.wfile.write(body[start : start + 100])
                            self.wfile.flush()
                            time.sleep(route.trickle)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should on a slow or huge body

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> int:
        return sum(r.path == path for r in self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

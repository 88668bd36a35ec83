"""A scripted HTTP gateway for the list tests: it answers with the pages it is given.

Each test sets ``pages`` (one ``(status, body, headers)`` per page, the last one
repeated) and reads back ``asked``; the route, given per gateway, says which page a
request gets and what it asked (Daraja: by how many pulls came, from the JSON body;
IntaSend: by ``?page=``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Page = tuple[int, Any, dict[str, str]]


@dataclass(frozen=True)
class StubRequest:
    method: str
    query: dict[str, list[str]]
    body: bytes


class PageStub(ThreadingHTTPServer):
    def __init__(self, route: Callable[[PageStub, StubRequest], Page]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.route = route
        self.pages: list[Page] = []
        self.asked: list[Any] = []

    def page(self, number: int) -> Page:
        """Page ``number`` (from 1); past the last, the last."""
        return self.pages[min(number, len(self.pages)) - 1]


class _Handler(BaseHTTPRequestHandler):
    server: PageStub

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = StubRequest(
            self.command, parse_qs(urlsplit(self.path).query), self.rfile.read(length)
        )
        status, body, headers = self.server.route(self.server, request)
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving(route: Callable[[PageStub, StubRequest], Page], wait_s: float) -> Iterator[PageStub]:
    server = PageStub(route)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(wait_s)

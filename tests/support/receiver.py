"""A tiny local HTTP server standing in for malipo's callback endpoint.

It keeps every request it is sent (:class:`Received`: method, path, query,
lower-cased headers, body) and answers each with the same reply, the one the
gateway under test expects (``OK`` as text, ``{"status": "OK"}`` as JSON...).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str  # http://127.0.0.1:<port>
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: Received) -> None:
        with self.lock:
            self.received.append(item)

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.received)


@dataclass(frozen=True)
class _Reply:
    body: bytes
    content_type: str


class _ReceiverServer(ThreadingHTTPServer):
    receiver: Receiver
    reply: _Reply
    methods: Sequence[str]


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _ReceiverServer

    def do_GET(self) -> None:
        self._receive()

    def do_POST(self) -> None:
        self._receive()

    def _receive(self) -> None:
        if self.command not in self.server.methods:
            # What BaseHTTPRequestHandler answers a method it has no do_<METHOD> for.
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})")
            return
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        self.server.receiver.add(
            Received(
                self.command,
                parts.path,
                parts.query,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
        )
        reply = self.server.reply
        self.send_response(200)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiving(
    reply: bytes, content_type: str, methods: Sequence[str] = ("POST",)
) -> Iterator[Receiver]:
    """A receiver served while inside, answering each of ``methods`` (GET, POST) 200 ``reply``."""
    server = _ReceiverServer(("127.0.0.1", 0), _ReceiverHandler)
    server.receiver = Receiver(f"http://127.0.0.1:{server.server_port}")
    server.reply = _Reply(reply, content_type)
    server.methods = methods
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.receiver
    finally:
        server.shutdown()
        server.server_close()

"""Fixtures for the Daraja simulator tests; every simulator and server is stopped after use."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandbox.config import SimulatorConfig
from sandbox.daraja import Simulator, create_simulator
from tests.sandbox.helpers import (
    FAST_DELAY_S,
    WAIT_S,
    CallbackReceiver,
    Daraja,
    Received,
    SimFactory,
)


class _ReceiverServer(ThreadingHTTPServer):
    receiver: CallbackReceiver


class _CallbackHandler(BaseHTTPRequestHandler):
    """Collects each POSTed callback and acknowledges it as integrators do."""

    server: _ReceiverServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        target = self.server.receiver
        target.add(Received(self.path, dict(self.headers.items()), json.loads(raw)))
        reply = b'{"ResultCode": 0, "ResultDesc": "Accepted"}'
        self.send_response(target.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = _ReceiverServer(("127.0.0.1", 0), _CallbackHandler)
    server.receiver = CallbackReceiver(server)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.01,), name="test-receiver", daemon=True
    )
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()
    thread.join(WAIT_S)


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leftovers = [t for t in threading.enumerate() if t not in before]
    for thread in leftovers:
        thread.join(WAIT_S)
    assert not [t.name for t in leftovers if t.is_alive()]


@pytest.fixture
def make_sim() -> Iterator[SimFactory]:
    """Build simulators (fast callbacks by default); all are closed after the test."""
    built: list[Simulator] = []

    def make(clock: Callable[[], float] | None = None, **overrides: Any) -> Simulator:
        config = SimulatorConfig(**{"callback_delay_s": FAST_DELAY_S, **overrides})
        sim = create_simulator(config) if clock is None else create_simulator(config, clock=clock)
        built.append(sim)
        return sim

    yield make
    for sim in built:
        sim.close()
        assert not sim.dispatcher.is_alive()


@pytest.fixture
def sim(make_sim: SimFactory) -> Simulator:
    return make_sim()


@pytest.fixture
def daraja(sim: Simulator, receiver: CallbackReceiver) -> Daraja:
    return Daraja(sim, receiver.url)

"""Helpers for the simulator tests: constants, a fake clock, a callback receiver, a client."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import falcon.testing

from sandbox.daraja import Simulator

SHORTCODE = "174379"
PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
TIMESTAMP = "20260102030405"
PHONE = "254712345678"
KEY = "malipo-sandbox-key"
SECRET = "malipo-sandbox-secret"
FAST_DELAY_S = 0.05
WAIT_S = 5.0

SimFactory = Callable[..., Simulator]
# Pass as a field value to leave the field out of the body.
MISSING: Any = object()


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class CallbackReceiver:
    """A real HTTP server collecting POSTed callbacks; answers ``status``."""

    server: ThreadingHTTPServer
    status: int = 200
    received: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/payment-callback/secret"

    def wait_for(self, count: int, timeout_s: float = WAIT_S) -> list[Received]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.received) >= count, timeout_s)
            assert len(self.received) >= count, f"got {len(self.received)} of {count} callbacks"
            return list(self.received)

    def add(self, item: Received) -> None:
        with self.cond:
            self.received.append(item)
            self.cond.notify_all()


def password(shortcode: str = SHORTCODE, passkey: str = PASSKEY, ts: str = TIMESTAMP) -> str:
    return base64.b64encode(f"{shortcode}{passkey}{ts}".encode()).decode()


def basic(key: str = KEY, secret: str = SECRET) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


class Daraja:
    """A thin client over ``falcon.testing.TestClient`` speaking the simulator's API."""

    def __init__(self, sim: Simulator, callback_url: str = "http://127.0.0.1:9/unused") -> None:
        self.sim = sim
        self.client = falcon.testing.TestClient(sim.app)
        self.callback_url = callback_url
        self._token: str | None = None

    def oauth(self, authorization: str | None = None, **params: str) -> falcon.testing.Result:
        headers = {"Authorization": authorization or basic()}
        query = params or {"grant_type": "client_credentials"}
        return self.client.simulate_get("/oauth/v1/generate", params=query, headers=headers)

    def token(self, fresh: bool = False) -> str:
        if self._token is None or fresh:
            result = self.oauth()
            assert result.status_code == 200, result.json
            self._token = result.json["access_token"]
        return self._token

    def push_body(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "BusinessShortCode": SHORTCODE,
            "Password": password(),
            "Timestamp": TIMESTAMP,
            "TransactionType": "CustomerPayBillOnline",
            "Amount": 10,
            "PartyA": PHONE,
            "PartyB": SHORTCODE,
            "PhoneNumber": PHONE,
            "CallBackURL": self.callback_url,
            "AccountReference": "INV-001",
            "TransactionDesc": "Payment",
        }
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not MISSING}

    def post(
        self, path: str, body: Any, token: str | None = None, **headers: str
    ) -> falcon.testing.Result:
        all_headers = {"Authorization": f"Bearer {token or self.token()}", **headers}
        if isinstance(body, bytes | str):
            return self.client.simulate_post(path, body=body, headers=all_headers)
        return self.client.simulate_post(path, json=body, headers=all_headers)

    def push(self, **overrides: Any) -> falcon.testing.Result:
        return self.post("/mpesa/stkpush/v1/processrequest", self.push_body(**overrides))

    def query(self, checkout_request_id: str, **overrides: Any) -> falcon.testing.Result:
        body: dict[str, Any] = {
            "BusinessShortCode": SHORTCODE,
            "Password": password(),
            "Timestamp": TIMESTAMP,
            "CheckoutRequestID": checkout_request_id,
        }
        body.update(overrides)
        body = {k: v for k, v in body.items() if v is not MISSING}
        return self.post("/mpesa/stkpushquery/v1/query", body)

    def accepted(self, **overrides: Any) -> str:
        """Push and return the CheckoutRequestID, asserting Daraja accepted it."""
        result = self.push(**overrides)
        assert result.status_code == 200, result.json
        return str(result.json["CheckoutRequestID"])

    def control(self, method: str, path: str, body: Any = None) -> falcon.testing.Result:
        return self.client.simulate_request(method, f"/_sim{path}", json=body)

    def scenario(self, document: dict[str, Any]) -> str:
        result = self.control("POST", "/scenarios", document)
        assert result.status_code == 201, result.json
        return str(result.json["id"])


def settle(seconds: float = 0.3) -> None:
    """Give a callback that should not come the time it would have taken."""
    time.sleep(seconds)


def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)

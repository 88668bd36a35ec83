"""The one HTTP transport under every gateway client.

A ``requests`` session per thread, connect/read timeouts from settings, and the
classification every caller needs: :class:`GatewayUnavailable` when the request
certainly never reached the gateway (or the call is idempotent, so repeating it
is harmless), :class:`GatewayOutcomeUnknown` when it may have been acted on.
Request lines are logged without credentials: header values and body fields
whose names say secret are replaced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import structlog
from requests.auth import AuthBase
from urllib3.exceptions import NewConnectionError

from shared.gateways.base import GatewayOutcomeUnknown, GatewayUnavailable
from shared.gateways.description import GatewaySettings

log = structlog.stdlib.get_logger(__name__)

# Refresh tokens this long before they expire (Daraja's live 3600 s; libraries use ~50 min).
TOKEN_REFRESH_MARGIN_S = 600.0


@dataclass(frozen=True)
class Answer:
    """A gateway's HTTP answer: status, the JSON document (None if not JSON), headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def document(self) -> dict[str, Any]:
        """The body when it is a JSON object, else an empty one."""
        return self.body if isinstance(self.body, dict) else {}

    def retry_after_s(self) -> float | None:
        value = self.headers.get("Retry-After")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class TokenCache:
    """Access tokens per key (base URL, client id), shared by the threads of a process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
        if entry is None or time.monotonic() >= entry[1]:
            return None
        return entry[0]

    def put(self, key: tuple[str, str], token: str, expires_in_s: float) -> None:
        refresh_at = time.monotonic() + max(expires_in_s - TOKEN_REFRESH_MARGIN_S, expires_in_s / 2)
        with self._lock:
            self._tokens[key] = (token, refresh_at)

    def drop(self, key: tuple[str, str], token: str) -> None:
        with self._lock:
            if self._tokens.get(key, ("",))[0] == token:
                del self._tokens[key]


class HttpTransport:
    """HTTP to one gateway's base URL. Thread-safe: each thread has its own session."""

    def __init__(self, gateway: str, settings: GatewaySettings) -> None:
        self.gateway = gateway
        self.base_url = settings.base_url.rstrip("/")
        self.timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self.tokens = TokenCache()
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | AuthBase | None = None,
    ) -> Answer:
        """One request. Raises GatewayUnavailable or GatewayOutcomeUnknown; any answer returns."""
        started = time.perf_counter()
        try:
            response = self.session.request(
                method,
                self.url(path),
                json=json,
                data=data,
                params=params,
                headers=dict(headers or {}),
                auth=auth,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            what = f"{self.gateway} {method} {path}: {type(exc).__name__}"
            if idempotent or certainly_not_sent(exc):
                raise GatewayUnavailable(what) from exc
            raise GatewayOutcomeUnknown(f"{what} after sending") from exc
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        log.debug(
            "gateway call",
            gateway=self.gateway,
            method=method,
            path=path.split("?")[0],
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return Answer(response.status_code, body, dict(response.headers), response.text[:2000])


def certainly_not_sent(exc: requests.RequestException) -> bool:
    """True when the request never reached the gateway (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, NewConnectionError)
    return False

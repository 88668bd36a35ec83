"""What every simulator's HTTP side does the same way: read a body, record a request
without its credential, and the scenario controls' add / list / clear."""

from __future__ import annotations

import json
from typing import Any, Protocol

import falcon

REDACTED = "<redacted>"


def parsed_body(raw: bytes) -> object:
    """JSON when it parses, else the text as sent, ``None`` when empty."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", errors="replace")


def redacted_headers(req: falcon.Request) -> dict[str, str]:
    """Headers by lower-case name, the Authorization credential replaced by ``<redacted>``."""
    headers = {name.lower(): value for name, value in req.headers.items()}
    if "authorization" in headers:
        scheme = headers["authorization"].partition(" ")[0]
        headers["authorization"] = f"{scheme} {REDACTED}" if scheme else REDACTED
    return headers


def json_object(req: falcon.Request) -> dict[str, object]:
    """The request's JSON object body (read by the recording middleware); else 400."""
    try:
        body = json.loads(req.context.raw_body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise falcon.HTTPBadRequest(title="Invalid JSON", description="body is not JSON") from None
    if not isinstance(body, dict):
        raise falcon.HTTPBadRequest(title="Invalid JSON", description="expected a JSON object")
    return body


class Scenario(Protocol):
    def to_json(self) -> dict[str, object]: ...


class ScenarioBook(Protocol):
    def add(self, document: Any, /) -> Scenario: ...

    def snapshot(self) -> list[dict[str, object]]: ...

    def clear(self) -> None: ...


class ScenariosResource:
    """``POST`` (add), ``GET`` (list) and ``DELETE`` (clear) ``/_sim/scenarios``.

    ``invalid`` is the simulator's error for a scenario it cannot use (answered 400).
    """

    def __init__(self, scenarios: ScenarioBook, invalid: type[Exception]) -> None:
        self._scenarios = scenarios
        self._invalid = invalid

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            scenario = self._scenarios.add(json_object(req))
        except self._invalid as exc:
            raise falcon.HTTPBadRequest(title="Invalid scenario", description=str(exc)) from None
        resp.status = 201
        resp.media = scenario.to_json()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._scenarios.snapshot()

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._scenarios.clear()
        resp.media = {"cleared": True}

"""Pieces the hosted-page simulators (Idram, Telcell, FastShift, Ameria, ArCa) build with.

None of them knows a gateway's rules: what a request record holds, how a scenario
matches, what health reports and which parameter filters deliveries stay in each
gateway's package; these are the plumbing they all wire the same way:

* :func:`utc_now_iso` and :func:`is_control` (is a path one of the ``/_sim`` controls);
* :class:`ScenarioList`, the thread-safe ``add`` / ``snapshot`` / ``clear`` a
  scenario book is built on (``ScenariosResource`` in ``sandbox/web.py`` serves it);
* :class:`RecordingMiddleware`, which reads bodies, adds the latency and hands each
  gateway-side request to the gateway's own recorder (with :func:`form_fields` and
  :func:`redacted_fields` for the form-posting gateways);
* the ``/_sim`` controls that only list or clear: :class:`RequestsResource`,
  :class:`DeliveriesResource`, :class:`ResetResource` and :class:`HealthResource`;
* :func:`cabinet_urls`, a built-in merchant's cabinet URLs from the environment.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl

import falcon

from sandbox.web import REDACTED, Scenario

CONTROL_PREFIX: Final = "/_sim"
CABINET_URLS: Final = ("result_url", "success_url", "fail_url")


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def is_control(path: str) -> bool:
    """Whether ``path`` is one of the simulator's own ``/_sim`` controls."""
    return path == CONTROL_PREFIX or path.startswith(f"{CONTROL_PREFIX}/")


# -- scenarios ------------------------------------------------------------------------------------

S = TypeVar("S", bound=Scenario)


class ScenarioList(Generic[S]):
    """The scenarios registered so far, in order, ids ``sc_1``, ``sc_2``…; thread-safe.

    ``parse(document, scenario_id)`` is the gateway's own reading of a scenario
    (raising its ``ScenarioError``). A subclass adds how a scenario is chosen,
    reading ``self._scenarios`` under ``self._lock``.
    """

    def __init__(self, parse: Callable[[object, str], S]) -> None:
        self._lock = threading.Lock()
        self._scenarios: list[S] = []
        self._ids = itertools.count(1)
        self._parse = parse

    def add(self, document: object, /) -> S:
        with self._lock:
            scenario = self._parse(document, f"sc_{next(self._ids)}")
            self._scenarios.append(scenario)
            return scenario

    def snapshot(self) -> list[dict[str, object]]:
        with self._lock:
            return [s.to_json() for s in self._scenarios]

    def clear(self) -> None:
        with self._lock:
            self._scenarios.clear()


# -- recording ------------------------------------------------------------------------------------

Recorder = Callable[[falcon.Request, falcon.Response, str], None]


class RecordingMiddleware:
    """Reads every body into ``req.context.raw_body``; delays and records gateway-side requests.

    ``kind_of(path)`` names a request's kind (``"control"`` for the ``/_sim`` controls,
    which are neither delayed nor recorded); a request is delayed by ``latency_s``
    when ``delayed`` names its kind (by default: every kind but ``"control"``);
    ``record(req, resp, kind)`` keeps it in the gateway's own shape.
    """

    def __init__(
        self,
        kind_of: Callable[[str], str],
        record: Recorder,
        latency_s: float,
        delayed: Sequence[str] | None = None,
    ) -> None:
        self._kind_of = kind_of
        self._record = record
        self._latency_s = latency_s
        self._delayed = delayed

    def _is_delayed(self, kind: str) -> bool:
        return kind != "control" if self._delayed is None else kind in self._delayed

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.raw_body = req.bounded_stream.read()
        if self._latency_s and self._is_delayed(self._kind_of(req.path)):
            time.sleep(self._latency_s)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        kind = self._kind_of(req.path)
        if kind != "control":
            self._record(req, resp, kind)


def raw_body(req: falcon.Request) -> bytes:
    """The body the middleware read (``b""`` when it did not get to read one)."""
    body: bytes = getattr(req.context, "raw_body", b"") or b""
    return body


def form_fields(text: str) -> dict[str, str]:
    """Form or query fields (first value of each name), ``+`` read as a space."""
    fields: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


def redacted_fields(fields: Mapping[str, str], secret: Sequence[str]) -> dict[str, str]:
    """``fields`` with the value of every name containing one of ``secret`` redacted."""
    return {k: REDACTED if any(s in k.lower() for s in secret) else v for k, v in fields.items()}


# -- the controls that list and clear -------------------------------------------------------------


class Record(Protocol):
    def to_json(self) -> dict[str, object]: ...


class RequestsResource:
    """``GET /_sim/requests?kind=…``: ``{"requests": [...]}``, oldest first.

    With ``kinds``, any other ``kind`` is answered 400.
    """

    def __init__(
        self,
        requests: Callable[[str | None], Iterable[Record]],
        kinds: Sequence[str] | None = None,
    ) -> None:
        self._requests = requests
        self._kinds = kinds

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        kind = req.get_param("kind")
        if self._kinds is not None and kind is not None and kind not in self._kinds:
            raise falcon.HTTPBadRequest(description=f"kind must be one of {list(self._kinds)}")
        resp.media = {"requests": [r.to_json() for r in self._requests(kind)]}


class DeliveriesResource:
    """``GET /_sim/deliveries?<param>=…``: ``{"deliveries": [...]}``, oldest first."""

    def __init__(self, deliveries: Callable[[str | None], Iterable[Record]], param: str) -> None:
        self._deliveries = deliveries
        self._param = param

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        key = req.get_param(self._param)
        resp.media = {"deliveries": [d.to_json() for d in self._deliveries(key)]}


class ResetResource:
    """``POST /_sim/reset``: each of ``steps`` in turn, then ``{"reset": true}``."""

    def __init__(self, *steps: Callable[[], None]) -> None:
        self._steps = steps

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        for step in self._steps:
            step()
        resp.media = {"reset": True}


class HealthResource:
    """``GET /_sim/health``: ``{"status": "ok", **report()}``."""

    def __init__(self, report: Callable[[], dict[str, object]]) -> None:
        self._report = report

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok", **self._report()}


# -- the built-in merchant ------------------------------------------------------------------------


def cabinet_urls(environ: Mapping[str, str], gateway: str) -> dict[str, str]:
    """``SANDBOX_<GATEWAY>_RESULT_URL``, ``…_SUCCESS_URL``, ``…_FAIL_URL`` when set, by
    field name (``result_url``…); ``ValueError`` when one is not an http(s) URL."""
    urls: dict[str, str] = {}
    for name in CABINET_URLS:
        variable = f"SANDBOX_{gateway.upper()}_{name.upper()}"
        value = environ.get(variable, "").strip()
        if value:
            if not value.startswith(("http://", "https://")):
                raise ValueError(f"{variable} must be an http(s) URL")
            urls[name] = value
    return urls

"""Pieces the hosted-page simulators (Idram, Telcell, FastShift, Ameria, ArCa) build with.

None of them knows a gateway's rules: what a request record holds, how a scenario
matches, what health reports and which parameter filters deliveries stay in each
gateway's package; these are the plumbing they all wire the same way:

* :func:`utc_now_iso` and :func:`is_control` (is a path one of the ``/_sim`` controls);
* :class:`ScenarioList`, the thread-safe ``add`` / ``snapshot`` / ``clear`` a
  scenario book is built on (``ScenariosResource`` in ``sandbox/web.py`` serves it),
  :class:`ReferenceFirst` (the newest naming the order's reference, else by amount),
  and the readers :func:`reference_or_amount`, :func:`finite_decimal`, :func:`optional_seconds`;
* :class:`Records`, a thread-safe list of what was seen or sent;
* :class:`RecordingMiddleware`, which reads bodies, adds the latency and hands each
  gateway-side request to the gateway's own recorder (with :func:`form_fields`,
  :func:`redacted_fields` and :func:`form_recorder` for the form-posting gateways);
* the ``/_sim`` controls that only list or clear: :class:`RequestsResource`,
  :class:`DeliveriesResource`, :class:`ResetResource` and :class:`HealthResource`;
* :func:`cabinet_urls`, a built-in merchant's cabinet URLs from the environment.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl

import falcon

from sandbox.hosted import HostedOrder
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


class MatchingScenario(Scenario, Protocol):
    @property
    def match_amount(self) -> Decimal | None: ...

    def matches(self, order: HostedOrder) -> bool: ...


MS = TypeVar("MS", bound=MatchingScenario)


class ReferenceFirst(ScenarioList[MS]):
    """Scenarios chosen for an order: the newest that names its reference (``by_reference``)
    and matches it, else the newest matching its amount, else ``default``."""

    def __init__(
        self, parse: Callable[[object, str], MS], default: MS, by_reference: Callable[[MS], bool]
    ) -> None:
        super().__init__(parse)
        self._default = default
        self._by_reference = by_reference

    def for_order(self, order: HostedOrder) -> MS:
        with self._lock:
            newest_first = list(reversed(self._scenarios))
        for scenario in newest_first:
            if self._by_reference(scenario) and scenario.matches(order):
                return scenario
        for scenario in newest_first:
            if scenario.match_amount is not None and scenario.matches(order):
                return scenario
        return self._default


def reference_or_amount(
    match: object, reference: str, placeholder: str, error: type[Exception]
) -> tuple[Decimal | None, str | None]:
    """A ``match`` of ``{"amount": 5000}`` or ``{<reference>: "<placeholder>"}``: (amount, ref)."""
    usage = f'match must be {{"amount": 5000}} or {{"{reference}": "<{placeholder}>"}}'
    if not isinstance(match, dict) or len(match) != 1:
        raise error(usage)
    if reference in match:
        value = match[reference]
        if not isinstance(value, str) or not value:
            raise error(f"match.{reference} must be a non-empty string")
        return None, value
    if "amount" in match:
        amount = positive_amount(match["amount"])
        if amount is None:
            raise error("match.amount must be an amount in drams > 0")
        return amount, None
    raise error(usage)


def positive_amount(value: object) -> Decimal | None:
    """A number or numeric text > 0 as a decimal, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    amount = finite_decimal(str(value))
    return amount if amount is not None and amount > 0 else None


def finite_decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def optional_seconds(value: object, name: str, error: type[Exception]) -> float | None:
    """``None``, or a finite number of seconds >= 0 (``error`` says otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise error(f"{name} must be a number of seconds")
    if value < 0:
        raise error(f"{name} must be >= 0")
    return float(value)


# -- records --------------------------------------------------------------------------------------

R = TypeVar("R")


class Records(Generic[R]):
    """Records (requests seen, calls made) in the order they came; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[R] = []

    def add(self, record: R) -> None:
        with self._lock:
            self._records.append(record)

    def select(self, keep: Callable[[R], bool] | None = None) -> list[R]:
        """The records ``keep`` accepts (all of them without it), oldest first."""
        with self._lock:
            return [r for r in self._records if keep is None or keep(r)]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


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


@dataclass(frozen=True)
class FormRequest:
    """One gateway-side request of a form-posting gateway, as received."""

    method: str
    path: str
    kind: str
    query: dict[str, str]
    form: dict[str, str]
    status: int
    time: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def form_recorder(record: Callable[[FormRequest], None], secret: Sequence[str]) -> Recorder:
    """A recorder keeping a request's query and form fields, the ``secret`` ones redacted."""

    def recorder(req: falcon.Request, resp: falcon.Response, kind: str) -> None:
        body = raw_body(req).decode("utf-8", "replace")
        record(
            FormRequest(
                method=req.method,
                path=req.path,
                kind=kind,
                query=redacted_fields(form_fields(req.query_string), secret),
                form=redacted_fields(form_fields(body), secret),
                status=resp.status_code,
                time=utc_now_iso(),
            )
        )

    return recorder


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

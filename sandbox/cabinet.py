"""Pieces of the simulators whose merchants have a cabinet and a RESULT_URL (Idram, Telcell).

Which fields a merchant has, how an order is opened, what a result call carries
and how it is signed stay in each gateway's package; these are the parts they
keep the same way:

* :class:`Merchants`, the merchants set up so far (the built-in one always there);
* :class:`OrderBook`, the hosted orders, found by the gateway's id or a reference;
* :func:`url_changes` and :class:`CabinetResource`, ``/_sim/cabinet``;
* :class:`OrdersResource`, ``/_sim/orders`` and a result's resend, and
  :func:`add_controls`, every ``/_sim`` control of such a simulator;
* :func:`post_form` and :func:`attempt`, one result call made and timed;
* :func:`result_times`, when a scenario's result calls are due.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

import falcon
import requests

from sandbox.hosted import HostedOrder
from sandbox.kit import (
    CABINET_URLS,
    CONTROL_PREFIX,
    DeliveriesResource,
    HealthResource,
    Record,
    RequestsResource,
    ResetResource,
    utc_now_iso,
)
from sandbox.web import ScenariosResource, json_object

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    M = TypeVar("M", bound=DataclassInstance)
else:
    M = TypeVar("M")

# -- the merchants --------------------------------------------------------------------------------


class Merchants(Generic[M]):
    """The merchants (frozen dataclasses) by their ``key`` field; thread-safe.

    ``reset`` forgets all but the built-in one.
    """

    def __init__(self, make: Callable[..., M], builtin: M, key: str) -> None:
        self._lock = threading.Lock()
        self._make = make
        self._builtin = builtin
        self._key = key
        self._by_key: dict[str, M] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._by_key = {getattr(self._builtin, self._key): self._builtin}

    def get(self, key: str) -> M | None:
        with self._lock:
            return self._by_key.get(key)

    def all(self) -> list[M]:
        with self._lock:
            return list(self._by_key.values())

    def put(self, changes: Mapping[str, Any]) -> tuple[M, bool]:
        """Add a merchant or change one; and whether it is new."""
        key = changes[self._key]
        with self._lock:
            existing = self._by_key.get(key)
            if existing is None:
                merchant = self._make(**changes)
            else:
                merchant = dataclasses.replace(existing, **changes)
            self._by_key[key] = merchant
            return merchant, existing is None


# -- the orders -----------------------------------------------------------------------------------


class OrderBook:
    """Hosted orders by the gateway's own id; thread-safe.

    ``references(order)`` are the values besides its id that :meth:`order` finds it by.
    """

    def __init__(self, references: Callable[[HostedOrder], Sequence[str]]) -> None:
        self._lock = threading.Lock()
        self._references = references
        self._orders: dict[str, HostedOrder] = {}

    def clear(self) -> None:
        with self._lock:
            self._orders.clear()

    def open(
        self, same: Callable[[HostedOrder], bool], create: Callable[[], HostedOrder]
    ) -> HostedOrder:
        """The first order ``same`` accepts, else a new one from ``create``, kept."""
        with self._lock:
            for order in self._orders.values():
                if same(order):
                    return order
            order = create()
            self._orders[order.order_id] = order
            return order

    def order(self, key: str) -> HostedOrder | None:
        """The order with the id ``key``, else the newest one with ``key`` as a reference."""
        with self._lock:
            if key in self._orders:
                return self._orders[key]
            found = [o for o in self._orders.values() if key in self._references(o)]
            return found[-1] if found else None

    def shown_all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_shown(order) for order in self._orders.values()]

    def shown(self, order: HostedOrder) -> dict[str, Any]:
        with self._lock:
            return _shown(order)

    def update(self, order: HostedOrder, status: str | None = None, **extra: Any) -> None:
        """Change an order's status or details (under the lock readers take)."""
        with self._lock:
            if status is not None:
                order.status = status
            order.extra.update(extra)

    def point_home(self, order: HostedOrder, success_url: str | None, fail_url: str | None) -> None:
        """Where the browser goes after the decision."""
        with self._lock:
            order.success_url = success_url
            order.fail_url = fail_url


def _shown(order: HostedOrder) -> dict[str, Any]:
    return {**order.to_json(), "extra": dict(order.extra)}


# -- the controls ---------------------------------------------------------------------------------


def bad(reason: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="refused", description=reason)


def url_changes(document: Mapping[str, object]) -> dict[str, Any]:
    """The cabinet URLs ``document`` sets (``None`` removes one); 400 unless http(s) or null."""
    changes: dict[str, Any] = {}
    for name in CABINET_URLS:
        if name in document:
            url = document[name]
            if url is not None and (
                not isinstance(url, str) or not url.startswith(("http://", "https://"))
            ):
                raise bad(f"{name} must be an http(s) URL or null")
            changes[name] = url
    return changes


def secret_change(document: Mapping[str, object], name: str) -> dict[str, Any]:
    """``{name: value}`` when ``document`` sets the secret ``name`` (400 unless non-empty text)."""
    if name not in document:
        return {}
    secret = document[name]
    if not isinstance(secret, str) or not secret:
        raise bad(f"{name} must be a non-empty string")
    return {name: secret}


class CabinetResource:
    """``POST /_sim/cabinet``: add a merchant or change the fields given; ``GET`` lists them.

    ``changes(document)`` is the gateway's reading of the document (its ``key``
    always set); a new merchant needs its ``secret``; the merchants are listed
    under ``listed``, as their ``to_json`` shows them (secrets redacted).
    """

    def __init__(
        self,
        merchants: Merchants[Any],
        changes: Callable[[dict[str, object]], dict[str, Any]],
        *,
        key: str,
        secret: str,
        noun: str,
        listed: str,
    ) -> None:
        self._merchants = merchants
        self._changes = changes
        self._key = key
        self._secret = secret
        self._noun = noun
        self._listed = listed

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {self._listed: [m.to_json() for m in self._merchants.all()]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = self._changes(json_object(req))
        if self._merchants.get(changes[self._key]) is None and self._secret not in changes:
            raise bad(f"a new {self._noun} needs its {self._secret}")
        merchant, created = self._merchants.put(changes)
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_200
        resp.media = merchant.to_json()


class Delivered(Protocol):
    @property
    def url(self) -> str | None: ...


class Checkout(Protocol):
    def resend(self, order: HostedOrder) -> Delivered | None: ...


class OrdersResource:
    """``GET /_sim/orders``, ``GET /_sim/orders/{id or reference}``, ``POST …/{id}/resend``.

    An unknown order is answered 404 ``no such <noun>``; one ``checkout.resend``
    has no result for, 409 with ``not_resent`` (title, description).
    """

    def __init__(
        self, orders: OrderBook, checkout: Checkout, noun: str, not_resent: tuple[str, str]
    ) -> None:
        self._orders = orders
        self._checkout = checkout
        self._noun = noun
        self._not_resent = not_resent

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"orders": self._orders.shown_all()}

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        resp.media = self._orders.shown(self._found(order_id))

    def on_post_resend(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        """The result again (the same payment ids), as the gateway's operator could send it."""
        order = self._found(order_id)
        delivery = self._checkout.resend(order)
        if delivery is None:
            title, description = self._not_resent
            raise falcon.HTTPConflict(title=title, description=description)
        resp.status = falcon.HTTP_202
        resp.media = {"scheduled": True, "order_id": order.order_id, "url": delivery.url}

    def _found(self, order_id: str) -> HostedOrder:
        order = self._orders.order(order_id)
        if order is None:
            raise falcon.HTTPNotFound(description=f"no such {self._noun}")
        return order


def add_controls(
    app: falcon.App[falcon.Request, falcon.Response],
    cabinet: CabinetResource,
    orders: OrdersResource,
    scenarios: ScenariosResource,
    *,
    requests: Callable[[str | None], Iterable[Record]],
    deliveries: Callable[[str | None], Iterable[Record]],
    reset: Sequence[Callable[[], None]],
    health: Callable[[], dict[str, object]],
) -> None:
    """The ``/_sim`` controls: the cabinet, orders (one, its resend), scenarios, requests,
    deliveries (``?order=`` an id or reference), reset (each of ``reset``) and health."""
    p = CONTROL_PREFIX
    app.add_route(f"{p}/cabinet", cabinet)
    app.add_route(f"{p}/orders", orders)
    app.add_route(f"{p}/orders/{{order_id}}", orders, suffix="one")
    app.add_route(f"{p}/orders/{{order_id}}/resend", orders, suffix="resend")
    app.add_route(f"{p}/scenarios", scenarios)
    app.add_route(f"{p}/requests", RequestsResource(requests))
    app.add_route(f"{p}/deliveries", DeliveriesResource(deliveries, "order"))
    app.add_route(f"{p}/reset", ResetResource(*reset))
    app.add_route(f"{p}/health", HealthResource(health))


# -- the result calls -----------------------------------------------------------------------------

PostFn = Callable[[str, Mapping[str, str], float], tuple[int, str]]


def post_form(
    url: str, fields: Mapping[str, str], timeout_s: float, headers: Mapping[str, str]
) -> tuple[int, str]:
    """Post a form and return the answer's status and (the start of) its body."""
    with requests.post(url, data=dict(fields), headers=dict(headers), timeout=timeout_s) as reply:
        return reply.status_code, reply.text[:500]


@dataclass(frozen=True)
class Attempt:
    """What one result call got: ``status`` and ``answer`` when answered, else ``error``."""

    status: int | None
    answer: str | None
    error: str | None
    time: str
    duration_ms: float


def attempt(
    post: PostFn, url: str | None, fields: Mapping[str, str], timeout_s: float, no_url: str
) -> Attempt:
    """Post ``fields`` to ``url`` (``no_url`` is the error when there is none), timed."""
    started_at, started = utc_now_iso(), time.monotonic()
    status: int | None = None
    answer: str | None = None
    error: str | None = None
    if url is None:
        error = no_url
    else:
        try:
            status, answer = post(url, fields, timeout_s)
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
    return Attempt(
        status=status,
        answer=answer,
        error=error,
        time=started_at,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )


def result_times(
    now: float,
    delay_s: float,
    mode: Literal["once", "twice", "none"],
) -> list[float]:
    """When the result calls are due: none, once after ``delay_s``, or twice (a gap between)."""
    due_at = now + delay_s
    times = {"none": [], "once": [due_at], "twice": [due_at, due_at + max(delay_s, 0.1)]}
    return times[mode]

"""In-memory, lock-protected store of the Telcell simulator: shops, invoices, records.

A shop is what Telcell sets up for a merchant: its issuer (shop id), the shop key,
and the cabinet's URLs. An invoice is one signed link followed by a browser, kept as
a :class:`HostedOrder` whose ``order_id`` is Telcell's invoice id and whose
``extra["merchant_ref"]`` is the decoded ``issuer_id`` (the merchant's reference).
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from sandbox.hosted import HostedOrder
from sandbox.web import REDACTED

YEREVAN: Final = timezone(timedelta(hours=4))


@dataclass(frozen=True)
class Shop:
    """One merchant at Telcell and its cabinet."""

    issuer: str
    shop_key: str
    result_url: str | None = None
    success_url: str | None = None
    fail_url: str | None = None

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "shop_key": REDACTED}


BUILTIN_SHOP: Final = Shop("sandbox-shop@telcell.test", "sandbox-telcell-shop-key-5e1b7c")


@dataclass(frozen=True)
class RequestRecord:
    """One request to Telcell's side (the invoice link, the page), as received."""

    method: str
    path: str
    kind: str
    query: dict[str, str]
    form: dict[str, str]
    status: int
    time: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class DeliveryRecord:
    """One result posted: ``status`` and ``answer`` when answered, else ``error``."""

    order_id: str
    merchant_ref: str
    url: str | None
    fields: dict[str, str]
    status: int | None
    answer: str | None
    error: str | None
    time: str
    duration_ms: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class InvoiceConflict(Exception):
    """The shop already has an invoice for this issuer_id with another price."""


class TelcellState:
    """The simulator's memory; every public method takes the lock."""

    def __init__(self, builtin: Shop = BUILTIN_SHOP) -> None:
        self._lock = threading.Lock()
        self._builtin = builtin
        self._shops: dict[str, Shop] = {}
        self._orders: dict[str, HostedOrder] = {}
        self._requests: list[RequestRecord] = []
        self._deliveries: list[DeliveryRecord] = []
        self._invoice_ids = itertools.count(4_000_000_000 + secrets.randbelow(10**9))
        self._payment_ids = itertools.count(10**11 + secrets.randbelow(10**10))
        self.reset()

    def reset(self) -> None:
        """Forget everything but the built-in shop."""
        with self._lock:
            self._shops = {self._builtin.issuer: self._builtin}
            self._orders.clear()
            self._requests.clear()
            self._deliveries.clear()

    # -- shops ------------------------------------------------------------------------------------

    def shop(self, issuer: str) -> Shop | None:
        with self._lock:
            return self._shops.get(issuer)

    def shops(self) -> list[Shop]:
        with self._lock:
            return list(self._shops.values())

    def put_shop(self, changes: Mapping[str, Any]) -> tuple[Shop, bool]:
        """Add a shop (``shop_key`` required) or change one; and whether it is new."""
        issuer = changes["issuer"]
        with self._lock:
            existing = self._shops.get(issuer)
            shop = Shop(**changes) if existing is None else dataclasses.replace(existing, **changes)
            self._shops[issuer] = shop
            return shop, existing is None

    # -- invoices ---------------------------------------------------------------------------------

    def open_invoice(
        self, shop: Shop, params: Mapping[str, str], product: str, reference: str
    ) -> HostedOrder:
        """The invoice of this issuer_id: a new one, or the same when the link is followed again."""
        with self._lock:
            for order in self._orders.values():
                if (order.extra["issuer"], order.extra["issuer_id"]) == (
                    shop.issuer,
                    params["issuer_id"],
                ):
                    if order.amount != params["price"]:
                        raise InvoiceConflict(reference)
                    return order
            order = HostedOrder(
                order_id=str(next(self._invoice_ids)),
                amount=params["price"],
                currency="AMD",
                description=product,
                success_url=shop.success_url,
                fail_url=shop.fail_url,
                extra={
                    "merchant_ref": reference,
                    "issuer_id": params["issuer_id"],
                    "issuer": shop.issuer,
                    "lang": params.get("lang", "am"),
                    "valid_days": params["valid_days"],
                },
            )
            self._orders[order.order_id] = order
            return order

    def order(self, key: str) -> HostedOrder | None:
        """The invoice with Telcell's id ``key``, else the newest with that issuer_id
        (decoded, or base64 as sent)."""
        with self._lock:
            if key in self._orders:
                return self._orders[key]
            found = [
                o
                for o in self._orders.values()
                if key in (o.extra["merchant_ref"], o.extra["issuer_id"])
            ]
            return found[-1] if found else None

    def orders(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_shown(order) for order in self._orders.values()]

    def shown(self, order: HostedOrder) -> dict[str, Any]:
        with self._lock:
            return _shown(order)

    def update(self, order: HostedOrder, **extra: Any) -> None:
        with self._lock:
            order.extra.update(extra)

    def point_home(self, order: HostedOrder, shop: Shop) -> None:
        """Where the browser goes now: the cabinet's pages as they are at the decision."""
        with self._lock:
            order.success_url = shop.success_url
            order.fail_url = shop.fail_url

    def close_invoice(self, order: HostedOrder, status: str) -> dict[str, str]:
        """Telcell's ids of an invoice's end: a payment id (also for a refusal) and the time."""
        with self._lock:
            closing = {
                "status_sent": status,
                "payment_id": str(next(self._payment_ids)),
                "time": datetime.now(YEREVAN).strftime("%Y-%m-%d %H:%M:%S"),
            }
            order.extra.update(closing)
            return closing

    # -- records ----------------------------------------------------------------------------------

    def record_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def requests(self, kind: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._requests if kind is None or r.kind == kind]

    def record_delivery(self, record: DeliveryRecord) -> None:
        with self._lock:
            self._deliveries.append(record)

    def deliveries(self, key: str | None = None) -> list[DeliveryRecord]:
        with self._lock:
            return [d for d in self._deliveries if key in (None, d.order_id, d.merchant_ref)]


def _shown(order: HostedOrder) -> dict[str, Any]:
    return {**order.to_json(), "extra": dict(order.extra)}

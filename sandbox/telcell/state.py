"""In-memory, lock-protected store of the Telcell simulator: shops, invoices, records.

A shop is what Telcell sets up for a merchant: its issuer (shop id), the shop key,
and the cabinet's URLs. An invoice is one signed link followed by a browser, kept as
a :class:`HostedOrder` whose ``order_id`` is Telcell's invoice id and whose
``extra["merchant_ref"]`` is the decoded ``issuer_id`` (the merchant's reference).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Final

from sandbox.cabinet import Merchants, OrderBook
from sandbox.hosted import HostedOrder
from sandbox.kit import FormRequest, Records
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
    """The simulator's memory: shops, invoices and records, each thread-safe."""

    def __init__(self, builtin: Shop = BUILTIN_SHOP) -> None:
        self.shops = Merchants(Shop, builtin, key="issuer")
        # An invoice is also found by its issuer_id, decoded or base64 as sent.
        self.orders = OrderBook(lambda o: (o.extra["merchant_ref"], o.extra["issuer_id"]))
        self._requests = Records[FormRequest]()
        self._deliveries = Records[DeliveryRecord]()
        self._invoice_ids = itertools.count(4_000_000_000 + secrets.randbelow(10**9))
        self._payment_ids = itertools.count(10**11 + secrets.randbelow(10**10))

    def reset(self) -> None:
        """Forget everything but the built-in shop."""
        self.shops.reset()
        self.orders.clear()
        self._requests.clear()
        self._deliveries.clear()

    def shop(self, issuer: str) -> Shop | None:
        return self.shops.get(issuer)

    # -- invoices ---------------------------------------------------------------------------------

    def open_invoice(
        self, shop: Shop, params: Mapping[str, str], product: str, reference: str
    ) -> HostedOrder:
        """The invoice of this issuer_id: a new one, or the same when the link is followed again."""

        def same(order: HostedOrder) -> bool:
            return (order.extra["issuer"], order.extra["issuer_id"]) == (
                shop.issuer,
                params["issuer_id"],
            )

        def create() -> HostedOrder:
            return HostedOrder(
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

        order = self.orders.open(same, create)
        if order.amount != params["price"]:
            raise InvoiceConflict(reference)
        return order

    def point_home(self, order: HostedOrder, shop: Shop) -> None:
        """Where the browser goes now: the cabinet's pages as they are at the decision."""
        self.orders.point_home(order, shop.success_url, shop.fail_url)

    def close_invoice(self, order: HostedOrder, status: str) -> dict[str, str]:
        """Telcell's ids of an invoice's end: a payment id (also for a refusal) and the time."""
        closing = {
            "status_sent": status,
            "payment_id": str(next(self._payment_ids)),
            "time": datetime.now(YEREVAN).strftime("%Y-%m-%d %H:%M:%S"),
        }
        self.orders.update(order, **closing)
        return closing

    # -- records ----------------------------------------------------------------------------------

    def record_request(self, record: FormRequest) -> None:
        self._requests.add(record)

    def requests(self, kind: str | None = None) -> list[FormRequest]:
        return self._requests.select(lambda r: kind is None or r.kind == kind)

    def record_delivery(self, record: DeliveryRecord) -> None:
        self._deliveries.add(record)

    def deliveries(self, key: str | None = None) -> list[DeliveryRecord]:
        return self._deliveries.select(lambda d: key in (None, d.order_id, d.merchant_ref))

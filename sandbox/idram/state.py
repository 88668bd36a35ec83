"""In-memory, lock-protected store of the Idram simulator: accounts, orders, records.

An account is what Idram's technical staff set up for a merchant: its Idram ID
(``EDP_REC_ACCOUNT``), the secret key, and the cabinet's three URLs. An order is
one bill posted to ``/Payment/GetPayment``, kept as a :class:`HostedOrder` whose
``order_id`` is Idram's own id and whose ``extra["merchant_ref"]`` is the bill.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from sandbox.cabinet import Merchants, OrderBook
from sandbox.hosted import HostedOrder
from sandbox.kit import FormRequest, Records
from sandbox.web import REDACTED

# Idram's clock: Yerevan, UTC+4 all year.
YEREVAN: Final = timezone(timedelta(hours=4))


def with_bill(url: str | None, bill_no: str) -> str | None:
    """The cabinet page with ``EDP_BILL_NO`` appended (our understanding of Idram's redirect)."""
    if not url:
        return None
    parts = urlsplit(url)
    extra = urlencode({"EDP_BILL_NO": bill_no})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


@dataclass(frozen=True)
class Account:
    """One merchant at Idram and its cabinet."""

    rec_account: str
    secret_key: str
    result_url: str | None = None
    success_url: str | None = None
    fail_url: str | None = None

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "secret_key": REDACTED}


BUILTIN_ACCOUNT: Final = Account("110000601", "sandbox-idram-secret-key-4d2f9a")
ACCOUNT_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(Account))


@dataclass(frozen=True)
class DeliveryRecord:
    """One call to a RESULT_URL: ``status`` and ``answer`` when answered, else ``error``."""

    order_id: str
    bill_no: str
    kind: str  # precheck | confirmation
    url: str | None
    fields: dict[str, str]
    status: int | None
    answer: str | None
    error: str | None
    time: str
    duration_ms: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class BillConflict(Exception):
    """The account already has this bill number with another amount."""


class IdramState:
    """The simulator's memory: accounts, orders and records, each thread-safe."""

    def __init__(self, builtin: Account = BUILTIN_ACCOUNT) -> None:
        self.accounts = Merchants(Account, builtin, key="rec_account")
        self.orders = OrderBook(lambda order: (order.extra["merchant_ref"],))
        self._requests = Records[FormRequest]()
        self._deliveries = Records[DeliveryRecord]()
        self._order_ids = itertools.count(7_000_000_000 + secrets.randbelow(10**9))
        self._trans_ids = itertools.count(10**13 + secrets.randbelow(10**12))

    def reset(self) -> None:
        """Forget everything but the built-in account."""
        self.accounts.reset()
        self.orders.clear()
        self._requests.clear()
        self._deliveries.clear()

    def account(self, rec_account: str) -> Account | None:
        return self.accounts.get(rec_account)

    # -- orders -----------------------------------------------------------------------------------

    def open_order(self, account: Account, form: Mapping[str, str]) -> HostedOrder:
        """The order of this bill: a new one, or the same one when the form is posted again."""
        bill_no, amount = form["EDP_BILL_NO"], form["EDP_AMOUNT"]

        def same(order: HostedOrder) -> bool:
            return (order.extra["rec_account"], order.extra["merchant_ref"]) == (
                account.rec_account,
                bill_no,
            )

        def create() -> HostedOrder:
            return HostedOrder(
                order_id=str(next(self._order_ids)),
                amount=amount,
                currency="AMD",
                description=form.get("EDP_DESCRIPTION", ""),
                success_url=with_bill(account.success_url, bill_no),
                fail_url=with_bill(account.fail_url, bill_no),
                extra={
                    "merchant_ref": bill_no,
                    "rec_account": account.rec_account,
                    "language": form.get("EDP_LANGUAGE", "EN"),
                    "email": form.get("EDP_EMAIL"),
                },
            )

        order = self.orders.open(same, create)
        if order.amount != amount:
            raise BillConflict(bill_no)
        return order

    def point_home(self, order: HostedOrder, account: Account) -> None:
        """Where the browser goes now: the cabinet's pages as they are at the decision."""
        bill_no = order.extra["merchant_ref"]
        self.orders.point_home(
            order, with_bill(account.success_url, bill_no), with_bill(account.fail_url, bill_no)
        )

    def new_payment(self, order: HostedOrder) -> dict[str, str]:
        """Idram's ids of the payment of an order: its transaction, payer and date."""
        payment = {
            "trans_id": str(next(self._trans_ids)),
            "payer_account": f"1{secrets.randbelow(10**8):08d}",
            "trans_date": datetime.now(YEREVAN).strftime("%d/%m/%Y"),
        }
        self.orders.update(order, **payment)
        return payment

    # -- records ----------------------------------------------------------------------------------

    def record_request(self, record: FormRequest) -> None:
        self._requests.add(record)

    def requests(self, kind: str | None = None) -> list[FormRequest]:
        return self._requests.select(lambda r: kind is None or r.kind == kind)

    def record_delivery(self, record: DeliveryRecord) -> None:
        self._deliveries.add(record)

    def deliveries(self, key: str | None = None) -> list[DeliveryRecord]:
        return self._deliveries.select(lambda d: key in (None, d.order_id, d.bill_no))

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
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from sandbox.hosted import HostedOrder
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
class RequestRecord:
    """One request to Idram's side (the payment form, the page), as received."""

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
    """The simulator's memory; every public method takes the lock."""

    def __init__(self, builtin: Account = BUILTIN_ACCOUNT) -> None:
        self._lock = threading.Lock()
        self._builtin = builtin
        self._accounts: dict[str, Account] = {}
        self._orders: dict[str, HostedOrder] = {}
        self._requests: list[RequestRecord] = []
        self._deliveries: list[DeliveryRecord] = []
        self._order_ids = itertools.count(7_000_000_000 + secrets.randbelow(10**9))
        self._trans_ids = itertools.count(10**13 + secrets.randbelow(10**12))
        self.reset()

    def reset(self) -> None:
        """Forget everything but the built-in account."""
        with self._lock:
            self._accounts = {self._builtin.rec_account: self._builtin}
            self._orders.clear()
            self._requests.clear()
            self._deliveries.clear()

    # -- accounts ---------------------------------------------------------------------------------

    def account(self, rec_account: str) -> Account | None:
        with self._lock:
            return self._accounts.get(rec_account)

    def accounts(self) -> list[Account]:
        with self._lock:
            return list(self._accounts.values())

    def put_account(self, changes: Mapping[str, Any]) -> tuple[Account, bool]:
        """Add an account (``secret_key`` required) or change one; and whether it is new."""
        rec_account = changes["rec_account"]
        with self._lock:
            existing = self._accounts.get(rec_account)
            if existing is None:
                account = Account(**changes)
            else:
                account = dataclasses.replace(existing, **changes)
            self._accounts[rec_account] = account
            return account, existing is None

    # -- orders -----------------------------------------------------------------------------------

    def open_order(self, account: Account, form: Mapping[str, str]) -> HostedOrder:
        """The order of this bill: a new one, or the same one when the form is posted again."""
        bill_no, amount = form["EDP_BILL_NO"], form["EDP_AMOUNT"]
        with self._lock:
            for order in self._orders.values():
                if (order.extra["rec_account"], order.extra["merchant_ref"]) == (
                    account.rec_account,
                    bill_no,
                ):
                    if order.amount != amount:
                        raise BillConflict(bill_no)
                    return order
            order = HostedOrder(
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
            self._orders[order.order_id] = order
            return order

    def order(self, key: str) -> HostedOrder | None:
        """The order with Idram's id ``key``, else the newest whose bill number is ``key``."""
        with self._lock:
            if key in self._orders:
                return self._orders[key]
            found = [o for o in self._orders.values() if o.extra["merchant_ref"] == key]
            return found[-1] if found else None

    def orders(self) -> list[dict[str, Any]]:
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

    def point_home(self, order: HostedOrder, account: Account) -> None:
        """Where the browser goes now: the cabinet's pages as they are at the decision."""
        bill_no = order.extra["merchant_ref"]
        with self._lock:
            order.success_url = with_bill(account.success_url, bill_no)
            order.fail_url = with_bill(account.fail_url, bill_no)

    def new_payment(self, order: HostedOrder) -> dict[str, str]:
        """Idram's ids of the payment of an order: its transaction, payer and date."""
        with self._lock:
            payment = {
                "trans_id": str(next(self._trans_ids)),
                "payer_account": f"1{secrets.randbelow(10**8):08d}",
                "trans_date": datetime.now(YEREVAN).strftime("%d/%m/%Y"),
            }
            order.extra.update(payment)
            return payment

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
            return [d for d in self._deliveries if key in (None, d.order_id, d.bill_no)]


def _shown(order: HostedOrder) -> dict[str, Any]:
    return {**order.to_json(), "extra": dict(order.extra)}

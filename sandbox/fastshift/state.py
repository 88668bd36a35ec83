"""In-memory, lock-protected store of the FastShift simulator: accounts, orders, records.

An order is a :class:`sandbox.hosted.HostedOrder` (the page's view: ``order_id`` is
FastShift's ``order_guid``, ``extra["merchant_ref"]`` the merchant's
``order_number``) inside an :class:`Order` that holds FastShift's own fields.
The page's status (``pending``/``paid``/``declined``, and ``expired`` here) maps to
FastShift's words ``pending``/``completed``/``rejected``/``expired``.
"""

from __future__ import annotations

import hmac
import itertools
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sandbox.fastshift.scenarios import OrderPlan
from sandbox.hosted import HostedOrder

Clock = Callable[[], float]

BUILTIN_TOKEN: Final = "sandbox-fastshift-token"
BUILTIN_ACCOUNT_ID: Final = "acc_sandbox"
# Armenia keeps UTC+4 all year; FastShift's datetimes carry no zone (assumed local).
YEREVAN: Final = timezone(timedelta(hours=4))
PAGE_TO_FASTSHIFT: Final = {
    "pending": "pending",
    "paid": "completed",
    "declined": "rejected",
    "expired": "expired",
}


def fastshift_datetime(at: datetime) -> str:
    """FastShift's ``yyyy-mm-dd HH:MM:SS`` (Yerevan time)."""
    return at.astimezone(YEREVAN).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Account:
    """One merchant at FastShift: its Bearer token."""

    id: str
    name: str
    token: str

    def to_json(self, *, show_token: bool = False) -> dict[str, object]:
        shown = self.token if show_token else self.token[:4] + "…"
        return {"id": self.id, "name": self.name, "token": shown}


BUILTIN_ACCOUNT: Final = Account(BUILTIN_ACCOUNT_ID, "sandbox", BUILTIN_TOKEN)


@dataclass
class Order:
    """A registered order: FastShift's fields, the page's order, what happens to it."""

    page: HostedOrder
    account_id: str
    order_number: str
    amount: int
    description: str
    callback_url: str
    webhook_url: str | None
    external_order_id: str | None
    plan: OrderPlan
    created_at: str
    created_mono: float
    expires_at: str | None
    decided_mono: float | None = None
    completed_at: str | None = None
    fastshift_id: str | None = None

    @property
    def order_guid(self) -> str:
        return self.page.order_id

    @property
    def final_status(self) -> str:
        """FastShift's word for the order as it really stands (no status lag)."""
        return PAGE_TO_FASTSHIFT.get(self.page.status, "pending")

    def api_status(self, now: float) -> str:
        """What ``order/status`` says: pending until ``status_lag_s`` after the decision."""
        status = self.final_status
        decided = self.decided_mono
        if status in ("completed", "rejected") and decided is not None:
            return "pending" if now < decided + self.plan.status_lag_s else status
        return status

    def expire_due_at(self) -> float | None:
        if self.plan.expire_after_s is None:
            return None
        return self.created_mono + self.plan.expire_after_s

    def to_fastshift(self, now: float) -> dict[str, Any]:
        """``data.order`` as FastShift answers it."""
        status = self.api_status(now)
        return {
            "order_number": self.order_number,
            "order_guid": self.order_guid,
            "amount": self.amount,
            "description": self.description,
            "status": status,
            "created_at": self.created_at,
            "completed_at": self.completed_at if status != "pending" else None,
            "expires_at": self.expires_at,
            "account_guid": None,
            "external_order_id": self.external_order_id,
        }

    def to_json(self, now: float) -> dict[str, Any]:
        """The control view: the page's order, FastShift's view, and the plan."""
        return {
            **self.page.to_json(),
            "account_id": self.account_id,
            "order_number": self.order_number,
            "order_guid": self.order_guid,
            "final_status": self.final_status,
            "api_status": self.api_status(now),
            "callback_url": self.callback_url,
            "webhook_url": self.webhook_url,
            "plan": self.plan.to_json(),
            "fastshift": self.to_fastshift(now),
        }


@dataclass(frozen=True)
class RequestRecord:
    """One API or page request as received (the Bearer token redacted)."""

    method: str
    path: str
    kind: str
    query: dict[str, str]
    headers: dict[str, str]
    body: object
    status: int
    response: object
    time: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class DeliveryRecord:
    """One webhook attempt: ``status`` when answered, else ``error``."""

    order_number: str
    url: str
    format: str
    body: dict[str, str]
    status: int | None
    error: str | None
    time: str
    duration_ms: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class DuplicateOrder(Exception):
    """This account already registered that order number."""


@dataclass
class _Memory:
    accounts: dict[str, Account] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)  # by order_guid
    requests: list[RequestRecord] = field(default_factory=list)
    deliveries: list[DeliveryRecord] = field(default_factory=list)


class SimulatorState:
    """The simulator's memory; every public method takes the lock."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._ids = itertools.count(1)
        self._memory = _Memory()
        self.reset()

    def now(self) -> float:
        return self._clock()

    def reset(self) -> None:
        """Forget everything but the built-in account."""
        with self._lock:
            self._memory = _Memory(accounts={BUILTIN_ACCOUNT.id: BUILTIN_ACCOUNT})

    # Accounts

    def account_for_token(self, token: str) -> Account | None:
        """The account whose token this is (compared in constant time, every one of them)."""
        with self._lock:
            accounts = list(self._memory.accounts.values())
        found = None
        for account in accounts:
            if hmac.compare_digest(account.token.encode(), token.encode()):
                found = account
        return found

    def add_account(self, token: str | None, name: str | None) -> Account:
        with self._lock:
            if token is not None and any(a.token == token for a in self._memory.accounts.values()):
                raise ValueError("an account already has that token")
            account = Account(
                id=f"acc_{next(self._ids)}",
                name=name or "test",
                token=token or f"fs-test-{secrets.token_urlsafe(18)}",
            )
            self._memory.accounts[account.id] = account
            return account

    def accounts(self) -> list[Account]:
        with self._lock:
            return list(self._memory.accounts.values())

    # Orders

    def register(
        self,
        account: Account,
        *,
        order_number: str,
        amount: int,
        description: str,
        callback_url: str,
        webhook_url: str | None,
        external_order_id: str | None,
        plan: OrderPlan,
    ) -> Order:
        with self._lock:
            wanted = order_number.lower()
            for existing in self._memory.orders.values():
                if existing.account_id == account.id and existing.order_number.lower() == wanted:
                    raise DuplicateOrder(order_number)
            created = datetime.now(UTC)
            guid = str(uuid.uuid4())
            page = HostedOrder(
                order_id=guid,
                amount=str(amount),
                currency="AMD",
                description=description,
                # FastShift has one return URL; the browser gets the result in its query.
                success_url=with_result(callback_url, "completed", order_number),
                fail_url=with_result(callback_url, "rejected", order_number),
                extra={
                    "merchant_ref": order_number,
                    "order_guid": guid,
                    "account_id": account.id,
                    "external_order_id": external_order_id,
                },
            )
            expires = plan.expire_after_s
            order = Order(
                page=page,
                account_id=account.id,
                order_number=order_number,
                amount=amount,
                description=description,
                callback_url=callback_url,
                webhook_url=webhook_url,
                external_order_id=external_order_id,
                plan=plan,
                created_at=fastshift_datetime(created),
                created_mono=self._clock(),
                expires_at=(
                    fastshift_datetime(created + timedelta(seconds=expires))
                    if expires is not None
                    else None
                ),
            )
            self._memory.orders[guid] = order
            return order

    def find(self, key: str) -> Order | None:
        """An order by FastShift's ``order_guid`` or by the merchant's ``order_number``."""
        wanted = key.strip().lower()
        with self._lock:
            order = self._memory.orders.get(key)
            if order is not None:
                return order
            for candidate in self._memory.orders.values():
                if wanted in (candidate.order_guid.lower(), candidate.order_number.lower()):
                    return candidate
            return None

    def find_for_account(self, account_id: str, order_number: str) -> Order | None:
        wanted = order_number.strip().lower()
        with self._lock:
            for order in self._memory.orders.values():
                if order.account_id == account_id and order.order_number.lower() == wanted:
                    return order
            return None

    def orders(self) -> list[Order]:
        with self._lock:
            return list(self._memory.orders.values())

    def settle(self, order: Order, paid: bool) -> bool:
        """Record the customer's decision (the page set its status); False if it had expired."""
        with self._lock:
            if order.page.extra.get("expired"):
                order.page.status = "expired"  # the expiry came first: the click changes nothing
                return False
            order.decided_mono = self._clock()
            order.completed_at = fastshift_datetime(datetime.now(UTC))
            order.fastshift_id = f"{secrets.randbelow(10**8):08d}" if paid else None
            order.page.extra["decided"] = "paid" if paid else "declined"
            return True

    def expire(self, order: Order, *, force: bool = False) -> bool:
        """Expire a still undecided order (when due, or now with ``force``); True if it did."""
        with self._lock:
            if order.page.status != "pending" or order.page.extra.get("decided"):
                return False
            due_at = order.expire_due_at()
            if not force and (due_at is None or self._clock() < due_at):
                return False
            order.page.status = "expired"
            order.page.extra["expired"] = True
            order.page.fail_url = with_result(order.callback_url, "expired", order.order_number)
            order.completed_at = fastshift_datetime(datetime.now(UTC))
            order.decided_mono = self._clock()
            return True

    # Records

    def record_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._memory.requests.append(record)

    def requests(self, kind: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._memory.requests if kind is None or r.kind == kind]

    def record_delivery(self, record: DeliveryRecord) -> None:
        with self._lock:
            self._memory.deliveries.append(record)

    def deliveries(self, order_number: str | None = None) -> list[DeliveryRecord]:
        with self._lock:
            return [
                d
                for d in self._memory.deliveries
                if order_number is None or d.order_number.lower() == order_number.lower()
            ]


def with_result(url: str, status: str, order_number: str) -> str:
    """``url`` with FastShift's ``status`` and ``order_number`` added to its query."""
    parts = urlsplit(url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("status", "order_number")
    ]
    query += [("status", status), ("order_number", order_number)]
    return urlunsplit(parts._replace(query=urlencode(query)))

"""In-memory, lock-protected memory of the IntaSend simulator.

Accounts (keys, wallets, dashboard webhook), invoices, received API requests and
webhook delivery attempts. Every public method takes the lock; records are immutable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sandbox.intasend.accounts import Account, Webhook, builtin_account
from sandbox.intasend.invoices import Invoice

Clock = Callable[[], float]


@dataclass(frozen=True)
class RequestRecord:
    """One API request as received (Bearer redacted), with the status it was answered."""

    method: str
    path: str
    kind: str
    headers: dict[str, str]
    body: object
    status: int
    response: object
    time: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class DeliveryRecord:
    """One webhook POST attempt: ``status`` when answered, else ``error``."""

    invoice_id: str
    state: str
    url: str | None
    attempt: int
    body: object
    status: int | None
    error: str | None
    time: str
    duration_ms: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class SimulatorState:
    def __init__(self, clock: Clock, default_webhook: Webhook | None) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._default_webhook = default_webhook
        self._accounts: dict[str, Account] = {}
        self._invoices: dict[str, Invoice] = {}
        self._requests: list[RequestRecord] = []
        self._deliveries: list[DeliveryRecord] = []
        self.reset()

    def now(self) -> float:
        return self._clock()

    def reset(self) -> None:
        """Forget everything but the built-in account (and its start-up webhook)."""
        with self._lock:
            builtin = builtin_account(self._default_webhook)
            self._accounts = {builtin.publishable_key: builtin}
            self._invoices.clear()
            self._requests.clear()
            self._deliveries.clear()

    # Accounts

    def add_account(self, account: Account) -> None:
        with self._lock:
            self._accounts[account.publishable_key] = account

    def account(self, publishable_key: str) -> Account | None:
        with self._lock:
            return self._accounts.get(publishable_key)

    def account_by_secret(self, secret_key: str) -> Account | None:
        with self._lock:
            return next((a for a in self._accounts.values() if a.secret_key == secret_key), None)

    def accounts(self) -> list[Account]:
        with self._lock:
            return list(self._accounts.values())

    def set_webhook(self, publishable_key: str, webhook: Webhook | None) -> bool:
        with self._lock:
            account = self._accounts.get(publishable_key)
            if account is None:
                return False
            self._accounts[publishable_key] = account.with_webhook(webhook)
            return True

    # Invoices

    def add_invoice(self, make: Callable[[str], Invoice], new_id: Callable[[], str]) -> Invoice:
        """Store ``make(<a fresh unique id>)``."""
        with self._lock:
            candidate = new_id()
            while candidate in self._invoices:
                candidate = new_id()
            invoice = make(candidate)
            self._invoices[invoice.invoice_id] = invoice
            return invoice

    def invoice(self, invoice_id: str) -> Invoice | None:
        with self._lock:
            return self._invoices.get(invoice_id)

    def invoices(self) -> list[Invoice]:
        with self._lock:
            return list(self._invoices.values())

    # Records

    def record_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def requests(self, kind: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._requests if kind is None or r.kind == kind]

    def record_delivery(self, record: DeliveryRecord) -> None:
        with self._lock:
            self._deliveries.append(record)

    def deliveries(self, invoice_id: str | None = None) -> list[DeliveryRecord]:
        with self._lock:
            return [d for d in self._deliveries if invoice_id in (None, d.invoice_id)]

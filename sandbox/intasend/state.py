"""In-memory, lock-protected memory of the IntaSend simulator.

Accounts (keys, wallets, dashboard webhook), invoices, received API requests,
webhook delivery attempts and the transaction list's injected discrepancies.
Every public method takes the lock; records are immutable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from sandbox.intasend.accounts import Account, Webhook, builtin_account
from sandbox.intasend.invoices import Invoice, nairobi_now

DISCREPANCY_KINDS: Final = (
    "amount_changed",
    "receipt_repeated",
    "dropped",
    "failed",
    "gateway_only",
)

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


@dataclass(frozen=True)
class Discrepancy:
    """One way the transaction list departs from what malipo was told about an invoice.

    ``failed`` is the only kind the status API shows too (the gateway changed its mind);
    ``gateway_only`` names the invoice it created, which nothing pushed or announced.
    """

    kind: str  # one of DISCREPANCY_KINDS
    invoice_id: str
    amount: Decimal | None = None  # amount_changed: the value the list shows
    failed_code: str | None = None
    failed_reason: str | None = None
    at: float = 0.0  # the state's clock when injected

    def to_json(self) -> dict[str, object]:
        shown: dict[str, object] = {"kind": self.kind, "invoice_id": self.invoice_id}
        if self.amount is not None:
            shown["amount"] = f"{self.amount:.2f}"
        if self.kind == "failed":
            shown.update(failed_code=self.failed_code, failed_reason=self.failed_reason)
        return shown


class SimulatorState:
    def __init__(self, clock: Clock, default_webhook: Webhook | None) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        # Wall time follows the clock from one anchor, so that invoices made at different
        # times of an injected test clock keep their order in the transaction list.
        self._wall_anchor = (nairobi_now(), clock())
        self._default_webhook = default_webhook
        self._accounts: dict[str, Account] = {}
        self._invoices: dict[str, Invoice] = {}
        self._requests: list[RequestRecord] = []
        self._deliveries: list[DeliveryRecord] = []
        self._discrepancies: list[Discrepancy] = []
        self.reset()

    def now(self) -> float:
        return self._clock()

    def wall_at(self, at: float) -> datetime:
        """Nairobi's wall-clock time at ``at`` of the clock (as it moved since the start)."""
        wall, start = self._wall_anchor
        return wall + timedelta(seconds=at - start)

    def reset(self) -> None:
        """Forget everything but the built-in account (and its start-up webhook)."""
        with self._lock:
            builtin = builtin_account(self._default_webhook)
            self._accounts = {builtin.publishable_key: builtin}
            self._invoices.clear()
            self._requests.clear()
            self._deliveries.clear()
            self._discrepancies.clear()

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
        """The invoice as the gateway shows it now (a ``failed`` discrepancy applied)."""
        with self._lock:
            invoice = self._invoices.get(invoice_id)
            return None if invoice is None else self._as_shown(invoice)

    def invoices(self) -> list[Invoice]:
        with self._lock:
            return [self._as_shown(i) for i in self._invoices.values()]

    def _as_shown(self, invoice: Invoice) -> Invoice:
        """With the newest ``failed`` discrepancy of it, FAILED from its due time (or from
        the injection, for one that would never finish). The lock is held."""
        failed = next(
            (
                d
                for d in reversed(self._discrepancies)
                if d.kind == "failed" and d.invoice_id == invoice.invoice_id
            ),
            None,
        )
        if failed is None:
            return invoice
        outcome = replace(
            invoice.outcome,
            kind="fail",
            failed_code=failed.failed_code,
            failed_reason=failed.failed_reason,
        )
        final_at = invoice.final_at if invoice.final_at is not None else failed.at
        return replace(invoice, outcome=outcome, final_at=final_at)

    # The transaction list's discrepancies

    def add_discrepancy(self, discrepancy: Discrepancy) -> None:
        with self._lock:
            self._discrepancies.append(discrepancy)

    def add_gateway_only(
        self, make: Callable[[str], Invoice], new_id: Callable[[], str], at: float
    ) -> Invoice:
        """Store ``make(<a fresh unique id>)`` as an invoice only the list tells of."""
        with self._lock:
            candidate = new_id()
            while candidate in self._invoices:
                candidate = new_id()
            invoice = make(candidate)
            self._invoices[invoice.invoice_id] = invoice
            self._discrepancies.append(Discrepancy("gateway_only", invoice.invoice_id, at=at))
            return invoice

    def discrepancies(self) -> list[Discrepancy]:
        with self._lock:
            return list(self._discrepancies)

    def statement(self) -> tuple[list[Invoice], list[Discrepancy]]:
        """Every invoice as shown and every discrepancy, read together (one lock)."""
        with self._lock:
            return [self._as_shown(i) for i in self._invoices.values()], list(self._discrepancies)

    def clear_discrepancies(self) -> None:
        """Forget every discrepancy, and the invoices ``gateway_only`` made."""
        with self._lock:
            for discrepancy in self._discrepancies:
                if discrepancy.kind == "gateway_only":
                    self._invoices.pop(discrepancy.invoice_id, None)
            self._discrepancies.clear()

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

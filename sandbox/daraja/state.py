"""In-memory, lock-protected store of everything the simulator knows.

Apps, shortcodes, tokens, transactions, received requests and callback
deliveries. Every public method takes the lock, so resources can share one
``SimulatorState`` across gunicorn threads. Records handed out are immutable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sandbox.daraja import ids
from sandbox.daraja.scenarios import Outcome
from sandbox.daraja.validation import PushRequest

Clock = Callable[[], float]

BUILTIN_APPS: Final = {"malipo-sandbox-key": "malipo-sandbox-secret"}
BUILTIN_SHORTCODES: Final = {
    "174379": "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
}


def utc_now_iso() -> str:
    """Wall-clock time for records, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Transaction:
    """An accepted STK push and its decided outcome, due at ``due_at`` (state clock)."""

    checkout_request_id: str
    merchant_request_id: str
    shortcode: str
    transaction_type: str
    amount: int
    party_a: str
    party_b: str
    phone: str
    callback_url: str
    account_reference: str
    transaction_desc: str
    outcome: Outcome
    due_at: float
    created_at: str
    receipt: str | None
    transaction_date: int

    def is_due(self, now: float) -> bool:
        return now >= self.due_at

    def to_json(self, now: float) -> dict[str, object]:
        return {
            "CheckoutRequestID": self.checkout_request_id,
            "MerchantRequestID": self.merchant_request_id,
            "BusinessShortCode": self.shortcode,
            "TransactionType": self.transaction_type,
            "Amount": self.amount,
            "PartyA": self.party_a,
            "PartyB": self.party_b,
            "PhoneNumber": self.phone,
            "CallBackURL": self.callback_url,
            "AccountReference": self.account_reference,
            "TransactionDesc": self.transaction_desc,
            "status": "completed" if self.is_due(now) else "pending",
            "ResultCode": self.outcome.result_code,
            "ResultDesc": self.outcome.result_desc,
            "callback": self.outcome.callback,
            "outcome_source": self.outcome.source,
            "MpesaReceiptNumber": self.receipt,
            "TransactionDate": self.transaction_date,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class RequestRecord:
    """One gateway request as received, with the status it was answered with."""

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
    """One callback POST attempt: ``status`` when answered, else ``error``."""

    checkout_request_id: str
    url: str
    body: object
    status: int | None
    error: str | None
    time: str
    duration_ms: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class SimulatorState:
    """The simulator's memory; ``clock`` times token expiry and outcome due times."""

    def __init__(self, clock: Clock, token_ttl_s: float) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._token_ttl_s = token_ttl_s
        self._apps: dict[str, str] = {}
        self._shortcodes: dict[str, str] = {}
        self._tokens: dict[str, float] = {}
        self._transactions: dict[str, Transaction] = {}
        self._merchant_ids: set[str] = set()
        self._receipts: set[str] = set()
        self._requests: list[RequestRecord] = []
        self._deliveries: list[DeliveryRecord] = []
        # What the shortcodes' statements show differently (see sandbox/daraja/statement.py).
        self._discrepancies: list[dict[str, object]] = []
        self.reset()

    def now(self) -> float:
        return self._clock()

    def reset(self) -> None:
        """Forget everything but the built-in app and shortcode."""
        with self._lock:
            self._apps = dict(BUILTIN_APPS)
            self._shortcodes = dict(BUILTIN_SHORTCODES)
            self._tokens.clear()
            self._transactions.clear()
            self._merchant_ids.clear()
            self._receipts.clear()
            self._requests.clear()
            self._deliveries.clear()
            self._discrepancies.clear()

    # Apps, shortcodes and tokens

    def add_app(self, consumer_key: str, consumer_secret: str) -> None:
        with self._lock:
            self._apps[consumer_key] = consumer_secret

    def app_matches(self, consumer_key: str, consumer_secret: str) -> bool:
        with self._lock:
            return self._apps.get(consumer_key) == consumer_secret

    def add_shortcode(self, shortcode: str, passkey: str) -> None:
        with self._lock:
            self._shortcodes[shortcode] = passkey

    def passkey_for(self, shortcode: str) -> str | None:
        with self._lock:
            return self._shortcodes.get(shortcode)

    def issue_token(self) -> str:
        """A new bearer token valid for the configured TTL."""
        with self._lock:
            token = _unique(ids.access_token, self._tokens.__contains__)
            self._tokens[token] = self._clock() + self._token_ttl_s
            return token

    def token_valid(self, token: str) -> bool:
        with self._lock:
            expires_at = self._tokens.get(token)
            return expires_at is not None and self._clock() < expires_at

    def revoke_tokens(self) -> int:
        """Invalidate every issued token; return how many there were."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
            return count

    # Transactions

    def create_transaction(self, push: PushRequest, outcome: Outcome) -> Transaction:
        """Record an accepted push with fresh unique ids; its outcome is due after the delay."""
        with self._lock:
            created = ids.nairobi_now()
            completed = created + timedelta(seconds=outcome.callback_delay_s)
            checkout_id = _unique(
                lambda: ids.checkout_request_id(created), self._transactions.__contains__
            )
            merchant_id = _unique(ids.request_id, self._merchant_ids.__contains__)
            receipt = None
            if outcome.succeeded:
                receipt = _unique(ids.receipt_number, self._receipts.__contains__)
                self._receipts.add(receipt)
            transaction = Transaction(
                checkout_request_id=checkout_id,
                merchant_request_id=merchant_id,
                shortcode=push.shortcode,
                transaction_type=push.transaction_type,
                amount=push.amount,
                party_a=push.party_a,
                party_b=push.party_b,
                phone=push.phone,
                callback_url=push.callback_url,
                account_reference=push.account_reference,
                transaction_desc=push.transaction_desc,
                outcome=outcome,
                due_at=self._clock() + outcome.callback_delay_s,
                created_at=created.isoformat(timespec="seconds"),
                receipt=receipt,
                transaction_date=ids.transaction_date(completed),
            )
            self._transactions[checkout_id] = transaction
            self._merchant_ids.add(merchant_id)
            return transaction

    def transaction(self, checkout_request_id: str) -> Transaction | None:
        with self._lock:
            return self._transactions.get(checkout_request_id)

    def transactions(self) -> list[Transaction]:
        """All transactions, oldest first."""
        with self._lock:
            return list(self._transactions.values())

    # Statement discrepancies

    def add_discrepancy(self, discrepancy: dict[str, object]) -> None:
        with self._lock:
            self._discrepancies.append(dict(discrepancy))

    def discrepancies(self) -> list[dict[str, object]]:
        with self._lock:
            return [dict(d) for d in self._discrepancies]

    def clear_discrepancies(self) -> None:
        with self._lock:
            self._discrepancies.clear()

    def new_receipt(self) -> str:
        """A receipt no transaction has, reserved (for a payment only the statement shows)."""
        with self._lock:
            receipt = _unique(ids.receipt_number, self._receipts.__contains__)
            self._receipts.add(receipt)
            return receipt

    # Records

    def record_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def requests(self, kind: str | None = None) -> list[RequestRecord]:
        """Received gateway requests, newest last, optionally of one kind."""
        with self._lock:
            return [r for r in self._requests if kind is None or r.kind == kind]

    def record_delivery(self, record: DeliveryRecord) -> None:
        with self._lock:
            self._deliveries.append(record)

    def deliveries(self) -> list[DeliveryRecord]:
        """Callback delivery attempts, newest last."""
        with self._lock:
            return list(self._deliveries)


def _unique(make: Callable[[], str], taken: Callable[[str], bool]) -> str:
    while True:
        candidate = make()
        if not taken(candidate):
            return candidate

"""In-memory, lock-protected store of the InTouch simulator: agencies, transactions, records."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sandbox.intouch.scenarios import Outcome

Clock = Callable[[], float]
Flow = Literal["touchpay", "gu"]

# The failing payment_status TouchPay sends is undocumented; the simulator says "420".
TOUCHPAY_SUCCESS: Final = "200"
TOUCHPAY_FAILURE: Final = "420"
GU_STATUS: Final = {"success": "SUCCESSFUL", "failed": "FAILED", "pending": "PENDING"}
CHECK_STATUS_CODE: Final = {"success": 200, "failed": 300, "pending": 201}


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Agency:
    """One InTouch merchant account and what InTouch knows about its callbacks."""

    agency_code: str
    secure_code: str
    domain_name: str
    login_agent: str
    password_agent: str
    login_api: str
    password_api: str
    partner_id: str
    service_codes: tuple[str, ...]
    country_code: str = "221"
    # Where TouchPay calls back (set per agency in InTouch's back office), and with what.
    callback_url: str | None = None
    callback_username: str = ""
    callback_password: str = ""
    # TouchPay: also send the fields as a JSON body with the GET (integrators see both).
    callback_json_body: bool = False
    # GU callbacks: send the agency's Basic credentials too (unverified that GU does).
    basic_on_gu_callbacks: bool = True

    def to_json(self) -> dict[str, object]:
        document = asdict(self)
        document["service_codes"] = list(self.service_codes)
        return document


BUILTIN_AGENCY: Final = Agency(
    agency_code="SNSANDBOX01",
    secure_code="sandbox-secure-code-7f3a9c2e",
    domain_name="localhost",
    login_agent="sandbox-agent",
    password_agent="sandbox-agent-password",
    login_api="sandbox-api",
    password_api="sandbox-api-password",
    partner_id="SANDBOX-PARTNER-01",
    service_codes=("SN_PAIEMENTMARCHAND_OM_TP", "SN_PAIEMENTMARCHAND_WAVE_TP"),
    country_code="221",
    callback_url=None,
    callback_username="sandbox-touchpay",
    callback_password="sandbox-touchpay-password",
)
AGENCY_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(Agency))


@dataclass(frozen=True)
class Transaction:
    """A payment InTouch knows of (a TouchPay checkout or a GU push), due at ``due_at``."""

    order_number: str
    agency_code: str
    flow: Flow
    amount: int
    phone: str
    callback_url: str | None
    gu_transaction_id: str
    payment_token: str
    service_code: str
    outcome: Outcome
    due_at: float
    created_at: str
    validated_at_ms: int
    customer: Mapping[str, str] = field(default_factory=dict)

    def is_due(self, now: float) -> bool:
        return now >= self.due_at

    def status(self, now: float) -> str:
        """The GU status word: PENDING until the outcome is due, then the outcome's."""
        return GU_STATUS[self.outcome.status] if self.is_due(now) else "PENDING"

    def check_status_code(self, now: float) -> int:
        return CHECK_STATUS_CODE[self.outcome.status] if self.is_due(now) else 201

    def to_json(self, now: float) -> dict[str, object]:
        return {
            "order_number": self.order_number,
            "agency_code": self.agency_code,
            "flow": self.flow,
            "amount": self.amount,
            "phone": self.phone,
            "callback_url": self.callback_url,
            "gu_transaction_id": self.gu_transaction_id,
            "payment_token": self.payment_token,
            "service_code": self.service_code,
            "status": self.status(now),
            "outcome": self.outcome.status,
            "callback": self.outcome.callback,
            "outcome_source": self.outcome.source,
            "created_at": self.created_at,
            "customer": dict(self.customer),
        }


@dataclass(frozen=True)
class RequestRecord:
    """One API request (or TouchPay checkout) as received, secrets redacted."""

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
    """One callback attempt: ``status`` when answered, else ``error``."""

    order_number: str
    flow: Flow
    method: str
    url: str
    query: dict[str, str]
    body: object
    basic_user: str | None
    status: int | None
    error: str | None
    time: str
    duration_ms: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class DuplicateOrder(Exception):
    """This agency already has a transaction with that order number."""


class SimulatorState:
    """The simulator's memory; every public method takes the lock."""

    def __init__(self, clock: Clock = time.monotonic, builtin: Agency = BUILTIN_AGENCY) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._builtin = builtin
        self._agencies: dict[str, Agency] = {}
        self._transactions: dict[tuple[str, str], Transaction] = {}
        self._requests: list[RequestRecord] = []
        self._deliveries: list[DeliveryRecord] = []
        self.reset()

    def now(self) -> float:
        return self._clock()

    def reset(self) -> None:
        """Forget everything but the built-in agency."""
        with self._lock:
            self._agencies = {self._builtin.agency_code: self._builtin}
            self._transactions.clear()
            self._requests.clear()
            self._deliveries.clear()

    # Agencies

    def agency(self, agency_code: str) -> Agency | None:
        with self._lock:
            return self._agencies.get(agency_code)

    def agencies(self) -> list[Agency]:
        with self._lock:
            return list(self._agencies.values())

    def put_agency(self, changes: Mapping[str, Any]) -> Agency:
        """Add an agency (every field but the optional ones given) or change an existing one."""
        code = changes["agency_code"]
        with self._lock:
            existing = self._agencies.get(code)
            agency = dataclasses.replace(existing, **changes) if existing else Agency(**changes)
            self._agencies[code] = agency
            return agency

    # Transactions

    def create_transaction(
        self,
        *,
        agency: Agency,
        flow: Flow,
        order_number: str,
        amount: int,
        phone: str,
        callback_url: str | None,
        service_code: str,
        outcome: Outcome,
        customer: Mapping[str, str],
    ) -> Transaction:
        with self._lock:
            key = (agency.agency_code, order_number)
            if key in self._transactions:
                raise DuplicateOrder(order_number)
            now = self._clock()
            transaction = Transaction(
                order_number=order_number,
                agency_code=agency.agency_code,
                flow=flow,
                amount=amount,
                phone=phone,
                callback_url=callback_url,
                gu_transaction_id=f"GU{secrets.randbelow(10**12):012d}",
                payment_token=f"TP{secrets.randbelow(10**12):012d}",
                service_code=service_code,
                outcome=outcome,
                due_at=now + outcome.callback_delay_s,
                created_at=utc_now_iso(),
                validated_at_ms=int((time.time() + outcome.callback_delay_s) * 1000),
                customer=dict(customer),
            )
            self._transactions[key] = transaction
            return transaction

    def transaction(self, order_number: str, agency_code: str | None = None) -> Transaction | None:
        """The transaction with that order number (of that agency, when named)."""
        with self._lock:
            for (code, number), transaction in self._transactions.items():
                if number == order_number and agency_code in (None, code):
                    return transaction
            return None

    def transactions(self) -> list[Transaction]:
        with self._lock:
            return list(self._transactions.values())

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

    def deliveries(self) -> list[DeliveryRecord]:
        with self._lock:
            return list(self._deliveries)

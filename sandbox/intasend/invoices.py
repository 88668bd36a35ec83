"""Invoices: one accepted STK push, its life cycle in time, and its JSON as IntaSend shows it.

An invoice is PENDING when created, PROCESSING halfway to its due time, and
COMPLETE or FAILED at it (a ``pending`` outcome stays PROCESSING). Times are of
the state's clock; wall-clock ``created_at``/``updated_at`` follow them.
"""

from __future__ import annotations

import random
import string
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from sandbox.intasend.scenarios import Outcome

PENDING: Final = "PENDING"
PROCESSING: Final = "PROCESSING"
COMPLETE: Final = "COMPLETE"
FAILED: Final = "FAILED"
NAIROBI: Final = timezone(timedelta(hours=3), "EAT")
CENTS: Final = Decimal("0.01")
FAILED_CODE_LINK: Final = "https://intasend.com/troubleshooting/mpesa-stk-push"
FINAL_STATES: Final = frozenset({COMPLETE, FAILED})
# The fields of a line of ``GET transactions/`` (a guess at IntaSend's list: unverified).
ROW_FIELDS: Final = (
    "invoice_id",
    "state",
    "provider",
    "charges",
    "net_amount",
    "currency",
    "value",
    "account",
    "api_ref",
    "mpesa_reference",
    "failed_reason",
    "failed_code",
    "created_at",
    "updated_at",
)


def invoice_id() -> str:
    """A short uppercase id like IntaSend's ("XMSLWOS")."""
    return "".join(random.choices(string.ascii_uppercase, k=7))


def mpesa_reference() -> str:
    """An M-Pesa receipt: 10 uppercase letters and digits, a letter first."""
    alnum = string.ascii_uppercase + string.digits
    return random.choice(string.ascii_uppercase) + "".join(random.choices(alnum, k=9))


def charges_for(value: Decimal, fee_percent: Decimal) -> Decimal:
    return (value * fee_percent / 100).quantize(CENTS, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Customer:
    customer_id: str
    phone_number: str
    email: str | None
    first_name: str | None
    last_name: str | None

    def to_json(self, at: str) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "phone_number": self.phone_number,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "country": "KE",
            "zipcode": None,
            "provider": "M-PESA",
            "created_at": at,
            "updated_at": at,
        }


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    public_key: str
    customer: Customer
    value: Decimal
    charges: Decimal
    currency: str
    api_ref: str | None
    narrative: str | None
    wallet_id: str | None
    host: str
    outcome: Outcome
    created_at: float  # the state's clock
    processing_at: float
    final_at: float | None  # None: never finishes (a "pending" outcome)
    created_wall: datetime
    receipt: str | None
    meta_id: str

    def state_at(self, now: float) -> str:
        if self.final_at is not None and now >= self.final_at:
            return FAILED if self.outcome.kind == "fail" else COMPLETE
        return PROCESSING if now >= self.processing_at else PENDING

    def final_state(self) -> str | None:
        if self.final_at is None:
            return None
        return FAILED if self.outcome.kind == "fail" else COMPLETE

    def entered_at(self, state: str) -> float:
        if state == PENDING:
            return self.created_at
        if state == PROCESSING or self.final_at is None:
            return self.processing_at
        return self.final_at

    def moment(self, at: float) -> datetime:
        """The wall-clock time of ``at``, to the millisecond shown (so filters agree with it)."""
        moment = self.created_wall + timedelta(seconds=at - self.created_at)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    def wall(self, at: float) -> str:
        return self.moment(at).isoformat(timespec="milliseconds")

    def _amount(self, value: Decimal) -> object:
        return f"{value:.2f}" if self.outcome.amount_style == "strings" else float(value)

    def document(self, state: str) -> dict[str, object]:
        """The flat invoice object in ``state`` (what the API and the webhooks show)."""
        failed = state == FAILED
        return {
            "invoice_id": self.invoice_id,
            "state": state,
            "provider": "M-PESA",
            "charges": self._amount(self.charges),
            "net_amount": self._amount(self.value - self.charges),
            "currency": self.currency,
            "value": self._amount(self.value),
            "account": self.customer.phone_number,
            "api_ref": self.api_ref,
            "mpesa_reference": self.receipt if state == COMPLETE else None,
            "host": self.host,
            "card_info": {"bin_country": None, "card_type": None},
            "retry_count": 0,
            "failed_reason": self.outcome.failed_reason if failed else None,
            "failed_code": self.outcome.failed_code if failed else None,
            "failed_code_link": FAILED_CODE_LINK if failed else None,
            "created_at": self.wall(self.created_at),
            "updated_at": self.wall(self.entered_at(state)),
        }

    def row(self, state: str, value: Decimal | None = None) -> dict[str, object]:
        """The invoice as a line of ``GET transactions/``; ``value`` as a discrepancy shows it
        (``net_amount`` follows it, the charges stay)."""
        document = self.document(state)
        shown = {key: document[key] for key in ROW_FIELDS}
        if value is not None:
            shown["value"] = self._amount(value)
            shown["net_amount"] = self._amount(value - self.charges)
        return shown

    def answer(self, state: str) -> dict[str, object]:
        """The push answer: the invoice with its customer and the payment's wrapper."""
        created = self.wall(self.created_at)
        return {
            "id": self.meta_id,
            "invoice": self.document(state),
            "customer": self.customer.to_json(created),
            "payment_link": None,
            "customer_comment": None,
            "refundable": False,
            "created_at": created,
            "updated_at": self.wall(self.entered_at(state)),
        }

    def status_answer(self, state: str) -> dict[str, object]:
        created = self.wall(self.created_at)
        return {
            "invoice": self.document(state),
            "meta": {
                "id": self.meta_id,
                "customer": self.customer.to_json(created),
                "payment_link": None,
                "customer_comment": None,
                "created_at": created,
                "updated_at": self.wall(self.entered_at(state)),
            },
        }

    def webhook_times(self, gap_s: float) -> list[tuple[float, str]]:
        """When each webhook of the outcome's mode is due, and the state it tells."""
        mode, final = self.outcome.webhook, self.final_state()
        if mode == "none":
            return []
        times = [(self.processing_at, PROCESSING)]
        if final is None or self.final_at is None:
            return times
        times.append((self.final_at, final))
        if mode == "twice":
            times.append((self.final_at + gap_s, final))
        elif mode == "processing_after_complete":
            times.append((self.final_at + gap_s, PROCESSING))
        return times


def new_meta_id() -> str:
    return str(uuid.uuid4())


def nairobi_now() -> datetime:
    return datetime.now(NAIROBI)

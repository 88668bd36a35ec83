"""What customer notices say: wording per (channel, event), rendered with ``string.Template``.

A notice's wording is looked up most specific first: the merchant's row in
``notification_templates``, then the platform's row (``merchant_id`` NULL), then
the built-in default below. Templates may use only :data:`PLACEHOLDERS`
(``$amount``, ``$currency``, ``$reference``, ``$merchant``, ``$status``,
``$failure``, ``$description``, ``$payment_id``; ``$$`` is a dollar sign):
:func:`check_template` refuses anything else before a template is stored.
Rendering never raises: values are flattened to one line of printable text, and
an unknown placeholder in a row written behind the CLI's back is left as written.
"""

from __future__ import annotations

import string
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import NotificationTemplate
from shared.domain.money import Money

CHANNELS: Final = ("sms", "email")
# A payment's notices, and a payout's (to the phone it paid, where the merchant enables it).
EVENTS: Final = ("failed", "cancelled", "expired", "payout_received")
PLACEHOLDERS: Final[dict[str, str]] = {
    "amount": "the amount in major units, e.g. 15.00",
    "currency": "the currency code, e.g. KES",
    "reference": "the merchant's reference for the payment (a payout's reason)",
    "merchant": "the merchant's name",
    "status": "what happened: failed, cancelled, expired or payout_received",
    "failure": "why, in the customer's words, e.g. 'your balance was too low'",
    "description": "the payment's description (may be empty)",
    "payment_id": "malipo's id of the payment",
}
SMS_LENGTH: Final = 160

# Why a payment did not complete, said to the customer (catalogue code → phrase).
FAILURE_PHRASES: Final[dict[str, str]] = {
    "insufficient_funds": "your balance was too low",
    "cancelled_by_user": "the request was cancelled",
    "customer_unreachable": "your phone could not be reached",
    "wrong_pin": "a wrong PIN was entered",
    "limit_exceeded": "the amount is over your transaction limits",
    "rule_limited": "the same amount was requested less than 2 minutes before",
    "transaction_expired": "the prompt was not answered in time",
    "push_error": "the prompt could not be sent to your phone",
    "subscriber_busy": "another transaction was in progress on your phone",
    "expired": "no confirmation came in time",
    "outcome_unknown": "no confirmation came in time",
}
DEFAULT_FAILURE_PHRASE: Final = "it could not be processed"


class TemplateInvalid(ValueError):
    """A template that uses an unknown placeholder or a lone ``$``."""


@dataclass(frozen=True)
class NoticeTemplate:
    """Wording of one notice; ``source`` is ``merchant``, ``platform`` or ``built-in``."""

    channel: str
    event: str
    body: str
    subject: str | None = None
    source: str = "built-in"


@dataclass(frozen=True)
class NoticeFacts:
    """What a notice may tell about a payment (the placeholders' values)."""

    amount: Money
    reference: str
    merchant: str
    status: str
    failure_code: str | None = None
    description: str | None = None
    payment_id: str = ""

    def values(self) -> dict[str, str]:
        raw = {
            "amount": self.amount.format(),
            "currency": self.amount.currency,
            "reference": self.reference,
            "merchant": self.merchant,
            "status": self.status,
            "failure": failure_phrase(self.failure_code),
            "description": self.description or "",
            "payment_id": self.payment_id,
        }
        return {name: one_line(value) for name, value in raw.items()}


@dataclass(frozen=True)
class RenderedNotice:
    body: str
    subject: str | None = None


_SMS_OPENING = "Your payment of $currency $amount to $merchant for $reference"
_EMAIL_CLOSING = "\n\nPayment reference: $reference\n"
BUILT_IN: Final[dict[tuple[str, str], NoticeTemplate]] = {
    ("sms", "failed"): NoticeTemplate(
        "sms", "failed", f"{_SMS_OPENING} did not go through: $failure. No money was taken."
    ),
    ("sms", "cancelled"): NoticeTemplate(
        "sms", "cancelled", f"{_SMS_OPENING} was cancelled. No money was taken."
    ),
    ("sms", "expired"): NoticeTemplate(
        "sms",
        "expired",
        f"{_SMS_OPENING} timed out: $failure. If you were charged, the payment still counts.",
    ),
    ("sms", "payout_received"): NoticeTemplate(
        "sms", "payout_received", "You have received $currency $amount from $merchant: $reference."
    ),
    ("email", "payout_received"): NoticeTemplate(
        "email",
        "payout_received",
        "Hello,\n\n$merchant has sent you $currency $amount: $reference." + _EMAIL_CLOSING,
        subject="$merchant has sent you $currency $amount",
    ),
    ("email", "failed"): NoticeTemplate(
        "email",
        "failed",
        "Hello,\n\nYour payment of $currency $amount to $merchant for $reference did not go "
        "through: $failure.\nNo money was taken from your account; you can try again when "
        "you are ready." + _EMAIL_CLOSING,
        subject="Your payment to $merchant did not go through",
    ),
    ("email", "cancelled"): NoticeTemplate(
        "email",
        "cancelled",
        "Hello,\n\nYour payment of $currency $amount to $merchant for $reference was "
        "cancelled.\nNo money was taken from your account; you can try again when you are "
        "ready." + _EMAIL_CLOSING,
        subject="Your payment to $merchant was cancelled",
    ),
    ("email", "expired"): NoticeTemplate(
        "email",
        "expired",
        "Hello,\n\nYour payment of $currency $amount to $merchant for $reference timed out: "
        "$failure.\nIf money was taken from your account, the payment still counts and "
        "$merchant receives it; if not, you can try again." + _EMAIL_CLOSING,
        subject="Your payment to $merchant timed out",
    ),
}


def failure_phrase(failure_code: str | None) -> str:
    return FAILURE_PHRASES.get(failure_code or "", DEFAULT_FAILURE_PHRASE)


def one_line(value: str) -> str:
    """Printable text on one line: control and format characters become spaces, runs collapse."""
    cleaned = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in value)
    return " ".join(cleaned.split())


def check_template(text: str) -> None:
    """Raise TemplateInvalid unless ``text`` uses only known placeholders (and ``$$``)."""
    template = string.Template(text)
    if not template.is_valid():
        raise TemplateInvalid("a '$' must start a placeholder such as $amount; write $$ for '$'")
    unknown = sorted(set(template.get_identifiers()) - set(PLACEHOLDERS))
    if unknown:
        known = ", ".join(f"${name}" for name in PLACEHOLDERS)
        listed = ", ".join(f"${name}" for name in unknown)
        raise TemplateInvalid(f"unknown placeholder(s) {listed}; known: {known}")


def render(template: NoticeTemplate, facts: NoticeFacts) -> RenderedNotice:
    """Fill the template in. Never raises; an e-mail without a subject gets the built-in one."""
    values = facts.values()
    subject = template.subject
    if template.channel == "email" and not subject:
        subject = BUILT_IN[("email", template.event)].subject
    return RenderedNotice(
        body=string.Template(template.body).safe_substitute(values).strip(),
        subject=one_line(string.Template(subject).safe_substitute(values)) if subject else None,
    )


# -- stored templates ------------------------------------------------------------------------


def validate_template(channel: str, event: str, *, body: str, subject: str | None) -> None:
    """Raise TemplateInvalid unless this is a storable template for (channel, event)."""
    check_scope(channel, event)
    if channel == "sms" and subject is not None:
        raise TemplateInvalid("an SMS has no subject")
    if not body.strip():
        raise TemplateInvalid("the body must not be empty")
    for text in (body, subject or ""):
        check_template(text)


def check_scope(channel: str, event: str) -> None:
    if channel not in CHANNELS or event not in EVENTS:
        raise TemplateInvalid(f"channel must be one of {CHANNELS} and event one of {EVENTS}")


def effective_template(
    session: Session, merchant_id: uuid.UUID | None, channel: str, event: str
) -> NoticeTemplate:
    """The wording a notice to this merchant's customer uses (merchant, platform, built-in)."""
    rows = session.scalars(
        select(NotificationTemplate).where(
            NotificationTemplate.channel == channel,
            NotificationTemplate.event == event,
            (NotificationTemplate.merchant_id == merchant_id)
            | NotificationTemplate.merchant_id.is_(None),
        )
    ).all()
    by_scope = {row.merchant_id: row for row in rows}
    row = by_scope.get(merchant_id) if merchant_id is not None else None
    row = row or by_scope.get(None)
    if row is None:
        return BUILT_IN[(channel, event)]
    source = "platform" if row.merchant_id is None else "merchant"
    return NoticeTemplate(channel, event, row.body, row.subject, source)


def set_template(
    session: Session,
    merchant_id: uuid.UUID | None,
    channel: str,
    event: str,
    *,
    body: str,
    subject: str | None = None,
) -> NoticeTemplate:
    """Store (or replace) a template after :func:`validate_template`; raises TemplateInvalid."""
    validate_template(channel, event, body=body, subject=subject)
    row = _stored(session, merchant_id, channel, event)
    if row is None:
        row = NotificationTemplate(merchant_id=merchant_id, channel=channel, event=event, body="")
        session.add(row)
    row.body, row.subject = body, subject
    session.flush()
    return NoticeTemplate(channel, event, body, subject, "merchant" if merchant_id else "platform")


def reset_template(
    session: Session, merchant_id: uuid.UUID | None, channel: str, event: str
) -> bool:
    """Remove a stored template (the next scope applies again); False when there was none."""
    check_scope(channel, event)
    row = _stored(session, merchant_id, channel, event)
    if row is None:
        return False
    session.delete(row)
    return True


def list_templates(session: Session, merchant_id: uuid.UUID | None) -> list[NoticeTemplate]:
    """Every (channel, event)'s effective wording for this merchant (or the platform)."""
    return [
        effective_template(session, merchant_id, channel, event)
        for channel in CHANNELS
        for event in EVENTS
    ]


def _stored(
    session: Session, merchant_id: uuid.UUID | None, channel: str, event: str
) -> NotificationTemplate | None:
    scope = (
        NotificationTemplate.merchant_id.is_(None)
        if merchant_id is None
        else NotificationTemplate.merchant_id == merchant_id
    )
    return session.scalars(
        select(NotificationTemplate)
        .where(scope, NotificationTemplate.channel == channel, NotificationTemplate.event == event)
        .with_for_update()
    ).first()

"""The notifier seam: one small interface per customer channel, plain dataclasses in and out.

A notifier knows one provider's wire format and nothing of payments. What comes
out is sorted the way the workers need it:

* :class:`Delivery` with ``accepted=True`` — the provider took the message
  (``provider_ref`` is its id for it);
* :class:`Delivery` with ``accepted=False`` — a refusal that retrying cannot
  change (invalid number, blacklisted, bad credentials): record it, do not retry;
* :class:`ChannelUnavailable` — the provider could not take it now (network, 5xx,
  a transient status): the same message may be sent again later.

A timeout after the request left may have sent the message; it is still
``ChannelUnavailable``: for a notice, a rare duplicate beats a lost one (no SMS or
SMTP provider here offers an idempotency key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from shared.domain.errors import TransientError
from shared.domain.phone import mask_msisdn

_EMAIL_IN_TEXT = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")


class ChannelUnavailable(TransientError):
    """The provider did not take the message now; sending it again later may work."""


@dataclass(frozen=True)
class Notice:
    """One message for one customer: a phone (``2547XXXXXXXX``) or an e-mail address."""

    recipient: str
    body: str
    subject: str | None = None


@dataclass(frozen=True)
class Delivery:
    """What the provider did with a notice (see the module docstring)."""

    accepted: bool
    provider_ref: str | None = None
    error: str | None = None


class Notifier(Protocol):
    """One channel's client. Instances are per process and thread-safe."""

    channel: str

    def send(self, notice: Notice) -> Delivery:
        """Hand the notice to the provider. Raises ChannelUnavailable (retry later)."""
        ...


def mask_email(address: str) -> str:
    """``jane.doe@example.com`` → ``j***@example.com``: enough to tell mailboxes apart in logs."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if at else "***"


def mask_emails(text: str) -> str:
    """Mask every e-mail address in free text (provider errors may quote the recipient)."""
    return _EMAIL_IN_TEXT.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def mask_recipient(channel: str, recipient: str) -> str:
    """The form of a recipient that may be logged or stored next to an error."""
    if channel == "sms":
        return mask_msisdn(recipient.lstrip("+"))
    return mask_email(recipient)

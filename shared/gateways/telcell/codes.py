"""Telcell's result statuses in malipo's terms.

Only ``PAID`` is documented (a payment). Integrators also handle ``REJECTED`` (the
buyer refused the invoice); ``EXPIRED`` is what an invoice past its ``valid_days``
would say (unverified). Every other word is read as a failure the gateway gave no
reason for, as the one documented integration does: Telcell posts a result once the
invoice is closed, never while it is open.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain import errors
from shared.gateways.base import Outcome

PAID = "PAID"


@dataclass(frozen=True)
class StatusMeaning:
    outcome: Outcome
    failure_code: str | None = None


_FAILURES: dict[str, str] = {
    "REJECTED": errors.CANCELLED_BY_USER.code,
    "CANCELLED": errors.CANCELLED_BY_USER.code,
    "CANCELED": errors.CANCELLED_BY_USER.code,
    "EXPIRED": errors.TRANSACTION_EXPIRED.code,
}


def status_meaning(status: str) -> StatusMeaning:
    """``PAID`` succeeded; anything else failed, with the catalogue's closest reason."""
    word = status.strip().upper()
    if word == PAID:
        return StatusMeaning(Outcome.SUCCEEDED)
    return StatusMeaning(Outcome.FAILED, _FAILURES.get(word, errors.GATEWAY_REJECTED.code))

"""FastShift's order statuses and HTTP answers in malipo's terms.

From the Pay by FastShift v1.0 document: an order is ``pending`` (registered,
waiting for the customer), ``completed`` (paid), ``rejected`` (the customer
refused to pay) or ``expired``. The same word comes in status answers
(``data.order.status``) and in webhooks (``status``). Any other word is read
as PENDING, so that the status API, asked again, decides; nothing is credited
on a word we do not know.

Answers: 200 ``OK``, 422 ``INVALID_DATA`` (``errors`` by field), 403
``FORBIDDEN``, 401 ``UNAUTHORIZED``, 400 ``ERROR`` (``message``), 404
``NOT_FOUND``, 500 ``APP_ERROR``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shared.domain import errors
from shared.gateways.base import Outcome


@dataclass(frozen=True)
class StatusMeaning:
    outcome: Outcome
    failure_code: str | None = None


PENDING: Final = StatusMeaning(Outcome.PENDING)
STATUSES: Final[dict[str, StatusMeaning]] = {
    "pending": PENDING,
    "completed": StatusMeaning(Outcome.SUCCEEDED),
    # "user refused to pay": the customer declined on FastShift's page or in the app.
    "rejected": StatusMeaning(Outcome.FAILED, errors.CANCELLED_BY_USER.code),
    "expired": StatusMeaning(Outcome.EXPIRED, errors.TRANSACTION_EXPIRED.code),
}
FINAL_STATUSES: Final = frozenset({"completed", "rejected", "expired"})

# HTTP answers that say the merchant's token is wrong or not allowed.
AUTH_STATUSES: Final = frozenset({401, 403})
# "Busy, nothing done": safe to retry after a pause.
BUSY_STATUSES: Final = frozenset({429})


def normalised(status: str) -> str:
    return status.strip().lower()


def meaning(status: str) -> StatusMeaning:
    """What an order status means; an unknown word is PENDING (the status API decides)."""
    return STATUSES.get(normalised(status), PENDING)

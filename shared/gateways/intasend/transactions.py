"""IntaSend's list of transactions on the wire, read as the seam's GatewayTransaction.

The reference documents no IntaSend transaction list: the shape here is a guess in
the Django REST style of IntaSend's other lists, unverified, and kept lenient:
``GET transactions/?start_date=<ISO>&end_date=<ISO>&page=<n>`` (Bearer secret and the
public key header) answers ``{count, next, previous, results: [invoice rows]}``, each
row the invoice's flat fields (``invoice_id, state, value, currency, account,
api_ref, mpesa_reference, updated_at, …``). Also unverified, and so decided here:
that the bounds may be date-times with an offset (they are sent in UTC) and the end is
exclusive (rows outside ``[start, end)`` are dropped here whatever the gateway
sends); that ``updated_at`` is when an invoice became final (a time without an offset
is taken as Nairobi's); that ``count`` counts every row of every page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from shared.domain.money import EXPONENTS
from shared.gateways.base import GatewayTransaction, Outcome
from shared.gateways.intasend import codes
from shared.gateways.intasend.transformers import (
    MAX_ID_LENGTH,
    InvoiceUnreadable,
    amount_of,
    invoice_id_of,
    state_of,
)

TRANSACTIONS_PATH: Final = "transactions/"
NAIROBI: Final = timezone(timedelta(hours=3), "EAT")
# A list's final states in the seam's terms; the finer meaning of a failure is in ``raw``.
OUTCOMES: Final = {codes.COMPLETE: Outcome.SUCCEEDED, codes.FAILED: Outcome.FAILED}


class ListUnreadable(ValueError):
    """An answer or a row that is not the list's shape."""


def list_params(start: datetime, end: datetime, page: int) -> dict[str, str]:
    """The query of one page: the window in UTC (aware datetimes only) and the page."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the window's start and end must be timezone-aware")
    return {
        "start_date": start.astimezone(UTC).isoformat(),
        "end_date": end.astimezone(UTC).isoformat(),
        "page": str(page),
    }


def page_of(body: object) -> tuple[list[Mapping[str, Any]], bool, int | None]:
    """A page's rows, whether another follows (``next`` set) and ``count`` when given."""
    if not isinstance(body, Mapping) or not isinstance(body.get("results"), list):
        raise ListUnreadable("not a page of results")
    rows = body["results"]
    if not all(isinstance(row, Mapping) for row in rows):
        raise ListUnreadable("a result is not an object")
    count = body.get("count")
    known = count if isinstance(count, int) and not isinstance(count, bool) else None
    return rows, bool(body.get("next")), known


def completed_at_of(row: Mapping[str, Any]) -> datetime:
    """``updated_at`` as an aware datetime (IntaSend's time zone when it names none)."""
    value = row.get("updated_at")
    if not isinstance(value, str):
        raise ListUnreadable("updated_at is missing")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ListUnreadable(f"updated_at is not a time: {value[:40]!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=NAIROBI)


def transaction_of(row: Mapping[str, Any]) -> GatewayTransaction | None:
    """One row as a GatewayTransaction; None while it is not final. Raises ListUnreadable."""
    try:
        state = state_of(row)
        if state in codes.IN_FLIGHT:
            return None
        invoice_id = invoice_id_of(row)
        currency = str(row.get("currency") or "KES").strip().upper()
        if currency not in EXPONENTS:
            raise InvoiceUnreadable(f"currency {currency[:8]!r} is not one malipo knows")
        amount = amount_of(row.get("value"), currency)
    except InvoiceUnreadable as exc:
        raise ListUnreadable(str(exc)) from None
    if amount is None:
        raise ListUnreadable(f"invoice {invoice_id} has no value")
    return GatewayTransaction(
        receipt=_text(row.get("mpesa_reference")),
        gateway_ref=invoice_id,
        account_ref=_text(row.get("api_ref")),
        amount=amount,
        outcome=OUTCOMES[state],
        completed_at=completed_at_of(row),
        phone=_text(row.get("account")),
        raw=dict(row),
    )


def _text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    return text[:MAX_ID_LENGTH] if text else None

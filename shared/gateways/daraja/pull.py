"""Daraja's Pull Transactions API, read for reconciliation (wire facts unverified).

``POST /pulltransactions/v1/query`` ``{ShortCode, StartDate, EndDate, OffSetValue}``
(times in Nairobi, ``YYYY-MM-DD HH:MM:SS``) answers pages of at most 1,000 rows,
``Response: [[{transactionId, trxDate, msisdn, sender, transactiontype,
billreference, amount, organizationname}]]``, over at most the last 48 hours. The
shortcode must have been registered for it (``/pulltransactions/v1/register``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from shared.domain.money import Money
from shared.gateways.base import GatewayTransaction, Outcome

PULL_QUERY_PATH = "/pulltransactions/v1/query"
PULL_REGISTER_PATH = "/pulltransactions/v1/register"
PAGE_ROWS = 1000
MAX_SPAN = timedelta(hours=48)
NAIROBI = ZoneInfo("Africa/Nairobi")
SUCCESS_CODES = ("1000", "0")


def nairobi_text(moment: datetime) -> str:
    return moment.astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M:%S")


def spans(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` in pieces Daraja accepts (48 hours at most each).

    Aware datetimes only: a naive one would be read in the host's time zone, not Nairobi's.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the window's start and end must be timezone-aware")
    while start < end:
        piece_end = min(end, start + MAX_SPAN)
        yield start, piece_end
        start = piece_end


# Day-first exports (``01/12/2026 10:30:00``), as portals in Kenya write them.
DAY_FIRST = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d-%m-%Y %H:%M:%S")


def parse_time(value: object) -> datetime:
    """``2026-12-01 10:30:00`` (Nairobi), ISO 8601 with an offset, ``20261201103000``, or
    day first (``01/12/2026 10:30:00``). ValueError otherwise."""
    text = str(value).strip()
    if text.isdigit() and len(text) == 14:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for layout in DAY_FIRST:
            try:
                return datetime.strptime(text, layout).replace(tzinfo=NAIROBI)
            except ValueError:
                continue
        raise ValueError(f"not a time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=NAIROBI)


def parse_amount(value: object, currency: str = "KES") -> Money:
    """A number, or a decimal string with thousands separators (``1,500.00``)."""
    try:
        amount = Decimal(str(value).replace(",", "").strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None
    minor = amount * 100
    if minor != minor.to_integral_value() or minor < 0:
        raise ValueError(f"not an amount of whole cents: {value!r}")
    return Money(int(minor), currency)


def rows_of(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of one answer (``Response`` is a list of lists of rows; tolerate one level)."""
    response = document.get("Response") or []
    rows: list[dict[str, Any]] = []
    for entry in response if isinstance(response, list) else []:
        if isinstance(entry, list):
            rows.extend(row for row in entry if isinstance(row, dict))
        elif isinstance(entry, dict):
            rows.append(entry)
    return rows


def transaction_of(row: Mapping[str, Any]) -> GatewayTransaction:
    """One Pull Transactions row: money paid in to the shortcode. ValueError if unreadable."""
    receipt = str(row.get("transactionId") or "").strip()
    if not receipt:
        raise ValueError("a row without a transactionId")
    return GatewayTransaction(
        receipt=receipt,
        gateway_ref=None,
        account_ref=str(row.get("billreference") or "").strip() or None,
        amount=parse_amount(row.get("amount")),
        outcome=Outcome.SUCCEEDED,
        completed_at=parse_time(row.get("trxDate")),
        phone=str(row.get("msisdn") or "") or None,
        raw=dict(row),
    )

"""``GET transactions/``: the account's own list of finished collections, for reconciliation.

The reference documents no IntaSend transaction list, so this shape is a guess in
Django REST Framework's style (IntaSend's API is DRF), unverified:
``GET /api/v1/transactions/?start_date=<ISO>&end_date=<ISO>&page=<n>`` with the
Bearer secret (and the public key header, as the STK push) answers ``{count, next,
previous, results: [{invoice_id, state, provider, charges, net_amount, currency,
value, account, api_ref, mpesa_reference, failed_reason, failed_code, created_at,
updated_at}]}``: the account's invoices that are COMPLETE or FAILED with
``start_date <= updated_at < end_date`` (either bound may be left out; a time without
an offset is Nairobi's), oldest ``updated_at`` first, ``list_page_size`` a page.
``next`` and ``previous`` are absolute URLs, as DRF builds them; a page past the last
is 404 ``{"detail": "Invalid page."}``, a bad date 400 in the validation shape.

The discrepancies injected on ``/_sim/statement/discrepancies`` are applied here:
a changed ``value``, a row shown twice, a row left out, a FAILED state (the status
API says it too), a COMPLETE invoice nothing announced.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Final
from urllib.parse import urlencode

import falcon

from sandbox.intasend import invoices
from sandbox.intasend.api import send_detail, send_errors
from sandbox.intasend.invoices import NAIROBI
from sandbox.intasend.settings import IntaSendSimSettings
from sandbox.intasend.state import SimulatorState
from sandbox.intasend.transfers import authenticated

INVALID_PAGE: Final = "Invalid page."
INVALID_DATE: Final = "Enter a valid date/time."
# A "+hh:mm" offset sent unencoded arrives as " hh:mm" ("+" is a space in a query string).
_SPACED_OFFSET: Final = re.compile(r" (\d\d:?\d\d)$")


def parse_bound(text: str) -> datetime:
    """An ISO date or date-time; without an offset, Nairobi's. Raises ValueError."""
    moment = datetime.fromisoformat(_SPACED_OFFSET.sub(r"+\1", text.strip()))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=NAIROBI)


def statement_rows(
    state: SimulatorState, public_key: str, start: datetime | None, end: datetime | None
) -> list[dict[str, object]]:
    """The list's lines for one account and window, discrepancies applied, oldest first."""
    now = state.now()
    everything, discrepancies = state.statement()
    dropped = {d.invoice_id for d in discrepancies if d.kind == "dropped"}
    repeated = {d.invoice_id for d in discrepancies if d.kind == "receipt_repeated"}
    values: dict[str, Decimal] = {
        d.invoice_id: d.amount
        for d in discrepancies
        if d.kind == "amount_changed" and d.amount is not None
    }
    found: list[tuple[datetime, str, dict[str, object]]] = []
    for invoice in everything:
        if invoice.public_key != public_key or invoice.invoice_id in dropped:
            continue
        current = invoice.state_at(now)
        if current not in invoices.FINAL_STATES:
            continue
        updated = invoice.moment(invoice.entered_at(current))
        if (start is not None and updated < start) or (end is not None and updated >= end):
            continue
        row = invoice.row(current, values.get(invoice.invoice_id))
        found.append((updated, invoice.invoice_id, row))
    rows: list[dict[str, object]] = []
    for _, invoice_id, row in sorted(found, key=lambda item: (item[0], item[1])):
        rows.append(row)
        if invoice_id in repeated:
            rows.append(dict(row))
    return rows


class TransactionsResource:
    """``GET /api/v1/transactions/?start_date=&end_date=&page=`` (see the module's docstring)."""

    def __init__(self, state: SimulatorState, settings: IntaSendSimSettings) -> None:
        self._state = state
        self._settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        account = authenticated(self._state, self._settings, req)
        if isinstance(account, str):
            send_detail(resp, 401, account)
            return
        bounds: dict[str, datetime | None] = {}
        problems: list[tuple[str, str, str | None]] = []
        for name in ("start_date", "end_date"):
            text = req.get_param(name)
            try:
                bounds[name] = parse_bound(text) if text else None
            except ValueError:
                problems.append(("invalid", INVALID_DATE, name))
        if problems:
            send_errors(resp, problems)
            return
        rows = statement_rows(
            self._state, account.publishable_key, bounds["start_date"], bounds["end_date"]
        )
        size = self._settings.list_page_size
        page_text = req.get_param("page") or "1"
        page = int(page_text) if page_text.isascii() and page_text.isdigit() else 0
        pages = max(1, -(-len(rows) // size))
        if not 1 <= page <= pages:
            send_detail(resp, 404, INVALID_PAGE)
            return
        start = (page - 1) * size
        resp.media = {
            "count": len(rows),
            "next": _page_url(req, page + 1) if page < pages else None,
            "previous": _page_url(req, page - 1) if page > 1 else None,
            "results": rows[start : start + size],
        }


def _page_url(req: falcon.Request, page: int) -> str:
    """This request's absolute URL on another page (DRF leaves ``page`` out for the first)."""
    params = {name: value for name, value in req.params.items() if name != "page"}
    if page > 1:
        params["page"] = str(page)
    query = urlencode(params, doseq=True)
    return f"{req.prefix}{req.path}" + (f"?{query}" if query else "")

"""The M-Pesa organisation portal statement (CSV export), read as the gateway's own list.

Columns are found by name, not position, and the variants seen in exports are
accepted: ``Receipt No.`` / ``Receipt No`` / ``Receipt`` / ``Transaction ID``;
``Completion Time`` / ``Date``; ``A/C No.`` / ``Account No.``; amounts with thousands
separators (``1,500.00``); a byte-order mark; any header case and spacing. A line
without ``Paid In`` (money out, charges) is not a collection and is skipped. A file
without a receipt or a ``Paid In`` column is refused, naming what it has.
"""

from __future__ import annotations

import csv
import io
import re

from shared.gateways.base import GatewayTransaction, Outcome
from shared.gateways.daraja.pull import parse_amount, parse_time

COLUMNS = {
    "receipt": ("receipt no.", "receipt no", "receipt", "transaction id", "receipt number"),
    "completed": ("completion time", "date", "completion date", "transaction date"),
    "paid_in": ("paid in", "paid in (ksh)", "amount paid in"),
    "status": ("transaction status", "status"),
    "other_party": ("other party info", "other party"),
    "account": ("a/c no.", "a/c no", "account no.", "account no", "account number"),
}
REQUIRED = ("receipt", "paid_in", "completed")


class StatementInvalid(ValueError):
    """A file that cannot be read as an organisation portal statement; the message says why."""


def _normal(header: str) -> str:
    return re.sub(r"\s+", " ", header.replace("\ufeff", "")).strip().lower()


def parse_statement(text: str) -> list[GatewayTransaction]:
    """Every paid-in line of the statement, as the gateway's transactions."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header:
        raise StatementInvalid("the file is empty")
    names = [_normal(h) for h in header]
    where: dict[str, int] = {}
    for field, accepted in COLUMNS.items():
        for n, name in enumerate(names):
            if name in accepted:
                where[field] = n
                break
    missing = [field for field in REQUIRED if field not in where]
    if missing:
        wanted = {"receipt": "Receipt No.", "paid_in": "Paid In", "completed": "Completion Time"}
        found = ", ".join(h.strip() for h in header if h.strip()) or "none"
        raise StatementInvalid(
            f"no {' or '.join(wanted[m] for m in missing)} column (columns found: {found})"
        )
    transactions = []
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue

        def cell(field: str, cells: list[str] = cells) -> str:
            n = where.get(field)
            return cells[n].strip() if n is not None and n < len(cells) else ""

        paid_in = cell("paid_in")
        if not paid_in:
            continue
        receipt = cell("receipt")
        try:
            amount = parse_amount(paid_in)
            completed = parse_time(cell("completed"))
        except ValueError as exc:
            raise StatementInvalid(f"line {line}: {exc}") from None
        if not receipt:
            raise StatementInvalid(f"line {line}: a paid-in line without a receipt")
        status = cell("status").lower()
        party = cell("other_party")
        transactions.append(
            GatewayTransaction(
                receipt=receipt,
                gateway_ref=None,
                account_ref=cell("account") or None,
                amount=amount,
                outcome=Outcome.SUCCEEDED if status in ("", "completed") else Outcome.FAILED,
                completed_at=completed,
                phone=party.split(" - ", 1)[0].strip() or None,
                raw={header[n].strip(): cells[n] for n in range(min(len(header), len(cells)))},
            )
        )
    return transactions

"""What a shortcode's own records show: Pull Transactions and the organisation portal statement.

Both list the shortcode's successful STK payments whose completion time (the
callback's ``TransactionDate``) falls in a window, once they are due. Discrepancies
injected on the control API change that list and nothing else, as when a gateway's
records disagree with what it told the merchant:

* ``amount_changed`` ``{checkout_request_id, amount}`` — listed with another amount;
* ``receipt_repeated`` ``{checkout_request_id}`` — listed twice;
* ``dropped`` ``{checkout_request_id}`` — not listed;
* ``gateway_only`` ``{shortcode, amount, phone, account_reference}`` — a payment only
  the statement shows (a new receipt, completed now).

The Pull Transactions wire shape follows Safaricom's published samples (unverified).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import falcon

from sandbox.daraja import ids
from sandbox.daraja.gateway import _AuthorizedJsonResource, send_error
from sandbox.daraja.state import SimulatorState, Transaction
from sandbox.web import json_object

PAGE_ROWS = 1000
MAX_SPAN = timedelta(hours=48)
KINDS = ("amount_changed", "receipt_repeated", "dropped", "gateway_only")
STATEMENT_COLUMNS = (
    "Receipt No.",
    "Completion Time",
    "Initiation Time",
    "Details",
    "Transaction Status",
    "Paid In",
    "Withdrawn",
    "Balance",
    "Balance Confirmed",
    "Reason Type",
    "Other Party Info",
    "Linked Transaction ID",
    "A/C No.",
)
# Another export's headers, as seen in the wild.
SHORT_COLUMNS = {
    "Receipt No.": "Receipt No",
    "Completion Time": "Date",
    "A/C No.": "Account No.",
}


def masked(phone: str) -> str:
    """``254712345678`` → ``2547******78``, as statements show the other party."""
    return f"{phone[:4]}******{phone[-2:]}" if len(phone) >= 8 else "******"


def parse_nairobi(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=ids.NAIROBI)


def listed(
    state: SimulatorState, shortcode: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The shortcode's successful payments completed in ``[start, end]``, as it lists them."""
    discrepancies = state.discrepancies()
    changed = {
        str(d["checkout_request_id"]): d["amount"]
        for d in discrepancies
        if d["kind"] == "amount_changed"
    }
    repeated = {
        str(d["checkout_request_id"]) for d in discrepancies if d["kind"] == "receipt_repeated"
    }
    dropped = {str(d["checkout_request_id"]) for d in discrepancies if d["kind"] == "dropped"}
    now = state.now()
    rows = []
    for transaction in state.transactions():
        if (
            transaction.shortcode != shortcode
            or not transaction.outcome.succeeded
            or not transaction.is_due(now)
            or transaction.checkout_request_id in dropped
        ):
            continue
        row = _row(transaction)
        row["amount"] = changed.get(transaction.checkout_request_id, row["amount"])
        rows.append(row)
        if transaction.checkout_request_id in repeated:
            rows.append(dict(row))
    for only in discrepancies:
        if only["kind"] == "gateway_only" and only["shortcode"] == shortcode:
            rows.append(dict(only["row"]))  # type: ignore[call-overload]
    rows = [r for r in rows if start <= parse_nairobi(str(r["trxDate"])) <= end]
    return sorted(rows, key=lambda r: (str(r["trxDate"]), str(r["transactionId"])))


def _row(transaction: Transaction) -> dict[str, Any]:
    completed = datetime.strptime(str(transaction.transaction_date), "%Y%m%d%H%M%S")
    return {
        "transactionId": transaction.receipt,
        "trxDate": completed.strftime("%Y-%m-%d %H:%M:%S"),
        "msisdn": masked(transaction.phone),
        "sender": "JOHN DOE",
        "transactiontype": transaction.transaction_type,
        "billreference": transaction.account_reference,
        "amount": transaction.amount,
        "organizationname": f"Shortcode {transaction.shortcode}",
        "initiated": transaction.created_at,
    }


class PullRegisterResource(_AuthorizedJsonResource):
    """``POST /pulltransactions/v1/register``: every registered shortcode may pull."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._body(req, resp)
        if body is None:
            return
        resp.media = {
            "ResponseRefID": ids.request_id(),
            "ResponseStatus": "1000",
            "ShortCode": str(body.get("ShortCode", "")),
            "ResponseDescription": "Shortcode registered successfully",
        }


class PullQueryResource(_AuthorizedJsonResource):
    """``POST /pulltransactions/v1/query``: a page of up to 1,000 rows from ``OffSetValue``."""

    def __init__(self, state: SimulatorState, page_rows: int = PAGE_ROWS) -> None:
        super().__init__(state)
        self._page_rows = page_rows

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._body(req, resp)
        if body is None:
            return
        shortcode = str(body.get("ShortCode", ""))
        if self._state.passkey_for(shortcode) is None:
            send_error(resp, 400, "400.002.02", "Bad Request - Invalid ShortCode")
            return
        try:
            start = parse_nairobi(str(body["StartDate"]))
            end = parse_nairobi(str(body["EndDate"]))
            offset = int(str(body.get("OffSetValue", "0")))
        except (KeyError, ValueError):
            send_error(
                resp, 400, "400.002.02", "Bad Request - Invalid StartDate/EndDate/OffSetValue"
            )
            return
        if offset < 0:
            send_error(resp, 400, "400.002.02", "Bad Request - Invalid OffSetValue")
            return
        if end < start:
            send_error(resp, 400, "400.002.02", "Bad Request - EndDate is before StartDate")
            return
        if end - start > MAX_SPAN:
            send_error(resp, 400, "400.002.02", "Bad Request - the window is at most 48 hours")
            return
        rows = listed(self._state, shortcode, start, end)
        page = [
            {k: v for k, v in row.items() if k != "initiated"}
            for row in rows[offset : offset + self._page_rows]
        ]
        resp.media = {
            "ResponseRefID": ids.request_id(),
            "ResponseCode": "1000",
            "ResponseMessage": "Success",
            "Response": [page],
        }


class DiscrepanciesResource:
    """``POST|GET|DELETE /_sim/statement/discrepancies`` (see the module docstring)."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._state.discrepancies()

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._state.clear_discrepancies()
        resp.status = falcon.HTTP_204

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        kind = body.get("kind")
        if kind not in KINDS:
            raise falcon.HTTPBadRequest(
                title="Invalid kind", description=f"kind must be one of {list(KINDS)}"
            )
        if kind == "gateway_only":
            discrepancy = self._gateway_only(body)
        else:
            checkout_id = str(body.get("checkout_request_id", ""))
            if self._state.transaction(checkout_id) is None:
                raise falcon.HTTPNotFound(description=f"no transaction {checkout_id}")
            discrepancy = {"kind": kind, "checkout_request_id": checkout_id}
            if kind == "amount_changed":
                amount = body.get("amount")
                if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                    raise falcon.HTTPBadRequest(
                        title="Invalid field", description="amount must be a positive integer"
                    )
                discrepancy["amount"] = amount
        self._state.add_discrepancy(discrepancy)
        resp.status = falcon.HTTP_201
        resp.media = discrepancy.get("row", discrepancy)

    def _gateway_only(self, body: dict[str, object]) -> dict[str, object]:
        amount, phone = body.get("amount"), str(body.get("phone", ""))
        shortcode = str(body.get("shortcode", ""))
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise falcon.HTTPBadRequest(
                title="Invalid field", description="amount must be a positive integer"
            )
        if not phone.isdigit() or self._state.passkey_for(shortcode) is None:
            raise falcon.HTTPBadRequest(
                title="Invalid field",
                description="phone (digits) and a known shortcode are required",
            )
        now = ids.nairobi_now()
        row = {
            "transactionId": self._state.new_receipt(),
            "trxDate": now.strftime("%Y-%m-%d %H:%M:%S"),
            "msisdn": masked(phone),
            "sender": "JANE DOE",
            "transactiontype": "CustomerPayBillOnline",
            "billreference": str(body.get("account_reference", "")),
            "amount": amount,
            "organizationname": f"Shortcode {shortcode}",
            "initiated": now.isoformat(timespec="seconds"),
        }
        return {"kind": "gateway_only", "shortcode": shortcode, "row": row}


class StatementResource:
    """``GET /_sim/statement.csv?shortcode=&from=&to=[&variant=short]``: the portal's export."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            start = parse_nairobi(req.get_param("from", required=True))
            end = parse_nairobi(req.get_param("to", required=True))
        except ValueError:
            raise falcon.HTTPBadRequest(
                title="Invalid window", description="from/to: ISO 8601"
            ) from None
        short = req.get_param("variant") == "short"
        rows = listed(self._state, req.get_param("shortcode", required=True), start, end)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([SHORT_COLUMNS.get(c, c) if short else c for c in STATEMENT_COLUMNS])
        for row in rows:
            paid_in = f"{row['amount']:.2f}" if short else f"{row['amount']:,.2f}"
            writer.writerow(
                [
                    row["transactionId"],
                    row["trxDate"],
                    str(row["initiated"]).replace("T", " ")[:19],
                    f"Pay Bill Online from {row['msisdn']} - {row['sender']} "
                    f"Acc. {row['billreference']}",
                    "Completed",
                    paid_in,
                    "",
                    "",
                    "",
                    "Pay Bill Online",
                    f"{row['msisdn']} - {row['sender']}",
                    "",
                    row["billreference"],
                ]
            )
        resp.content_type = "text/csv; charset=utf-8"
        resp.text = out.getvalue()

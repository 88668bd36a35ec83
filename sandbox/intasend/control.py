"""The ``/_sim`` control API: set dashboard webhooks, steer outcomes, inspect what happened.

Bad input is answered 400 with falcon's JSON error document (``title``,
``description``), unknown ids 404.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Final

import falcon

from sandbox.intasend import accounts, invoices
from sandbox.intasend.accounts import Account, Webhook
from sandbox.intasend.invoices import Customer, Invoice
from sandbox.intasend.scenarios import DEFAULT_FAILED_REASON, Outcome, ScenarioBook, decimal_amount
from sandbox.intasend.settings import IntaSendSimSettings
from sandbox.intasend.state import DISCREPANCY_KINDS, Discrepancy, SimulatorState
from sandbox.intasend.webhooks import WebhookDispatcher
from sandbox.web import json_object

REQUEST_KINDS: Final = (
    "stk_push",
    "collection",
    "status",
    "chargeback",
    "send_money",
    "transactions",
    "other",
)
# The fields each discrepancy kind takes besides ``kind`` (required first, then optional).
DISCREPANCY_FIELDS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "amount_changed": (("invoice_id", "amount"), ()),
    "receipt_repeated": (("invoice_id",), ()),
    "dropped": (("invoice_id",), ()),
    "failed": (("invoice_id",), ("failed_code", "failed_reason")),
    "gateway_only": (("public_key", "amount", "phone"), ("api_ref",)),
}
MAX_AMOUNT: Final = Decimal(150_000)
_PHONE: Final = re.compile(r"254[17][0-9]{8}")


def _text(body: dict[str, object], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 2000:
        raise falcon.HTTPBadRequest(title="Invalid field", description=f"{key} must be a string")
    return value


class WebhooksResource:
    """``POST /_sim/webhooks {public_key, url, challenge}`` (url null: remove); ``GET`` lists."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        public_key = _text(body, "public_key")
        url = _text(body, "url", required=False)
        if url is not None and not url.startswith(("http://", "https://")):
            raise falcon.HTTPBadRequest(title="Invalid field", description="url must be http(s)")
        webhook = None
        if url is not None:
            webhook = Webhook(url, _text(body, "challenge") or "")
        if not self._state.set_webhook(str(public_key), webhook):
            raise falcon.HTTPNotFound(description=f"no account {public_key}")
        resp.media = {"public_key": public_key, "url": url}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [
            {
                "public_key": a.publishable_key,
                "url": a.webhook.url,
                "challenge": a.webhook.challenge,
            }
            for a in self._state.accounts()
            if a.webhook is not None
        ]


class AccountsResource:
    """``POST /_sim/accounts {publishable_key?, secret_key?, wallet_id?}``; ``GET`` lists."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        publishable = (
            _text(body, "publishable_key", required=False) or accounts.new_publishable_key()
        )
        secret = _text(body, "secret_key", required=False) or accounts.new_secret_key()
        wallet = _text(body, "wallet_id", required=False) or accounts.new_wallet_id()
        account = Account(publishable, secret, frozenset({wallet}))
        self._state.add_account(account)
        resp.status = 201
        resp.media = account.to_json()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [a.to_json() for a in self._state.accounts()]


class RequestsResource:
    """``GET /_sim/requests?kind=stk_push|collection|status|other``: API requests, newest last."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        kind = req.get_param("kind")
        if kind is not None and kind not in REQUEST_KINDS:
            raise falcon.HTTPBadRequest(
                title="Invalid kind", description=f"kind must be one of {list(REQUEST_KINDS)}"
            )
        resp.media = [r.to_json() for r in self._state.requests(kind)]


class DeliveriesResource:
    """``GET /_sim/deliveries?invoice_id=``: every webhook attempt, newest last."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [d.to_json() for d in self._state.deliveries(req.get_param("invoice_id"))]


class InvoicesResource:
    """``GET /_sim/invoices``, ``GET /_sim/invoices/{id}``, ``POST /_sim/invoices/{id}/resend``."""

    def __init__(self, state: SimulatorState, dispatcher: WebhookDispatcher) -> None:
        self._state = state
        self._dispatcher = dispatcher

    def _shown(self, invoice_id: str) -> dict[str, object]:
        invoice = self._state.invoice(invoice_id)
        if invoice is None:
            raise falcon.HTTPNotFound(description=f"no invoice {invoice_id}")
        return {
            "invoice": invoice.document(invoice.state_at(self._state.now())),
            "public_key": invoice.public_key,
            "narrative": invoice.narrative,
            "wallet_id": invoice.wallet_id,
            "customer": invoice.customer.to_json(invoice.wall(invoice.created_at)),
            **invoice.outcome.to_json(),
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [self._shown(i.invoice_id) for i in self._state.invoices()]

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, invoice_id: str) -> None:
        resp.media = self._shown(invoice_id)

    def on_post_resend(self, req: falcon.Request, resp: falcon.Response, invoice_id: str) -> None:
        invoice = self._state.invoice(invoice_id)
        if invoice is None:
            raise falcon.HTTPNotFound(description=f"no invoice {invoice_id}")
        state = invoice.state_at(self._state.now())
        self._dispatcher.schedule(self._state.now(), invoice_id, state)
        resp.status = 202
        resp.media = {"scheduled": True, "invoice_id": invoice_id, "state": state}


class DiscrepanciesResource:
    """``POST /_sim/statement/discrepancies {kind, …}`` → 201; ``GET`` lists, ``DELETE`` clears.

    ``amount_changed {invoice_id, amount}``, ``receipt_repeated {invoice_id}``,
    ``dropped {invoice_id}``, ``failed {invoice_id, failed_code?, failed_reason?}``
    answer the discrepancy; ``gateway_only {public_key, amount, phone, api_ref?}``
    answers the list's row of the COMPLETE invoice it made (no push, no webhook).
    """

    def __init__(self, state: SimulatorState, settings: IntaSendSimSettings) -> None:
        self._state = state
        self._settings = settings

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        kind = body.get("kind")
        if not isinstance(kind, str) or kind not in DISCREPANCY_KINDS:
            raise falcon.HTTPBadRequest(
                title="Invalid kind", description=f"kind must be one of {list(DISCREPANCY_KINDS)}"
            )
        required, optional = DISCREPANCY_FIELDS[kind]
        unknown = sorted(set(body) - {"kind", *required, *optional})
        if unknown:
            raise falcon.HTTPBadRequest(
                title="Invalid field", description=f"{kind} takes no {', '.join(unknown)}"
            )
        if kind == "gateway_only":
            resp.status, resp.media = 201, self._gateway_only(req, body)
            return
        invoice_id = str(_text(body, "invoice_id"))
        if self._state.invoice(invoice_id) is None:
            raise falcon.HTTPNotFound(description=f"no invoice {invoice_id}")
        discrepancy = Discrepancy(
            kind,
            invoice_id,
            amount=_amount(body) if kind == "amount_changed" else None,
            failed_code=_text(body, "failed_code", required=False) if kind == "failed" else None,
            failed_reason=(
                (_text(body, "failed_reason", required=False) or DEFAULT_FAILED_REASON)
                if kind == "failed"
                else None
            ),
            at=self._state.now(),
        )
        self._state.add_discrepancy(discrepancy)
        resp.status, resp.media = 201, discrepancy.to_json()

    def _gateway_only(self, req: falcon.Request, body: dict[str, object]) -> dict[str, object]:
        public_key = str(_text(body, "public_key"))
        if self._state.account(public_key) is None:
            raise falcon.HTTPNotFound(description=f"no account {public_key}")
        amount = _amount(body)
        phone = str(_text(body, "phone"))
        if not _PHONE.fullmatch(phone):
            raise falcon.HTTPBadRequest(
                title="Invalid field", description="phone must look like 2547XXXXXXXX"
            )
        api_ref = _text(body, "api_ref", required=False)
        now = self._state.now()

        def make(invoice_id: str) -> Invoice:
            return Invoice(
                invoice_id=invoice_id,
                public_key=public_key,
                customer=Customer(invoices.new_meta_id()[:8].upper(), phone, None, None, None),
                value=amount,
                charges=invoices.charges_for(amount, self._settings.fee_percent),
                currency="KES",
                api_ref=api_ref,
                narrative=None,
                wallet_id=None,
                host=f"{req.scheme}://{req.netloc}",
                outcome=Outcome(webhook="none", source="gateway_only"),
                created_at=now,
                processing_at=now,
                final_at=now,
                created_wall=self._state.wall_at(now),
                receipt=invoices.mpesa_reference(),
                meta_id=invoices.new_meta_id(),
            )

        invoice = self._state.add_gateway_only(make, invoices.invoice_id, now)
        return invoice.row(invoices.COMPLETE)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [d.to_json() for d in self._state.discrepancies()]

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._state.clear_discrepancies()
        resp.media = {"cleared": True}


def _amount(body: dict[str, object]) -> Decimal:
    """``amount`` as KES (a number or decimal string): above 0, at most 150,000, in cents."""
    amount = decimal_amount(body.get("amount"))
    if amount is None or not 0 < amount <= MAX_AMOUNT or amount != amount.quantize(invoices.CENTS):
        raise falcon.HTTPBadRequest(
            title="Invalid field", description="amount must be KES 0.01 to 150,000 in cents"
        )
    return amount


class ResetResource:
    """``POST /_sim/reset``: forget everything but the built-in account and the settings."""

    def __init__(
        self,
        state: SimulatorState,
        scenarios: ScenarioBook,
        dispatcher: WebhookDispatcher,
        *also: Callable[[], None],
    ) -> None:
        self._state = state
        self._scenarios = scenarios
        self._dispatcher = dispatcher
        self._also = also

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._dispatcher.clear()
        self._scenarios.clear()
        for step in self._also:
            step()
        self._state.reset()
        resp.media = {"reset": True}


class HealthResource:
    """``GET /_sim/health``."""

    def __init__(self, state: SimulatorState, dispatcher: WebhookDispatcher) -> None:
        self._state = state
        self._dispatcher = dispatcher

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "status": "ok",
            "gateway": "intasend",
            "invoices": len(self._state.invoices()),
            "pending_webhooks": self._dispatcher.pending(),
        }

"""Money out in the IntaSend simulator: chargebacks (refunds) and send-money (M-Pesa B2C).

API (Bearer secret, as the STK push; under ``/api/v1``):

- ``POST chargebacks/`` ``{invoice, amount, reason, reason_details?}`` → 201 ``{id,
  transaction, invoice, amount, reason, reason_details, status: "PENDING", resolution,
  staff_created, created_at, updated_at}``; refused (400, ``attr: amount``) above what
  is left of a COMPLETE invoice (its value less every chargeback not CANCELLED); 404
  for another account's or an unknown invoice. ``GET chargebacks/?page=`` (``{count,
  next, previous, results}``, 50 a page, oldest first), ``GET chargebacks/{id}/``.
  PENDING until the scenario's delay, then COMPLETED (the money goes back) or
  CANCELLED; the webhook ``{chargeback_id, invoice{…}, amount, reason, reason_details,
  status, resolution, challenge}`` goes to the account's dashboard URL.
- ``POST send-money/initiate/`` ``{provider: "MPESA-B2C", currency: "KES",
  transactions: [{account, amount, narrative?, name?, idempotency_key?}], callback_url?,
  requires_approval: "YES"|"NO", api_ref?}`` → the batch ``{tracking_id, nonce, status,
  status_code, transactions: [{transaction_id, status, status_code, status_description,
  request_reference_id, idempotency_key, account, amount, provider_reference, …}], …}``.
  A second transaction with a known ``idempotency_key`` is refused (400, ``attr:
  idempotency_key``). With ``YES`` it waits (BP103) for ``POST send-money/approve/``
  ``{tracking_id, nonce}``; then it is sent (BP110 / TP102) and ends after the delay:
  BC100 with TS100 (the money moves) or TF106, or BF105 (float low, nothing sent).
  ``POST send-money/status/`` ``{tracking_id}``; ``GET send-money/?page=`` lists batches.
  The final batch + ``challenge`` is posted to ``callback_url``.

Controls (``/_sim``): ``POST /transfer-scenarios {match: {phone}|{invoice}|{amount},
kind?: refund|payout, outcome?: complete|cancel|fail|float_low|pending,
failed_reason?, webhook?: once|twice|none, delay_s?, answer_delay_s?, error?:
{status, times?}}`` (``GET`` lists, ``DELETE`` clears); newest match wins, phone or
invoice before amount. ``answer_delay_s`` answers late *after* acting (a lost
answer); ``error`` answers an HTTP error *without* acting. ``GET /transfers`` is the
witness: per (kind, request_ref) every transfer made and ``times_moved`` (must stay 1).
"""

from __future__ import annotations

import itertools
import random
import string
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Final, Literal

import falcon

from sandbox.intasend import invoices
from sandbox.intasend.accounts import Account
from sandbox.intasend.api import (
    INVALID_CREDENTIALS,
    NOT_PROVIDED,
    PUBLIC_KEY_HEADER,
    bearer,
    json_body,
    send_detail,
    send_errors,
)
from sandbox.intasend.scenarios import decimal_amount
from sandbox.intasend.settings import IntaSendSimSettings
from sandbox.intasend.state import SimulatorState
from sandbox.intasend.webhooks import WebhookDispatcher
from sandbox.kit import ScenarioList
from sandbox.vpos import seconds

Kind = Literal["refund", "payout"]
TransferOutcome = Literal["complete", "cancel", "fail", "float_low", "pending"]
WebhookMode = Literal["once", "twice", "none"]
OUTCOMES: Final = ("complete", "cancel", "fail", "float_low", "pending")
WEBHOOK_MODES: Final = ("once", "twice", "none")
PAGE_SIZE: Final = 50
MIN_PAYOUT: Final = Decimal(10)
MAX_AMOUNT: Final = Decimal(150_000)
CHARGEBACK_KEY: Final = "chargeback:"
SEND_MONEY_KEY: Final = "send-money:"
DEFAULT_FAILED_REASON: Final = "The recipient is not registered for M-Pesa"
FLOAT_LOW_REASON: Final = "Failed checking float balance: insufficient balance"

Sleep = Callable[[float], None]


class TransferScenarioError(ValueError):
    """A transfer scenario the simulator cannot use."""


@dataclass
class TransferScenario:
    id: str
    kind: Kind | None = None
    phone: str | None = None
    invoice: str | None = None
    amount: Decimal | None = None
    outcome: TransferOutcome = "complete"
    failed_reason: str | None = None
    webhook: WebhookMode = "once"
    delay_s: float | None = None
    answer_delay_s: float = 0.0
    error_status: int | None = None
    error_times: int = 0
    document: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, **self.document, "error_left": self.error_times}

    def matches(self, kind: Kind, party: str, amount: Decimal, by_party: bool) -> bool:
        if self.kind not in (None, kind):
            return False
        if by_party:
            return party in (self.phone, self.invoice)
        return self.amount is not None and self.amount == amount


DEFAULT_SCENARIO: Final = TransferScenario(id="default")
_KEYS: Final = frozenset(
    {
        "match",
        "kind",
        "outcome",
        "failed_reason",
        "webhook",
        "delay_s",
        "answer_delay_s",
        "error",
    }
)


def _choice(doc: Mapping[str, object], key: str, choices: tuple[str, ...], default: str) -> str:
    value = doc.get(key, default)
    if value not in choices:
        raise TransferScenarioError(f"{key} must be one of {list(choices)}")
    return str(value)


def parse_transfer_scenario(document: object, scenario_id: str) -> TransferScenario:
    if not isinstance(document, dict):
        raise TransferScenarioError("a scenario must be a JSON object")
    unknown = set(document) - _KEYS
    if unknown:
        raise TransferScenarioError(f"unknown keys {sorted(unknown)}")
    match = document.get("match")
    usage = 'match must be {"phone": "2547…"}, {"invoice": "<id>"} or {"amount": 100}'
    if not isinstance(match, dict) or len(match) != 1:
        raise TransferScenarioError(usage)
    scenario = TransferScenario(id=scenario_id, document=dict(document))
    if "phone" in match or "invoice" in match:
        value = match.get("phone", match.get("invoice"))
        if not isinstance(value, str) or not value:
            raise TransferScenarioError(usage)
        scenario.phone, scenario.invoice = (value, None) if "phone" in match else (None, value)
    elif "amount" in match:
        scenario.amount = decimal_amount(match["amount"])
        if scenario.amount is None:
            raise TransferScenarioError("match.amount must be a number")
    else:
        raise TransferScenarioError(usage)
    kind = document.get("kind")
    if kind not in (None, "refund", "payout"):
        raise TransferScenarioError("kind must be refund or payout")
    scenario.kind = kind
    scenario.outcome = _choice(document, "outcome", OUTCOMES, "complete")  # type: ignore[assignment]
    scenario.webhook = _choice(document, "webhook", WEBHOOK_MODES, "once")  # type: ignore[assignment]
    reason = document.get("failed_reason")
    if reason is not None and not isinstance(reason, str):
        raise TransferScenarioError("failed_reason must be a string")
    scenario.failed_reason = reason
    scenario.delay_s = (
        seconds(document, "delay_s", TransferScenarioError) if "delay_s" in document else None
    )
    scenario.answer_delay_s = seconds(document, "answer_delay_s", TransferScenarioError)
    error = document.get("error")
    if error is not None:
        if not isinstance(error, dict) or set(error) - {"status", "times"}:
            raise TransferScenarioError("error must be {status, times?}")
        status, times = error.get("status"), error.get("times", 1)
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise TransferScenarioError("error.status must be an HTTP error status")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise TransferScenarioError("error.times must be a positive integer")
        scenario.error_status, scenario.error_times = status, times
    return scenario


class TransferScenarios(ScenarioList[TransferScenario]):
    """Transfer scenarios: the newest naming the party (phone or invoice), else the amount."""

    def __init__(self) -> None:
        super().__init__(parse_transfer_scenario)

    def decide(
        self, kind: Kind, party: str, amount: Decimal
    ) -> tuple[TransferScenario, int | None]:
        """The scenario and an injected HTTP error (used up by this call), if any."""
        with self._lock:
            newest_first = list(reversed(self._scenarios))
            chosen = next(
                (s for s in newest_first if s.matches(kind, party, amount, True)),
                next(
                    (s for s in newest_first if s.matches(kind, party, amount, False)),
                    DEFAULT_SCENARIO,
                ),
            )
            if chosen.error_status is not None and chosen.error_times > 0:
                chosen.error_times -= 1
                return replace(chosen), chosen.error_status
            return replace(chosen), None


# -- the records ------------------------------------------------------------------------------


def _short_id() -> str:
    return "".join(random.choices(string.ascii_uppercase + string.digits, k=7))


@dataclass
class Chargeback:
    id: str
    public_key: str
    invoice_id: str
    amount: Decimal
    reason: str
    reason_details: str
    created_at: float
    final_at: float | None
    outcome: TransferOutcome
    created_wall: str

    def status_at(self, now: float) -> str:
        if self.final_at is None or now < self.final_at:
            return "PENDING"
        return "COMPLETED" if self.outcome == "complete" else "CANCELLED"

    def document(self, now: float) -> dict[str, object]:
        status = self.status_at(now)
        resolution = {"COMPLETED": "Refunded to the customer", "CANCELLED": "Cancelled"}
        return {
            "id": self.id,
            "transaction": f"T{self.id}",
            "invoice": self.invoice_id,
            "amount": f"{self.amount:.2f}",
            "reason": self.reason,
            "reason_details": self.reason_details,
            "status": status,
            "resolution": resolution.get(status),
            "staff_created": False,
            "created_at": self.created_wall,
            "updated_at": invoices.nairobi_now().isoformat(timespec="milliseconds"),
        }


@dataclass
class Payout:
    tracking_id: str
    transaction_id: str
    public_key: str
    nonce: str
    idempotency_key: str | None
    api_ref: str | None
    account: str
    name: str | None
    amount: Decimal
    narrative: str
    callback_url: str | None
    requires_approval: bool
    created_at: float
    approved_at: float | None  # None: awaiting approval
    delay_s: float
    outcome: TransferOutcome
    failed_reason: str
    receipt: str
    created_wall: str

    def final_at(self) -> float | None:
        if self.approved_at is None or self.outcome == "pending":
            return None
        return self.approved_at + self.delay_s

    def codes_at(self, now: float) -> tuple[str, str, str, str, str]:
        """(batch status, batch code, transaction status, its code, its description)."""
        final_at = self.final_at()
        if self.approved_at is None:
            return "Preview and approve", "BP103", "Pending", "TP101", "Awaiting approval"
        if final_at is None or now < final_at:
            return "Sending payment", "BP110", "Processing", "TP102", "Processing"
        if self.outcome == "complete":
            done = "The service request is processed successfully."
            return "Completed", "BC100", "Successful", "TS100", done
        if self.outcome == "float_low":
            return "Failed Processing", "BF105", "Pending", "TP101", FLOAT_LOW_REASON
        return "Completed", "BC100", "Failed", "TF106", self.failed_reason

    def moved(self, now: float) -> bool:
        return self.codes_at(now)[3] == "TS100"

    def document(self, now: float) -> dict[str, object]:
        batch_status, batch_code, status, code, description = self.codes_at(now)
        success = code == "TS100"
        amount = f"{self.amount:.2f}"
        return {
            "file_id": self.tracking_id[:7].upper(),
            "device_id": None,
            "tracking_id": self.tracking_id,
            "batch_reference": None,
            "api_ref": self.api_ref,
            "status": batch_status,
            "status_code": batch_code,
            "nonce": self.nonce,
            "wallet": {"wallet_id": "QZ7WOPR", "label": "default", "currency": "KES"},
            "transactions": [
                {
                    "transaction_id": self.transaction_id,
                    "status": status,
                    "status_code": code,
                    "status_description": description,
                    "request_reference_id": self.transaction_id.lower(),
                    "provider": "MPESA-B2C",
                    "bank_code": None,
                    "name": self.name,
                    "account": self.account,
                    "account_type": None,
                    "account_reference": None,
                    "provider_reference": self.receipt if success else None,
                    "provider_account_name": self.name if success else None,
                    "amount": amount,
                    "charge": "10.00",
                    "narrative": self.narrative,
                    "idempotency_key": self.idempotency_key,
                    "currency": "KES",
                    "created_at": self.created_wall,
                }
            ],
            "actual_charges": "10.00" if success else "0.00",
            "paid_amount": amount if success else "0.00",
            "failed_amount": "0.00" if success or code != "TF106" else amount,
            "charge_estimate": "10.00",
            "total_amount_estimate": f"{self.amount + 10:.2f}",
            "total_amount": amount,
            "transactions_count": 1,
            "requires_approval": "YES" if self.requires_approval else "NO",
            "created_at": self.created_wall,
            "updated_at": invoices.nairobi_now().isoformat(timespec="milliseconds"),
        }


class TransferBook:
    """Chargebacks and send-money batches, their scenarios and the webhooks they cause."""

    def __init__(
        self,
        state: SimulatorState,
        dispatcher: WebhookDispatcher,
        default_delay_s: float,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._state = state
        self._dispatcher = dispatcher
        self._default_delay_s = default_delay_s
        self._sleep = sleep
        self._chargebacks: dict[str, Chargeback] = {}
        self._payouts: dict[str, Payout] = {}
        self._receipts = itertools.count(1)
        self._webhook_modes: dict[str, WebhookMode] = {}
        self.scenarios = TransferScenarios()

    def reset(self) -> None:
        with self._lock:
            self._chargebacks.clear()
            self._payouts.clear()
            self._webhook_modes.clear()
        self.scenarios.clear()

    def now(self) -> float:
        return self._state.now()

    def sleep(self, seconds_: float) -> None:
        if seconds_:
            self._sleep(seconds_)

    def _delay(self, scenario: TransferScenario) -> float:
        return self._default_delay_s if scenario.delay_s is None else scenario.delay_s

    def _schedule(self, key: str, final_at: float | None, mode: WebhookMode, tag: str) -> None:
        if final_at is None or mode == "none":
            return
        self._dispatcher.schedule(final_at, key, tag)
        if mode == "twice":
            self._dispatcher.schedule(final_at + 0.05, key, tag)

    # -- chargebacks

    def chargebacks(self, public_key: str | None = None) -> list[Chargeback]:
        with self._lock:
            return [c for c in self._chargebacks.values() if public_key in (None, c.public_key)]

    def chargeback(self, chargeback_id: str) -> Chargeback | None:
        with self._lock:
            return self._chargebacks.get(chargeback_id)

    def add_chargeback(
        self,
        account: Account,
        invoice: invoices.Invoice,
        amount: Decimal,
        reason: str,
        details: str,
        scenario: TransferScenario,
    ) -> Chargeback | str:
        """The new chargeback, or why it is refused (more than is left of the invoice)."""
        now = self.now()
        with self._lock:
            given = sum(
                (
                    c.amount
                    for c in self._chargebacks.values()
                    if c.invoice_id == invoice.invoice_id and c.status_at(now) != "CANCELLED"
                ),
                Decimal(0),
            )
            left = invoice.value - given
            if amount > left:
                return f"Amount exceeds the refundable balance of the invoice (KES {left:.2f})."
            chargeback_id = _short_id()
            while chargeback_id in self._chargebacks:
                chargeback_id = _short_id()
            final_at = None if scenario.outcome == "pending" else now + self._delay(scenario)
            chargeback = Chargeback(
                id=chargeback_id,
                public_key=account.publishable_key,
                invoice_id=invoice.invoice_id,
                amount=amount,
                reason=reason,
                reason_details=details,
                created_at=now,
                final_at=final_at,
                outcome="complete" if scenario.outcome == "complete" else scenario.outcome,
                created_wall=invoices.nairobi_now().isoformat(timespec="milliseconds"),
            )
            self._chargebacks[chargeback_id] = chargeback
        self._schedule(f"{CHARGEBACK_KEY}{chargeback_id}", final_at, scenario.webhook, "final")
        return chargeback

    # -- send-money

    def payouts(self, public_key: str | None = None) -> list[Payout]:
        with self._lock:
            return [p for p in self._payouts.values() if public_key in (None, p.public_key)]

    def payout(self, tracking_id: str) -> Payout | None:
        with self._lock:
            return self._payouts.get(tracking_id)

    def add_payout(
        self,
        account: Account,
        fields: Mapping[str, object],
        scenario: TransferScenario,
    ) -> Payout | str:
        """The new batch, or why it is refused (a known idempotency key)."""
        now = self.now()
        key = fields.get("idempotency_key")
        with self._lock:
            if key is not None and any(
                p.idempotency_key == key and p.public_key == account.publishable_key
                for p in self._payouts.values()
            ):
                return "A transaction with this idempotency key already exists."
            requires_approval = bool(fields["requires_approval"])
            payout = Payout(
                tracking_id=str(uuid.uuid4()),
                transaction_id=_short_id(),
                public_key=account.publishable_key,
                nonce=uuid.uuid4().hex[:6],
                idempotency_key=str(key) if key is not None else None,
                api_ref=str(fields["api_ref"]) if fields.get("api_ref") else None,
                account=str(fields["account"]),
                name=str(fields["name"]) if fields.get("name") else None,
                amount=Decimal(str(fields["amount"])),
                narrative=str(fields.get("narrative") or ""),
                callback_url=str(fields["callback_url"]) if fields.get("callback_url") else None,
                requires_approval=requires_approval,
                created_at=now,
                approved_at=None if requires_approval else now,
                delay_s=self._delay(scenario),
                outcome=scenario.outcome,
                failed_reason=scenario.failed_reason or DEFAULT_FAILED_REASON,
                receipt=f"S{next(self._receipts):03d}" + invoices.mpesa_reference()[4:],
                created_wall=invoices.nairobi_now().isoformat(timespec="milliseconds"),
            )
            self._payouts[payout.tracking_id] = payout
            self._webhook_modes[payout.tracking_id] = scenario.webhook
        self._schedule(
            f"{SEND_MONEY_KEY}{payout.tracking_id}", payout.final_at(), scenario.webhook, "final"
        )
        return payout

    def approve(self, payout: Payout, nonce: object) -> str | None:
        """Approve a batch awaiting it (the nonce must match); None, or why not."""
        with self._lock:
            if payout.approved_at is not None:
                return "The batch has already been approved."
            if nonce != payout.nonce:
                return "Invalid nonce."
            payout.approved_at = self.now()
            mode = self._webhook_modes.get(payout.tracking_id, "once")
        self._schedule(f"{SEND_MONEY_KEY}{payout.tracking_id}", payout.final_at(), mode, "final")
        return None

    # -- webhooks and the witness

    def prepare(
        self, key: str, challenge: Callable[[Account], str]
    ) -> tuple[str, dict[str, object]] | None:
        """The URL and body of a transfer's webhook (``key``: ``chargeback:<id>`` or
        ``send-money:<tracking_id>``), or None when it has nowhere to go."""
        now = self.now()
        if key.startswith(CHARGEBACK_KEY):
            chargeback = self.chargeback(key[len(CHARGEBACK_KEY) :])
            account = self._state.account(chargeback.public_key) if chargeback else None
            if chargeback is None or account is None or account.webhook is None:
                return None
            invoice = self._state.invoice(chargeback.invoice_id)
            document = chargeback.document(now)
            body: dict[str, object] = {
                "chargeback_id": chargeback.id,
                "invoice": invoice.document(invoice.state_at(now)) if invoice else {},
                "amount": document["amount"],
                "reason": chargeback.reason,
                "reason_details": chargeback.reason_details,
                "status": document["status"],
                "resolution": document["resolution"],
                "challenge": account.webhook.challenge,
            }
            return account.webhook.url, body
        payout = self.payout(key[len(SEND_MONEY_KEY) :])
        account = self._state.account(payout.public_key) if payout else None
        if payout is None or account is None or payout.callback_url is None:
            return None
        return payout.callback_url, {**payout.document(now), "challenge": challenge(account)}

    def witness(self) -> list[dict[str, object]]:
        """Every transfer made, grouped by (kind, our request_ref), and how often money moved."""
        now = self.now()
        groups: dict[tuple[str, str], dict[str, object]] = {}
        rows: list[tuple[str, str, str, str, str, str, bool]] = [
            (
                "refund",
                c.reason_details,
                c.id,
                f"{c.amount:.2f}",
                c.invoice_id,
                c.status_at(now),
                c.status_at(now) == "COMPLETED",
            )
            for c in self.chargebacks()
        ] + [
            (
                "payout",
                p.idempotency_key or p.api_ref or "",
                p.tracking_id,
                f"{p.amount:.2f}",
                p.account,
                p.codes_at(now)[3],
                p.moved(now),
            )
            for p in self.payouts()
        ]
        refs: dict[tuple[str, str], list[str]] = {}
        statuses: dict[tuple[str, str], list[str]] = {}
        moves: dict[tuple[str, str], int] = {}
        for kind, ref, gateway_ref, amount, party, status, moved in rows:
            key = (kind, ref)
            groups.setdefault(
                key, {"kind": kind, "request_ref": ref, "amount": amount, "party": party}
            )
            refs.setdefault(key, []).append(gateway_ref)
            statuses.setdefault(key, []).append(status)
            moves[key] = moves.get(key, 0) + (1 if moved else 0)
        for key, group in groups.items():
            group.update(gateway_refs=refs[key], statuses=statuses[key], times_moved=moves[key])
        return list(groups.values())


# -- the API ----------------------------------------------------------------------------------


def authenticated(
    state: SimulatorState, settings: IntaSendSimSettings, req: falcon.Request
) -> Account | str:
    """The account a Bearer call speaks for, or the 401 detail (as the STK push)."""
    secret = bearer(req)
    public_key = req.get_header(PUBLIC_KEY_HEADER)
    if secret is None or (public_key is None and settings.strict_public_key):
        return NOT_PROVIDED
    account = state.account_by_secret(secret)
    if account is None or public_key not in (None, account.publishable_key):
        return INVALID_CREDENTIALS
    return account


class _Api:
    def __init__(
        self, state: SimulatorState, settings: IntaSendSimSettings, book: TransferBook
    ) -> None:
        self._state = state
        self._settings = settings
        self._book = book

    def _account(self, req: falcon.Request, resp: falcon.Response) -> Account | None:
        account = authenticated(self._state, self._settings, req)
        if isinstance(account, str):
            send_detail(resp, 401, account)
            return None
        return account


def _page(req: falcon.Request, items: list[dict[str, object]], path: str) -> dict[str, object]:
    page = req.get_param_as_int("page", min_value=1) or 1
    start = (page - 1) * PAGE_SIZE
    more = start + PAGE_SIZE < len(items)
    return {
        "count": len(items),
        "next": f"{path}?page={page + 1}" if more else None,
        "previous": f"{path}?page={page - 1}" if page > 1 else None,
        "results": items[start : start + PAGE_SIZE],
    }


class ChargebacksResource(_Api):
    """``POST chargebacks/`` (create), ``GET chargebacks/`` (list), ``GET chargebacks/{id}/``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_body(req)
        if body is None:
            send_errors(resp, [("parse_error", "JSON parse error.", None)])
            return
        account = self._account(req, resp)
        if account is None:
            return
        invoice_id, amount = body.get("invoice"), decimal_amount(body.get("amount"))
        reason, details = body.get("reason"), body.get("reason_details") or ""
        problems: list[tuple[str, str, str | None]] = []
        if not isinstance(invoice_id, str) or not invoice_id:
            problems.append(("required", "This field is required.", "invoice"))
        if amount is None or amount <= 0 or amount != amount.quantize(invoices.CENTS):
            problems.append(("invalid", "A valid amount is required.", "amount"))
        if not isinstance(reason, str) or not reason or len(reason) > 255:
            problems.append(("required", "This field is required.", "reason"))
        if not isinstance(details, str) or len(details) > 500:
            problems.append(
                ("invalid", "Ensure this field has at most 500 characters.", "reason_details")
            )
        if problems or amount is None:
            send_errors(resp, problems)
            return
        invoice = self._state.invoice(str(invoice_id))
        if invoice is None or invoice.public_key != account.publishable_key:
            send_detail(resp, 404, "Not found.")
            return
        if invoice.state_at(self._state.now()) != invoices.COMPLETE:
            send_errors(resp, [("invalid", "Only a completed invoice can be refunded.", "invoice")])
            return
        scenario, error = self._book.scenarios.decide("refund", invoice.invoice_id, amount)
        if error is not None:
            send_detail(resp, error, "Service temporarily unavailable.")
            return
        made = self._book.add_chargeback(
            account, invoice, amount, str(reason), str(details), scenario
        )
        if isinstance(made, str):
            send_errors(resp, [("invalid", made, "amount")])
            return
        self._book.sleep(scenario.answer_delay_s)  # acted already: a slow answer is lost
        resp.status = 201
        resp.media = made.document(self._state.now())

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        account = self._account(req, resp)
        if account is None:
            return
        now = self._state.now()
        items = [c.document(now) for c in self._book.chargebacks(account.publishable_key)]
        resp.media = _page(req, items, req.path)

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, chargeback_id: str) -> None:
        account = self._account(req, resp)
        if account is None:
            return
        chargeback = self._book.chargeback(chargeback_id)
        if chargeback is None or chargeback.public_key != account.publishable_key:
            send_detail(resp, 404, "Not found.")
            return
        resp.media = chargeback.document(self._state.now())


def _payout_fields(
    body: Mapping[str, object],
) -> dict[str, object] | list[tuple[str, str, str | None]]:
    """The one transaction's fields of an initiate, or the validation errors."""
    problems: list[tuple[str, str, str | None]] = []
    if body.get("provider") != "MPESA-B2C":
        problems.append(("invalid", "Only MPESA-B2C is simulated.", "provider"))
    if body.get("currency", "KES") != "KES":
        problems.append(("invalid", "Only KES is simulated.", "currency"))
    approval = body.get("requires_approval", "NO")
    if approval not in ("YES", "NO"):
        problems.append(("invalid", '"requires_approval" must be YES or NO.', "requires_approval"))
    callback = body.get("callback_url")
    if callback not in (None, "") and (
        not isinstance(callback, str) or not callback.startswith(("http://", "https://"))
    ):
        problems.append(("invalid", "Enter a valid URL.", "callback_url"))
    transactions = body.get("transactions")
    if not isinstance(transactions, list) or len(transactions) != 1:
        problems.append(("invalid", "Exactly one transaction is simulated.", "transactions"))
        return problems
    transaction = transactions[0]
    if not isinstance(transaction, dict):
        return [*problems, ("invalid", "A transaction must be an object.", "transactions")]
    account = str(transaction.get("account") or "")
    if not (account.isdigit() and len(account) == 12 and account[:4] in ("2547", "2541")):
        problems.append(("invalid", "Enter a valid phone number (2547XXXXXXXX).", "account"))
    amount = decimal_amount(transaction.get("amount"))
    if (
        amount is None
        or not MIN_PAYOUT <= amount <= MAX_AMOUNT
        or amount != amount.to_integral_value()
    ):
        problems.append(("invalid", "Amount must be whole KES 10 to 150,000.", "amount"))
    if problems or amount is None:
        return problems
    return {
        "account": account,
        "amount": amount,
        "name": transaction.get("name"),
        "narrative": transaction.get("narrative"),
        "idempotency_key": transaction.get("idempotency_key"),
        "api_ref": body.get("api_ref"),
        "callback_url": callback or None,
        "requires_approval": approval == "YES",
    }


class SendMoneyResource(_Api):
    """``POST send-money/initiate/``, ``approve/``, ``status/``; ``GET send-money/`` lists."""

    def on_post_initiate(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_body(req)
        if body is None:
            send_errors(resp, [("parse_error", "JSON parse error.", None)])
            return
        account = self._account(req, resp)
        if account is None:
            return
        fields = _payout_fields(body)
        if isinstance(fields, list):
            send_errors(resp, fields)
            return
        amount = fields["amount"]
        assert isinstance(amount, Decimal)
        scenario, error = self._book.scenarios.decide("payout", str(fields["account"]), amount)
        if error is not None:
            send_detail(resp, error, "Service temporarily unavailable.")
            return
        made = self._book.add_payout(account, fields, scenario)
        if isinstance(made, str):
            send_errors(resp, [("duplicate", made, "idempotency_key")])
            return
        self._book.sleep(scenario.answer_delay_s)  # acted already: a slow answer is lost
        resp.media = made.document(self._state.now())

    def _batch(
        self, req: falcon.Request, resp: falcon.Response
    ) -> tuple[Payout, dict[str, object]] | None:
        body = json_body(req)
        if body is None:
            send_errors(resp, [("parse_error", "JSON parse error.", None)])
            return None
        account = self._account(req, resp)
        if account is None:
            return None
        tracking_id = body.get("tracking_id")
        payout = self._book.payout(tracking_id) if isinstance(tracking_id, str) else None
        if payout is None or payout.public_key != account.publishable_key:
            send_detail(resp, 404, "Not found.")
            return None
        return payout, body

    def on_post_approve(self, req: falcon.Request, resp: falcon.Response) -> None:
        found = self._batch(req, resp)
        if found is None:
            return
        payout, body = found
        refusal = self._book.approve(payout, body.get("nonce"))
        if refusal is not None:
            send_errors(resp, [("invalid", refusal, "nonce")])
            return
        resp.media = payout.document(self._state.now())

    def on_post_status(self, req: falcon.Request, resp: falcon.Response) -> None:
        found = self._batch(req, resp)
        if found is not None:
            resp.media = found[0].document(self._state.now())

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        account = self._account(req, resp)
        if account is None:
            return
        now = self._state.now()
        items = [p.document(now) for p in self._book.payouts(account.publishable_key)]
        resp.media = _page(req, items, req.path)


class WitnessResource:
    """``GET /_sim/transfers``: ``{"transfers": [...]}`` (see :meth:`TransferBook.witness`)."""

    def __init__(self, book: TransferBook) -> None:
        self._book = book

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"transfers": self._book.witness()}

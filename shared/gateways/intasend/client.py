"""The IntaSend adapter: M-Pesa STK push, the status query, webhooks, chargebacks, send-money.

IntaSend's STK push has no idempotency key (reference): a push whose answer was
lost is never re-sent (:class:`GatewayOutcomeUnknown`); only the status query
is always safe to repeat. IntaSend takes no callback URL per request: webhooks
go to the URL set in the merchant's dashboard, with the challenge stored here,
so ``PaymentRequest.callback_url`` is not sent.

Unverified in the reference, and so decided conservatively here: which
statuses mean IntaSend did not act (only 429 and 503 are taken as "busy"; any
other 5xx after sending may have pushed), and whether a 404 on a push means a
wrong base URL or wallet (taken as configuration). Money out's own unverified
details are listed in ``shared.gateways.intasend.transfers``; besides them, whether
``send-money/approve/`` wants the nonce signed with a merchant's private key (the
older SDK's "nonce signing"): it is sent as the initiate answer, unsigned. The
transaction list is unverified as a whole (``shared.gateways.intasend.transactions``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Final

import structlog

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.base import (
    CallbackEvent,
    CallbackMalformed,
    CallbackReply,
    GatewayOutcomeUnknown,
    GatewayTransaction,
    GatewayUnavailable,
    InboundCallback,
    InitiateResult,
    PaymentRequest,
    StatusResult,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.intasend import transactions as statement
from shared.gateways.intasend import transfers as wire
from shared.gateways.intasend.transformers import (
    PUBLIC_KEY_HEADER,
    IntaSendCredentials,
    InvoiceUnreadable,
    error_text,
    invoice_id_of,
    invoice_verdict,
    status_body,
    stk_push_body,
)
from shared.gateways.intasend.webhooks import challenge_refusal, parse_collection_webhook
from shared.gateways.transfers import (
    TransferEvent,
    TransferRequest,
    TransferState,
    TransferSubmission,
    TransferVerdict,
)
from shared.gateways.transport import Answer, HttpTransport

STK_PUSH_PATH: Final = "payment/mpesa-stk-push/"
STATUS_PATH: Final = "payment/status/"
MIN_KES_MINOR: Final = 1_00
MAX_KES_MINOR: Final = 150_000_00  # IntaSend's per-transaction limit
MIN_PAYOUT_KES_MINOR: Final = 10_00  # M-Pesa B2C's smallest payment (unverified for IntaSend)
MAX_LIST_PAGES: Final = 20  # a lookup by our ref reads at most this many pages
MAX_TRANSACTION_PAGES: Final = 1000  # a window's list longer than this is not read at all
BUSY_STATUSES: Final = frozenset({429, 503})
CONFIGURATION_STATUSES: Final = frozenset({401, 403, 404})
ACKNOWLEDGEMENT: Final = CallbackReply.json({"status": "received"})

log = structlog.stdlib.get_logger(__name__)


class IntaSendAdapter:
    """IntaSend (M-Pesa STK push collections in KES)."""

    name = "intasend"

    def __init__(self, settings: GatewaySettings) -> None:
        self.http = HttpTransport(self.name, settings)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    # -- every adapter ---------------------------------------------------------------------

    def credentials(self, stored: Mapping[str, Any]) -> IntaSendCredentials:
        return IntaSendCredentials.from_stored(stored)

    def check_amount(self, amount: Money) -> None:
        """KES 1 to 150,000 in whole shillings (M-Pesa charges no cents)."""
        if amount.currency != "KES":
            raise MalipoError(errors.INVALID_CURRENCY, "IntaSend M-Pesa takes KES only")
        if amount.amount_minor % 100:
            raise MalipoError(errors.INVALID_AMOUNT, "M-Pesa takes whole shillings only")
        if not MIN_KES_MINOR <= amount.amount_minor <= MAX_KES_MINOR:
            raise MalipoError(errors.AMOUNT_OUT_OF_RANGE, "IntaSend takes KES 1 to 150,000")

    # -- push ------------------------------------------------------------------------------

    def push(self, credentials: IntaSendCredentials, request: PaymentRequest) -> InitiateResult:
        """Send one STK push. Raises GatewayUnavailable (safe to retry) or GatewayOutcomeUnknown."""
        answer = self.http.call(
            "POST",
            STK_PUSH_PATH,
            idempotent=False,
            json=stk_push_body(credentials, request),
            headers=credentials.api_headers(),
        )
        if answer.status in (200, 201):
            return self._accepted(answer)
        return self._push_refusal(answer)

    def _accepted(self, answer: Answer) -> InitiateResult:
        invoice = answer.document.get("invoice")
        try:
            invoice_id = invoice_id_of(invoice if isinstance(invoice, dict) else {})
        except InvoiceUnreadable:
            raise GatewayOutcomeUnknown(
                f"push answered HTTP {answer.status} without an invoice_id"
            ) from None
        api_ref = invoice.get("api_ref") if isinstance(invoice, dict) else None
        return InitiateResult(
            accepted=True,
            gateway_ref=invoice_id,
            secondary_ref=str(api_ref)[:100] if api_ref else None,
            message=str(invoice.get("state") or "") if isinstance(invoice, dict) else "",
            raw=answer.document,
        )

    def _push_refusal(self, answer: Answer) -> InitiateResult:
        message = _refusal_text("push", answer)
        failure = (
            errors.GATEWAY_CONFIGURATION
            if answer.status in CONFIGURATION_STATUSES
            else errors.GATEWAY_REJECTED
        )
        return InitiateResult.refused(failure, f"HTTP {answer.status}: {message}", answer.document)

    # -- status ----------------------------------------------------------------------------

    def query_status(self, credentials: IntaSendCredentials, gateway_ref: str) -> StatusResult:
        """``payment/status/``, the source of truth. Any answer but an invoice is unavailable."""
        answer = self.http.call(
            "POST",
            STATUS_PATH,
            idempotent=True,
            json=status_body(credentials, gateway_ref),
            headers={PUBLIC_KEY_HEADER: credentials.publishable_key},
        )
        invoice = answer.document.get("invoice")
        if answer.status != 200 or not isinstance(invoice, dict):
            detail = error_text(answer.document) or "no invoice in the answer"
            raise GatewayUnavailable(
                f"status answered HTTP {answer.status}: {detail}",
                retry_after_s=answer.retry_after_s(),
            )
        try:
            if invoice_id_of(invoice) != gateway_ref:
                raise InvoiceUnreadable("the answer is about another invoice")
            verdict = invoice_verdict(invoice)
        except InvoiceUnreadable as exc:
            raise GatewayUnavailable(f"status answer unreadable: {exc}") from None
        return StatusResult(gateway_ref=gateway_ref, verdict=verdict)

    # -- the transaction list --------------------------------------------------------------

    def listed_account_ref(self, reference: str, payment_id: object) -> str | None:
        """None: the list's ``api_ref`` is our attempt's id, which rows match as ``gateway_ref``."""
        return None

    def list_transactions(
        self, credentials: IntaSendCredentials, start: datetime, end: datetime
    ) -> Iterator[GatewayTransaction]:
        """Every COMPLETE or FAILED invoice whose ``updated_at`` falls in ``[start, end)``.

        Every page is read before the first row is given, so a list that cannot be read
        whole raises GatewayUnavailable and gives nothing: reconciliation must not take
        a part for all. Pages are asked by number, ``next`` only saying that one more
        follows (DRF's absolute ``next`` may name another scheme or host behind a proxy,
        and the secret goes nowhere but the base URL). A list that changes its ``count``
        while it is read, or whose rows do not add up to it, is unavailable too.
        """
        yield from self._read_transactions(credentials, start, end)

    def _read_transactions(
        self, credentials: IntaSendCredentials, start: datetime, end: datetime
    ) -> list[GatewayTransaction]:
        found: list[GatewayTransaction] = []
        expected: int | None = None
        seen = 0
        for page in range(1, MAX_TRANSACTION_PAGES + 1):
            answer = self.http.call(
                "GET",
                statement.TRANSACTIONS_PATH,
                idempotent=True,
                params=statement.list_params(start, end, page),
                headers=credentials.api_headers(),
            )
            if answer.status != 200:
                detail = error_text(answer.document) or "no list in the answer"
                raise GatewayUnavailable(
                    f"transactions page {page} answered HTTP {answer.status}: {detail}",
                    retry_after_s=answer.retry_after_s(),
                )
            try:
                rows, more, count = statement.page_of(answer.body)
                shown = [statement.transaction_of(row) for row in rows]
            except statement.ListUnreadable as exc:
                raise GatewayUnavailable(f"transactions page {page} unreadable: {exc}") from None
            if expected is None:
                expected = count
            elif count is not None and count != expected:
                raise GatewayUnavailable("the transaction list changed while it was read")
            seen += len(rows)
            found.extend(t for t in shown if t is not None and start <= t.completed_at < end)
            if not more:
                if expected is not None and seen != expected:
                    raise GatewayUnavailable(
                        f"the transaction list gave {seen} rows of the {expected} it counts"
                    )
                return found
        raise GatewayUnavailable(f"transactions: more than {MAX_TRANSACTION_PAGES} pages")

    # -- callbacks -------------------------------------------------------------------------

    def authenticate_callback(
        self, verifiers: Mapping[str, str], inbound: InboundCallback
    ) -> str | None:
        """The body's challenge against its stored hash: None, or why it is refused."""
        return challenge_refusal(verifiers, inbound)

    def parse_callback(self, inbound: InboundCallback) -> CallbackEvent:
        return parse_collection_webhook(inbound.body)

    def acknowledgement(self, inbound: InboundCallback) -> CallbackReply:
        return ACKNOWLEDGEMENT

    # -- refunds (chargebacks) -------------------------------------------------------------

    def refund(
        self, credentials: IntaSendCredentials, request: TransferRequest
    ) -> TransferSubmission:
        """``POST chargebacks/`` for the collection's invoice; the result arrives later.

        Sent once: IntaSend takes no idempotency key for chargebacks, so a lost answer
        is :class:`GatewayOutcomeUnknown` and :meth:`refund_status` finds the chargeback
        again by ``reason_details`` (our request_ref).
        """
        refusal = _amount_refusal(request.amount, MIN_KES_MINOR)
        if refusal is not None:
            return refusal
        if not request.payment_gateway_ref:
            return _refused(errors.TRANSFER_REFUSED, "the payment has no IntaSend invoice")
        return self._send(
            credentials,
            "chargeback",
            wire.CHARGEBACKS_PATH,
            wire.chargeback_body(request),
            wire.chargeback_id_of,
            "an id",
        )

    def refund_status(
        self, credentials: IntaSendCredentials, request: TransferRequest, gateway_ref: str | None
    ) -> TransferVerdict:
        """``GET chargebacks/{id}/``, or ours in ``GET chargebacks/`` (none: NOT_FOUND)."""
        if gateway_ref is not None:
            answer = self.http.call(
                "GET",
                f"{wire.CHARGEBACKS_PATH}{gateway_ref}/",
                idempotent=True,
                headers=credentials.api_headers(),
            )
            document = self._answered("chargeback", answer)
        else:
            found = self._find(
                credentials,
                wire.CHARGEBACKS_PATH,
                lambda item: wire.is_ours(item, request.request_ref),
            )
            if found is None:
                return _not_found("IntaSend has no chargeback with our reference")
            document = dict(found)
        try:
            return wire.chargeback_verdict(document)
        except wire.TransferUnreadable as exc:
            raise GatewayUnavailable(f"chargeback unreadable: {exc}") from None

    # -- payouts (send-money) --------------------------------------------------------------

    def payout(
        self, credentials: IntaSendCredentials, request: TransferRequest
    ) -> TransferSubmission:
        """``POST send-money/initiate/`` (M-Pesa B2C), approved at once when the account
        requires it; the result arrives at the result URL.

        Sent once: our request_ref is the transaction's ``idempotency_key`` (a re-sent
        initiate is refused as a duplicate, unverified) and the batch's ``api_ref``.
        """
        refusal = _amount_refusal(request.amount, MIN_PAYOUT_KES_MINOR)
        if refusal is not None:
            return refusal
        submission = self._send(
            credentials,
            "send-money",
            wire.SEND_MONEY_INITIATE_PATH,
            wire.send_money_body(request, credentials.payout_approval),
            wire.tracking_id_of,
            "a tracking_id",
        )
        if submission.accepted and credentials.payout_approval:
            self._approve(credentials, submission.raw)
        return submission

    def payout_status(
        self, credentials: IntaSendCredentials, request: TransferRequest, gateway_ref: str | None
    ) -> TransferVerdict:
        """``POST send-money/status/`` ``{tracking_id}``; without one, ours is looked up in
        ``GET send-money/`` (none: NOT_FOUND). A batch still awaiting approval is
        approved again when the account requires it (the first approval may be lost)."""
        tracking_id = gateway_ref
        if tracking_id is None:
            found = self._find(
                credentials,
                wire.SEND_MONEY_LIST_PATH,
                lambda item: wire.is_our_batch(item, request.request_ref),
            )
            if found is None:
                return _not_found("IntaSend has no send-money batch with our reference")
            try:
                tracking_id = wire.tracking_id_of(found)
            except wire.TransferUnreadable as exc:
                raise GatewayUnavailable(f"send-money list unreadable: {exc}") from None
        answer = self.http.call(
            "POST",
            wire.SEND_MONEY_STATUS_PATH,
            idempotent=True,
            json={"tracking_id": tracking_id},
            headers=credentials.api_headers(),
        )
        document = self._answered("send-money status", answer)
        if (
            credentials.payout_approval
            and str(document.get("status_code") or "").upper() == wire.BATCH_AWAITING_APPROVAL
        ):
            self._approve(credentials, document)
        try:
            return wire.send_money_verdict(document, request.request_ref)
        except wire.TransferUnreadable as exc:
            raise GatewayUnavailable(f"send-money status unreadable: {exc}") from None

    def _send(
        self,
        credentials: IntaSendCredentials,
        what: str,
        path: str,
        body: Mapping[str, Any],
        id_of: Callable[[Mapping[str, Any]], str],
        id_name: str,
    ) -> TransferSubmission:
        """``POST`` one chargeback or send-money batch, once (``idempotent=False``): accepted
        with IntaSend's id for it (``id_of`` the answer), or the refusal. An accepted answer
        without the id is :class:`GatewayOutcomeUnknown`: it may have acted."""
        answer = self.http.call(
            "POST", path, idempotent=False, json=body, headers=credentials.api_headers()
        )
        if answer.status not in (200, 201):
            return _transfer_refusal(what, answer)
        try:
            gateway_ref = id_of(answer.document)
        except wire.TransferUnreadable:
            raise GatewayOutcomeUnknown(
                f"{what} answered HTTP {answer.status} without {id_name}"
            ) from None
        return TransferSubmission(
            accepted=True,
            gateway_ref=gateway_ref,
            message=str(answer.document.get("status") or ""),
            raw=answer.document,
        )

    def _approve(self, credentials: IntaSendCredentials, batch: dict[str, Any]) -> None:
        """``POST send-money/approve/`` with the batch (its tracking_id and nonce), as the
        SDK does. A failed approval leaves the batch awaiting it (no money moves):
        logged, and tried again by the next status query."""
        try:
            answer = self.http.call(
                "POST",
                wire.SEND_MONEY_APPROVE_PATH,
                idempotent=True,
                json=batch,
                headers=credentials.api_headers(),
            )
        except (GatewayUnavailable, GatewayOutcomeUnknown) as exc:
            log.warning("send-money approval not answered", error=str(exc)[:200])
            return
        if answer.status not in (200, 201):
            log.warning(
                "send-money approval refused",
                status=answer.status,
                detail=error_text(answer.document)[:200],
            )

    # -- transfer results ------------------------------------------------------------------

    def transfer_result(self, inbound: InboundCallback, tail: str | None) -> TransferEvent | None:
        """A chargeback or send-money webhook as a :class:`TransferEvent`; None for an
        invoice's (the collection path reads it). The challenge was checked already."""
        try:
            return wire.transfer_event(inbound.body, tail)
        except wire.TransferUnreadable as exc:
            raise CallbackMalformed(str(exc)) from None

    # -- reading answers -------------------------------------------------------------------

    @staticmethod
    def _answered(what: str, answer: Answer) -> dict[str, Any]:
        """A lookup's JSON object; any other answer is unavailable (ask again later)."""
        if answer.status != 200 or not answer.document:
            detail = error_text(answer.document) or "no object in the answer"
            raise GatewayUnavailable(
                f"{what} answered HTTP {answer.status}: {detail}",
                retry_after_s=answer.retry_after_s(),
            )
        return answer.document

    def _find(
        self,
        credentials: IntaSendCredentials,
        path: str,
        ours: Callable[[Mapping[str, Any]], bool],
    ) -> Mapping[str, Any] | None:
        """The first item of a paged list that is ``ours``; None only when every page was
        read. Any failure to read them all is unavailable: "not found" must be certain."""
        for page in range(1, MAX_LIST_PAGES + 1):
            answer = self.http.call(
                "GET",
                path,
                idempotent=True,
                params={"page": str(page)},
                headers=credentials.api_headers(),
            )
            if answer.status != 200:
                raise GatewayUnavailable(
                    f"{path} answered HTTP {answer.status}", retry_after_s=answer.retry_after_s()
                )
            try:
                items, more = wire.page_items(answer.body)
            except wire.TransferUnreadable as exc:
                raise GatewayUnavailable(f"{path} unreadable: {exc}") from None
            for item in items:
                if ours(item):
                    return item
            if not more:
                return None
        raise GatewayUnavailable(f"{path}: more than {MAX_LIST_PAGES} pages to look through")


def _refused(
    error: errors.ErrorCode, message: str, raw: dict[str, Any] | None = None
) -> TransferSubmission:
    return TransferSubmission(
        accepted=False, failure_code=error.code, message=message[:300], raw=raw or {}
    )


def _not_found(message: str) -> TransferVerdict:
    return TransferVerdict(TransferState.NOT_FOUND, "not_found", message=message)


def _amount_refusal(amount: Money, minimum: int) -> TransferSubmission | None:
    """KES in whole shillings from ``minimum`` to 150,000, else the refusal."""
    if amount.currency != "KES":
        return _refused(errors.INVALID_CURRENCY, "IntaSend M-Pesa takes KES only")
    if amount.amount_minor % 100:
        return _refused(errors.INVALID_AMOUNT, "M-Pesa takes whole shillings only")
    if not minimum <= amount.amount_minor <= MAX_KES_MINOR:
        low = Money(minimum, "KES").format()
        return _refused(errors.LIMIT_EXCEEDED, f"IntaSend takes KES {low} to 150,000")
    return None


def _refusal_text(what: str, answer: Answer) -> str:
    """The words of a 4xx answer to a push or a transfer; any other answer but 2xx raises:
    429 and 503 are busy (unavailable), any other may have acted (unknown)."""
    message = error_text(answer.document) or f"HTTP {answer.status}"
    if answer.status in BUSY_STATUSES:
        raise GatewayUnavailable(
            f"IntaSend busy (HTTP {answer.status}): {message}",
            retry_after_s=answer.retry_after_s(),
        )
    if answer.status >= 500 or answer.status < 400:
        raise GatewayOutcomeUnknown(f"{what} answered HTTP {answer.status}: {message}")
    return message


def _transfer_refusal(what: str, answer: Answer) -> TransferSubmission:
    """A chargeback's or initiate's non-2xx answer: a refusal, or an exception.

    As for pushes: 429 and 503 are busy (unavailable), any other 5xx may have acted
    (unknown); 401 and 403 are configuration; a 400 naming ``idempotency_key`` is a
    duplicate; one naming ``account`` (or words of it) the recipient.
    """
    message = _refusal_text(what, answer)
    lowered = message.lower()
    if answer.status in (401, 403):
        error = errors.GATEWAY_CONFIGURATION
    elif "idempotency" in lowered or "duplicate" in lowered:
        error = errors.DUPLICATE_TRANSFER
    elif "(account)" in lowered or "recipient" in lowered:
        error = errors.RECIPIENT_INVALID
    elif "insufficient" in lowered or ("balance" in lowered and what == "send-money"):
        error = errors.GATEWAY_FUNDS_LOW
    else:
        error = errors.TRANSFER_REFUSED
    return _refused(error, f"HTTP {answer.status}: {message}", answer.document)

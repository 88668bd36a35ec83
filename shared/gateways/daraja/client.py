"""The Daraja adapter: OAuth token cache, STK push, STK query, callbacks, and money out
(Reversal refunds, B2C payouts, Transaction Status; see ``transfers.py``).

Transport failures are sorted by the shared transport into "certainly not acted
on" (:class:`GatewayUnavailable`) and "may have been acted on"
(:class:`GatewayOutcomeUnknown`). Daraja has no idempotency for STK pushes, so a
push whose answer was lost must never be re-sent; only the status query is
always safe to repeat.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import structlog

from shared.domain import errors
from shared.domain.money import Money, mpesa_whole_shillings
from shared.gateways.base import (
    CallbackEvent,
    CallbackReply,
    GatewayOutcomeUnknown,
    GatewayTransaction,
    GatewayUnavailable,
    GatewayVerdict,
    InboundCallback,
    InitiateResult,
    Outcome,
    PaymentRequest,
    StatusResult,
)
from shared.gateways.daraja import codes, pull, transfers
from shared.gateways.daraja.callbacks import parse_stk_callback
from shared.gateways.daraja.initiator import CERTIFICATE_SETTING, InitiatorCertificate
from shared.gateways.daraja.stk import (
    DarajaCredentials,
    account_reference,
    nairobi_timestamp,
    stk_push_body,
    stk_query_body,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.transfers import (
    TransferEvent,
    TransferRequest,
    TransferState,
    TransferSubmission,
    TransferVerdict,
)
from shared.gateways.transport import Answer, HttpTransport

log = structlog.stdlib.get_logger(__name__)

TOKEN_PATH = "/oauth/v1/generate?grant_type=client_credentials"  # noqa: S105 - a path
STK_PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
STK_QUERY_PATH = "/mpesa/stkpushquery/v1/query"
ACKNOWLEDGEMENT = CallbackReply.json({"ResultCode": 0, "ResultDesc": "Accepted"})


class GatewayAuthFailed(Exception):
    """Daraja refused the app's consumer key/secret: a configuration problem."""


def _error_code(answer: Answer) -> str | None:
    code = answer.document.get("errorCode")
    return str(code) if code is not None else None


def _error_message(answer: Answer) -> str:
    body = answer.document
    return str(body.get("errorMessage") or body.get("ResponseDescription") or "")[:300]


class DarajaAdapter:
    """Safaricom M-Pesa Daraja (STK push / M-Pesa Express)."""

    name = "daraja"

    def __init__(self, settings: GatewaySettings) -> None:
        self.http = HttpTransport(self.name, settings)
        self.certificate = InitiatorCertificate(settings.extra.get(CERTIFICATE_SETTING))

    @property
    def base_url(self) -> str:
        return self.http.base_url

    # -- every adapter ---------------------------------------------------------------------

    def credentials(self, stored: Mapping[str, Any]) -> DarajaCredentials:
        return DarajaCredentials.from_stored(stored)

    def check_amount(self, amount: Money) -> None:
        mpesa_whole_shillings(amount)

    def check_payout_amount(self, amount: Money) -> None:
        """Refuse (MalipoError) what B2C would: KES 10 to 250,000, whole shillings."""
        transfers.check_payout_amount(amount)

    # -- push ------------------------------------------------------------------------------

    def push(self, credentials: DarajaCredentials, request: PaymentRequest) -> InitiateResult:
        """Send one STK push. Raises GatewayUnavailable (safe to retry) or GatewayOutcomeUnknown."""
        body = stk_push_body(credentials, request, nairobi_timestamp())
        try:
            answer = self._call(credentials, STK_PUSH_PATH, body, idempotent=False)
        except GatewayAuthFailed as exc:
            return InitiateResult.refused(errors.GATEWAY_CONFIGURATION, str(exc))
        if answer.status == 200 and str(answer.document.get("ResponseCode")) == "0":
            checkout_id = answer.document.get("CheckoutRequestID")
            if not checkout_id:
                raise GatewayOutcomeUnknown("push answered 200 without a CheckoutRequestID")
            return InitiateResult(
                accepted=True,
                gateway_ref=str(checkout_id),
                secondary_ref=str(answer.document.get("MerchantRequestID") or "") or None,
                message=str(answer.document.get("CustomerMessage") or ""),
                raw=answer.document,
            )
        return self._push_refusal(answer)

    # -- status ----------------------------------------------------------------------------

    def query_status(self, credentials: DarajaCredentials, gateway_ref: str) -> StatusResult:
        """STK query. "Being processed" (500.001.1001, 4999) is PENDING, never a failure."""
        body = stk_query_body(credentials, gateway_ref, nairobi_timestamp())
        try:
            answer = self._call(credentials, STK_QUERY_PATH, body, idempotent=True)
        except GatewayAuthFailed as exc:
            raise GatewayUnavailable(f"cannot authenticate to query: {exc}") from exc
        if answer.status == 200 and answer.document.get("ResultCode") is not None:
            result_code = str(answer.document["ResultCode"]).strip()
            meaning = codes.meaning_of(result_code)
            verdict = GatewayVerdict(
                outcome=meaning.outcome,
                result_code=result_code,
                failure_code=meaning.failure_code,
                message=str(answer.document.get("ResultDesc") or "")[:300],
            )
            return StatusResult(gateway_ref=gateway_ref, verdict=verdict)
        if _error_code(answer) == codes.GENERIC_1001:
            # In flight, intermittently for finished payments too: "no answer yet, ask again".
            pending = GatewayVerdict(Outcome.PENDING, codes.GENERIC_1001, _error_message(answer))
            return StatusResult(gateway_ref=gateway_ref, verdict=pending)
        raise GatewayUnavailable(
            f"query answered HTTP {answer.status} {_error_code(answer)} {_error_message(answer)}"
        )

    # -- reconciliation --------------------------------------------------------------------

    def list_transactions(
        self, credentials: DarajaCredentials, start: datetime, end: datetime
    ) -> Iterator[GatewayTransaction]:
        """Pull Transactions over ``[start, end)``, 48 hours and 1,000 rows at a time.

        Every page is read before the first row is given: a list that fails half-way
        raises GatewayUnavailable rather than look shorter than it is.
        """
        found: list[GatewayTransaction] = []
        for piece_start, piece_end in pull.spans(start, end):
            offset = 0
            previous: list[dict[str, Any]] | None = None
            while True:
                body = {
                    "ShortCode": credentials.shortcode,
                    "StartDate": pull.nairobi_text(piece_start),
                    "EndDate": pull.nairobi_text(piece_end),
                    "OffSetValue": str(offset),
                }
                try:
                    answer = self._call(credentials, pull.PULL_QUERY_PATH, body, idempotent=True)
                except GatewayAuthFailed as exc:
                    raise GatewayUnavailable(f"cannot authenticate to pull: {exc}") from exc
                code = str(answer.document.get("ResponseCode", "")).strip()
                if answer.status != 200 or code not in pull.SUCCESS_CODES:
                    raise GatewayUnavailable(
                        f"pull transactions answered HTTP {answer.status} "
                        f"{code or _error_code(answer)} {_error_message(answer)}",
                        retry_after_s=answer.retry_after_s(),
                    )
                rows = pull.rows_of(answer.document)
                if rows and rows == previous:
                    # A gateway deaf to OffSetValue would otherwise be read forever.
                    raise GatewayUnavailable(
                        f"pull transactions answered the same page at OffSetValue {offset}"
                    )
                previous = rows
                try:
                    page = [pull.transaction_of(row) for row in rows]
                except ValueError as exc:
                    raise GatewayUnavailable(f"pull transactions: {exc}") from exc
                found.extend(t for t in page if piece_start <= t.completed_at < piece_end)
                if len(rows) < pull.PAGE_ROWS:
                    break
                offset += len(rows)
        yield from found

    def listed_account_ref(self, reference: str, payment_id: object) -> str:
        """What a statement or Pull Transactions shows as the bill reference we sent."""
        return account_reference(reference)

    # -- callbacks -------------------------------------------------------------------------

    def authenticate_callback(
        self, verifiers: Mapping[str, str], inbound: InboundCallback
    ) -> str | None:
        return None  # Daraja signs nothing: the path secret (checked by the ingress) is all

    def parse_callback(self, inbound: InboundCallback) -> CallbackEvent:
        return parse_stk_callback(inbound.body)

    def acknowledgement(self, inbound: InboundCallback) -> CallbackReply:
        return ACKNOWLEDGEMENT

    # -- money out -------------------------------------------------------------------------

    def refund(
        self, credentials: DarajaCredentials, request: TransferRequest
    ) -> TransferSubmission:
        """A Reversal of the collection (``payment_receipt``); the result comes to ResultURL."""
        if not request.payment_receipt:
            return _refused(errors.GATEWAY_REJECTED, "a reversal needs the collection's receipt")
        return self._send_transfer(credentials, request, transfers.REVERSAL_PATH)

    def payout(
        self, credentials: DarajaCredentials, request: TransferRequest
    ) -> TransferSubmission:
        """A B2C v3 BusinessPayment; a reused OriginatorConversationID is refused by Daraja."""
        return self._send_transfer(credentials, request, transfers.B2C_PATH)

    def refund_status(
        self, credentials: DarajaCredentials, request: TransferRequest, gateway_ref: str | None
    ) -> TransferVerdict:
        return self._query_transfer(credentials, request)

    def payout_status(
        self, credentials: DarajaCredentials, request: TransferRequest, gateway_ref: str | None
    ) -> TransferVerdict:
        return self._query_transfer(credentials, request)

    def transfer_result(self, inbound: InboundCallback, tail: str | None) -> TransferEvent | None:
        return transfers.transfer_result(inbound, tail)

    def _send_transfer(
        self, credentials: DarajaCredentials, request: TransferRequest, path: str
    ) -> TransferSubmission:
        password = credentials.initiator_password
        if not credentials.initiator_name or not password:
            return _refused(
                errors.GATEWAY_CONFIGURATION,
                "the merchant's Daraja credentials have no initiator name and password",
            )
        make_body = transfers.b2c_body if path == transfers.B2C_PATH else transfers.reversal_body
        body = make_body(credentials, request, self.certificate.credential(password))
        try:
            answer = self._call(credentials, path, body, idempotent=False)
        except GatewayAuthFailed as exc:
            return _refused(errors.GATEWAY_CONFIGURATION, str(exc))
        if answer.status == 200 and str(answer.document.get("ResponseCode")) == "0":
            conversation_id = answer.document.get("ConversationID")
            if not conversation_id:
                raise GatewayOutcomeUnknown(f"{path} answered 200 without a ConversationID")
            return TransferSubmission(
                accepted=True,
                gateway_ref=str(conversation_id),
                message=str(answer.document.get("ResponseDescription") or "")[:300],
                raw=answer.document,
            )
        return self._transfer_refusal(path, answer)

    def _transfer_refusal(self, path: str, answer: Answer) -> TransferSubmission:
        code, message = _error_code(answer), _error_message(answer)
        if code in codes.BUSY_CODES or answer.status == 429:
            raise GatewayUnavailable(f"Daraja busy: {code} {message}")
        if code == transfers.DUPLICATE_ORIGINATOR_ID:
            failure = errors.DUPLICATE_TRANSFER
        elif code == codes.GENERIC_1001:
            failure = errors.GATEWAY_CONFIGURATION
        elif answer.status >= 500 and code is None:
            raise GatewayOutcomeUnknown(f"{path} answered HTTP {answer.status} without a code")
        else:
            failure = errors.GATEWAY_REJECTED
        return _refused(failure, f"{code or answer.status}: {message}", answer.document)

    def _query_transfer(
        self, credentials: DarajaCredentials, request: TransferRequest
    ) -> TransferVerdict:
        """Transaction Status: asynchronous, so PENDING now and the answer at ResultURL."""
        password = credentials.initiator_password
        if not credentials.initiator_name or not password:
            raise GatewayUnavailable("cannot query a transfer without initiator credentials")
        credential = self.certificate.credential(password)
        body = transfers.status_body(credentials, request, credential)
        try:
            answer = self._call(credentials, transfers.STATUS_PATH, body, idempotent=True)
        except GatewayAuthFailed as exc:
            raise GatewayUnavailable(f"cannot authenticate to query: {exc}") from exc
        if answer.status == 200 and str(answer.document.get("ResponseCode")) == "0":
            return TransferVerdict(
                TransferState.PENDING,
                transfers.QUERY_SENT,
                message=str(answer.document.get("ConversationID") or ""),
            )
        raise GatewayUnavailable(
            f"status query answered HTTP {answer.status} {_error_code(answer)} "
            f"{_error_message(answer)}",
            retry_after_s=answer.retry_after_s(),
        )

    # -- HTTP ------------------------------------------------------------------------------

    def _call(
        self, credentials: DarajaCredentials, path: str, body: dict[str, Any], *, idempotent: bool
    ) -> Answer:
        """POST with a Bearer token; on an invalid-token answer, get a new token and retry once."""
        key = (self.http.base_url, credentials.consumer_key)
        for attempt in (1, 2):
            token = self._token(credentials, key)
            answer = self._post(path, body, token, idempotent=idempotent)
            if _error_code(answer) in (codes.INVALID_TOKEN, codes.INVALID_TOKEN_B2C) and (
                attempt == 1
            ):
                log.info("daraja token refused, fetching a new one", path=path)
                self.http.tokens.drop(key, token)
                continue
            return answer
        raise GatewayUnavailable("Daraja refused a freshly issued token")

    def _token(self, credentials: DarajaCredentials, key: tuple[str, str]) -> str:
        cached = self.http.tokens.get(key)
        if cached:
            return cached
        answer = self.http.call(
            "GET",
            TOKEN_PATH,
            idempotent=True,
            auth=(credentials.consumer_key, credentials.consumer_secret),
        )
        if answer.status in (400, 401, 403):
            raise GatewayAuthFailed(f"Daraja refused the app credentials (HTTP {answer.status})")
        if answer.status != 200:
            raise GatewayUnavailable(f"token request answered HTTP {answer.status}")
        try:
            token = str(answer.document["access_token"])
            # expires_in arrives as a string in older docs and samples, a number elsewhere.
            expires_in = float(answer.document.get("expires_in", 3599))
        except (ValueError, KeyError, TypeError):
            raise GatewayUnavailable("token answer is not Daraja's shape") from None
        self.http.tokens.put(key, token, expires_in)
        return token

    def _post(self, path: str, body: dict[str, Any], token: str, *, idempotent: bool) -> Answer:
        answer = self.http.call(
            "POST",
            path,
            idempotent=idempotent,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        if not isinstance(answer.body, dict):
            what = f"{path}: HTTP {answer.status} without a Daraja body"
            if idempotent or answer.status in (429, 503):
                raise GatewayUnavailable(what, retry_after_s=answer.retry_after_s())
            raise GatewayOutcomeUnknown(what)
        return answer

    def _push_refusal(self, answer: Answer) -> InitiateResult:
        code, message = _error_code(answer), _error_message(answer)
        if code in codes.BUSY_CODES or answer.status == 429:
            raise GatewayUnavailable(f"Daraja busy: {code} {message}")
        if code == codes.GENERIC_1001 and "lock" in message.lower():
            # "Unable to lock subscriber": another transaction is in progress on that phone.
            raise GatewayUnavailable(f"subscriber locked: {message}", retry_after_s=60)
        if code == codes.GENERIC_1001:
            failure = errors.GATEWAY_CONFIGURATION
        elif code == codes.BAD_REQUEST:
            failure = errors.GATEWAY_REJECTED
        elif answer.status >= 500 and code is None:
            raise GatewayOutcomeUnknown(f"push answered HTTP {answer.status} without an error code")
        else:
            failure = errors.GATEWAY_REJECTED
        return InitiateResult.refused(failure, f"{code}: {message}", answer.document)


def _refused(
    error: errors.ErrorCode, message: str, raw: dict[str, Any] | None = None
) -> TransferSubmission:
    return TransferSubmission(
        accepted=False, failure_code=error.code, message=message, raw=raw or {}
    )

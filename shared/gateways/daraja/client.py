"""The Daraja adapter: OAuth token cache, STK push, STK query, callbacks.

Transport failures are sorted at this edge into "certainly not acted on"
(:class:`GatewayUnavailable`) and "may have been acted on"
(:class:`GatewayOutcomeUnknown`). Daraja has no idempotency for STK pushes, so a
push whose answer was lost must never be re-sent; only the status query is
always safe to repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
import structlog
from urllib3.exceptions import NewConnectionError

from shared.domain import errors
from shared.domain.money import Money, mpesa_whole_shillings
from shared.domain.phone import normalise_ke_msisdn
from shared.gateways.base import (
    CallbackEvent,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    GatewayVerdict,
    InboundCallback,
    InitiateResult,
    Outcome,
    PaymentRequest,
    StatusResult,
)
from shared.gateways.daraja import codes
from shared.gateways.daraja.callbacks import parse_stk_callback
from shared.gateways.daraja.stk import (
    DarajaCredentials,
    nairobi_timestamp,
    stk_push_body,
    stk_query_body,
)

log = structlog.stdlib.get_logger(__name__)

TOKEN_PATH = "/oauth/v1/generate?grant_type=client_credentials"  # noqa: S105 - a path
STK_PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
STK_QUERY_PATH = "/mpesa/stkpushquery/v1/query"
# Tokens live 3600 s; refresh well before, as Daraja libraries do (~50 minutes).
TOKEN_REFRESH_MARGIN_S = 600.0


class GatewayAuthFailed(Exception):
    """Daraja refused the app's consumer key/secret: a configuration problem."""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: dict[str, Any]

    @property
    def error_code(self) -> str | None:
        code = self.body.get("errorCode")
        return str(code) if code is not None else None

    @property
    def error_message(self) -> str:
        return str(self.body.get("errorMessage") or self.body.get("ResponseDescription") or "")[
            :300
        ]


class TokenCache:
    """Access tokens per (base URL, consumer key), shared by the threads of a process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
        if entry is None or time.monotonic() >= entry[1]:
            return None
        return entry[0]

    def put(self, key: tuple[str, str], token: str, expires_in_s: float) -> None:
        refresh_at = time.monotonic() + max(expires_in_s - TOKEN_REFRESH_MARGIN_S, expires_in_s / 2)
        with self._lock:
            self._tokens[key] = (token, refresh_at)

    def drop(self, key: tuple[str, str], token: str) -> None:
        with self._lock:
            if self._tokens.get(key, ("",))[0] == token:
                del self._tokens[key]


class DarajaAdapter:
    """Safaricom M-Pesa Daraja (STK push / M-Pesa Express)."""

    name = "mpesa"
    currency = "KES"

    def __init__(self, base_url: str, *, connect_timeout_s: float, read_timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.tokens = TokenCache()
        self._local = threading.local()

    # -- the adapter interface -------------------------------------------------------------

    def check_request(self, amount: Money, phone: str) -> str:
        mpesa_whole_shillings(amount)
        return normalise_ke_msisdn(phone)

    def credentials(self, stored: dict[str, Any]) -> DarajaCredentials:
        return DarajaCredentials.from_stored(stored)

    def initiate(self, credentials: DarajaCredentials, request: PaymentRequest) -> InitiateResult:
        """Send one STK push. Raises GatewayUnavailable (safe to retry) or GatewayOutcomeUnknown."""
        body = stk_push_body(credentials, request, nairobi_timestamp())
        try:
            answer = self._call(credentials, STK_PUSH_PATH, body, idempotent=False)
        except GatewayAuthFailed as exc:
            return InitiateResult(
                accepted=False, failure_code=errors.GATEWAY_CONFIGURATION.code, message=str(exc)
            )
        if answer.status == 200 and str(answer.body.get("ResponseCode")) == "0":
            checkout_id = answer.body.get("CheckoutRequestID")
            if not checkout_id:
                raise GatewayOutcomeUnknown("push answered 200 without a CheckoutRequestID")
            return InitiateResult(
                accepted=True,
                gateway_ref=str(checkout_id),
                secondary_ref=str(answer.body.get("MerchantRequestID") or "") or None,
                message=str(answer.body.get("CustomerMessage") or ""),
                raw=answer.body,
            )
        return self._push_refusal(answer)

    def query_status(self, credentials: DarajaCredentials, gateway_ref: str) -> StatusResult:
        """STK query. "Being processed" (500.001.1001, 4999) is PENDING, never a failure."""
        body = stk_query_body(credentials, gateway_ref, nairobi_timestamp())
        try:
            answer = self._call(credentials, STK_QUERY_PATH, body, idempotent=True)
        except GatewayAuthFailed as exc:
            raise GatewayUnavailable(f"cannot authenticate to query: {exc}") from exc
        if answer.status == 200 and answer.body.get("ResultCode") is not None:
            result_code = str(answer.body["ResultCode"]).strip()
            meaning = codes.meaning_of(result_code)
            verdict = GatewayVerdict(
                outcome=meaning.outcome,
                result_code=result_code,
                failure_code=meaning.failure_code,
                message=str(answer.body.get("ResultDesc") or "")[:300],
            )
            return StatusResult(gateway_ref=gateway_ref, verdict=verdict)
        if answer.error_code == codes.GENERIC_1001:
            # In flight, intermittently for finished payments too: "no answer yet, ask again".
            pending = GatewayVerdict(
                Outcome.PENDING, codes.GENERIC_1001, message=answer.error_message
            )
            return StatusResult(gateway_ref=gateway_ref, verdict=pending)
        raise GatewayUnavailable(
            f"query answered HTTP {answer.status} {answer.error_code} {answer.error_message}"
        )

    def parse_callback(self, body: bytes, headers: dict[str, str]) -> CallbackEvent:
        return parse_stk_callback(body)

    def authenticate_callback(self, expected_secret_hash: str, inbound: InboundCallback) -> bool:
        presented = hashlib.sha256(inbound.path_secret.encode()).hexdigest()
        return hmac.compare_digest(presented, expected_secret_hash)

    def acknowledgement(self) -> dict[str, Any]:
        return {"ResultCode": 0, "ResultDesc": "Accepted"}

    # -- HTTP ------------------------------------------------------------------------------

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _call(
        self, credentials: DarajaCredentials, path: str, body: dict[str, Any], *, idempotent: bool
    ) -> _Answer:
        """POST with a Bearer token; on an invalid-token answer, get a new token and retry once."""
        key = (self.base_url, credentials.consumer_key)
        for attempt in (1, 2):
            token = self._token(credentials, key)
            answer = self._post(path, body, token, idempotent=idempotent)
            if answer.error_code in (codes.INVALID_TOKEN, codes.INVALID_TOKEN_B2C) and attempt == 1:
                log.info("daraja token refused, fetching a new one", path=path)
                self.tokens.drop(key, token)
                continue
            return answer
        raise GatewayUnavailable("Daraja refused a freshly issued token")

    def _token(self, credentials: DarajaCredentials, key: tuple[str, str]) -> str:
        cached = self.tokens.get(key)
        if cached:
            return cached
        try:
            response = self._session.get(
                self.base_url + TOKEN_PATH,
                auth=(credentials.consumer_key, credentials.consumer_secret),
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise GatewayUnavailable(f"token request failed: {type(exc).__name__}") from exc
        if response.status_code in (400, 401, 403):
            raise GatewayAuthFailed(
                f"Daraja refused the app credentials (HTTP {response.status_code})"
            )
        if response.status_code != 200:
            raise GatewayUnavailable(f"token request answered HTTP {response.status_code}")
        try:
            payload = response.json()
            token = str(payload["access_token"])
            # expires_in arrives as a string in older docs and samples, a number elsewhere.
            expires_in = float(payload.get("expires_in", 3599))
        except (ValueError, KeyError, TypeError):
            raise GatewayUnavailable("token answer is not Daraja's shape") from None
        self.tokens.put(key, token, expires_in)
        return token

    def _post(self, path: str, body: dict[str, Any], token: str, *, idempotent: bool) -> _Answer:
        try:
            response = self._session.post(
                self.base_url + path,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            if idempotent or _certainly_not_sent(exc):
                raise GatewayUnavailable(f"{path}: {type(exc).__name__}") from exc
            raise GatewayOutcomeUnknown(f"{path}: {type(exc).__name__} after sending") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            if idempotent or response.status_code in (429, 503):
                raise GatewayUnavailable(
                    f"{path}: HTTP {response.status_code} without a Daraja body",
                    retry_after_s=_retry_after(response),
                )
            raise GatewayOutcomeUnknown(
                f"{path}: HTTP {response.status_code} without a Daraja body"
            )
        return _Answer(response.status_code, payload)

    def _push_refusal(self, answer: _Answer) -> InitiateResult:
        code, message = answer.error_code, answer.error_message
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
        return InitiateResult(
            accepted=False, failure_code=failure.code, message=f"{code}: {message}", raw=answer.body
        )


def _certainly_not_sent(exc: requests.RequestException) -> bool:
    """True when the request never reached the gateway (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, NewConnectionError)
    return False


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None

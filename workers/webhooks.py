"""``notify_merchant``: deliver one webhook event to the merchant's endpoint, signed, with retries.

One message = at most one HTTP attempt, in three steps, none holding a row lock
during the POST:

1. **Claim** (short transaction, event row ``FOR UPDATE``): decide whether this
   message may attempt, then write the attempt down as an *open* delivery row
   (no status code, no error yet) and count it in ``attempts``.
2. **POST** the payload's bytes, signed (Standard Webhooks), redirects not followed,
   to a public address only: the host is resolved once, every address checked
   (``shared.egress``), and the connection pinned to the checked addresses with
   TLS still verified on the host name. A refusal is a failed attempt like any
   other (each retry resolves and checks again), so nothing is ever sent into
   the private network, and its reason is one short fixed sentence.
3. **Record** (short transaction): fill the delivery row, then move the event:
   ``delivered``; or the next attempt is scheduled (``next_attempt_at`` stored and
   the delayed message published *before* the commit, so a committed schedule
   always has its message); or ``failed`` once ``webhook_retry_delays()`` is spent;
   or ``held`` when the endpoint is (now) disabled.

Which message may attempt (duplicates are normal: fast path + relay, redelivery
after a crash, an operator's resend racing a retry):

- Event unknown, ``delivered`` or ``failed``: nothing to do — unless ``force``.
- An attempt is open (claimed, no outcome) and younger than the lease
  (``3 × webhook_timeout_s + 15 s``, longer than any attempt can last): another
  worker is posting it. This message comes back after the lease
  (``dramatiq.Retry``); by then the attempt is recorded, or its worker died and
  the open row is marked ``interrupted`` and the event attempted again.
- ``next_attempt_at`` later than now (1 s clock tolerance): the message scheduled
  for that time owns the next attempt; this early duplicate is dropped.
- No endpoint, or a disabled one: the event is ``held`` (a replay re-sends it).
- ``force`` (operator resend/replay) skips the status and schedule checks and
  starts a fresh schedule. A delivered event whose resend fails stays delivered.

So at most one attempt per event is in flight, and every stored retry time has a
message scheduled for it. Delivery is at least once (a crash after the POST
but before the record re-sends it): receivers dedupe on ``webhook-id``.

HTTP failures are not errors of ours and never raise: only a database or broker
failure (transient, retried by dramatiq) does. What is stored of a failure is its
status code and a reason from ``shared.webhooks.DELIVERY_ERRORS`` (never an
exception's text, which names addresses and the URL's query); an answer's body is
kept only from a successful attempt.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import dramatiq
import requests
import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared import audit, egress
from shared.db.models import Merchant, WebhookDelivery, WebhookEndpoint, WebhookEvent
from shared.messages import NOTIFY_MERCHANT, NotifyMerchant
from shared.webhooks import (
    CONNECTION_FAILED,
    CONNECTION_REFUSED,
    INTERRUPTED,
    REQUEST_FAILED,
    TIMEOUT,
    TLS_FAILED,
    UNRESOLVABLE,
    disable_endpoint,
    endpoint_secrets,
    event_body,
    send_merchant_email,
    signed_headers,
)
from workers.broker import POLICIES
from workers.runtime import Runtime, runtime

log = structlog.stdlib.get_logger(__name__)

EXCERPT_CHARS = 500
CLOCK_TOLERANCE = timedelta(seconds=1)
LEASE_MARGIN_S = 15.0
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Claim:
    """An attempt this message owns: where to POST what, and its open delivery row."""

    event_id: int
    delivery_id: int
    merchant_id: uuid.UUID
    webhook_id: str
    url: str
    secrets: list[str]
    body: bytes


@dataclass(frozen=True)
class Busy:
    """Another worker's attempt is open until ``until``."""

    until: datetime


@dataclass(frozen=True)
class AttemptResult:
    """What one POST came to: an HTTP status, or an error (network, timeout)."""

    status_code: int | None
    latency_ms: int
    excerpt: str | None = None
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Disabled:
    """An endpoint this attempt disabled, and whom to tell."""

    merchant_id: uuid.UUID
    email: str | None
    url: str
    reason: str


@dramatiq.actor(
    actor_name=NOTIFY_MERCHANT.actor_name,
    queue_name=NOTIFY_MERCHANT.queue_name,
    **POLICIES[NOTIFY_MERCHANT.actor_name].actor_options(),
)
def notify_merchant(**fields: object) -> None:
    message = NotifyMerchant.from_kwargs(fields)
    structlog.contextvars.bind_contextvars(webhook_event_id=message.event_id)
    deliver(runtime(), message.event_id, force=message.force)


def deliver(rt: Runtime, event_id: int, *, force: bool = False) -> AttemptResult | None:
    """Make at most one attempt to deliver the event (see the module's rule); its result."""
    now = datetime.now(UTC)
    with rt.db.transaction() as session:
        claim = claim_attempt(session, rt, event_id, force=force, now=now)
    if isinstance(claim, Busy):
        wait_ms = int((claim.until - now).total_seconds() * 1000) + 1000
        raise dramatiq.Retry(f"an attempt is open until {claim.until.isoformat()}", delay=wait_ms)
    if claim is None:
        return None
    result = post_event(
        claim, rt.settings.webhook_timeout_s, allowed_hosts=rt.settings.webhook_allowed_hosts()
    )
    with rt.db.transaction() as session:
        disabled = record_outcome(session, rt, claim, result, datetime.now(UTC))
    log.info(
        "webhook attempt",
        host=urlsplit(claim.url).hostname,
        status_code=result.status_code,
        error=result.error,
        latency_ms=result.latency_ms,
    )
    if disabled is not None:
        tell_merchant(rt, disabled)
    return result


def lease(rt: Runtime) -> timedelta:
    """How long an open attempt is presumed alive: connect, headers and one read, then margin."""
    return timedelta(seconds=3 * rt.settings.webhook_timeout_s + LEASE_MARGIN_S)


# --- 1. claim --------------------------------------------------------------------------------


def claim_attempt(
    session: Session, rt: Runtime, event_id: int, *, force: bool, now: datetime
) -> Claim | Busy | None:
    """Claim the event's next attempt for this message, or say why not (None: nothing to do)."""
    event = session.get(WebhookEvent, event_id, with_for_update=True)
    if event is None:
        log.warning("webhook event not found", event_id=event_id)
        return None
    open_row = _open_attempt(session, event_id)
    if open_row is not None:
        until = open_row.attempted_at + lease(rt)
        if until > now:
            return Busy(until)
        open_row.error = INTERRUPTED
    if not force and not _due(event, now):
        return None
    endpoint = session.get(WebhookEndpoint, event.merchant_id)
    if endpoint is None or not endpoint.enabled:
        _hold(event)
        return None
    secrets = endpoint_secrets(rt.cipher, endpoint)
    return _open_claim(session, event, endpoint, secrets, force=force, now=now)


def _open_attempt(session: Session, event_id: int) -> WebhookDelivery | None:
    return session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.event_id == event_id,
            WebhookDelivery.status_code.is_(None),
            WebhookDelivery.error.is_(None),
        )
    ).first()


def _due(event: WebhookEvent, now: datetime) -> bool:
    if event.status not in ("pending", "held"):
        return False
    return event.next_attempt_at is None or event.next_attempt_at <= now + CLOCK_TOLERANCE


def _hold(event: WebhookEvent) -> None:
    """No enabled endpoint: keep the event for a replay (a delivered or failed one stays so)."""
    if event.status == "pending":
        event.status, event.next_attempt_at = "held", None
    log.info("webhook held: the merchant has no enabled endpoint", status=event.status)


def _open_claim(
    session: Session,
    event: WebhookEvent,
    endpoint: WebhookEndpoint,
    secrets: list[str],
    *,
    force: bool,
    now: datetime,
) -> Claim:
    if force:
        event.attempts = 0  # an operator's resend or replay starts a fresh schedule
    event.attempts += 1
    if event.status != "delivered":
        event.status = "pending"
    event.next_attempt_at = None
    number = session.scalar(
        select(func.coalesce(func.max(WebhookDelivery.attempt), 0)).where(
            WebhookDelivery.event_id == event.id
        )
    )
    row = WebhookDelivery(
        event_id=event.id,
        attempt=int(number or 0) + 1,
        url=endpoint.url,
        succeeded=False,
        attempted_at=now,  # the lease is measured on the workers' clock, like next_attempt_at
    )
    session.add(row)
    session.flush()
    return Claim(
        event_id=event.id,
        delivery_id=row.id,
        merchant_id=event.merchant_id,
        webhook_id=event.webhook_id,
        url=endpoint.url,
        secrets=secrets,
        body=event_body(event.payload),
    )


# --- 2. POST ---------------------------------------------------------------------------------


def post_event(
    claim: Claim, timeout_s: float, *, allowed_hosts: Collection[str] = ()
) -> AttemptResult:
    """POST the signed body once, to a checked address; never raises for the endpoint or network."""
    headers = signed_headers(claim.secrets, claim.webhook_id, int(time.time()), claim.body)
    started = time.perf_counter()
    try:
        target = egress.check_destination(claim.url, allowed_hosts)
        with (
            egress.pinned_session(target) as session,
            session.post(
                claim.url,
                data=claim.body,
                headers=headers,
                timeout=(timeout_s, timeout_s),
                allow_redirects=False,  # a 3xx is a failed attempt, never followed
                stream=True,
            ) as response,
        ):
            status = response.status_code
            excerpt = _excerpt(response) if 200 <= status < 300 else None
            retry_after = _retry_after(response) if status in RETRY_AFTER_STATUSES else None
    except egress.EgressRefused as exc:
        log.warning("webhook refused: not a public address", reason=exc.reason)
        return AttemptResult(None, _elapsed_ms(started), error=exc.reason)
    except egress.Unresolvable:
        return AttemptResult(None, _elapsed_ms(started), error=UNRESOLVABLE)
    except (requests.RequestException, ValueError) as exc:
        return AttemptResult(None, _elapsed_ms(started), error=_describe(exc))
    return AttemptResult(status, _elapsed_ms(started), excerpt, retry_after_s=retry_after)


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _excerpt(response: requests.Response) -> str | None:
    """The start of the answer's body (at most 500 characters); the rest is not read."""
    try:
        head = next(response.iter_content(chunk_size=EXCERPT_CHARS * 4), b"")
    except requests.RequestException:
        return None
    text = head.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    return text or None


def _describe(exc: Exception) -> str:
    """The failure as one of the fixed reasons (the exception's text names the URL's query)."""
    if isinstance(exc, requests.Timeout):
        return TIMEOUT
    if isinstance(exc, requests.exceptions.SSLError):
        return TLS_FAILED
    if isinstance(exc, requests.ConnectionError):
        return CONNECTION_REFUSED if _caused_by(exc, ConnectionRefusedError) else CONNECTION_FAILED
    return REQUEST_FAILED


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is among the exceptions ``exc`` wraps (requests → urllib3 → socket)."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        pending.extend(current.args)
    return False


def _retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    raw = (response.headers.get("Retry-After") or "").strip()
    if raw.isdigit():
        return float(raw)
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


# --- 3. record -------------------------------------------------------------------------------


def record_outcome(
    session: Session, rt: Runtime, claim: Claim, result: AttemptResult, now: datetime
) -> Disabled | None:
    """Store the attempt and move the event on; returns the endpoint this attempt disabled."""
    event = session.get(WebhookEvent, claim.event_id, with_for_update=True)
    delivery = session.get(WebhookDelivery, claim.delivery_id)
    if event is None or delivery is None:
        return None
    written_off = delivery.error == INTERRUPTED
    delivery.status_code, delivery.latency_ms = result.status_code, result.latency_ms
    delivery.response_excerpt, delivery.error = result.excerpt, result.error
    delivery.succeeded = result.succeeded
    if written_off:
        return None  # another message took over this event when the lease ran out
    endpoint = session.get(WebhookEndpoint, claim.merchant_id, with_for_update=True)
    if result.succeeded:
        event.status, event.delivered_at, event.next_attempt_at = "delivered", now, None
        if endpoint is not None:
            endpoint.failing_since = None
        return None
    disabled = _note_failure(session, rt, endpoint, result, now)
    _after_failure(rt, event, endpoint, result, now)
    return disabled


def _note_failure(
    session: Session,
    rt: Runtime,
    endpoint: WebhookEndpoint | None,
    result: AttemptResult,
    now: datetime,
) -> Disabled | None:
    """Track how long the endpoint has been failing; disable it on 410 or after too long."""
    if endpoint is None:
        return None
    endpoint.failing_since = endpoint.failing_since or now
    reason = disable_reason(endpoint, result, now, rt.settings.webhook_disable_after_s)
    if reason is None or not endpoint.enabled:
        return None
    disable_endpoint(endpoint, reason)
    audit.record(
        session,
        actor="notify_merchant",
        action="webhook_endpoint.disabled",
        subject_type="webhook_endpoint",
        subject_id=endpoint.merchant_id,
        detail={"reason": reason},
    )
    log.warning("webhook endpoint disabled", reason=reason)
    merchant = session.get(Merchant, endpoint.merchant_id)
    email = merchant.email if merchant is not None else None
    return Disabled(endpoint.merchant_id, email, endpoint.url, reason)


def disable_reason(
    endpoint: WebhookEndpoint, result: AttemptResult, now: datetime, disable_after_s: int
) -> str | None:
    """Why a failed attempt disables the endpoint, or None."""
    if result.status_code == 410:
        return "the endpoint answered 410 Gone"
    failing_since = endpoint.failing_since
    if failing_since is not None and now - failing_since >= timedelta(seconds=disable_after_s):
        return f"failing since {failing_since.isoformat()} (over {disable_after_s} s)"
    return None


def _after_failure(
    rt: Runtime,
    event: WebhookEvent,
    endpoint: WebhookEndpoint | None,
    result: AttemptResult,
    now: datetime,
) -> None:
    if event.status == "delivered":
        return  # a failed resend: the merchant had the event already
    if endpoint is None or not endpoint.enabled:
        event.status, event.next_attempt_at = "held", None
        return
    delay = next_delay(event.attempts, rt.settings.webhook_retry_delays(), result.retry_after_s)
    if delay is None:
        event.status, event.next_attempt_at = "failed", None
        log.warning("webhook failed: retry schedule exhausted", attempts=event.attempts)
        return
    event.next_attempt_at = now + timedelta(seconds=delay)
    # Published before the commit: a stored schedule always has its message. Should the
    # commit fail, the open attempt's lease runs out and that message attempts again.
    rt.publisher.send(NotifyMerchant(event_id=event.id), delay_ms=int(delay * 1000))


def next_delay(
    attempts: int, delays: list[float], retry_after_s: float | None = None
) -> float | None:
    """Seconds to wait after ``attempts`` failed attempts, or None once the schedule is spent.

    A ``Retry-After`` longer than the scheduled delay wins, up to the schedule's longest delay.
    """
    if attempts > len(delays):
        return None
    delay = delays[attempts - 1]
    if retry_after_s is not None and retry_after_s > delay:
        delay = min(retry_after_s, max(delays))
    return delay


def tell_merchant(rt: Runtime, disabled: Disabled) -> None:
    """E-mail the merchant that its endpoint was disabled (best effort; logged when not sent)."""
    if not disabled.email:
        log.warning("webhook endpoint disabled; the merchant has no e-mail address")
        return
    text = (
        f"malipo stopped sending webhooks to {egress.redact_url(disabled.url)}: "
        f"{disabled.reason}.\n\n"
        "Events are kept. Once the endpoint works again, ask us to enable it and to\n"
        "replay the events since it stopped.\n"
    )
    send_merchant_email(
        rt.settings, disabled.email, "Your malipo webhook endpoint is disabled", text
    )

"""``/ops/webhooks``: merchant webhook events, their delivery attempts, resend and replay.

A platform operator's key (no merchant) sees and acts on every merchant; a
merchant's key with the scope only on its own events. The ingress only reads
and enqueues ``notify_merchant``: the workers POST to merchants.

- ``GET /ops/webhooks?merchant_id=&status=&since=&limit=&before_id=`` (``ops:read``):
  events, newest first, each with its attempts: status code and a short fixed reason
  (never an endpoint's words); the answer's excerpt is shown to operators only.
- ``POST /ops/webhooks/{event_id}/resend`` (``ops:write``): one more delivery,
  even of a delivered event, with the same ``webhook-id``.
- ``POST /ops/webhooks/replay`` ``{"merchant_id", "since"}`` (``ops:write``): every
  event created since then that is not delivered (pending, failed, held) is sent
  again with a fresh retry schedule; ``202 {"replayed": n}``.

Resend and replay are audited (``key:<api key id>``) in a transaction that commits
before anything is published; if RabbitMQ then refuses, a second audit row says how
many were queued, and the answer is ``503`` (asking again is safe).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import falcon
import structlog
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ingress.auth import Authenticator
from ingress.validation import read_json_object
from shared import audit
from shared.db.models import WebhookDelivery, WebhookEvent
from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.merchants import Principal
from shared.messages import BrokerUnavailable, NotifyMerchant, Publisher
from shared.webhooks import public_error, undelivered_since

log = structlog.stdlib.get_logger(__name__)
STATUSES = ("pending", "delivered", "failed", "held")
MAX_LIMIT = 500
MAX_REPLAY = 10_000
BIGINT_MAX = 2**63 - 1  # webhook_events.id: a larger before_id is refused, not sent to PostgreSQL


class OpsWebhooksResource:
    """``GET /ops/webhooks``."""

    def __init__(self, db: Database, auth: Authenticator) -> None:
        self.db = db
        self.auth = auth

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = self.auth.require(req, "ops:read")
        merchant_id = _merchant_for(principal, req.get_param("merchant_id"))
        limit = req.get_param_as_int("limit", min_value=1, max_value=MAX_LIMIT) or 100
        query = select(WebhookEvent).where(WebhookEvent.status.in_(_statuses(req)))
        if merchant_id is not None:
            query = query.where(WebhookEvent.merchant_id == merchant_id)
        since = _moment(req.get_param("since"), "since")
        if since is not None:
            query = query.where(WebhookEvent.created_at >= since)
        before_id = req.get_param_as_int("before_id", min_value=1, max_value=BIGINT_MAX)
        if before_id is not None:
            query = query.where(WebhookEvent.id < before_id)
        with self.db.transaction() as session:
            events = _with_attempts(
                session,
                query.order_by(WebhookEvent.id.desc()).limit(limit),
                operator=principal.merchant_id is None,
            )
        resp.media = {
            "events": events,
            "next_before_id": events[-1]["id"] if len(events) == limit else None,
        }


class WebhookResendResource:
    """``POST /ops/webhooks/{event_id}/resend``."""

    def __init__(self, db: Database, auth: Authenticator, publisher: Publisher) -> None:
        self.db = db
        self.auth = auth
        self.publisher = publisher

    def on_post(self, req: falcon.Request, resp: falcon.Response, event_id: str) -> None:
        principal = self.auth.require(req, "ops:write")
        # ASCII digits only: str.isdigit() also says yes to '²', which int() refuses.
        if not event_id.isascii() or not event_id.isdigit() or len(event_id) > 18:
            raise MalipoError(errors.NOT_FOUND)
        with self.db.transaction() as session:
            event = session.get(WebhookEvent, int(event_id))
            if event is None or principal.merchant_id not in (None, event.merchant_id):
                raise MalipoError(errors.NOT_FOUND, "no such webhook event")
            webhook_id = event.webhook_id
            detail = {"webhook_id": webhook_id, "merchant_id": str(event.merchant_id)}
            _audit(session, principal, "webhook_event.resend_requested", event.id, detail)
        not_queued = _not_queued(
            self.db, principal, "webhook_event.resend_not_queued", int(event_id)
        )
        _enqueue(self.publisher, [int(event_id)], not_queued)
        log.info("webhook resend queued", event_id=int(event_id), api_key=str(principal.api_key_id))
        resp.status = falcon.HTTP_202
        resp.media = {"id": int(event_id), "webhook_id": webhook_id, "status": "queued"}


class WebhookReplayResource:
    """``POST /ops/webhooks/replay``."""

    def __init__(
        self, db: Database, auth: Authenticator, publisher: Publisher, max_body_bytes: int
    ) -> None:
        self.db = db
        self.auth = auth
        self.publisher = publisher
        self.max_body_bytes = max_body_bytes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = self.auth.require(req, "ops:write")
        document = read_json_object(req, self.max_body_bytes)
        merchant_id = _merchant_for(principal, document.get("merchant_id"))
        if merchant_id is None:
            raise MalipoError(errors.INVALID_REQUEST, "merchant_id is required")
        since = _moment(document.get("since"), "since")
        if since is None:
            raise MalipoError(errors.INVALID_REQUEST, "since (ISO-8601) is required")
        with self.db.transaction() as session:
            ids = undelivered_since(session, merchant_id, since, MAX_REPLAY + 1)
            if len(ids) > MAX_REPLAY:
                raise MalipoError(
                    errors.INVALID_REQUEST, f"more than {MAX_REPLAY} events: replay a later window"
                )
            detail = {
                "merchant_id": str(merchant_id),
                "since": since.isoformat(),
                "events": len(ids),
                "first_event_id": ids[0] if ids else None,
                "last_event_id": ids[-1] if ids else None,
            }
            _audit(session, principal, "webhook_event.replay_requested", merchant_id, detail)
        not_queued = _not_queued(self.db, principal, "webhook_event.replay_not_queued", merchant_id)
        _enqueue(self.publisher, ids, not_queued)
        log.info(
            "webhook replay queued",
            merchant_id=str(merchant_id),
            since=since.isoformat(),
            events=len(ids),
            api_key=str(principal.api_key_id),
        )
        resp.status = falcon.HTTP_202
        resp.media = {"replayed": len(ids)}


def _enqueue(
    publisher: Publisher, event_ids: list[int], not_queued: Callable[[int, int], None]
) -> None:
    """Forced deliveries; 503 when the broker cannot confirm (asking again is safe).

    Called once the request's audit row committed; ``not_queued(queued, of)`` puts a
    refusal on record too.
    """
    queued = 0
    try:
        for event_id in event_ids:
            publisher.send(NotifyMerchant(event_id=event_id, force=True))
            queued += 1
    except BrokerUnavailable as exc:
        log.warning(
            "webhook messages not queued: broker unavailable", error=str(exc), outage="rabbitmq"
        )
        not_queued(queued, len(event_ids))
        raise MalipoError(errors.SERVICE_UNAVAILABLE) from exc


def _audit(
    session: Session, principal: Principal, action: str, subject: object, detail: dict[str, Any]
) -> None:
    """A resend is about the event, a replay about the merchant's events."""
    audit.record(
        session,
        actor=audit.key_actor(principal.api_key_id),
        action=action,
        subject_type="webhook_event" if ".resend" in action else "merchant",
        subject_id=subject,
        detail=detail,
    )


def _not_queued(
    db: Database, principal: Principal, action: str, subject: object
) -> Callable[[int, int], None]:
    """Record that RabbitMQ did not take (all of) what was asked; a database error is logged."""

    def record(queued: int, of: int) -> None:
        try:
            with db.transaction() as session:
                _audit(session, principal, action, subject, {"queued": queued, "of": of})
        except Exception:  # the answer is 503 either way; the request's own row stands
            log.warning("could not audit an unqueued webhook resend or replay", exc_info=True)

    return record


def _merchant_for(principal: Principal, raw: object) -> uuid.UUID | None:
    """The merchant a request is about: a merchant key's own; an operator's choice (or None)."""
    wanted = None
    if raw is not None:
        try:
            wanted = uuid.UUID(str(raw))
        except ValueError:
            raise MalipoError(errors.INVALID_REQUEST, "merchant_id must be a UUID") from None
    if principal.merchant_id is not None:
        if wanted not in (None, principal.merchant_id):
            raise MalipoError(errors.FORBIDDEN, "this API key speaks for another merchant")
        return principal.merchant_id
    return wanted


def _statuses(req: falcon.Request) -> list[str]:
    given = req.get_param_as_list("status") or []
    wanted = [part for value in given for part in value.split(",") if part] or list(STATUSES)
    if set(wanted) - set(STATUSES):
        raise MalipoError(errors.INVALID_REQUEST, f"status must be among {', '.join(STATUSES)}")
    return wanted


def _moment(raw: object, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        raise MalipoError(errors.INVALID_REQUEST, f"{name} must be an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise MalipoError(errors.INVALID_REQUEST, f"{name} needs a time zone (e.g. Z)")
    return moment


def _with_attempts(
    session: Session, query: Select[WebhookEvent], *, operator: bool
) -> list[dict[str, Any]]:
    events = session.scalars(query).all()
    attempts: dict[int, list[dict[str, Any]]] = {event.id: [] for event in events}
    rows = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.event_id.in_(list(attempts)))
        .order_by(WebhookDelivery.event_id, WebhookDelivery.id)
    )
    for row in rows:
        attempts[row.event_id].append(delivery_view(row, operator=operator))
    return [event_view(event, attempts[event.id]) for event in events]


def event_view(event: WebhookEvent, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": event.id,
        "webhook_id": event.webhook_id,
        "merchant_id": str(event.merchant_id),
        "payment_id": str(event.payment_id) if event.payment_id else None,
        "type": event.event_type,
        "status": event.status,
        "attempts": event.attempts,
        "next_attempt_at": _iso(event.next_attempt_at),
        "created_at": _iso(event.created_at),
        "delivered_at": _iso(event.delivered_at),
        "payload": event.payload,
        "deliveries": attempts,
    }


def delivery_view(row: WebhookDelivery, *, operator: bool) -> dict[str, Any]:
    """One attempt: its status code and a fixed, short reason (``public_error``).

    The answer's excerpt is shown to platform operators only: a merchant could
    otherwise point its endpoint at a service that trusts our address and read it.
    """
    return {
        "attempt": row.attempt,
        "url": row.url,
        "status_code": row.status_code,
        "latency_ms": row.latency_ms,
        "response_excerpt": row.response_excerpt if operator else None,
        "error": public_error(row.error),
        "succeeded": row.succeeded,
        "attempted_at": _iso(row.attempted_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None

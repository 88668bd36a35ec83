"""``GET /ops/events``: what operators must look at — orphans, mismatches, suspicions.
``GET /ops/refused-callbacks``: refused callbacks, counted per minute, source and reason.

Scope ``ops:read``. A merchant's key sees its own merchant's rows; a platform
operator's key (no merchant) sees every row, including refused callbacks that
named no merchant at all. (What a worker refuses — Idram's and Telcell's checksums
— and refusals recorded before counts existed are ``refused`` events.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import falcon
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ingress.auth import Authenticator
from ingress.validation import text_param, time_param
from shared.db.models import GatewayEvent, RefusedCallback
from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import MalipoError

# Outcomes an operator reviews (applied/same/stale events are the normal course).
REVIEW_OUTCOMES = (
    "orphan",
    "mismatch",
    "refused",
    "suspicious",
    "unconfirmed",
    "conflict",
    "malformed",
    "late_success",
    "duplicate_collection",
    "reference_taken",
    "transfer_orphan",
    "transfer_conflict",
)
MAX_LIMIT = 500
BIGINT_MAX = 2**63 - 1


def _gateway_param(req: falcon.Request, names: list[str]) -> str | None:
    gateway = req.get_param("gateway")
    if gateway is not None and gateway not in names:
        raise MalipoError(errors.INVALID_REQUEST, f"gateway must be one of {', '.join(names)}")
    return gateway or None


@dataclass(frozen=True)
class Page:
    """What every /ops listing takes: whose rows, how many, from where, since when."""

    merchant_id: Any
    limit: int
    before_id: int | None
    since: datetime | None
    gateway: str | None

    def narrow(self, query: Select[Any], table: Any, at: Any) -> Select[Any]:
        """``query`` narrowed to the page's merchant, gateway and ``at >= since``."""
        if self.merchant_id is not None:
            query = query.where(table.merchant_id == self.merchant_id)
        if self.since is not None:
            query = query.where(at >= self.since)
        if self.gateway:
            query = query.where(table.gateway == self.gateway)
        return query


class OpsListing:
    def __init__(self, db: Database, auth: Authenticator, gateway_names: list[str]) -> None:
        self.db = db
        self.auth = auth
        self.gateway_names = gateway_names

    def page(self, req: falcon.Request) -> Page:
        principal = self.auth.require(req, "ops:read")
        return Page(
            merchant_id=principal.merchant_id,
            limit=req.get_param_as_int("limit", min_value=1, max_value=MAX_LIMIT) or 100,
            before_id=req.get_param_as_int("before_id", min_value=1, max_value=BIGINT_MAX),
            since=time_param(req),
            gateway=_gateway_param(req, self.gateway_names),
        )


class OpsEventsResource(OpsListing):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page_of = self.page(req)
        outcomes = self._outcomes(req)
        limit, before_id = page_of.limit, page_of.before_id
        query = page_of.narrow(
            select(GatewayEvent).where(GatewayEvent.outcome.in_(outcomes)),
            GatewayEvent,
            GatewayEvent.recorded_at,
        )
        with self.db.transaction() as session:
            counts = _counts(session, query)
            page = query if before_id is None else query.where(GatewayEvent.id < before_id)
            rows = session.scalars(page.order_by(GatewayEvent.id.desc()).limit(limit)).all()
            events = [event_view(row) for row in rows]
        resp.media = {
            "events": events,
            "counts": {outcome: counts.get(outcome, 0) for outcome in outcomes},
            "next_before_id": events[-1]["id"] if len(events) == limit else None,
        }

    @staticmethod
    def _outcomes(req: falcon.Request) -> list[str]:
        given = req.get_param_as_list("outcome") or []
        # ?outcome=orphan,mismatch and ?outcome=orphan&outcome=mismatch mean the same.
        wanted = [part for value in given for part in value.split(",") if part] or list(
            REVIEW_OUTCOMES
        )
        unknown = sorted(set(wanted) - set(REVIEW_OUTCOMES))
        if unknown:
            raise MalipoError(
                errors.INVALID_REQUEST, f"outcome must be among {', '.join(REVIEW_OUTCOMES)}"
            )
        return wanted


def _counts(session: Session, query: Select[Any]) -> dict[str, int]:
    filtered = query.subquery()
    rows = session.execute(select(filtered.c.outcome, func.count()).group_by(filtered.c.outcome))
    return {str(outcome): int(count) for outcome, count in rows}


def event_view(row: GatewayEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "gateway": row.gateway,
        "outcome": row.outcome,
        "detail": row.detail,
        "source": row.source,
        "merchant_id": str(row.merchant_id) if row.merchant_id else None,
        "payment_id": str(row.intent_id) if row.intent_id else None,
        "gateway_ref": row.gateway_ref,
        "result_code": row.result_code,
        "remote_addr": row.remote_addr,
        "body_sha256": row.body_sha256,
        "body_masked": row.body_masked,
        "received_at": row.received_at.isoformat(),
        "recorded_at": row.recorded_at.isoformat(),
    }


class RefusedCallbacksResource(OpsListing):
    """Counts of refused callbacks, newest minute first, with their total."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page_of = self.page(req)
        limit, before_id = page_of.limit, page_of.before_id
        query = page_of.narrow(select(RefusedCallback), RefusedCallback, RefusedCallback.last_at)
        for name in ("reason", "source"):
            value = text_param(req, name, 64)
            if value is not None:
                query = query.where(getattr(RefusedCallback, name) == value)
        with self.db.transaction() as session:
            filtered = query.subquery()
            total = session.scalar(select(func.coalesce(func.sum(filtered.c.count), 0)))
            page = query if before_id is None else query.where(RefusedCallback.id < before_id)
            rows = session.scalars(page.order_by(RefusedCallback.id.desc()).limit(limit)).all()
            counts = [refused_view(row) for row in rows]
        resp.media = {
            "refused": counts,
            "total": int(total or 0),
            "next_before_id": counts[-1]["id"] if len(counts) == limit else None,
        }


def refused_view(row: RefusedCallback) -> dict[str, Any]:
    return {
        "id": row.id,
        "minute": row.minute.isoformat(),
        "gateway": row.gateway,
        "merchant_id": str(row.merchant_id) if row.merchant_id else None,
        "source": row.source,
        "reason": row.reason,
        "count": row.count,
        "first_at": row.first_at.isoformat(),
        "last_at": row.last_at.isoformat(),
        "sample_sha256": row.sample_sha256,
    }

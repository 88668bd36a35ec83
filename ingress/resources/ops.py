"""``GET /ops/events``: what operators must look at — orphans, mismatches, refusals, suspicions.

Scope ``ops:read``. A merchant's key sees its own merchant's events; a platform
operator's key (no merchant) sees every event, including refused callbacks that
named no merchant at all.
"""

from __future__ import annotations

from typing import Any

import falcon
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ingress.auth import Authenticator
from ingress.validation import time_param
from shared.db.models import GatewayEvent
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


class OpsEventsResource:
    def __init__(self, db: Database, auth: Authenticator, gateway_names: list[str]) -> None:
        self.db = db
        self.auth = auth
        self.gateway_names = gateway_names

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = self.auth.require(req, "ops:read")
        outcomes = self._outcomes(req)
        limit = req.get_param_as_int("limit", min_value=1, max_value=MAX_LIMIT) or 100
        before_id = req.get_param_as_int("before_id", min_value=1, max_value=BIGINT_MAX)
        since = time_param(req)

        query = select(GatewayEvent).where(GatewayEvent.outcome.in_(outcomes))
        if principal.merchant_id is not None:
            query = query.where(GatewayEvent.merchant_id == principal.merchant_id)
        if since is not None:
            query = query.where(GatewayEvent.recorded_at >= since)
        gateway = req.get_param("gateway")
        if gateway is not None and gateway not in self.gateway_names:
            raise MalipoError(
                errors.INVALID_REQUEST, f"gateway must be one of {', '.join(self.gateway_names)}"
            )
        if gateway:
            query = query.where(GatewayEvent.gateway == gateway)
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

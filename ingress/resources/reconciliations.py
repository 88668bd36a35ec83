"""``/ops/reconciliations``: ask for a run, read runs and their items, export a run as CSV.

``POST /ops/reconciliations`` (``ops:write``) enqueues the run of a window; the run's
id comes from the window, so it is answered at once and asking twice is one run.
``POST /ops/reconciliations/items/{id}/resolve`` enqueues an operator's resolution.
Reading takes ``ops:read``: a merchant's key sees its own merchant's runs and items.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta
from typing import Any

import falcon
import structlog
from sqlalchemy import select

from ingress.auth import Authenticator
from ingress.validation import read_json_object
from shared import audit
from shared.db.models import ReconciliationItem, ReconciliationRun
from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.gateways.base import Capability
from shared.gateways.registry import GatewayRegistry
from shared.merchants import Principal
from shared.messages import BrokerUnavailable, Publisher, ReconcileWindow, ResolveReconciliationItem
from shared.reconciliation.window import Window

log = structlog.stdlib.get_logger(__name__)
MAX_WINDOW = timedelta(days=31)
MAX_BODY_BYTES = 4096
ITEM_COLUMNS = (
    "id",
    "kind",
    "merchant_id",
    "payment_id",
    "receipt",
    "gateway_ref",
    "currency",
    "our_amount_minor",
    "their_amount_minor",
    "our_status",
    "their_status",
    "resolution",
    "resolution_note",
    "resolved_by",
    "resolved_at",
)


def run_view(run: ReconciliationRun) -> dict[str, Any]:
    return {
        "id": str(run.id),
        "gateway": run.gateway,
        "merchant_id": str(run.merchant_id) if run.merchant_id else None,
        "source": run.source,
        "from": run.window_start.isoformat(),
        "to": run.window_end.isoformat(),
        "trigger": run.trigger,
        "status": run.status,
        "executions": run.executions,
        "counts": run.counts,
        "amounts_minor": run.amounts,
        "discrepancies": run.discrepancies,
        "error": run.error,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def item_view(item: ReconciliationItem) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for name in ITEM_COLUMNS:
        value = getattr(item, name)
        view[name] = value.isoformat() if isinstance(value, datetime) else value
        if isinstance(value, uuid.UUID):
            view[name] = str(value)
    view["evidence"] = item.evidence
    return view


class ReconciliationsResource:
    def __init__(
        self, db: Database, auth: Authenticator, publisher: Publisher, gateways: GatewayRegistry
    ) -> None:
        self.db = db
        self.auth = auth
        self.publisher = publisher
        self.gateways = gateways

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = self.auth.require(req, "ops:read")
        limit = req.get_param_as_int("limit", min_value=1, max_value=500) or 50
        query = select(ReconciliationRun)
        if principal.merchant_id is not None:
            query = query.where(ReconciliationRun.merchant_id == principal.merchant_id)
        gateway = req.get_param("gateway")
        if gateway is not None:
            query = query.where(ReconciliationRun.gateway == self._gateway(gateway))
        with self.db.transaction() as session:
            runs = session.scalars(
                query.order_by(ReconciliationRun.created_at.desc()).limit(limit)
            ).all()
            resp.media = {"reconciliations": [run_view(run) for run in runs]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = self.auth.require(req, "ops:write")
        body = read_json_object(req, MAX_BODY_BYTES)
        gateway = self._gateway(body.get("gateway"))
        start, end = _moment(body, "from"), _moment(body, "to")
        if end <= start:
            raise MalipoError(errors.INVALID_REQUEST, "to must be after from")
        if end - start > MAX_WINDOW:
            raise MalipoError(errors.INVALID_REQUEST, "a run covers at most 31 days")
        merchant_id = _merchant(principal, body.get("merchant_id"))
        window = Window(gateway, start, end, merchant_id)
        run_id = window.run_id()
        with self.db.transaction() as session:
            audit.record(
                session,
                actor=audit.key_actor(principal.api_key_id),
                action="reconciliation.requested",
                subject_type="reconciliation_run",
                subject_id=run_id,
                detail={
                    "gateway": gateway,
                    "from": start.isoformat(),
                    "to": end.isoformat(),
                    "merchant_id": str(merchant_id) if merchant_id else None,
                },
            )
        message = ReconcileWindow(
            gateway,
            start.isoformat(),
            end.isoformat(),
            merchant_id=str(merchant_id) if merchant_id else None,
            trigger="ops",
        )
        _send(self.publisher, message)
        log.info("reconciliation queued", run_id=str(run_id), gateway=gateway)
        resp.status = falcon.HTTP_202
        resp.media = {
            "id": str(run_id),
            "status": "queued",
            "links": {
                "run": f"/ops/reconciliations/{run_id}",
                "csv": f"/ops/reconciliations/{run_id}.csv",
            },
        }

    def _gateway(self, name: object) -> str:
        if not isinstance(name, str) or name not in self.gateways.names():
            raise MalipoError(
                errors.INVALID_REQUEST, f"gateway must be one of {', '.join(self.gateways.names())}"
            )
        description = self.gateways.describe(name)
        if not description.has(Capability.TRANSACTIONS):
            raise MalipoError(
                errors.CAPABILITY_NOT_SUPPORTED,
                f"{name} has no transaction list to reconcile against (use a statement)",
            )
        return description.name


class ReconciliationResource:
    """``GET /ops/reconciliations/{id}`` (the run and its discrepancies) and ``….csv``."""

    def __init__(self, db: Database, auth: Authenticator) -> None:
        self.db = db
        self.auth = auth

    def on_get(self, req: falcon.Request, resp: falcon.Response, run_id: str) -> None:
        principal = self.auth.require(req, "ops:read")
        kinds = [k for k in (req.get_param_as_list("kind") or []) if k]
        with self.db.transaction() as session:
            run = self._run(session, principal, run_id)
            query = self._items(run, principal)
            if kinds:
                query = query.where(ReconciliationItem.kind.in_(kinds))
            else:
                query = query.where(ReconciliationItem.kind != "matched")
            items = session.scalars(query.order_by(ReconciliationItem.id).limit(1000)).all()
            resp.media = {**run_view(run), "items": [item_view(item) for item in items]}

    def on_get_csv(self, req: falcon.Request, resp: falcon.Response, run_id: str) -> None:
        principal = self.auth.require(req, "ops:read")
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(ITEM_COLUMNS)
        with self.db.transaction() as session:
            run = self._run(session, principal, run_id)
            for item in session.scalars(
                self._items(run, principal).order_by(ReconciliationItem.id)
            ):
                row = item_view(item)
                writer.writerow(["" if row[name] is None else row[name] for name in ITEM_COLUMNS])
        resp.content_type = "text/csv; charset=utf-8"
        resp.downloadable_as = f"reconciliation-{run_id}.csv"
        resp.text = out.getvalue()

    def _run(self, session: Any, principal: Principal, run_id: str) -> ReconciliationRun:
        try:
            wanted = uuid.UUID(run_id)
        except ValueError:
            raise MalipoError(errors.NOT_FOUND, "no such reconciliation") from None
        run = session.get(ReconciliationRun, wanted)
        if run is None or principal.merchant_id not in (None, run.merchant_id):
            raise MalipoError(errors.NOT_FOUND, "no such reconciliation")
        return run  # type: ignore[no-any-return]

    @staticmethod
    def _items(run: ReconciliationRun, principal: Principal) -> Any:
        query = select(ReconciliationItem).where(ReconciliationItem.run_id == run.id)
        if principal.merchant_id is not None:
            query = query.where(ReconciliationItem.merchant_id == principal.merchant_id)
        return query


class ResolveItemResource:
    """``POST /ops/reconciliations/items/{item_id}/resolve`` ``{"note": "..."}``."""

    def __init__(self, db: Database, auth: Authenticator, publisher: Publisher) -> None:
        self.db = db
        self.auth = auth
        self.publisher = publisher

    def on_post(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        principal = self.auth.require(req, "ops:write")
        if not item_id.isascii() or not item_id.isdigit() or len(item_id) > 18:
            raise MalipoError(errors.NOT_FOUND, "no such reconciliation item")
        note = read_json_object(req, MAX_BODY_BYTES).get("note")
        if not isinstance(note, str) or not note.strip() or len(note) > 500:
            raise MalipoError(
                errors.INVALID_REQUEST, "note must say what was done (1 to 500 characters)"
            )
        with self.db.transaction() as session:
            item = session.get(ReconciliationItem, int(item_id))
            if item is None or principal.merchant_id not in (None, item.merchant_id):
                raise MalipoError(errors.NOT_FOUND, "no such reconciliation item")
            if item.resolution is not None:
                raise MalipoError(errors.ALREADY_RESOLVED, f"item already {item.resolution}")
        actor = audit.key_actor(principal.api_key_id)
        _send(self.publisher, ResolveReconciliationItem(int(item_id), note.strip(), actor))
        resp.status = falcon.HTTP_202
        resp.media = {"id": int(item_id), "status": "queued"}


def _send(publisher: Publisher, message: Any) -> None:
    try:
        publisher.send(message)
    except BrokerUnavailable as exc:
        log.warning(
            "reconciliation not queued: broker unavailable", error=str(exc), outage="rabbitmq"
        )
        raise MalipoError(errors.SERVICE_UNAVAILABLE) from exc


def _moment(body: dict[str, Any], name: str) -> datetime:
    raw = body.get(name)
    try:
        moment = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise MalipoError(errors.INVALID_REQUEST, f"{name} must be an ISO-8601 time with a zone")
    return moment


def _merchant(principal: Principal, raw: object) -> uuid.UUID | None:
    """A merchant key reconciles its own merchant; an operator any one, or all (None)."""
    if principal.merchant_id is not None:
        if raw is not None and str(raw) != str(principal.merchant_id):
            raise MalipoError(errors.FORBIDDEN, "a merchant key reconciles its own merchant")
        return principal.merchant_id
    if raw is None:
        return None
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise MalipoError(errors.INVALID_REQUEST, "merchant_id must be a UUID") from None

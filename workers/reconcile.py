"""``reconcile_window``: does our ledger agree with the gateway over a window?

A run compares every payment of a gateway (for one merchant, or every merchant
with its credentials) accepted in ``[start, end)`` with what the gateway says:

1. its status API, for each payment not final or whose final state no gateway word
   confirmed (a local expiry), at ``reconcile_queries_per_s``; a final answer goes
   through the one apply path (so a proven late success is credited once);
2. its own list of transactions (Pull Transactions, IntaSend's list) over the window
   widened by ``reconcile_slack_s`` each side, or an uploaded statement instead;
3. :func:`shared.reconciliation.compare.compare` names one item per transaction.

A success the list proves for a payment we had as expired is applied like any
gateway word (flag ``reconciled_late_success``); a payment we credited and the
gateway says failed is flagged for an operator and never debited. A run of a
window is one row (its id derives from the window), so running it again re-uses
its items: a resolved item stays resolved, and nothing is applied twice. Two runs
of one window never overlap (a session advisory lock, skipped if held).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import structlog
from sqlalchemy import func, or_, select, text
from sqlalchemy.dialects.postgresql import insert

from shared import audit
from shared.db.models import (
    GatewayCredential,
    GatewayEvent,
    PaymentAttempt,
    PaymentIntent,
    ReconciliationItem,
    ReconciliationRun,
)
from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.states import FINAL_STATES, PaymentStatus
from shared.gateways.base import (
    Capability,
    GatewayTransaction,
    GatewayUnavailable,
    GatewayVerdict,
    Outcome,
    TransactionList,
)
from shared.merchants import load_gateway_config
from shared.messages import (
    RECONCILE_WINDOW,
    RESOLVE_RECONCILIATION_ITEM,
    BrokerUnavailable,
    NotifyOperators,
    ReconcileWindow,
    ResolveReconciliationItem,
)
from shared.operator_alerts import OperatorAlert
from shared.reconciliation.compare import (
    MATCHED,
    STATUS_MISMATCH,
    Finding,
    OurPayment,
    compare,
)
from shared.reconciliation.window import Window
from workers.broker import POLICIES
from workers.outcomes import GatewayWord, apply_word, flag_for_review, lock_intent, query_word
from workers.runtime import Runtime, runtime

log = structlog.stdlib.get_logger(__name__)

LATE_SUCCESS_FLAG = "reconciled_late_success"
CREDITED_BUT_FAILED_FLAG = "reconciliation_status_mismatch"
# Our payment sources a gateway's word can confirm a final state with.
CONFIRMING_SOURCES = ("callback", "query", "reconciliation")
CONFIRMING_OUTCOMES = ("applied", "late_success", "same")

Progress = Callable[[str, int, int], None]


@dramatiq.actor(
    actor_name=RECONCILE_WINDOW.actor_name,
    queue_name=RECONCILE_WINDOW.queue_name,
    **POLICIES[RECONCILE_WINDOW.actor_name].actor_options(),
)
def reconcile_window(**fields: object) -> None:
    message = ReconcileWindow.from_kwargs(fields)
    window = Window(
        gateway=message.gateway,
        start=datetime.fromisoformat(message.start),
        end=datetime.fromisoformat(message.end),
        merchant_id=uuid.UUID(message.merchant_id) if message.merchant_id else None,
        trigger=message.trigger,
    )
    reconcile(runtime(), window)


@dramatiq.actor(
    actor_name=RESOLVE_RECONCILIATION_ITEM.actor_name,
    queue_name=RESOLVE_RECONCILIATION_ITEM.queue_name,
    **POLICIES[RESOLVE_RECONCILIATION_ITEM.actor_name].actor_options(),
)
def resolve_reconciliation_item(**fields: object) -> None:
    message = ResolveReconciliationItem.from_kwargs(fields)
    resolve_item(runtime(), message.item_id, message.note, actor=message.actor)


def resolve_item(rt: Runtime, item_id: int, note: str, *, actor: str) -> bool:
    """Mark an item resolved with the operator's note, audited; False if it already was.

    Resolving records a decision (refunded by hand, confirmed with the gateway, ...); it
    moves no money. The run's open discrepancy count goes down with it.
    """
    note = note.strip()
    if not note:
        raise MalipoError(errors.INVALID_REQUEST, "a resolution needs a note saying what was done")
    with rt.db.transaction() as session:
        item = session.get(ReconciliationItem, item_id, with_for_update=True)
        if item is None:
            raise MalipoError(errors.NOT_FOUND, f"no reconciliation item {item_id}")
        if item.resolution is not None:
            return False
        item.resolution, item.resolution_note = "resolved", note[:500]
        item.resolved_by, item.resolved_at = actor[:100], datetime.now(UTC)
        audit.record(
            session,
            actor=actor,
            action="reconciliation.item_resolved",
            subject_type="reconciliation_item",
            subject_id=item.id,
            detail={"run_id": str(item.run_id), "kind": item.kind, "note": note[:500]},
        )
        run_id = item.run_id
    _finish_run(rt, run_id, complete=False)
    return True


def reconcile(
    rt: Runtime,
    window: Window,
    *,
    statement: Sequence[GatewayTransaction] | None = None,
    progress: Progress | None = None,
) -> uuid.UUID | None:
    """Run (or re-run) the window; its run id, or None when a run of it is under way."""
    if window.end <= window.start:
        raise MalipoError(errors.INVALID_REQUEST, "the window must end after it starts")
    description = rt.gateways.describe(window.gateway)
    if statement is None and not description.has(Capability.TRANSACTIONS):
        raise MalipoError(
            errors.CAPABILITY_NOT_SUPPORTED,
            f"{description.name} has no transaction list: reconcile it with --statement",
        )
    with rt.db.engine.connect() as lock_conn:
        held = lock_conn.execute(
            text("SELECT pg_try_advisory_lock(:k)"), {"k": window.lock_key()}
        ).scalar()
        lock_conn.commit()
        if not held:
            log.info("reconciliation of this window already running", run_id=str(window.run_id()))
            return None
        try:
            return _run(rt, window, statement, progress or _quiet)
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": window.lock_key()})
            lock_conn.commit()


def _quiet(stage: str, done: int, total: int) -> None:
    return None


def _run(
    rt: Runtime,
    window: Window,
    statement: Sequence[GatewayTransaction] | None,
    progress: Progress,
) -> uuid.UUID:
    run_id = _start_run(rt, window)
    structlog.contextvars.bind_contextvars(reconciliation_id=str(run_id))
    try:
        merchants = _merchants(rt, window)
        late = _query_unconfirmed(rt, window, merchants, progress)
        theirs = list(statement) if statement is not None else _their_list(rt, window, merchants)
        ours = _ours(rt, window, theirs)
        findings = compare(ours, theirs, (window.start, window.end))
        late |= _finish_proven(rt, window, findings)
        _flag_credited_but_failed(rt, findings)
        _store_items(rt, run_id, findings, late, progress)
        summary = _finish_run(rt, run_id)
    except Exception as exc:
        with rt.db.transaction() as session:
            run = session.get(ReconciliationRun, run_id)
            if run is not None:
                run.status, run.error = "failed", str(exc)[:300]
                run.finished_at = datetime.now(UTC)
        log.warning("reconciliation failed; run it again", error=str(exc))
        raise
    log.info("reconciliation completed", gateway=window.gateway, **summary)
    if summary["discrepancies"]:
        _alert_operators(rt, window, run_id, summary)
    return run_id


def _alert_operators(
    rt: Runtime, window: Window, run_id: uuid.UUID, summary: dict[str, Any]
) -> None:
    """``reconciliation.completed`` to operators, when something is left to look at."""
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(summary["counts"].items()))
    text = (
        f"Reconciliation {run_id} of {window.gateway} from {window.start.isoformat()} to "
        f"{window.end.isoformat()} found {summary['discrepancies']} open discrepancies "
        f"({counts}). GET /ops/reconciliations/{run_id}.csv lists them."
    )
    alert = OperatorAlert.new(
        "reconciliation.completed",
        f"malipo: {summary['discrepancies']} reconciliation discrepancies ({window.gateway})",
        text,
        {
            "id": str(run_id),
            "gateway": window.gateway,
            "merchant_id": str(window.merchant_id) if window.merchant_id else None,
            "from": window.start.isoformat(),
            "to": window.end.isoformat(),
            "counts": summary["counts"],
            "discrepancies": summary["discrepancies"],
        },
    )
    try:
        rt.publisher.send(
            NotifyOperators(alert.alert_id, alert.event, alert.subject, alert.text, alert.data)
        )
    except BrokerUnavailable as exc:
        log.warning("operators not alerted: broker unavailable", error=str(exc), outage="rabbitmq")


def _start_run(rt: Runtime, window: Window) -> uuid.UUID:
    run_id = window.run_id()
    now = datetime.now(UTC)
    with rt.db.transaction() as session:
        run = session.get(ReconciliationRun, run_id, with_for_update=True)
        if run is None:
            session.execute(
                insert(ReconciliationRun)
                .values(
                    id=run_id,
                    gateway=window.gateway,
                    merchant_id=window.merchant_id,
                    source=window.source,
                    window_start=window.start,
                    window_end=window.end,
                    trigger=window.trigger,
                    status="running",
                    executions=1,
                    started_at=now,
                )
                .on_conflict_do_nothing()
            )
        else:
            run.status, run.error, run.started_at = "running", None, now
            run.executions += 1
            run.trigger = window.trigger
    return run_id


def _merchants(rt: Runtime, window: Window) -> dict[uuid.UUID, dict[str, Any]]:
    """Each merchant in scope with its decrypted credentials for the gateway."""
    found: dict[uuid.UUID, dict[str, Any]] = {}
    with rt.db.transaction() as session:
        query = select(GatewayCredential.merchant_id).where(
            GatewayCredential.gateway == window.gateway, GatewayCredential.enabled.is_(True)
        )
        if window.merchant_id is not None:
            query = query.where(GatewayCredential.merchant_id == window.merchant_id)
        for merchant_id in session.scalars(query).all():
            config = load_gateway_config(session, rt.cipher, merchant_id, window.gateway)
            if config is not None:
                found[merchant_id] = config.credentials
    return found


def _in_window(window: Window) -> Any:
    query = select(PaymentIntent).where(
        PaymentIntent.gateway == window.gateway,
        PaymentIntent.accepted_at >= window.start,
        PaymentIntent.accepted_at < window.end,
    )
    if window.merchant_id is not None:
        query = query.where(PaymentIntent.merchant_id == window.merchant_id)
    return query


def _query_unconfirmed(
    rt: Runtime,
    window: Window,
    merchants: dict[uuid.UUID, dict[str, Any]],
    progress: Progress,
) -> set[uuid.UUID]:
    """Ask the status API about what no gateway word settled; the late successes it proves."""
    if not rt.gateways.describe(window.gateway).has(Capability.STATUS):
        return set()
    confirmed = (
        select(GatewayEvent.id)
        .where(
            GatewayEvent.intent_id == PaymentIntent.id,
            GatewayEvent.source.in_(CONFIRMING_SOURCES),
            GatewayEvent.outcome.in_(CONFIRMING_OUTCOMES),
        )
        .exists()
    )
    with rt.db.transaction() as session:
        rows = session.execute(
            _in_window(window)
            .with_only_columns(
                PaymentIntent.id, PaymentIntent.merchant_id, PaymentIntent.gateway_ref
            )
            .where(
                PaymentIntent.gateway_ref.is_not(None),
                or_(PaymentIntent.status.not_in(list(FINAL_STATES)), ~confirmed),
                PaymentIntent.status != PaymentStatus.SUCCEEDED,
            )
            .order_by(PaymentIntent.accepted_at)
        ).all()
    late: set[uuid.UUID] = set()
    pause_s = 1.0 / rt.settings.reconcile_queries_per_s
    for n, (payment_id, merchant_id, gateway_ref) in enumerate(rows):
        progress("status queries", n, len(rows))
        credentials = merchants.get(merchant_id)
        if credentials is None:
            continue
        if n:
            time.sleep(pause_s)
        try:
            answer = rt.gateways.query_status(window.gateway, credentials, gateway_ref)
        except GatewayUnavailable as exc:
            log.info(
                "status query unavailable; the item waits",
                payment_id=str(payment_id),
                error=str(exc),
            )
            continue
        if answer.verdict.outcome == Outcome.PENDING:
            continue
        word = query_word(window.gateway, answer, datetime.now(UTC))
        if _apply(rt, payment_id, word) == "late_success":
            late.add(payment_id)
    progress("status queries", len(rows), len(rows))
    return late


def _their_list(
    rt: Runtime, window: Window, merchants: dict[uuid.UUID, dict[str, Any]]
) -> list[GatewayTransaction]:
    slack = timedelta(seconds=rt.settings.reconcile_slack_s)
    lister = rt.gateways.transaction_list(window.gateway)
    adapter = rt.gateways.get(window.gateway)
    rows: list[GatewayTransaction] = []
    for stored in merchants.values():
        credentials = adapter.credentials(stored)
        rows.extend(lister.list_transactions(credentials, window.start - slack, window.end + slack))
    return rows


def _ours(rt: Runtime, window: Window, theirs: Sequence[GatewayTransaction]) -> list[OurPayment]:
    """The window's payments, and any other that carries a receipt or id the gateway lists."""
    receipts = sorted({row.receipt for row in theirs if row.receipt})
    refs = sorted({row.gateway_ref for row in theirs if row.gateway_ref})
    with rt.db.transaction() as session:
        intents = {i.id: (i, True) for i in session.scalars(_in_window(window)).all()}
        window_receipts = sorted({i.receipt for i, _ in intents.values() if i.receipt})
        context = select(PaymentIntent).where(
            PaymentIntent.gateway == window.gateway,
            or_(
                PaymentIntent.receipt.in_(sorted({*receipts, *window_receipts})),
                PaymentIntent.id.in_(
                    select(PaymentAttempt.intent_id).where(
                        PaymentAttempt.gateway == window.gateway,
                        PaymentAttempt.gateway_ref.in_(refs),
                    )
                ),
            ),
        )
        for intent in session.scalars(context).all():
            intents.setdefault(intent.id, (intent, False))
        attempt_refs: dict[uuid.UUID, set[str]] = {}
        for intent_id, ref in session.execute(
            select(PaymentAttempt.intent_id, PaymentAttempt.gateway_ref).where(
                PaymentAttempt.intent_id.in_(list(intents)),
                PaymentAttempt.gateway_ref.is_not(None),
            )
        ):
            attempt_refs.setdefault(intent_id, set()).add(str(ref))
        lister = _lister(rt, window.gateway)
        return [
            OurPayment(
                id=intent.id,
                merchant_id=intent.merchant_id,
                status=intent.status,
                amount_minor=intent.amount_minor,
                currency=intent.currency,
                receipt=intent.receipt,
                gateway_refs=frozenset(
                    attempt_refs.get(intent.id, set())
                    | ({intent.gateway_ref} if intent.gateway_ref else set())
                ),
                account_ref=lister.listed_account_ref(intent.reference, intent.id)
                if lister is not None
                else None,
                in_window=in_window,
            )
            for intent, in_window in intents.values()
        ]


def _lister(rt: Runtime, gateway: str) -> TransactionList | None:
    """The gateway's list reader, when it has one (a statement run may be without)."""
    if not rt.gateways.describe(gateway).has(Capability.TRANSACTIONS):
        return None
    return rt.gateways.transaction_list(gateway)


def _apply(rt: Runtime, payment_id: uuid.UUID, word: GatewayWord) -> str | None:
    with rt.db.transaction() as session:
        intent = lock_intent(session, payment_id)
        if intent is None:
            return None
        outcome = apply_word(session, intent, word, datetime.now(UTC))
        if outcome == "late_success":
            flag_for_review(
                session, intent, LATE_SUCCESS_FLAG, result_code=word.verdict.result_code
            )
        return outcome


def list_word(gateway: str, row: GatewayTransaction, merchant_id: uuid.UUID) -> GatewayWord:
    """A listed success, as a gateway word for the apply path (deduplicated on its receipt)."""
    name = row.receipt or row.gateway_ref or "unnamed"
    return GatewayWord(
        gateway=gateway,
        event_key=f"listed:{name}:succeeded",
        source="reconciliation",
        gateway_ref=row.gateway_ref,
        verdict=GatewayVerdict(Outcome.SUCCEEDED, "listed", amount=row.amount, receipt=row.receipt),
        received_at=datetime.now(UTC),
        merchant_id=merchant_id,
    )


def _finish_proven(rt: Runtime, window: Window, findings: Sequence[Finding]) -> set[uuid.UUID]:
    """Apply each success the gateway's list proves for a payment we had as unpaid."""
    late: set[uuid.UUID] = set()
    for finding in findings:
        if finding.payment is None or finding.theirs is None:
            continue
        word = list_word(window.gateway, finding.theirs, finding.payment.merchant_id)
        if _learns_receipt(finding):
            # Paid on both sides, and only the list has the receipt (a success we learnt
            # from a status query): keep it, a refund cannot be made without it.
            _apply(rt, finding.payment.id, word)
            continue
        if not finding.credit:
            continue
        outcome = _apply(rt, finding.payment.id, word)
        if outcome in ("late_success", "applied"):
            late.add(finding.payment.id)
        else:
            log.warning(
                "listed success not applied; an operator decides",
                payment_id=str(finding.payment.id),
                outcome=outcome,
            )
    return late


def _learns_receipt(finding: Finding) -> bool:
    payment, theirs = finding.payment, finding.theirs
    return (
        finding.kind == MATCHED
        and payment is not None
        and theirs is not None
        and payment.status == PaymentStatus.SUCCEEDED
        and payment.receipt is None
        and theirs.receipt is not None
    )


def _flag_credited_but_failed(rt: Runtime, findings: Sequence[Finding]) -> None:
    """We credited, the gateway says it failed: flag it; money is never taken back here."""
    for finding in findings:
        if finding.kind != STATUS_MISMATCH or finding.credit or finding.payment is None:
            continue
        with rt.db.transaction() as session:
            intent = lock_intent(session, finding.payment.id)
            if intent is None or CREDITED_BUT_FAILED_FLAG in intent.flags:
                continue
            if intent.status == PaymentStatus.SUCCEEDED:
                flag_for_review(session, intent, CREDITED_BUT_FAILED_FLAG)


def _store_items(
    rt: Runtime,
    run_id: uuid.UUID,
    findings: Sequence[Finding],
    late: set[uuid.UUID],
    progress: Progress,
) -> None:
    """Upsert every finding as an item; a resolved item keeps its kind and resolution."""
    statuses = _statuses(rt, [f.payment.id for f in findings if f.payment is not None])
    batch = 500
    for first in range(0, len(findings), batch):
        progress("items", first, len(findings))
        rows = [
            _item_row(run_id, finding, late, statuses)
            for finding in findings[first : first + batch]
        ]
        statement = insert(ReconciliationItem).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "item_key"],
            set_={
                name: statement.excluded[name]
                for name in (
                    "kind",
                    "payment_id",
                    "receipt",
                    "gateway_ref",
                    "currency",
                    "our_amount_minor",
                    "their_amount_minor",
                    "our_status",
                    "their_status",
                    "evidence",
                    "resolution",
                )
            }
            | {"updated_at": func.now()},
            where=ReconciliationItem.resolution.is_(None),
        )
        with rt.db.transaction() as session:
            session.execute(statement)
    progress("items", len(findings), len(findings))


def _statuses(rt: Runtime, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    with rt.db.transaction() as session:
        return {
            row.id: row.status
            for row in session.execute(
                select(PaymentIntent.id, PaymentIntent.status).where(PaymentIntent.id.in_(ids))
            )
        }


def _item_row(
    run_id: uuid.UUID,
    finding: Finding,
    late: set[uuid.UUID],
    statuses: dict[uuid.UUID, str],
) -> dict[str, Any]:
    payment, theirs = finding.payment, finding.theirs
    kind, resolution = finding.kind, None
    if payment is not None and payment.id in late:
        # Finished by this run from the gateway's proof: a discrepancy found and resolved.
        kind, resolution = STATUS_MISMATCH, LATE_SUCCESS_FLAG
    evidence: dict[str, Any] = {}
    if theirs is not None:
        evidence["listed"] = [dict(copy.raw) for copy in (finding.copies or (theirs,))]
    if finding.payments:
        evidence["payments"] = [str(p.id) for p in finding.payments]
    return {
        "run_id": run_id,
        "item_key": finding.key,
        "kind": kind,
        "merchant_id": payment.merchant_id if payment is not None else None,
        "payment_id": payment.id if payment is not None else None,
        "receipt": (payment.receipt if payment is not None and payment.receipt else None)
        or (theirs.receipt if theirs is not None else None),
        "gateway_ref": theirs.gateway_ref if theirs is not None else None,
        "currency": payment.currency
        if payment is not None
        else theirs.amount.currency
        if theirs
        else None,
        "our_amount_minor": payment.amount_minor if payment is not None else None,
        "their_amount_minor": theirs.amount.amount_minor if theirs is not None else None,
        "our_status": statuses.get(payment.id, payment.status) if payment is not None else None,
        "their_status": theirs.outcome.value if theirs is not None else None,
        "evidence": evidence,
        "resolution": resolution,
        "resolved_by": "reconciliation" if resolution else None,
        "resolved_at": datetime.now(UTC) if resolution else None,
    }


def _finish_run(rt: Runtime, run_id: uuid.UUID, *, complete: bool = True) -> dict[str, Any]:
    """Recount the run's items; ``complete``: the run has just finished."""
    with rt.db.transaction() as session:
        counts: dict[str, int] = {}
        amounts: dict[str, int] = {}
        open_discrepancies = 0
        for kind, resolution, n, minor in session.execute(
            select(
                ReconciliationItem.kind,
                ReconciliationItem.resolution.is_not(None),
                func.count(),
                func.coalesce(
                    func.sum(
                        func.coalesce(
                            ReconciliationItem.our_amount_minor,
                            ReconciliationItem.their_amount_minor,
                        )
                    ),
                    0,
                ),
            )
            .where(ReconciliationItem.run_id == run_id)
            .group_by(ReconciliationItem.kind, ReconciliationItem.resolution.is_not(None))
        ):
            counts[kind] = counts.get(kind, 0) + int(n)
            amounts[kind] = amounts.get(kind, 0) + int(minor)
            if kind != MATCHED and not resolution:
                open_discrepancies += int(n)
        run = session.get(ReconciliationRun, run_id, with_for_update=True)
        assert run is not None
        run.counts, run.amounts, run.discrepancies = counts, amounts, open_discrepancies
        if complete:
            run.status, run.finished_at = "completed", datetime.now(UTC)
    return {"counts": counts, "discrepancies": open_discrepancies}

"""Reconciliation over a day of 1,000 payments across Daraja and IntaSend.

The gateways' side is real: every payment was pushed to the simulators, which hold
them as their own transactions (receipts, invoices, statuses). The ledger's side is
seeded as malipo would have recorded the day. Then each kind of discrepancy is
injected at the simulators (and one payment's callback and query were "lost": it
expired here). Reconciliation must find each injected item with its kind and
nothing else, credit the late success once, and change nothing when run again; the
organisation-portal statement of the same day reconciles to the same findings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from shared.crypto import CredentialCipher
from shared.db.models import (
    AuditRecord,
    LedgerEntry,
    PaymentIntent,
    ReconciliationItem,
    ReconciliationRun,
    WebhookEvent,
)
from shared.db.session import Database
from shared.gateways.base import GatewayTransaction
from shared.reconciliation.statement import parse_statement
from shared.reconciliation.window import Window
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS
from tests.support.intasend_sim import IntaSendSimulator
from tests.support.reconciliation import (
    Paid,
    make_merchant_with,
    push_daraja,
    push_intasend,
    push_request,
    seed_ledger,
    worker_runtime,
)
from tests.support.sim import Simulator

DARAJA_COUNT = 600
INTASEND_COUNT = 400


@pytest.fixture
def isim(sandbox_server: Any, test_env: dict[str, str]) -> Iterator[IntaSendSimulator]:
    simulator = IntaSendSimulator.for_sandbox_port(test_env["MALIPO_SANDBOX_PORT"])
    simulator.clear_scenarios()
    yield simulator
    simulator.clear_discrepancies()
    simulator.http.close()


def items(db: Database, run_id: uuid.UUID) -> dict[str, tuple[Any, ...]]:
    with db.transaction() as session:
        return {
            item.item_key: (
                item.kind,
                item.payment_id,
                item.our_amount_minor,
                item.their_amount_minor,
                item.resolution,
            )
            for item in session.scalars(
                select(ReconciliationItem).where(ReconciliationItem.run_id == run_id)
            )
        }


def discrepancies(found: dict[str, tuple[Any, ...]]) -> dict[str, str]:
    return {key: item[0] for key, item in found.items() if item[0] != "matched"}


def ledger_of(db: Database, merchant_ids: list[uuid.UUID]) -> tuple[int, int, int, int]:
    """Collections (count, amount), audit rows and webhook events: what a run could change."""
    with db.transaction() as session:
        entries, total = session.execute(
            select(func.count(), func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
                LedgerEntry.merchant_id.in_(merchant_ids), LedgerEntry.kind == "collection"
            )
        ).one()
        audits = session.scalar(select(func.count()).select_from(AuditRecord))
        webhooks = session.scalar(
            select(func.count()).where(WebhookEvent.merchant_id.in_(merchant_ids))
        )
        return int(entries), int(total), int(audits or 0), int(webhooks or 0)


def test_a_day_of_payments_reconciles_to_exactly_the_injected_discrepancies(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    sim: Simulator,
    isim: IntaSendSimulator,
) -> None:
    tag = uuid.uuid4().hex[:4].upper()
    # A shortcode of this test's own: the Pull Transactions list is per shortcode.
    shortcode = str(600_000 + int(tag, 16) % 99_999)
    sim.add_shortcode(shortcode, DARAJA_CREDENTIALS["passkey"])
    daraja_credentials = {**DARAJA_CREDENTIALS, "shortcode": shortcode}
    account = isim.add_account()
    intasend_credentials = {
        "publishable_key": account["publishable_key"],
        "secret_key": account["secret_key"],
        "challenge": f"challenge-{tag}",
    }
    daraja_merchant = make_merchant_with(db, cipher, "daraja", daraja_credentials)
    intasend_merchant = make_merchant_with(db, cipher, "intasend", intasend_credentials)

    # One Daraja payment will still be with the customer when reconciliation runs.
    pending_phone = "254733000111"
    sim.scenario(match={"phone": pending_phone}, result_code=0, callback_delay_s=3600)
    daraja = push_daraja(daraja_credentials, tag, DARAJA_COUNT, sim)
    intasend = push_intasend(intasend_credentials, tag, INTASEND_COUNT)
    rt = worker_runtime()
    adapter = rt.gateways.get("daraja")
    still_out = adapter.push(
        adapter.credentials(daraja_credentials),
        push_request(5_000, pending_phone, f"P{tag}", "daraja"),
    )
    pending = Paid(
        uuid.uuid4(),
        "daraja",
        str(still_out.gateway_ref),
        5_000,
        pending_phone,
        f"P{tag}",
        "submitted",
        None,
    )
    paid_daraja = [p for p in daraja if p.status == "succeeded"]
    paid_intasend = [p for p in intasend if p.status == "succeeded"]
    assert len(paid_daraja) > 500
    assert len(paid_intasend) > 300

    # The injected discrepancies, one of each kind per gateway
    d_lost, d_amount, d_repeat, d_dropped = paid_daraja[1:5]
    i_lost, i_amount, i_repeat, i_dropped, i_failed = paid_intasend[1:6]
    seed_ledger(db, daraja_merchant, [*daraja, pending], lost={d_lost.gateway_ref})
    seed_ledger(db, intasend_merchant, intasend, lost={i_lost.gateway_ref})
    sim.inject_discrepancy(
        kind="amount_changed",
        checkout_request_id=d_amount.gateway_ref,
        amount=d_amount.amount_minor // 100 + 1,
    )
    sim.inject_discrepancy(kind="receipt_repeated", checkout_request_id=d_repeat.gateway_ref)
    sim.inject_discrepancy(kind="dropped", checkout_request_id=d_dropped.gateway_ref)
    d_orphan = sim.inject_discrepancy(
        kind="gateway_only",
        shortcode=shortcode,
        amount=250,
        phone="254799000001",
        account_reference=f"X{tag}",
    )
    isim.inject_discrepancy(
        kind="amount_changed",
        invoice_id=i_amount.gateway_ref,
        amount=str(i_amount.amount_minor // 100 + 2),
    )
    isim.inject_discrepancy(kind="receipt_repeated", invoice_id=i_repeat.gateway_ref)
    isim.inject_discrepancy(kind="dropped", invoice_id=i_dropped.gateway_ref)
    isim.inject_discrepancy(kind="failed", invoice_id=i_failed.gateway_ref)
    i_orphan = isim.inject_discrepancy(
        kind="gateway_only",
        public_key=account["publishable_key"],
        amount="300",
        phone="254799000002",
        api_ref=f"X{tag}",
    )
    d_orphan_receipt = d_orphan.get("transactionId") or d_orphan.get("receipt")
    i_orphan_receipt = i_orphan.get("mpesa_reference")

    now = datetime.now(UTC)
    day = (now - timedelta(hours=12), now + timedelta(hours=12))
    windows = {
        "daraja": Window("daraja", *day, merchant_id=daraja_merchant, trigger="cli"),
        "intasend": Window("intasend", *day, merchant_id=intasend_merchant, trigger="cli"),
    }
    merchants = [daraja_merchant, intasend_merchant]
    before = ledger_of(db, merchants)

    # When reconciliation runs over the day
    from workers.reconcile import reconcile

    run_ids = {name: reconcile(rt, window) for name, window in windows.items()}

    # Then it finds every injected item with its kind, and nothing else
    found = {name: items(db, run_id) for name, run_id in run_ids.items() if run_id}
    assert discrepancies(found["daraja"]) == {
        f"payment:{d_lost.id}": "status_mismatch",
        f"payment:{d_amount.id}": "amount_mismatch",
        f"receipt:{d_repeat.receipt}": "duplicate_receipt",
        f"payment:{d_dropped.id}": "missing_at_gateway",
        f"gateway:receipt:{d_orphan_receipt}": "missing_here",
        f"payment:{pending.id}": "pending_verification",
    }
    assert discrepancies(found["intasend"]) == {
        f"payment:{i_lost.id}": "status_mismatch",
        f"payment:{i_amount.id}": "amount_mismatch",
        f"receipt:{i_repeat.receipt}": "duplicate_receipt",
        f"payment:{i_dropped.id}": "missing_at_gateway",
        f"payment:{i_failed.id}": "status_mismatch",
        f"gateway:receipt:{i_orphan_receipt}": "missing_here",
    }
    assert sum(1 for item in found["daraja"].values() if item[0] == "matched") == DARAJA_COUNT - 3
    assert sum(1 for i in found["intasend"].values() if i[0] == "matched") == INTASEND_COUNT - 4

    # The late successes were credited once, through the apply path, and resolved
    with db.transaction() as session:
        for lost in (d_lost, i_lost):
            intent = session.get(PaymentIntent, lost.id)
            assert intent is not None
            assert intent.status == "succeeded"
            assert "reconciled_late_success" in intent.flags
            credits = session.scalar(
                select(func.count()).where(
                    LedgerEntry.intent_id == lost.id, LedgerEntry.kind == "collection"
                )
            )
            assert credits == 1
            assert (
                session.scalar(
                    select(func.count()).where(
                        WebhookEvent.payment_id == lost.id,
                        WebhookEvent.event_type == "payment.succeeded",
                    )
                )
                == 1
            )
        # Credited here, failed there: flagged for an operator, never debited
        failed = session.get(PaymentIntent, i_failed.id)
        assert failed is not None
        assert failed.status == "succeeded"
        assert "reconciliation_status_mismatch" in failed.flags
    assert found["daraja"][f"payment:{d_lost.id}"][4] == "reconciled_late_success"
    assert found["intasend"][f"payment:{i_failed.id}"][4] is None
    after_first = ledger_of(db, merchants)
    assert after_first[:2] == (before[0] + 2, before[1] + d_lost.amount_minor + i_lost.amount_minor)

    # And a second run over the same day changes nothing
    again = {name: reconcile(rt, window) for name, window in windows.items()}
    assert again == run_ids
    assert {name: items(db, run_id) for name, run_id in run_ids.items() if run_id} == found
    assert ledger_of(db, merchants) == after_first
    with db.transaction() as session:
        runs = session.scalars(
            select(ReconciliationRun).where(ReconciliationRun.id.in_(list(run_ids.values())))
        ).all()
        assert {run.executions for run in runs} == {2}
        assert {run.status for run in runs} == {"completed"}
        assert {run.gateway: run.discrepancies for run in runs} == {"daraja": 5, "intasend": 5}

    # The organisation-portal statement of the same day reconciles to the same findings
    csv_text = sim.statement_csv(shortcode, *day)
    rows: list[GatewayTransaction] = parse_statement(csv_text)
    statement_window = Window(
        "daraja", *day, merchant_id=daraja_merchant, source="statement", trigger="cli"
    )
    statement_run = reconcile(rt, statement_window, statement=rows)
    assert statement_run is not None
    assert statement_run != run_ids["daraja"]
    from_statement = discrepancies(items(db, statement_run))
    expected = discrepancies(found["daraja"])
    # The late success is fixed by now: the statement finds it matched.
    del expected[f"payment:{d_lost.id}"]
    assert from_statement == expected
    assert ledger_of(db, merchants)[:2] == after_first[:2]

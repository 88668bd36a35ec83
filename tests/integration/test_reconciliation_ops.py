"""Reconciliation as operators use it: over /ops (queued, run by a worker, read back as
JSON and CSV, an item resolved with a note), from the command line with a statement,
and the alert operators receive."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from sandbox.smtp import SmtpSink
from shared.crypto import CredentialCipher
from shared.db.models import AuditRecord, ReconciliationItem, ReconciliationRun
from shared.db.session import Database
from shared.merchants import OPERATOR_SCOPES, issue_api_key
from shared.operator_alerts import OperatorAlert, deliver
from shared.settings import Settings
from shared.webhooks import new_secret, verify
from tests.conftest import DARAJA_CREDENTIALS, MerchantAccount
from tests.support.receiver import receiving
from tests.support.reconciliation import (
    make_merchant_with,
    push_daraja,
    seed_ledger,
    worker_runtime,
)
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker", "ingress_server")


def key(db: Database, settings: Settings, merchant_id: uuid.UUID | None) -> str:
    with db.transaction() as session:
        return issue_api_key(
            session,
            settings.secret_key.get_secret_value().encode(),
            merchant_id,
            scopes=OPERATOR_SCOPES,
        )


def a_day_with_one_dropped(
    db: Database, cipher: CredentialCipher, sim: Simulator
) -> tuple[uuid.UUID, str, Any]:
    tag = uuid.uuid4().hex[:4].upper()
    shortcode = str(700_000 + int(tag, 16) % 99_999)
    sim.add_shortcode(shortcode, DARAJA_CREDENTIALS["passkey"])
    credentials = {**DARAJA_CREDENTIALS, "shortcode": shortcode}
    merchant = make_merchant_with(db, cipher, "daraja", credentials)
    paid = push_daraja(credentials, tag, 20, sim)
    seed_ledger(db, merchant, paid, lost=set())
    dropped = next(p for p in paid if p.status == "succeeded")
    sim.inject_discrepancy(kind="dropped", checkout_request_id=dropped.gateway_ref)
    return merchant, shortcode, dropped


def test_an_operator_reconciles_over_ops_reads_the_csv_and_resolves_the_item_with_a_note(
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
    sim: Simulator,
    test_env: dict[str, str],
    worker_log: io.StringIO,
    merchant: MerchantAccount,
) -> None:
    other_merchant = merchant
    worker_runtime()
    reconciled, _, dropped = a_day_with_one_dropped(db, cipher, sim)
    base = test_env["MALIPO_PUBLIC_BASE_URL"]
    operator = {"Authorization": f"Bearer {key(db, settings, None)}"}
    someone_else = {"Authorization": f"Bearer {key(db, settings, other_merchant.id)}"}
    now = datetime.now(UTC)
    window = {
        "gateway": "daraja",
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
        "merchant_id": str(reconciled),
    }

    # An operator asks; asking twice names the same run
    first = requests.post(f"{base}/ops/reconciliations", json=window, headers=operator, timeout=10)
    again = requests.post(f"{base}/ops/reconciliations", json=window, headers=operator, timeout=10)
    assert first.status_code == 202, first.text
    assert first.json()["id"] == again.json()["id"]
    run_id = first.json()["id"]

    def completed() -> dict[str, Any] | None:
        answer = requests.get(f"{base}/ops/reconciliations/{run_id}", headers=operator, timeout=10)
        view = answer.json() if answer.status_code == 200 else None
        return view if view and view["status"] == "completed" else None

    wait_until(lambda: completed() is not None, timeout_s=60, what="the run completed")
    view = completed()
    assert view is not None
    assert view["counts"]["missing_at_gateway"] == 1
    assert view["discrepancies"] == 1
    [item] = view["items"]
    assert (item["kind"], item["payment_id"]) == ("missing_at_gateway", str(dropped.id))

    # The CSV holds every item, and parses back
    export = requests.get(f"{base}/ops/reconciliations/{run_id}.csv", headers=operator, timeout=10)
    assert export.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == sum(view["counts"].values())
    assert {r["kind"] for r in rows} == {"matched", "missing_at_gateway"}
    assert [r["our_amount_minor"] for r in rows if r["kind"] != "matched"] == [
        str(dropped.amount_minor)
    ]

    # Bad input is refused, never a 500
    bad = requests.post(
        f"{base}/ops/reconciliations",
        json={**window, "to": window["from"]},
        headers=operator,
        timeout=10,
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_request")
    hosted = requests.post(
        f"{base}/ops/reconciliations",
        json={**window, "gateway": "idram"},
        headers=operator,
        timeout=10,
    )
    assert hosted.status_code < 500
    assert hosted.json()["error"]["code"] == "capability_not_supported"
    # Another merchant's key does not see this merchant's run, nor can it ask for one
    other = requests.get(f"{base}/ops/reconciliations/{run_id}", headers=someone_else, timeout=10)
    assert other.status_code == 404
    theirs = requests.post(
        f"{base}/ops/reconciliations", json=window, headers=someone_else, timeout=10
    )
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (403, "forbidden")

    # The operator resolves the item with a note: audited, and the run's count goes down
    resolve = f"{base}/ops/reconciliations/items/{item['id']}/resolve"
    empty = requests.post(resolve, json={"note": " "}, headers=operator, timeout=10)
    assert empty.status_code == 400
    done = requests.post(resolve, json={"note": "refunded by hand"}, headers=operator, timeout=10)
    assert done.status_code == 202, done.text

    def resolved() -> bool:
        with db.transaction() as session:
            row = session.get(ReconciliationItem, item["id"])
            return row is not None and row.resolution == "resolved"

    wait_until(resolved, timeout_s=30, what="the item resolved")
    twice = requests.post(resolve, json={"note": "again"}, headers=operator, timeout=10)
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "already_resolved")
    with db.transaction() as session:
        run = session.get(ReconciliationRun, uuid.UUID(run_id))
        assert run is not None
        assert run.discrepancies == 0
        actions = set(
            session.scalars(
                select(AuditRecord.action).where(
                    AuditRecord.subject_id.in_([run_id, str(item["id"])])
                )
            )
        )
    assert actions == {"reconciliation.requested", "reconciliation.item_resolved"}
    # The run that left a discrepancy open alerted operators (no channel is set up here)
    assert '"alert": "reconciliation.completed"' in worker_log.getvalue()


def test_malipo_reconcile_reads_a_statement_file_and_a_bad_file_is_refused_by_name(
    db: Database, cipher: CredentialCipher, sim: Simulator, tmp_path: Path, test_env: dict[str, str]
) -> None:
    worker_runtime()
    merchant, shortcode, dropped = a_day_with_one_dropped(db, cipher, sim)
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    statement = tmp_path / "statement.csv"
    statement.write_text(sim.statement_csv(shortcode, start, end, variant="short"))
    command = [
        sys.executable,
        "-m",
        "shared.cli",
        "reconcile",
        "--statement",
        str(statement),
        "--merchant",
        str(merchant),
        "--from",
        start.isoformat(),
        "--to",
        end.isoformat(),
    ]
    env = {**test_env, "PATH": "/usr/bin:/bin"}
    ran = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "missing_at_gateway 1" in ran.stdout
    assert "1 open discrepancies" in ran.stdout
    assert "items" in ran.stderr  # the progress bar
    with db.transaction() as session:
        [item] = session.scalars(
            select(ReconciliationItem).where(
                ReconciliationItem.payment_id == dropped.id,
                ReconciliationItem.kind == "missing_at_gateway",
            )
        ).all()
        run = session.get(ReconciliationRun, item.run_id)
        assert run is not None
        assert (run.source, run.trigger) == ("statement", "cli")

    broken = tmp_path / "broken.csv"
    broken.write_text("Completion Time,Details\n2026-12-01 10:00:00,x\n")
    refused = subprocess.run(
        [*command[:5], str(broken), *command[6:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "no Receipt No. or Paid In column" in refused.stderr
    assert "Completion Time, Details" in refused.stderr


def test_an_operator_alert_reaches_the_webhook_signed_and_the_mailbox(
    settings: Settings, smtp_sink: SmtpSink
) -> None:
    secret = new_secret()
    alert = OperatorAlert.new(
        "reconciliation.completed", "malipo: 2 discrepancies", "Run r found 2.", {"id": "r"}
    )
    with receiving(b"ok", "text/plain") as receiver:
        configured = settings.model_copy(
            update={
                "operator_webhook_url": f"{receiver.url}/alerts",
                "operator_webhook_secret": type(settings.secret_key)(secret),
                "operator_emails": "ops@malipo.test, oncall@malipo.test",
            }
        )
        channels = deliver(configured, alert)
        [posted] = receiver.all()
    assert channels == ["webhook", "email"]
    verify(secret, posted.body, posted.headers, now=time.time())
    body = json.loads(posted.body)
    assert (body["type"], body["data"]) == ("reconciliation.completed", {"id": "r"})
    wait_until(lambda: len(smtp_sink.mailbox.mails()) >= 2, timeout_s=10, what="both mails")
    assert {m.to for m in smtp_sink.mailbox.mails()} >= {"ops@malipo.test", "oncall@malipo.test"}


def test_a_window_already_being_reconciled_is_skipped_not_run_twice(
    db: Database, cipher: CredentialCipher, sim: Simulator
) -> None:
    from sqlalchemy import text

    from shared.reconciliation.window import Window
    from workers.reconcile import reconcile

    rt = worker_runtime()
    merchant, _, _ = a_day_with_one_dropped(db, cipher, sim)
    now = datetime.now(UTC)
    window = Window("daraja", now - timedelta(hours=1), now + timedelta(hours=1), merchant)
    # Another process holds the window's lock: it is running this very window
    with db.engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": window.lock_key()})
        other.commit()
        assert reconcile(rt, window) is None
        with db.transaction() as session:
            assert session.get(ReconciliationRun, window.run_id()) is None
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": window.lock_key()})
        other.commit()
    # Once it is done, the window runs (and only one run row exists for it)
    assert reconcile(rt, window) == window.run_id()
    with db.transaction() as session:
        run = session.get(ReconciliationRun, window.run_id())
        assert run is not None
        assert (run.executions, run.status) == (1, "completed")

"""Every change of who can do what, and of how callbacks are trusted, is on record (issue 13, 4).

Each change writes its audit row in its own transaction: a change that fails after the
audit write leaves neither. Replays (dead letters, webhook resend and replay) commit their
audit row before anything is published: the publishers here publish nothing, they look at
what another connection sees committed at the moment of publishing, or refuse like a
broker that is down. Nothing reaches RabbitMQ, so other modules' queue counts are untouched.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import falcon.testing
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session

import dead_letters.cli
import tests.support.app
from shared import audit
from shared.archive import REPLAY, archive, failure_of
from shared.cli import main
from shared.crypto import CredentialCipher, split_api_key
from shared.db.models import ApiKey, AuditRecord, DeadLetter, GatewayCredential, WebhookEvent
from shared.db.session import Database
from shared.merchants import (
    gateway_credential,
    issue_api_key,
    revoke_api_key,
    route_for,
    set_callback_policy,
    set_ip_allowlist,
    set_route,
    store_gateway_credentials,
)
from shared.messages import ActorSpec, BrokerUnavailable, Publisher
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, MerchantAccount
from tests.support.app import ingress_client

# -- helpers ----------------------------------------------------------------------------------


def cli(*args: str, user: str = "amina") -> Result:
    """``malipo ...`` as the login ``user`` (getpass reads LOGNAME first, then USER)."""
    env = {**os.environ, "LOGNAME": user, "USER": user}
    return CliRunner().invoke(main, list(args), env=env)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def audit_rows(
    db: Database, subject_id: object, *, actor: str | None = None, kind: str | None = None
) -> list[AuditRecord]:
    """The subject's committed audit rows, oldest first (``kind``: only this subject type)."""
    with db.transaction() as session:
        return rows_in(session, subject_id, actor=actor, kind=kind)


def rows_in(
    session: Session, subject_id: object, *, actor: str | None = None, kind: str | None = None
) -> list[AuditRecord]:
    query = select(AuditRecord).where(AuditRecord.subject_id == str(subject_id))
    if actor is not None:
        query = query.where(AuditRecord.actor == actor)
    if kind is not None:
        query = query.where(AuditRecord.subject_type == kind)
    return list(session.scalars(query.order_by(AuditRecord.id)))


def key_of(session: Session, token: str) -> ApiKey:
    parts = split_api_key(token)
    assert parts is not None
    return session.scalars(select(ApiKey).where(ApiKey.prefix == parts[0])).one()


def key_id(db: Database, token: str) -> uuid.UUID:
    with db.transaction() as session:
        return key_of(session, token).id


def daraja_row(db: Database, merchant_id: uuid.UUID) -> GatewayCredential:
    with db.transaction() as session:
        row = gateway_credential(session, merchant_id, "daraja")
        assert row is not None
        return row


def operator_key(db: Database, settings: Settings, label: str) -> str:
    with db.transaction() as session:
        pepper = settings.secret_key.get_secret_value().encode()
        return issue_api_key(session, pepper, None, ("ops:read", "ops:write"), label=label)


class Abandoned(Exception):
    """Raised inside a unit of work after the change: it must roll back, audit row and all."""


def assert_atomic(
    db: Database,
    change: Callable[[Session], object],
    state: Callable[[Session], object],
    action: str,
    actor: str,
) -> AuditRecord:
    """The change and its audit row roll back together, and commit together."""
    with db.transaction() as session:
        before = state(session)
    inside: dict[str, Any] = {}

    def change_then_fail() -> None:
        with db.transaction() as session:
            inside["subject"] = change(session)
            rows = rows_in(session, inside["subject"], actor=actor)
            inside["actions"] = [r.action for r in rows if r.action == action]
            inside["changed"] = state(session) != before
            raise Abandoned

    with pytest.raises(Abandoned):
        change_then_fail()
    assert (inside["actions"], inside["changed"]) == ([action], True)  # both, in the transaction
    subject = inside["subject"]
    with db.transaction() as session:
        assert state(session) == before
        assert [r for r in rows_in(session, subject, actor=actor) if r.action == action] == []
    with db.transaction() as session:
        subject = change(session)
    with db.transaction() as session:
        assert state(session) != before
    [row] = [r for r in audit_rows(db, subject, actor=actor) if r.action == action]
    assert row.actor == actor
    return row


# -- who can do what: keys --------------------------------------------------------------------


def test_a_merchant_key_made_and_revoked_from_the_cli_is_audited_by_prefix_never_secret(
    db: Database, merchant: MerchantAccount
) -> None:
    made = json.loads(
        ok(
            cli(
                "merchant",
                "key",
                "create",
                str(merchant.id),
                "--scope",
                "payments:read",
                "--label",
                "reports",
            )
        ).output
    )
    token = made["api_key"]
    prefix, secret = split_api_key(token) or ("", "")
    subject = key_id(db, token)

    ok(cli("merchant", "key", "revoke", prefix, user="baraka"))
    ok(cli("merchant", "key", "revoke", prefix, user="baraka"))  # revoked already: no change

    rows = audit_rows(db, subject)
    assert [(r.actor, r.action, r.subject_type) for r in rows] == [
        ("operator:amina", "api_key.created", "api_key"),
        ("operator:baraka", "api_key.revoked", "api_key"),
    ]
    assert rows[0].detail == {
        "prefix": prefix,
        "merchant_id": str(merchant.id),
        "scopes": ["payments:read"],
        "label": "reports",
    }
    assert rows[1].detail == {"prefix": prefix, "merchant_id": str(merchant.id), "label": "reports"}
    assert secret not in json.dumps([r.detail for r in rows])


def test_an_operator_key_made_from_the_cli_is_audited(db: Database) -> None:
    label = f"oncall-{uuid.uuid4().hex[:8]}"
    made = json.loads(ok(cli("operator", "key", "create", "--label", label)).output)
    prefix, secret = split_api_key(made["api_key"]) or ("", "")

    [row] = audit_rows(db, key_id(db, made["api_key"]))

    assert (row.actor, row.action, row.subject_type) == (
        "operator:amina",
        "operator_key.created",
        "api_key",
    )
    assert row.detail == {
        "prefix": prefix,
        "merchant_id": None,
        "scopes": ["ops:read", "ops:write"],
        "label": label,
    }
    assert secret not in json.dumps(row.detail)


def test_a_key_and_its_audit_row_commit_or_roll_back_together(
    db: Database, settings: Settings, merchant: MerchantAccount
) -> None:
    pepper = settings.secret_key.get_secret_value().encode()
    actor = f"operator:atomic-{uuid.uuid4().hex[:8]}"
    made: list[str] = []

    def make(session: Session) -> object:
        made.append(issue_api_key(session, pepper, merchant.id, ("payments:read",), actor=actor))
        return key_of(session, made[-1]).id

    def latest_exists(session: Session) -> object:
        return bool(made) and key_exists(session, made[-1])

    created = assert_atomic(db, make, latest_exists, "api_key.created", actor)
    assert created.detail["scopes"] == ["payments:read"]

    def revoke(session: Session) -> object:
        assert revoke_api_key(session, made[-1][:16], actor=actor)
        return key_of(session, made[-1]).id

    def revoked(session: Session) -> object:
        return key_of(session, made[-1]).revoked_at is not None

    row = assert_atomic(db, revoke, revoked, "api_key.revoked", actor)
    assert row.detail["prefix"] == made[-1][:16]


def key_exists(session: Session, token: str) -> bool:
    return session.scalars(select(ApiKey.id).where(ApiKey.prefix == token[:16])).first() is not None


# -- how callbacks are trusted ----------------------------------------------------------------


def test_callback_trust_changes_from_the_cli_are_audited_with_before_and_after(
    db: Database, merchant: MerchantAccount
) -> None:
    mid = str(merchant.id)
    credential = daraja_row(db, merchant.id)
    confirm = credential.confirm_before_credit
    flip_confirm = "--confirm-before-credit" if not confirm else "--no-confirm-before-credit"

    ok(cli("merchant", "callbacks", mid, "--ip-allowlist", "196.201.214.0/24, 196.201.213.44"))
    ok(cli("merchant", "callbacks", mid, "--ip-allowlist", "off"))
    ok(cli("merchant", "callbacks", mid, "--require-signature", flip_confirm))
    ok(cli("merchant", "callbacks", mid, "--require-signature", flip_confirm))  # no change

    rows = audit_rows(db, credential.id, actor="operator:amina")
    where = {"merchant_id": mid, "gateway": "daraja"}
    allowed = ["196.201.214.0/24", "196.201.213.44/32"]
    assert [(r.action, r.subject_type, r.detail) for r in rows] == [
        (
            "gateway.ip_allowlist_changed",
            "gateway_credential",
            {**where, "from": None, "to": allowed},
        ),
        (
            "gateway.ip_allowlist_changed",
            "gateway_credential",
            {**where, "from": allowed, "to": None},
        ),
        (
            "gateway.callback_policy_changed",
            "gateway_credential",
            {
                **where,
                "changes": {
                    "require_signature": {"from": False, "to": True},
                    "confirm_before_credit": {"from": confirm, "to": not confirm},
                },
            },
        ),
    ]


def test_a_trust_change_that_fails_after_its_audit_write_leaves_neither(
    db: Database, merchant: MerchantAccount
) -> None:
    mid = str(merchant.id)
    # --require-signature is set and audited, then the allowlist is refused: one transaction
    failed = cli("merchant", "callbacks", mid, "--require-signature", "--ip-allowlist", "nope")

    assert failed.exit_code != 0
    assert "not an IP address" in failed.output
    credential = daraja_row(db, merchant.id)
    assert (credential.require_signature, credential.ip_allowlist) == (False, None)
    assert audit_rows(db, credential.id, actor="operator:amina") == []

    # When it is asked right, both changes are made, and both are on record
    ok(cli("merchant", "callbacks", mid, "--require-signature", "--ip-allowlist", "10.0.0.0/8"))
    assert [r.action for r in audit_rows(db, credential.id, actor="operator:amina")] == [
        "gateway.callback_policy_changed",
        "gateway.ip_allowlist_changed",
    ]


@pytest.mark.parametrize(
    ("change", "action"),
    [
        ({"require_signature": True}, "gateway.callback_policy_changed"),
        ({"confirm_before_credit": "flip"}, "gateway.callback_policy_changed"),
        ({"enabled": False}, "gateway.disabled"),
        ({"ip_allowlist": ["10.0.0.0/8"]}, "gateway.ip_allowlist_changed"),
    ],
    ids=["signature", "confirm-before-credit", "disable", "ip-allowlist"],
)
def test_each_trust_change_and_its_audit_row_commit_or_roll_back_together(
    db: Database, merchant: MerchantAccount, change: dict[str, Any], action: str
) -> None:
    actor = f"key:{uuid.uuid4()}"
    [(name, value)] = change.items()
    if value == "flip":
        value = not daraja_row(db, merchant.id).confirm_before_credit

    def apply(session: Session) -> object:
        if name == "ip_allowlist":
            row = set_ip_allowlist(session, merchant.id, "daraja", value, actor=actor)
        else:
            row = set_callback_policy(session, merchant.id, "daraja", **{name: value}, actor=actor)
        return row.id

    def state(session: Session) -> object:
        return getattr(gateway_credential(session, merchant.id, "daraja"), name)

    row = assert_atomic(db, apply, state, action, actor)

    assert (row.detail["merchant_id"], row.detail["gateway"]) == (str(merchant.id), "daraja")


def test_a_gateway_switched_off_and_on_from_the_cli_is_audited(
    db: Database, merchant: MerchantAccount
) -> None:
    mid = str(merchant.id)

    ok(cli("merchant", "gateway", mid, "daraja", "--disable"))
    ok(cli("merchant", "gateway", mid, "daraja", "--disable"))  # off already: no change
    ok(cli("merchant", "gateway", mid, "daraja", "--enable", user="baraka"))

    rows = audit_rows(db, daraja_row(db, merchant.id).id)
    assert [(r.actor, r.action) for r in rows if r.actor.startswith("operator:")] == [
        ("operator:amina", "gateway.disabled"),
        ("operator:baraka", "gateway.enabled"),
    ]


# -- merchants, credentials, routes -----------------------------------------------------------


def daraja_options() -> list[str]:
    return [
        "--daraja-consumer-key",
        DARAJA_CREDENTIALS["consumer_key"],
        "--daraja-consumer-secret",
        DARAJA_CREDENTIALS["consumer_secret"],
        "--daraja-shortcode",
        DARAJA_CREDENTIALS["shortcode"],
        "--daraja-passkey",
        DARAJA_CREDENTIALS["passkey"],
    ]


def test_a_merchant_made_from_the_cli_is_audited_with_key_gateway_and_route_but_no_secret(
    db: Database,
) -> None:
    made = json.loads(
        ok(cli("merchant", "create", f"shop-{uuid.uuid4().hex[:6]}", *daraja_options())).output
    )
    mid = made["id"]
    credential = daraja_row(db, uuid.UUID(mid))

    ok(cli("merchant", "route", mid, "KES", "daraja"))  # as it is: no change
    ok(cli("merchant", "route", mid, "KES", ",", user="baraka"))  # no route
    ok(cli("merchant", "route", mid, "KES", "daraja", user="baraka"))

    merchant_rows = audit_rows(db, mid)
    assert [(r.actor, r.action, r.subject_type, r.detail) for r in merchant_rows] == [
        ("operator:amina", "merchant.created", "merchant", {"name": made["name"]}),
        (
            "operator:amina",
            "gateway_route.changed",
            "gateway_route",
            {"currency": "KES", "from": [], "to": ["daraja"]},
        ),
        (
            "operator:baraka",
            "gateway_route.changed",
            "gateway_route",
            {"currency": "KES", "from": ["daraja"], "to": []},
        ),
        (
            "operator:baraka",
            "gateway_route.changed",
            "gateway_route",
            {"currency": "KES", "from": [], "to": ["daraja"]},
        ),
    ]
    [key_row] = audit_rows(db, key_id(db, made["api_key"]))
    assert (key_row.actor, key_row.action) == ("operator:amina", "api_key.created")
    [configured] = audit_rows(db, credential.id)
    assert (configured.actor, configured.action) == ("operator:amina", "gateway.configured")
    assert {"consumer_key", "consumer_secret", "shortcode", "passkey"} <= set(
        configured.detail["fields"]
    )
    assert configured.detail["callback_secret"] == "new"
    recorded = json.dumps([r.detail for r in [*merchant_rows, key_row, configured]])
    callback_secret = made["callback_url"].rstrip("/").rsplit("/", 1)[-1]
    for secret in (
        DARAJA_CREDENTIALS["consumer_key"],
        DARAJA_CREDENTIALS["consumer_secret"],
        DARAJA_CREDENTIALS["passkey"],
        callback_secret,
        made["api_key"],
        made["api_key"][17:],
    ):
        assert secret not in recorded


def test_new_credentials_and_a_route_commit_or_roll_back_with_their_audit_rows(
    db: Database, cipher: CredentialCipher, merchant: MerchantAccount
) -> None:
    actor = f"operator:atomic-{uuid.uuid4().hex[:8]}"

    def replace(session: Session) -> object:
        store_gateway_credentials(
            session,
            cipher,
            merchant.id,
            "daraja",
            dict(DARAJA_CREDENTIALS),
            production=False,
            actor=actor,
        )
        row = gateway_credential(session, merchant.id, "daraja")
        assert row is not None
        return row.id

    def secret_hash(session: Session) -> object:
        row = gateway_credential(session, merchant.id, "daraja")
        return row.callback_secret_hash if row is not None else None

    replaced = assert_atomic(db, replace, secret_hash, "gateway.credentials_replaced", actor)
    assert replaced.detail["callback_secret"] == "replaced"
    assert DARAJA_CREDENTIALS["passkey"] not in json.dumps(replaced.detail)

    def unroute(session: Session) -> object:
        set_route(session, merchant.id, "KES", [], actor=actor)
        return merchant.id

    def route(session: Session) -> object:
        return route_for(session, merchant.id, "KES")

    unrouted = assert_atomic(db, unroute, route, "gateway_route.changed", actor)
    assert unrouted.detail == {"currency": "KES", "from": ["daraja"], "to": []}


def test_payout_four_eyes_and_customer_rules_from_the_cli_are_audited(
    db: Database, merchant: MerchantAccount
) -> None:
    mid = str(merchant.id)

    ok(cli("merchant", "payouts", mid, "--approval-above", "KES=500000"))
    ok(cli("merchant", "payouts", mid, "--approval-above", "KES=500000"))  # no change
    ok(cli("merchant", "settings", mid, "--require-registered-customers"))

    rows = [r for r in audit_rows(db, mid) if r.actor == "operator:amina"]
    assert [(r.action, r.subject_type) for r in rows] == [
        ("merchant.payout_rules_changed", "merchant"),
        ("merchant.settings_changed", "merchant"),
    ]
    assert not rows[0].detail["from"].get("approval_above")
    assert rows[0].detail["to"]["approval_above"] == {"KES": 500000}
    assert rows[1].detail == {"require_registered_customers": {"from": False, "to": True}}


def test_the_cli_actor_is_the_login_name_or_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "amina")
    assert audit.cli_actor() == "operator:amina"

    def nobody() -> str:
        raise OSError("no login name")

    monkeypatch.setattr("getpass.getuser", nobody)
    assert audit.cli_actor() == "cli"


# -- replays: the audit row commits before the publish ----------------------------------------


@dataclass
class Published:
    spec: ActorSpec
    kwargs: dict[str, Any]
    options: dict[str, Any]
    message_id: str | None
    seen: Any  # what another connection saw committed at that moment


class Watching(Publisher):
    """Publishes nothing: records each message and what ``look()`` sees committed then."""

    def __init__(self, broker: Any, look: Callable[[], Any]) -> None:
        super().__init__(broker)
        self.look = look
        self.sent: list[Published] = []

    def enqueue(
        self,
        spec: ActorSpec,
        kwargs: dict[str, Any],
        *,
        delay_ms: int | None = None,
        options: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        self.sent.append(Published(spec, kwargs, dict(options or {}), message_id, self.look()))
        return message_id or str(uuid.uuid4())


class Refusing(Publisher):
    """A broker that is down: every publish fails, after ``allow`` of them went through."""

    def __init__(self, broker: Any, allow: int = 0) -> None:
        super().__init__(broker)
        self.allow = allow

    def enqueue(
        self,
        spec: ActorSpec,
        kwargs: dict[str, Any],
        *,
        delay_ms: int | None = None,
        options: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        if self.allow <= 0:
            raise BrokerUnavailable("connection refused (test)")
        self.allow -= 1
        return str(uuid.uuid4())


def ops_client(
    settings: Settings, db: Database, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> falcon.testing.TestClient:
    """The ingress in this process, publishing through ``publisher``."""
    monkeypatch.setattr(tests.support.app, "Publisher", lambda _broker: publisher)
    return ingress_client(settings, db)


def dead_letter(db: Database) -> DeadLetter:
    """A callback message that failed for good, archived (it is never published here)."""
    message = {
        "queue_name": "callbacks",
        "actor_name": "apply_callback",
        "args": [],
        "kwargs": {"gateway": "daraja", "merchant_id": str(uuid.uuid4()), "body_b64": "e30="},
        "options": {"retries": 5},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": 0,
    }
    with db.transaction() as session:
        failure = failure_of(message, RuntimeError("lock timeout"), datetime.now(UTC))
        archived = archive(session, failure)
        assert archived is not None
        row = session.get(DeadLetter, archived)
        assert row is not None
        return row


def dead_letter_state(db: Database, row_id: int) -> tuple[str, int]:
    with db.transaction() as session:
        row = session.get(DeadLetter, row_id)
        assert row is not None
        return row.status, row.replay_count


def committed(db: Database, kind: str, subject_id: object) -> Callable[[], list[str]]:
    """What another connection sees: the subject's committed audit actions."""
    return lambda: [r.action for r in audit_rows(db, subject_id, kind=kind)]


def test_a_dead_letter_replayed_over_http_is_on_record_before_it_is_published(
    broker: Any, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = dead_letter(db)
    label = f"oncall-{uuid.uuid4().hex[:8]}"
    auth = {"Authorization": f"Bearer {operator_key(db, settings, label)}"}
    watching = Watching(broker, committed(db, "dead_letter", row.id))

    answer = ops_client(settings, db, watching, monkeypatch).simulate_post(
        f"/ops/dead-letters/{row.id}/replay", json={"reason": "lock released"}, headers=auth
    )

    assert answer.status_code == 202, answer.text
    [sent] = watching.sent
    assert sent.seen == ["dead_letter.replayed"]  # committed before the publish
    assert (sent.spec.actor_name, sent.message_id, sent.options[REPLAY]) == (
        "apply_callback",
        row.message_id,
        1,
    )
    assert dead_letter_state(db, row.id) == ("replayed", 1)
    [entry] = audit_rows(db, row.id, kind="dead_letter")
    assert (entry.actor, entry.detail["why"]) == (f"api-key:{label}", "lock released")


def test_a_dead_letter_replay_the_broker_refuses_stays_on_record_and_replayable(
    broker: Any, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = dead_letter(db)
    label = f"oncall-{uuid.uuid4().hex[:8]}"
    auth = {"Authorization": f"Bearer {operator_key(db, settings, label)}"}
    path = f"/ops/dead-letters/{row.id}/replay"

    # When the broker is down
    down = ops_client(settings, db, Refusing(broker), monkeypatch)
    refused = down.simulate_post(path, json={"reason": "first try"}, headers=auth)

    # Then the operator is told, and the dead letter is dead again, with both steps on record
    assert refused.status_code == 503, refused.text
    assert dead_letter_state(db, row.id) == ("dead", 1)
    rows = audit_rows(db, row.id, kind="dead_letter")
    assert [(r.actor, r.action) for r in rows] == [
        (f"api-key:{label}", "dead_letter.replayed"),
        (f"api-key:{label}", "dead_letter.replay_failed"),
    ]
    assert rows[1].detail == {
        "message_id": row.message_id,
        "replay": 1,
        "error": "BrokerUnavailable",
    }

    # When it is replayed again with the broker back, it goes, as the next replay
    watching = Watching(broker, committed(db, "dead_letter", row.id))
    again = ops_client(settings, db, watching, monkeypatch).simulate_post(
        path, json={"reason": "second try"}, headers=auth
    )
    assert again.status_code == 202, again.text
    [sent] = watching.sent
    assert (sent.message_id, sent.options[REPLAY]) == (row.message_id, 2)
    assert sent.seen[-1] == "dead_letter.replayed"
    assert dead_letter_state(db, row.id) == ("replayed", 2)


def test_a_dead_letter_replay_from_the_cli_the_broker_refuses_is_dead_again_and_on_record(
    broker: Any, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = dead_letter(db)
    chosen: list[Publisher] = [Refusing(broker)]

    @contextmanager
    def publisher(_settings: Settings) -> Iterator[Publisher]:
        yield chosen[0]

    monkeypatch.setattr(dead_letters.cli, "_publisher", publisher)
    replay = ("dlq", "replay", str(row.id), "--operator", "amina", "--reason", "lock released")

    refused = cli(*replay)

    assert refused.exit_code != 0
    assert "dead again" in refused.output
    assert dead_letter_state(db, row.id) == ("dead", 1)
    assert [(r.actor, r.action) for r in audit_rows(db, row.id, kind="dead_letter")] == [
        ("amina", "dead_letter.replayed"),
        ("amina", "dead_letter.replay_failed"),
    ]

    watching = Watching(broker, committed(db, "dead_letter", row.id))
    chosen[0] = watching
    assert "replayed 1 dead letter(s)" in ok(cli(*replay)).output
    [sent] = watching.sent
    assert (sent.message_id, sent.options[REPLAY]) == (row.message_id, 2)
    assert sent.seen == [
        "dead_letter.replayed",
        "dead_letter.replay_failed",
        "dead_letter.replayed",
    ]


# -- /ops/webhooks resend and replay ----------------------------------------------------------


def webhook_events(db: Database, merchant: MerchantAccount, count: int) -> list[int]:
    """Held events for the merchant (nothing delivers them here)."""
    with db.transaction() as session:
        rows = [
            WebhookEvent(
                webhook_id=f"msg_{uuid.uuid4().hex}",
                merchant_id=merchant.id,
                event_type="payment.succeeded",
                payload={"type": "payment.succeeded"},
                status="held",
            )
            for _ in range(count)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def test_a_webhook_resend_is_on_record_before_it_is_published(
    broker: Any,
    db: Database,
    settings: Settings,
    merchant: MerchantAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [event_id] = webhook_events(db, merchant, 1)
    token = operator_key(db, settings, "webhooks")
    auth = {"Authorization": f"Bearer {token}"}
    watching = Watching(broker, committed(db, "webhook_event", event_id))

    answer = ops_client(settings, db, watching, monkeypatch).simulate_post(
        f"/ops/webhooks/{event_id}/resend", headers=auth
    )

    assert answer.status_code == 202, answer.text
    [sent] = watching.sent
    assert sent.seen == ["webhook_event.resend_requested"]
    [row] = audit_rows(db, event_id, kind="webhook_event")
    assert (row.actor, row.subject_type) == (f"key:{key_id(db, token)}", "webhook_event")
    assert row.detail == {"webhook_id": answer.json["webhook_id"], "merchant_id": str(merchant.id)}

    # And a resend the broker refuses is a 503, on record as not queued
    down = ops_client(settings, db, Refusing(broker), monkeypatch)
    refused = down.simulate_post(f"/ops/webhooks/{event_id}/resend", headers=auth)
    assert refused.status_code == 503, refused.text
    rows = audit_rows(db, event_id, kind="webhook_event")
    assert [(r.action, r.detail.get("queued")) for r in rows[1:]] == [
        ("webhook_event.resend_requested", None),
        ("webhook_event.resend_not_queued", 0),
    ]


def test_a_webhook_replay_is_on_record_before_it_is_published(
    broker: Any,
    db: Database,
    settings: Settings,
    merchant: MerchantAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = webhook_events(db, merchant, 3)
    token = operator_key(db, settings, "webhooks")
    auth = {"Authorization": f"Bearer {token}"}
    body = {"merchant_id": str(merchant.id), "since": since.isoformat()}
    watching = Watching(broker, committed(db, "merchant", merchant.id))

    answer = ops_client(settings, db, watching, monkeypatch).simulate_post(
        "/ops/webhooks/replay", json=body, headers=auth
    )

    assert (answer.status_code, answer.json) == (202, {"replayed": 3})
    assert [s.seen[-1] for s in watching.sent] == ["webhook_event.replay_requested"] * 3
    [row] = [r for r in audit_rows(db, merchant.id) if r.action.startswith("webhook_event.")]
    assert (row.actor, row.subject_type) == (f"key:{key_id(db, token)}", "merchant")
    assert row.detail == {
        "merchant_id": str(merchant.id),
        "since": since.isoformat(),
        "events": 3,
        "first_event_id": ids[0],
        "last_event_id": ids[-1],
    }

    # And a replay the broker takes only partly is a 503, on record with how many went
    down = ops_client(settings, db, Refusing(broker, allow=1), monkeypatch)
    refused = down.simulate_post("/ops/webhooks/replay", json=body, headers=auth)
    assert refused.status_code == 503, refused.text
    rows = [r for r in audit_rows(db, merchant.id) if r.action.startswith("webhook_event.")]
    assert [(r.action, r.detail.get("queued"), r.detail.get("of")) for r in rows[1:]] == [
        ("webhook_event.replay_requested", None, None),
        ("webhook_event.replay_not_queued", 1, 3),
    ]

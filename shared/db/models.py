"""The ledger's tables as SQLAlchemy 2.x typed models.

Constraints carry the money rules, so that no code path can break them:
one intent per (merchant, idempotency key); one live payment per merchant
reference; one attempt per gateway transaction id; one event per gateway event
key; one collection entry per intent; balances never below zero.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.domain.states import LIVE_STATES, OPEN_TRANSFER_STATES, PaymentStatus, TransferStatus

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: Iterable[str]) -> str:
    listed = ", ".join(f"'{value}'" for value in sorted(values))
    return f"{column} IN ({listed})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


def _now() -> Any:
    return mapped_column(server_default=func.now())


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    # Payments only for customers the merchant registered (else ``account_missing``).
    require_registered_customers: Mapped[bool] = mapped_column(server_default=text("false"))
    # Where malipo writes to the merchant itself (a disabled webhook endpoint, ...).
    email: Mapped[str | None] = mapped_column(String(320))
    # What malipo's pay page shows for this merchant: ``support_url``, ``allow_retries``.
    pay_page: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    # Payout rules: ``approval_above`` {currency: minor units}, ``notify_recipient``.
    payouts: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    created_at: Mapped[datetime] = _now()


class ApiKey(Base):
    """An API key: only a keyed hash of the secret part is kept.

    A key with a merchant speaks for that merchant; a key without one is a
    platform operator's (``ops:*`` scopes over every merchant).
    """

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None]
    # A key issued for the command bus: its command-signing secret (derived from the
    # key, see shared/bus_commands.py), AES-GCM encrypted like gateway credentials.
    signing_key_id: Mapped[str | None] = mapped_column(String(32))
    signing_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)


class GatewayCredential(Base):
    """One merchant's credentials for one gateway, AES-GCM encrypted, with the key id."""

    __tablename__ = "gateway_credentials"
    __table_args__ = (UniqueConstraint("merchant_id", "gateway"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    gateway: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # sha256 of the callback path secret: finds the merchant without storing the secret in clear.
    callback_secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    # Callback authentication on top of the path secret (see the README).
    ip_allowlist: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    require_signature: Mapped[bool] = mapped_column(server_default=text("false"))
    confirm_before_credit: Mapped[bool] = mapped_column(server_default=text("false"))
    # Hashes of the gateway's own callback proofs (a challenge, Basic credentials), so the
    # ingress can check them without decrypting anything.
    callback_verifiers: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class GatewayRoute(Base):
    """A merchant's gateways for one currency, in the order new payments try them."""

    __tablename__ = "gateway_routes"

    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    gateways: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class PaymentIntent(Base):
    """A merchant's request to collect money, and where it stands."""

    __tablename__ = "payment_intents"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(_in("status", PaymentStatus), name="status_known"),
        Index(
            "uq_payment_intents_live_reference",
            "merchant_id",
            "reference",
            unique=True,
            postgresql_where=text(_in("status", LIVE_STATES)),
        ),
        Index(
            "ix_payment_intents_pending_poll",
            "next_poll_at",
            postgresql_where=text("status = 'submitted'"),
        ),
        Index("ix_payment_intents_phone_created_at", "phone", "created_at"),
        # Analytics and reconciliation read a window of payments by acceptance time.
        Index("ix_payment_intents_accepted_at", "accepted_at"),
        Index("ix_payment_intents_merchant_accepted", "merchant_id", "accepted_at"),
        # Reconciliation finds a gateway's receipt among every payment, not only the window's.
        Index(
            "ix_payment_intents_receipt", "receipt", postgresql_where=text("receipt IS NOT NULL")
        ),
        CheckConstraint(
            "refund_reserved_minor >= 0 AND refund_reserved_minor <= amount_minor",
            name="refunds_within_amount",
        ),
        CheckConstraint(
            "refunded_minor >= 0 AND refunded_minor <= refund_reserved_minor",
            name="refunded_within_reserved",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(32))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    phone: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(100))
    customer_email: Mapped[str | None] = mapped_column(String(320))
    # push (a prompt on the phone) or hosted (the gateway's page); see ``next_action``.
    flow: Mapped[str] = mapped_column(String(16), server_default=text("'push'"))
    # What the merchant's front end does next for a hosted page: redirect, form or SDK.
    next_action: Mapped[dict[str, Any] | None]
    # The payer's names and city, and a hosted page's return URLs, as the merchant sent them.
    checkout: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    # What the gateway kept of the amount, when it says (recorded with the credit).
    fee_minor: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=PaymentStatus.CREATED)
    # 1 for the first push; a customer's retry starts the next cycle (new attempt, same payment).
    cycle: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    # The gateway transaction whose success was credited (a second success is a double payment).
    settled_ref: Mapped[str | None] = mapped_column(String(100))
    failure_code: Mapped[str | None] = mapped_column(String(40))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    gateway_ref: Mapped[str | None] = mapped_column(String(100))
    receipt: Mapped[str | None] = mapped_column(String(40))
    flags: Mapped[list[str]] = mapped_column(ARRAY(String(40)), server_default=text("'{}'"))
    # Refunds not failed (pending or done), and refunds done: never above the amount.
    refund_reserved_minor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    refunded_minor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    accepted_at: Mapped[datetime]
    created_at: Mapped[datetime] = _now()
    submitted_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    next_poll_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class AcceptedCommand(Base):
    """A payment command the ingress accepted (by its payment id, from the key).

    Written in the transaction that counts the command against its limits: a replay of
    the key finds it (and gets the first answer, whether or not a worker stored the
    payment yet), and a limit counts each payment once.
    """

    __tablename__ = "accepted_commands"

    payment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    request_hash: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(32))
    accepted_at: Mapped[datetime]


class PaymentAttempt(Base):
    """One call to a gateway on behalf of an intent, recorded before the call is made.

    ``status``: ``sending`` (recorded, call under way or interrupted), ``accepted``,
    ``rejected`` (a business refusal), ``not_sent`` (the gateway certainly did not
    process it) or ``unknown`` (it may have: never re-send, wait and query).
    """

    __tablename__ = "payment_attempts"
    __table_args__ = (
        UniqueConstraint("intent_id", "number"),
        UniqueConstraint("gateway", "gateway_ref"),
        CheckConstraint(
            _in("status", ("sending", "accepted", "rejected", "not_sent", "unknown")),
            name="status_known",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    intent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payment_intents.id"))
    number: Mapped[int] = mapped_column(Integer)
    cycle: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    gateway: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    gateway_ref: Mapped[str | None] = mapped_column(String(100))
    secondary_ref: Mapped[str | None] = mapped_column(String(100))
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(String(300))
    requested_at: Mapped[datetime] = _now()
    responded_at: Mapped[datetime | None]


class Transfer(Base):
    """A refund of a collection or a payout to a phone: money out, sent at most once.

    ``status``: ``awaiting_approval`` (a payout above the merchant's threshold) →
    ``pending`` (to be sent) → ``sending`` (recorded before the gateway call) →
    ``submitted`` (the gateway took it; its result is awaited) → ``succeeded`` or
    ``failed``; ``unknown`` (the call may have been acted on: only ever queried),
    ``requires_action`` (no refund API: an operator records how it was paid back),
    ``rejected`` (the second key said no). Its amount is held on the merchant's
    balance from acceptance until it is settled or released.
    """

    __tablename__ = "transfers"
    __table_args__ = (
        UniqueConstraint("merchant_id", "kind", "idempotency_key"),
        UniqueConstraint("request_ref"),
        UniqueConstraint("gateway", "gateway_ref"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("kind IN ('payout', 'refund')", name="kind_known"),
        CheckConstraint("(kind = 'refund') = (payment_id IS NOT NULL)", name="refund_has_payment"),
        CheckConstraint(_in("status", TransferStatus), name="status_known"),
        Index(
            "ix_transfers_due",
            "next_check_at",
            postgresql_where=text(_in("status", OPEN_TRANSFER_STATES)),
        ),
        Index("ix_transfers_merchant_created", "merchant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_intents.id"), index=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    # Sent where the gateway takes an id of ours (Daraja's OriginatorConversationID).
    request_ref: Mapped[str] = mapped_column(String(32))
    gateway: Mapped[str] = mapped_column(String(32))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    phone: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    gateway_ref: Mapped[str | None] = mapped_column(String(100))
    receipt: Mapped[str | None] = mapped_column(String(100))
    failure_code: Mapped[str | None] = mapped_column(String(40))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    # The API keys that asked, and that approved or rejected (four eyes).
    requested_by: Mapped[uuid.UUID | None]
    decided_by: Mapped[uuid.UUID | None]
    # How an operator paid a ``requires_action`` refund back, and who recorded it.
    evidence: Mapped[str | None] = mapped_column(String(500))
    completed_by: Mapped[str | None] = mapped_column(String(100))
    sends: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    checks: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_check_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class GatewayEvent(Base):
    """Everything a gateway told us (callbacks and query answers), phones masked.

    ``outcome``: applied, late_success, same, stale, conflict, mismatch, orphan, malformed.
    """

    __tablename__ = "gateway_events"
    __table_args__ = (
        # Per merchant: a callback through one merchant's secret never collides with
        # (and so never pre-empts) another merchant's event of the same gateway id.
        Index(
            "uq_gateway_events_merchant_event_key",
            "gateway",
            text("coalesce(merchant_id, '00000000-0000-0000-0000-000000000000'::uuid)"),
            "event_key",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    gateway: Mapped[str] = mapped_column(String(32))
    event_key: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("merchants.id"))
    intent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_intents.id"), index=True
    )
    gateway_ref: Mapped[str | None] = mapped_column(String(100))
    result_code: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str | None] = mapped_column(String(300))
    headers: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    body_masked: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = _now()


class RefusedCommand(Base):
    """Commands ``malipo.commands`` refused, counted per minute, reason and key prefix.

    The refused command itself waits in the ``malipo.commands.refused`` queue; this is
    the count an operator reads (``malipo bus refusals``). ``key_prefix`` is the
    prefix the command claimed ('' when it named none), never proof it was that key's.
    """

    __tablename__ = "refused_commands"
    __table_args__ = (
        UniqueConstraint("minute", "reason", "key_prefix"),
        CheckConstraint("count > 0", name="count_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    minute: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(40))
    key_prefix: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime]


class RefusedCallback(Base):
    """Callbacks the ingress refused, counted per minute, gateway, merchant, source and reason.

    Counts, not one row per request: a flood of made-up secrets adds to a few counters
    instead of a row each. ``merchant_id`` is set when the path secret named a merchant
    (the refusal came after it: allowlist, signature, the gateway's own proof);
    ``sample_sha256`` is the hash of the last refused body of the bucket, never the body.
    """

    __tablename__ = "refused_callbacks"
    __table_args__ = (
        Index(
            "uq_refused_callbacks_bucket",
            "minute",
            "gateway",
            text("coalesce(merchant_id, '00000000-0000-0000-0000-000000000000'::uuid)"),
            "source",
            "reason",
            unique=True,
        ),
        Index("ix_refused_callbacks_merchant_minute", "merchant_id", "minute"),
        CheckConstraint("count > 0", name="count_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    minute: Mapped[datetime]
    gateway: Mapped[str] = mapped_column(String(32))
    merchant_id: Mapped[uuid.UUID | None]
    source: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(BigInteger)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    sample_sha256: Mapped[str | None] = mapped_column(String(64))


class LedgerEntry(Base):
    """Money that moved. A collection is written once per intent, never updated; a gateway's
    fee on it is a second, negative entry (``fee``): the entries sum to what the merchant nets.
    A refund or payout is one negative entry per transfer (``refund``, ``payout``)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("intent_id", "kind"),
        UniqueConstraint("transfer_id"),
        CheckConstraint("kind IN ('collection', 'fee', 'payout', 'refund')", name="kind_known"),
        CheckConstraint("amount_minor <> 0", name="amount_nonzero"),
        CheckConstraint(
            "(intent_id IS NULL) <> (transfer_id IS NULL)"
            " AND (transfer_id IS NULL OR amount_minor < 0)",
            name="one_subject",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"), index=True)
    intent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payment_intents.id"))
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("transfers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    gateway: Mapped[str] = mapped_column(String(32))
    gateway_txn_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _now()


class Balance(Base):
    """A merchant's balance per currency: available, and held for refunds and payouts under
    way. Neither is ever negative; a hold is settled (gone) or released (back to available)."""

    __tablename__ = "balances"
    __table_args__ = (
        CheckConstraint("available_minor >= 0", name="not_negative"),
        CheckConstraint("held_minor >= 0", name="held_not_negative"),
    )

    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    available_minor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    held_minor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Customer(Base):
    """What a merchant told us about one of its customers (by phone)."""

    __tablename__ = "customers"

    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    phone: Mapped[str] = mapped_column(String(16), primary_key=True)
    kyc_required: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Redemption(Base):
    """A succeeded payment used for one order: at most one row per payment."""

    __tablename__ = "redemptions"

    payment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payment_intents.id"), primary_key=True
    )
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    order_id: Mapped[str] = mapped_column(String(100))
    expected_amount_minor: Mapped[int] = mapped_column(BigInteger)
    redeemed_at: Mapped[datetime] = _now()


class RateLimitWindow(Base):
    """Request counts per key and fixed window.

    UNLOGGED: no WAL, so counting is cheap; losing the counts in a crash is harmless.
    """

    __tablename__ = "rate_limit_windows"
    __table_args__ = {"prefixes": ["UNLOGGED"]}  # noqa: RUF012 - SQLAlchemy reads it

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class AuditRecord(Base):
    """Who did what to which record, and why; append-only and hash-chained.

    Writers insert rows unsealed; the sealer gives each committed row the next
    ``seq`` and ``hash = sha256(prev_hash + canonical row)``, so editing or
    deleting a sealed row breaks the chain (``malipo audit verify``).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = _now()
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    request_id: Mapped[str | None] = mapped_column(String(64))


class AuditChainHead(Base):
    """The last sealed audit row (one row), so deleting the chain's tail is detected too."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class DeadLetter(Base):
    """A message that failed for good, archived before RabbitMQ's dead-letter TTL can drop it.

    ``status``: ``dead`` (waiting for an operator), ``replayed`` (re-enqueued with
    retries reset; replaying is idempotent because every actor is), ``discarded``
    (with a reason). Every operator action is also in the audit log.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (
        CheckConstraint("status IN ('dead', 'replayed', 'discarded')", name="status_known"),
        Index("ix_dead_letters_status_last_failed_at", "status", "last_failed_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    queue: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(100))
    message: Mapped[dict[str, Any]]
    error: Mapped[str] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    retries: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    first_failed_at: Mapped[datetime]
    last_failed_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), server_default=text("'dead'"))
    replay_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    replayed_at: Mapped[datetime | None]
    discarded_at: Mapped[datetime | None]
    discard_reason: Mapped[str | None] = mapped_column(String(500))
    handled_by: Mapped[str | None] = mapped_column(String(100))


class WebhookEndpoint(Base):
    """Where a merchant receives signed events (Standard Webhooks), and whether it still does."""

    __tablename__ = "webhook_endpoints"

    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    # The whsec_ signing secrets, newest first, AES-GCM encrypted like gateway credentials.
    key_id: Mapped[str] = mapped_column(String(64))
    secrets_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class WebhookEvent(Base):
    """One event for a merchant, written in the transaction of the change it reports (the outbox).

    ``status``: ``pending`` → ``delivered``, or ``failed`` once the retry schedule is
    exhausted, or ``held`` while the merchant has no enabled endpoint.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'held')", name="status_known"
        ),
        Index(
            "ix_webhook_events_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
        ),
        Index("ix_webhook_events_merchant_created", "merchant_id", "created_at"),
        Index("ix_webhook_events_unstreamed", "id", postgresql_where=text("streamed_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payment_intents.id"))
    transfer_id: Mapped[uuid.UUID | None]
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    # When it was published on the ``malipo.events`` exchange (shared.bus); None: not yet.
    streamed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class WebhookDelivery(Base):
    """One HTTP attempt to deliver a webhook event."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(2000))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(String(300))
    succeeded: Mapped[bool]
    attempted_at: Mapped[datetime] = _now()


class CustomerNotification(Base):
    """A notice to a customer (failure, cancellation, expiry; a payout received) on one channel;
    also an outbox row."""

    __tablename__ = "customer_notifications"
    __table_args__ = (
        UniqueConstraint("payment_id", "cycle", "channel", "event"),
        UniqueConstraint("transfer_id", "channel", "event"),
        CheckConstraint("(payment_id IS NULL) <> (transfer_id IS NULL)", name="one_subject"),
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status_known"),
        Index(
            "ix_customer_notifications_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payment_intents.id"))
    # A payout's notice to the phone it paid (``payout_received``).
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("transfers.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    channel: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    cycle: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(String(300))
    provider_ref: Mapped[str | None] = mapped_column(String(100))
    published_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class NotificationTemplate(Base):
    """Editable wording of a customer notice; a merchant's row overrides the default one."""

    __tablename__ = "notification_templates"
    __table_args__ = (
        Index(
            "uq_notification_templates_scope",
            text("coalesce(merchant_id, '00000000-0000-0000-0000-000000000000'::uuid)"),
            "channel",
            "event",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("merchants.id"))
    channel: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


RECONCILIATION_KINDS = (
    "matched",
    "missing_at_gateway",
    "missing_here",
    "amount_mismatch",
    "status_mismatch",
    "duplicate_receipt",
    "pending_verification",
)


class ReconciliationRun(Base):
    """One reconciliation of a gateway's window (for one merchant, or all), from one source.

    One row per (gateway, merchant, window, source): running the same range again reuses
    it (``executions`` counts how often it ran) and its items, so nothing happens twice.
    ``source`` is ``gateway`` (the status and list APIs) or ``statement`` (an uploaded file).
    """

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        Index(
            "uq_reconciliation_runs_window",
            "gateway",
            text("coalesce(merchant_id, '00000000-0000-0000-0000-000000000000'::uuid)"),
            "window_start",
            "window_end",
            "source",
            unique=True,
        ),
        CheckConstraint("window_end > window_start", name="window_ordered"),
        CheckConstraint("status IN ('running', 'completed', 'failed')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    gateway: Mapped[str] = mapped_column(String(32))
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("merchants.id"))
    source: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    executions: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Per item kind: how many items, and their amounts (ours where we have it, else theirs).
    counts: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    amounts: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    discrepancies: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(String(300))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class ReconciliationItem(Base):
    """One transaction seen on either side of a run, and what the comparison found.

    ``item_key`` names the transaction (``payment:<id>``, ``receipt:<receipt>``, ...), so
    a run repeated finds its items again; a resolved item keeps its resolution.
    """

    __tablename__ = "reconciliation_items"
    __table_args__ = (
        UniqueConstraint("run_id", "item_key"),
        CheckConstraint(_in("kind", RECONCILIATION_KINDS), name="kind_known"),
        Index("ix_reconciliation_items_run_kind", "run_id", "kind"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reconciliation_runs.id"))
    item_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(24))
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("merchants.id"))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_intents.id"), index=True
    )
    receipt: Mapped[str | None] = mapped_column(String(100))
    gateway_ref: Mapped[str | None] = mapped_column(String(100))
    currency: Mapped[str | None] = mapped_column(String(3))
    our_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    their_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    our_status: Mapped[str | None] = mapped_column(String(16))
    their_status: Mapped[str | None] = mapped_column(String(16))
    # What the gateway said (its list row, its status answer), phones as it showed them.
    evidence: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    # ``reconciled_late_success`` (done by the run) or ``resolved`` (an operator, with a note).
    resolution: Mapped[str | None] = mapped_column(String(40))
    resolution_note: Mapped[str | None] = mapped_column(String(500))
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

"""Merchants, their API keys and their gateway credentials.

API keys are shown once and stored as a keyed hash. Gateway credentials, and
the callback path secret that goes with them, are stored AES-GCM encrypted;
only a SHA-256 of the callback secret is kept in clear, to find the merchant
when a callback arrives.

Every change of who can do what (a merchant, a key made or revoked) and of how
callbacks are trusted (credentials and callback secret, signature, IP allowlist,
confirm-before-credit, a gateway switched on or off, a route) writes an audit row
in the caller's transaction, so the change and its record commit together or not
at all. ``actor`` names who asked (``key:<id>``, ``operator:<user>``, ``cli``); the
detail never holds a secret (a key's prefix, never the key; credential field
names, never their values).
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from shared import audit
from shared.audit import SYSTEM_ACTOR
from shared.bus_commands import signing_secret
from shared.crypto import (
    CredentialCipher,
    CredentialTampered,
    hash_api_secret,
    new_api_key,
    new_callback_secret,
    sha256_hex,
    split_api_key,
)
from shared.db.models import ApiKey, GatewayCredential, GatewayRoute, Merchant, WebhookEndpoint
from shared.gateways import catalogue
from shared.settings import looks_like_sandbox

SCOPES = (
    "payments:write",
    "payments:read",
    "refunds:write",
    "payouts:write",
    "payouts:approve",
    "ops:read",
    "ops:write",
)
DEFAULT_SCOPES = ("payments:write", "payments:read")
OPERATOR_SCOPES = ("ops:read", "ops:write")


@dataclass(frozen=True)
class Principal:
    """Who an authenticated request speaks for: a merchant, or (no merchant) a platform operator."""

    merchant_id: uuid.UUID | None
    api_key_id: uuid.UUID
    scopes: frozenset[str]

    @property
    def is_operator(self) -> bool:
        return self.merchant_id is None


class CredentialsRefused(ValueError):
    """Credentials that must not be stored in this environment."""


@dataclass(frozen=True)
class MerchantGateway:
    """A merchant's configuration of one gateway: its credentials and its callback secret."""

    gateway: str
    credentials: dict[str, Any]
    callback_secret: str


def create_merchant(session: Session, name: str, *, actor: str = SYSTEM_ACTOR) -> Merchant:
    merchant = Merchant(id=uuid.uuid4(), name=name)
    session.add(merchant)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="merchant.created",
        subject_type="merchant",
        subject_id=merchant.id,
        detail={"name": name},
    )
    return merchant


def issue_api_key(
    session: Session,
    pepper: bytes,
    merchant_id: uuid.UUID | None,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
    label: str | None = None,
    *,
    actor: str = SYSTEM_ACTOR,
    bus_cipher: CredentialCipher | None = None,
) -> str:
    """A new key (a merchant's, or with no merchant a platform operator's); shown only now.

    With ``bus_cipher`` the key may also sign commands on ``malipo.commands``: its
    command-signing secret is stored encrypted with that cipher.
    """
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}")
    if merchant_id is None and not set(scopes) <= set(OPERATOR_SCOPES):
        raise ValueError("an operator key carries ops scopes only")
    key = new_api_key()
    row = ApiKey(
        id=uuid.uuid4(),
        merchant_id=merchant_id,
        label=label,
        prefix=key.prefix,
        secret_hash=hash_api_secret(pepper, key.secret),
        scopes=list(scopes),
    )
    if bus_cipher is not None:
        if merchant_id is None:
            raise ValueError("an operator key cannot sign merchant commands")
        _seal_signing_secret(bus_cipher, row, signing_secret(key.token))
    session.add(row)
    session.flush()
    extra = {"bus": True} if bus_cipher is not None else {}
    _audit_key(session, row, actor, "created", scopes=list(scopes), label=label, **extra)
    return key.token


def _signing_context(row: ApiKey) -> str:
    return f"api_key/{row.id}/command-signing"


def _seal_signing_secret(cipher: CredentialCipher, row: ApiKey, secret: str) -> None:
    row.signing_key_id, row.signing_ciphertext = cipher.encrypt(
        {"secret": secret}, context=_signing_context(row)
    )


def _open_signing_secret(cipher: CredentialCipher, row: ApiKey) -> str:
    assert row.signing_key_id is not None
    assert row.signing_ciphertext is not None
    plain = cipher.decrypt(
        row.signing_key_id, row.signing_ciphertext, context=_signing_context(row)
    )
    return str(plain["secret"])


@dataclass(frozen=True)
class BusKey:
    """A key as the command bus sees it: who it speaks for and its signing secret (or None
    when it was not issued for the bus)."""

    principal: Principal
    signing_secret: str | None


def bus_key(session: Session, cipher: CredentialCipher, prefix: str) -> BusKey | None:
    """The live key with this public prefix, or None (unknown or revoked)."""
    row = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix[:32])).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    secret = _open_signing_secret(cipher, row) if row.signing_ciphertext is not None else None
    return BusKey(Principal(row.merchant_id, row.id, frozenset(row.scopes)), secret)


def revoke_api_key(session: Session, prefix: str, *, actor: str = SYSTEM_ACTOR) -> bool:
    """Revoke a key by its public prefix; effective for the next request. False if unknown."""
    row = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.flush()
        _audit_key(session, row, actor, "revoked", label=row.label)
    return True


def _audit_key(session: Session, row: ApiKey, actor: str, verb: str, **detail: Any) -> None:
    """``api_key.<verb>`` (a merchant's) or ``operator_key.<verb>``: the prefix, never the key."""
    kind = "api_key" if row.merchant_id is not None else "operator_key"
    audit.record(
        session,
        actor=actor,
        action=f"{kind}.{verb}",
        subject_type="api_key",
        subject_id=row.id,
        detail={
            "prefix": row.prefix,
            "merchant_id": str(row.merchant_id) if row.merchant_id else None,
            **detail,
        },
    )


def list_api_keys(session: Session, merchant_id: uuid.UUID | None) -> list[ApiKey]:
    query = select(ApiKey).where(
        ApiKey.merchant_id.is_(None) if merchant_id is None else ApiKey.merchant_id == merchant_id
    )
    return list(session.scalars(query.order_by(ApiKey.created_at)))


# Built once: every API request runs it.
_KEY_BY_PREFIX = select(
    ApiKey.id, ApiKey.merchant_id, ApiKey.secret_hash, ApiKey.scopes, ApiKey.revoked_at
).where(ApiKey.prefix == bindparam("prefix"))


def authenticate_api_key(session: Session, pepper: bytes, token: str) -> Principal | None:
    """The principal a bearer token speaks for, or None (unknown, revoked or wrong)."""
    parts = split_api_key(token)
    if parts is None:
        return None
    prefix, secret = parts
    row = session.connection().execute(_KEY_BY_PREFIX, {"prefix": prefix}).one_or_none()
    # Hash even when the prefix is unknown, so the answer takes the same time either way.
    presented = hash_api_secret(pepper, secret)
    expected = row.secret_hash if row is not None else "0" * 64
    if not hmac.compare_digest(presented, expected) or row is None or row.revoked_at is not None:
        return None
    return Principal(row.merchant_id, row.id, frozenset(row.scopes))


def _context(merchant_id: uuid.UUID, gateway: str) -> str:
    return f"gateway_credentials/{merchant_id}/{gateway}"


def store_gateway_credentials(
    session: Session,
    cipher: CredentialCipher,
    merchant_id: uuid.UUID,
    gateway: str,
    credentials: dict[str, Any],
    *,
    production: bool,
    actor: str = SYSTEM_ACTOR,
) -> str:
    """Encrypt and store a merchant's credentials; returns the new callback path secret.

    A gateway configured for the first time is appended to the merchant's route for
    each of its currencies, and starts with the gateway's confirm-before-credit default.
    Storing again replaces the callback secret: the former callback URL stops working.
    The audit row names the credential fields stored, never their values.
    """
    description = catalogue.describe(gateway)
    if production:
        suspicious = [
            k
            for k, v in credentials.items()
            if looks_like_sandbox(str(v), description.sandbox_values)
        ]
        if suspicious:
            raise CredentialsRefused(
                "production refuses sandbox-looking credentials: " + ", ".join(sorted(suspicious))
            )
    secret = new_callback_secret()
    key_id, blob = cipher.encrypt(
        {**credentials, "callback_secret": secret},
        context=_context(merchant_id, description.name),
    )
    existing = gateway_credential(session, merchant_id, description.name)
    row = existing or GatewayCredential(
        id=uuid.uuid4(),
        merchant_id=merchant_id,
        gateway=description.name,
        confirm_before_credit=description.confirm_before_credit,
    )
    row.key_id, row.ciphertext, row.callback_secret_hash = key_id, blob, sha256_hex(secret)
    row.callback_verifiers = description.callback_verifiers(credentials)
    session.add(row)
    session.flush()
    _audit_gateway(
        session,
        row,
        actor,
        "gateway.configured" if existing is None else "gateway.credentials_replaced",
        fields=sorted(credentials),
        key_id=key_id,
        callback_secret="new" if existing is None else "replaced",
        confirm_before_credit=row.confirm_before_credit,
        require_signature=row.require_signature,
        ip_allowlist=row.ip_allowlist,
        enabled=row.enabled,
    )
    if existing is None:
        for currency in description.currencies:
            route = route_for(session, merchant_id, currency)
            if description.name not in route:
                set_route(session, merchant_id, currency, [*route, description.name], actor=actor)
    return secret


def _audit_gateway(
    session: Session, row: GatewayCredential, actor: str, action: str, **detail: Any
) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        subject_type="gateway_credential",
        subject_id=row.id,
        detail={"merchant_id": str(row.merchant_id), "gateway": row.gateway, **detail},
    )


def gateway_credential(
    session: Session, merchant_id: uuid.UUID, gateway: str
) -> GatewayCredential | None:
    return session.scalars(
        select(GatewayCredential).where(
            GatewayCredential.merchant_id == merchant_id, GatewayCredential.gateway == gateway
        )
    ).one_or_none()


def decrypt_credentials(cipher: CredentialCipher, row: GatewayCredential) -> dict[str, Any]:
    """The stored credentials; rows written under a gateway's former name stay readable."""
    description = catalogue.describe(row.gateway)
    names = (description.name, *description.aliases)
    for name in names[:-1]:
        try:
            return cipher.decrypt(
                row.key_id, row.ciphertext, context=_context(row.merchant_id, name)
            )
        except CredentialTampered:
            continue
    return cipher.decrypt(row.key_id, row.ciphertext, context=_context(row.merchant_id, names[-1]))


def load_gateway_config(
    session: Session, cipher: CredentialCipher, merchant_id: uuid.UUID, gateway: str
) -> MerchantGateway | None:
    """The merchant's configuration of an enabled gateway, or None."""
    row = gateway_credential(session, merchant_id, gateway)
    if row is None or not row.enabled:
        return None
    stored = decrypt_credentials(cipher, row)
    secret = str(stored.pop("callback_secret"))
    return MerchantGateway(row.gateway, stored, secret)


def route_for(session: Session, merchant_id: uuid.UUID, currency: str) -> list[str]:
    """The merchant's gateways for ``currency``, in order (empty: no route)."""
    row = session.get(GatewayRoute, (merchant_id, currency))
    return list(row.gateways) if row is not None else []


def set_route(
    session: Session,
    merchant_id: uuid.UUID,
    currency: str,
    gateways: list[str],
    *,
    actor: str = SYSTEM_ACTOR,
) -> list[str]:
    """Replace the merchant's route for ``currency``; every gateway must take that currency."""
    names = []
    for name in gateways:
        description = catalogue.describe(name)
        if currency not in description.currencies:
            raise ValueError(f"{description.name} does not take {currency}")
        if description.name not in names:
            names.append(description.name)
    row = session.get(GatewayRoute, (merchant_id, currency))
    before = list(row.gateways) if row is not None else []
    if row is None:
        row = GatewayRoute(merchant_id=merchant_id, currency=currency, gateways=names)
        session.add(row)
    else:
        row.gateways = names
    session.flush()
    if names != before:
        audit.record(
            session,
            actor=actor,
            action="gateway_route.changed",
            subject_type="gateway_route",
            subject_id=merchant_id,
            detail={"currency": currency, "from": before, "to": names},
        )
    return names


def gateway_enabled(session: Session, merchant_id: uuid.UUID, gateway: str) -> bool:
    return (
        session.scalar(
            select(GatewayCredential.id).where(
                GatewayCredential.merchant_id == merchant_id,
                GatewayCredential.gateway == gateway,
                GatewayCredential.enabled.is_(True),
            )
        )
        is not None
    )


def credential_for_callback_secret(
    session: Session, gateway: str, secret: str
) -> GatewayCredential | None:
    """The credentials row whose callback secret hashes to what the path carries."""
    return session.scalars(
        select(GatewayCredential).where(
            GatewayCredential.gateway == gateway,
            GatewayCredential.callback_secret_hash == sha256_hex(secret),
        )
    ).one_or_none()


def set_callback_policy(
    session: Session,
    merchant_id: uuid.UUID,
    gateway: str,
    *,
    require_signature: bool | None = None,
    confirm_before_credit: bool | None = None,
    enabled: bool | None = None,
    actor: str = SYSTEM_ACTOR,
) -> GatewayCredential:
    """Change how a merchant's callbacks are trusted; ``None`` leaves a setting as it is.

    Audited when something changed: ``gateway.callback_policy_changed`` with each
    setting's before and after, and ``gateway.enabled`` / ``gateway.disabled``.
    """
    row = gateway_credential(session, merchant_id, gateway)
    if row is None:
        raise LookupError(f"merchant {merchant_id} has no {gateway} credentials")
    changes: dict[str, dict[str, bool]] = {}
    if require_signature is not None and require_signature != row.require_signature:
        changes["require_signature"] = {"from": row.require_signature, "to": require_signature}
        row.require_signature = require_signature
    if confirm_before_credit is not None and confirm_before_credit != row.confirm_before_credit:
        changes["confirm_before_credit"] = {
            "from": row.confirm_before_credit,
            "to": confirm_before_credit,
        }
        row.confirm_before_credit = confirm_before_credit
    switched = enabled is not None and enabled != row.enabled
    if enabled is not None:
        row.enabled = enabled
    session.flush()
    if changes:
        _audit_gateway(session, row, actor, "gateway.callback_policy_changed", changes=changes)
    if switched:
        _audit_gateway(session, row, actor, "gateway.enabled" if enabled else "gateway.disabled")
    return row


def set_ip_allowlist(
    session: Session,
    merchant_id: uuid.UUID,
    gateway: str,
    allowlist: list[str] | None,
    *,
    actor: str = SYSTEM_ACTOR,
) -> GatewayCredential:
    """Only these sources may deliver the merchant's callbacks (``None``: any source)."""
    row = set_callback_policy(session, merchant_id, gateway)
    before = list(row.ip_allowlist) if row.ip_allowlist is not None else None
    row.ip_allowlist = allowlist
    session.flush()
    if before != allowlist:
        _audit_gateway(
            session, row, actor, "gateway.ip_allowlist_changed", **{"from": before, "to": allowlist}
        )
    return row


def rotate_credentials(session: Session, cipher: CredentialCipher, batch: int = 100) -> int:
    """Re-encrypt up to ``batch`` rows not under the active key; returns how many.

    Rows are locked one batch at a time (``SKIP LOCKED``), so processes holding both
    keys keep reading every row while it runs. Call until it returns 0.
    """
    rows = session.scalars(
        select(GatewayCredential)
        .where(GatewayCredential.key_id != cipher.active_key_id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        plain = decrypt_credentials(cipher, row)
        row.key_id, row.ciphertext = cipher.encrypt(
            plain, context=_context(row.merchant_id, row.gateway)
        )
    session.flush()
    return len(rows)


def reencrypt_signing_secrets(session: Session, cipher: CredentialCipher, batch: int = 100) -> int:
    """Re-encrypt up to ``batch`` keys' command-signing secrets not under the active key."""
    keys = session.scalars(
        select(ApiKey)
        .where(ApiKey.signing_key_id != cipher.active_key_id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    for key in keys:
        _seal_signing_secret(cipher, key, _open_signing_secret(cipher, key))
    session.flush()
    return len(keys)


def credentials_by_key(session: Session) -> dict[str, int]:
    """How many encrypted rows (gateway credentials, webhook secrets, command-signing secrets)
    each key id encrypts."""
    counts: dict[str, int] = {}
    for column in (GatewayCredential.key_id, WebhookEndpoint.key_id, ApiKey.signing_key_id):
        counted = select(column, func.count()).where(column.is_not(None)).group_by(column)
        for key_id, count in session.execute(counted):
            counts[str(key_id)] = counts.get(str(key_id), 0) + int(count)
    return counts

"""Merchant webhooks: Standard Webhooks signing, endpoint secrets, and the endpoint e-mail.

Every event is POSTed with three headers (https://www.standardwebhooks.com):

- ``webhook-id``: the event's ``webhook_id``, the same on every attempt, so a
  receiver can drop a second copy;
- ``webhook-timestamp``: unix seconds of this attempt (receivers refuse old ones);
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``
  once per active secret, newest first, space-separated. ``key`` is the
  base64-decoded part of a ``whsec_`` secret.

A merchant's endpoint keeps its secrets (newest first) AES-GCM encrypted with
the credentials cipher, bound to ``webhook_endpoint/<merchant id>``. A rotation
adds a new secret in front of the current one, so both sign until
:func:`drop_old_secrets`; receivers accept either meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import smtplib
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from secrets import token_bytes
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import egress
from shared.crypto import CredentialCipher, canonical_json
from shared.db.models import WebhookEndpoint, WebhookEvent
from shared.settings import Settings

log = structlog.stdlib.get_logger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
SECRET_BYTES = 32
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64  # what the spec allows for a secret's key
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300
MAX_URL_LENGTH = 2000
UNDELIVERED = ("pending", "failed", "held")


# --- signing (pure) --------------------------------------------------------------------------


class WebhookSignatureInvalid(ValueError):
    """A request does not carry a valid Standard Webhooks signature (the reason says why)."""


def new_secret() -> str:
    """A fresh ``whsec_`` secret: 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ValueError unless it is 24-64 base64 bytes."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is 'whsec_' + base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"a webhook secret's key is {MIN_KEY_BYTES}-{MAX_KEY_BYTES} bytes")
    return key


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` under ``secret``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(
    secrets: Sequence[str], webhook_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one delivery: one signature per secret, in the order given (newest first)."""
    if not secrets:
        raise ValueError("an endpoint needs at least one secret to sign with")
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, webhook_id, timestamp, body) for s in secrets),
        "Content-Type": "application/json",
    }


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Return if one of the request's signatures is ``secret``'s and its timestamp is recent.

    Raises :class:`WebhookSignatureInvalid` otherwise. Header names are matched
    case-insensitively; every candidate is compared in constant time.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp", "")
    candidates = lowered.get("webhook-signature", "").split()
    if not webhook_id or not candidates or not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookSignatureInvalid("missing or malformed webhook headers")
    if abs(now - int(timestamp)) > tolerance_s:
        raise WebhookSignatureInvalid("timestamp outside the tolerance")
    expected = signature(secret, webhook_id, int(timestamp), body).encode()
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise WebhookSignatureInvalid("no matching signature")


def event_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed) for an event's payload: stable on every attempt."""
    return canonical_json(payload)


# --- endpoints -------------------------------------------------------------------------------


class EndpointRefused(ValueError):
    """A URL that cannot be a webhook endpoint here (malformed, not https in production,
    or a host that resolves to an address that is not public)."""


def check_endpoint_url(url: str, *, production: bool, allowed_hosts: Collection[str] = ()) -> str:
    """The URL if it may receive webhooks: absolute http(s) (https in production), public.

    The host is resolved now and refused if any of its addresses is loopback,
    private, link-local, multicast or reserved (``shared.egress``), unless it is in
    ``allowed_hosts`` (``MALIPO_WEBHOOK_ALLOW_HOSTS``, sandbox only). A name that
    does not resolve yet is accepted: every delivery resolves and checks again.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL_LENGTH:
        raise EndpointRefused(f"an endpoint is an absolute http(s) URL of at most {MAX_URL_LENGTH}")
    if production and parts.scheme != "https":
        raise EndpointRefused("production sends webhooks only to https:// endpoints")
    try:
        egress.check_destination(url, allowed_hosts)
    except egress.EgressRefused as exc:
        hint = "" if production else " (MALIPO_WEBHOOK_ALLOW_HOSTS may name local hosts)"
        raise EndpointRefused(exc.reason + hint) from None
    except egress.Unresolvable:
        pass
    except ValueError:
        raise EndpointRefused("an endpoint is an absolute http(s) URL") from None
    return url


# What a delivery row's ``error`` says: a fixed vocabulary, never an endpoint's words
# or an exception's text (which names addresses, ports and the URL's query).
INTERRUPTED = "interrupted: the worker stopped before recording the outcome"
TIMEOUT = "timeout: no answer within the delivery timeout"
CONNECTION_REFUSED = "connection refused"
CONNECTION_FAILED = "connection failed"
TLS_FAILED = "tls: the endpoint's certificate or handshake did not verify"
UNRESOLVABLE = "unresolvable: the endpoint's host name does not resolve"
REQUEST_FAILED = "request failed"
DELIVERY_ERRORS = frozenset(
    {
        INTERRUPTED,
        TIMEOUT,
        CONNECTION_REFUSED,
        CONNECTION_FAILED,
        TLS_FAILED,
        UNRESOLVABLE,
        REQUEST_FAILED,
        *egress.REASONS,
    }
)


def public_error(error: str | None) -> str | None:
    """A delivery error as it may be shown: one of :data:`DELIVERY_ERRORS`, or a generic word.

    Rows written before the vocabulary held exception text; that is not shown.
    """
    if error is None or error in DELIVERY_ERRORS:
        return error
    return REQUEST_FAILED


def _context(merchant_id: uuid.UUID) -> str:
    return f"webhook_endpoint/{merchant_id}"


def endpoint_secrets(cipher: CredentialCipher, row: WebhookEndpoint) -> list[str]:
    """The endpoint's signing secrets, newest first (decrypted)."""
    stored = cipher.decrypt(row.key_id, row.secrets_ciphertext, context=_context(row.merchant_id))
    return [str(secret) for secret in stored["secrets"]]


def _store_secrets(cipher: CredentialCipher, row: WebhookEndpoint, secrets: list[str]) -> None:
    row.key_id, row.secrets_ciphertext = cipher.encrypt(
        {"secrets": secrets}, context=_context(row.merchant_id)
    )


def webhook_endpoint(
    session: Session, merchant_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint | None:
    return session.get(WebhookEndpoint, merchant_id, with_for_update=lock)


def _existing(session: Session, merchant_id: uuid.UUID) -> WebhookEndpoint:
    row = webhook_endpoint(session, merchant_id, lock=True)
    if row is None:
        raise LookupError(f"merchant {merchant_id} has no webhook endpoint")
    return row


def set_endpoint(
    session: Session,
    cipher: CredentialCipher,
    merchant_id: uuid.UUID,
    url: str,
    *,
    production: bool,
    allowed_hosts: Collection[str] = (),
) -> str | None:
    """Create the merchant's endpoint (returns its new secret) or change its URL (returns None).

    Changing the URL keeps the secrets, so the merchant's verification goes on
    working (:func:`rotate_secret` changes them), and forgets the old URL's
    failures. Whether the endpoint is enabled is left as it is. The URL must pass
    :func:`check_endpoint_url` (``allowed_hosts``: the sandbox's local hosts).
    """
    check_endpoint_url(url, production=production, allowed_hosts=allowed_hosts)
    row = webhook_endpoint(session, merchant_id, lock=True)
    if row is not None:
        if row.url != url:
            row.url, row.failing_since = url, None  # the old URL's failures are not the new one's
        session.flush()
        return None
    secret = new_secret()
    row = WebhookEndpoint(merchant_id=merchant_id, url=url)
    _store_secrets(cipher, row, [secret])
    session.add(row)
    session.flush()
    return secret


def rotate_secret(session: Session, cipher: CredentialCipher, merchant_id: uuid.UUID) -> str:
    """Put a new secret in front of the current one; both sign until the old one is dropped.

    Only the current (newest) secret is kept beside the new one: rotating twice
    in a row drops the oldest.
    """
    row = _existing(session, merchant_id)
    secret = new_secret()
    _store_secrets(cipher, row, [secret, *endpoint_secrets(cipher, row)[:1]])
    session.flush()
    return secret


def drop_old_secrets(session: Session, cipher: CredentialCipher, merchant_id: uuid.UUID) -> int:
    """Keep only the newest secret; returns how many were dropped."""
    row = _existing(session, merchant_id)
    secrets = endpoint_secrets(cipher, row)
    _store_secrets(cipher, row, secrets[:1])
    session.flush()
    return len(secrets) - 1


def set_endpoint_enabled(
    session: Session, merchant_id: uuid.UUID, enabled: bool, reason: str | None = None
) -> WebhookEndpoint:
    """Enable (clearing the failure record) or disable an endpoint, with the reason."""
    row = _existing(session, merchant_id)
    if enabled:
        row.enabled, row.disabled_reason, row.failing_since = True, None, None
    else:
        disable_endpoint(row, reason or "disabled by an operator")
    session.flush()
    return row


def disable_endpoint(row: WebhookEndpoint, reason: str) -> None:
    """Stop delivering to this endpoint; its events are held until it is enabled and replayed."""
    row.enabled, row.disabled_reason = False, reason[:300]


def endpoint_view(cipher: CredentialCipher, row: WebhookEndpoint) -> dict[str, Any]:
    """What may be shown of an endpoint: never its secrets, only how many sign."""
    return {
        "merchant_id": str(row.merchant_id),
        "url": row.url,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "failing_since": row.failing_since.isoformat() if row.failing_since else None,
        "signing_secrets": len(endpoint_secrets(cipher, row)),
        "key_id": row.key_id,
    }


def reencrypt_endpoints(session: Session, cipher: CredentialCipher, batch: int = 100) -> int:
    """Re-encrypt up to ``batch`` endpoints not under the active key; returns how many.

    The webhook counterpart of ``shared.merchants.rotate_credentials``: call until 0.
    """
    rows = session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.key_id != cipher.active_key_id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        _store_secrets(cipher, row, endpoint_secrets(cipher, row))
    session.flush()
    return len(rows)


def undelivered_since(
    session: Session, merchant_id: uuid.UUID, since: datetime, limit: int
) -> list[int]:
    """Ids of the merchant's events created at or after ``since`` not delivered yet, oldest first.

    Reads only; at most ``limit`` ids (the caller decides what more than that means).
    """
    return list(
        session.scalars(
            select(WebhookEvent.id)
            .where(
                WebhookEvent.merchant_id == merchant_id,
                WebhookEvent.created_at >= since,
                WebhookEvent.status.in_(UNDELIVERED),
            )
            .order_by(WebhookEvent.id)
            .limit(limit)
        )
    )


# --- telling the merchant --------------------------------------------------------------------


def send_merchant_email(settings: Settings, to: str, subject: str, text: str) -> bool:
    """Send a plain-text e-mail over the configured SMTP server; True once the server took it.

    Best effort: with no ``smtp_host``, or when the server fails, it logs a warning
    and returns False (nothing is retried).
    """
    if not settings.smtp_host:
        log.warning("merchant e-mail not sent: MALIPO_SMTP_HOST is not set", subject=subject)
        return False
    message = EmailMessage()
    message["From"] = settings.smtp_from or "malipo@localhost"
    message["To"], message["Subject"] = to, subject
    message.set_content(text)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username and settings.smtp_password:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("merchant e-mail not sent", subject=subject, error=str(exc))
        return False
    return True

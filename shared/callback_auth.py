"""Callback authentication beyond the path secret: source-IP allowlists and HMAC signatures.

The signature scheme is generic, for gateways or proxies that can sign:
``X-Malipo-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>``.
The timestamp is inside the signed string, so a captured request cannot be
replayed outside the tolerance window; several ``v1=`` entries are accepted,
so a signer can rotate its secret without downtime.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from enum import StrEnum
from ipaddress import ip_address, ip_network

SIGNATURE_HEADER = "X-Malipo-Signature"
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")  # ASCII digits: str.isdigit() also accepts '²'.


class Refusal(StrEnum):
    """Why a callback was refused (recorded for operators; never told to the caller)."""

    UNKNOWN_SECRET = "unknown_secret"  # noqa: S105 - a reason, not a secret
    IP_NOT_ALLOWED = "ip_not_allowed"
    SIGNATURE_MISSING = "signature_missing"
    SIGNATURE_INVALID = "signature_invalid"
    SIGNATURE_STALE = "signature_stale"
    SIGNING_NOT_CONFIGURED = "signing_not_configured"
    BODY_TOO_LARGE = "body_too_large"


def ip_allowed(client_ip: str | None, allowlist: Iterable[str]) -> bool:
    """True when the client address is inside one of the allowlist's addresses or networks."""
    if client_ip is None:
        return False
    try:
        address = ip_address(client_ip)
    except ValueError:
        return False
    for entry in allowlist:
        try:
            if address in ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _mac(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The header value a signer sends for ``body`` at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, str(timestamp), body)}"


def check_signature(
    header: str | None, body: bytes, secret: bytes, *, now: float, tolerance_s: int
) -> Refusal | None:
    """None when the header signs this body within the tolerance; otherwise why not."""
    if not header:
        return Refusal.SIGNATURE_MISSING
    timestamp, candidates = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not _UNIX_SECONDS.fullmatch(timestamp) or not candidates:
        return Refusal.SIGNATURE_INVALID
    expected = _mac(secret, timestamp, body)
    # Compare every candidate (no early exit), in constant time each.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate.encode(), expected.encode())
    if not matched:
        return Refusal.SIGNATURE_INVALID
    if abs(now - int(timestamp)) > tolerance_s:
        return Refusal.SIGNATURE_STALE
    return None

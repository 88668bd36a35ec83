"""The server side of HTTP Digest access authentication (RFC 2617, MD5, qop="auth").

GU's API answers an unauthenticated call with ``401`` and a ``WWW-Authenticate:
Digest`` challenge; the client repeats the call with ``Authorization: Digest``,
whose ``response`` is ``MD5(HA1:nonce:nc:cnonce:qop:HA2)`` with
``HA1 = MD5(user:realm:password)`` and ``HA2 = MD5(method:uri)``. Nonces are
issued here, expire, and each nonce count may be used once (no replays).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

REALM: Final = "apidist.gutouch.net"
NONCE_TTL_S: Final = 300.0
MAX_NONCES: Final = 10_000
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def parse_digest(header: str) -> dict[str, str] | None:
    """The parameters of an ``Authorization: Digest ...`` header, or None if it is not one."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = (
            re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        )
    return params


def expected_response(params: dict[str, str], method: str, password: str) -> str:
    ha1 = md5_hex(f"{params['username']}:{params['realm']}:{password}")
    ha2 = md5_hex(f"{method}:{params['uri']}")
    return md5_hex(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")


@dataclass
class _Nonce:
    issued_at: float
    last_nc: int = 0


class DigestAuthority:
    """Issues challenges and checks answers; thread-safe."""

    def __init__(self, clock: Callable[[], float], realm: str = REALM) -> None:
        self.realm = realm
        self.opaque = secrets.token_hex(16)
        self._clock = clock
        self._lock = threading.Lock()
        self._nonces: dict[str, _Nonce] = {}

    def challenge(self) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce."""
        nonce = secrets.token_hex(16)
        with self._lock:
            now = self._clock()
            if len(self._nonces) >= MAX_NONCES:
                self._nonces = {
                    n: v for n, v in self._nonces.items() if now - v.issued_at < NONCE_TTL_S
                }
            self._nonces[nonce] = _Nonce(now)
        return (
            f'Digest realm="{self.realm}", qop="auth", nonce="{nonce}", '
            f'opaque="{self.opaque}", algorithm=MD5'
        )

    def verify(
        self,
        header: str | None,
        method: str,
        request_path: str,
        password_of: Callable[[str], str | None],
    ) -> str | None:
        """The authenticated user name, or None (then answer with a new challenge).

        ``request_path`` is the path the client addressed (prefix included); the
        header's ``uri`` must name it.
        """
        params = parse_digest(header or "")
        required = ("username", "realm", "nonce", "uri", "response", "nc", "cnonce", "qop")
        if params is None or any(not params.get(name) for name in required):
            return None
        if params["realm"] != self.realm or params["qop"] != "auth":
            return None
        if params.get("algorithm", "MD5").upper() != "MD5":
            return None
        if params.get("opaque", self.opaque) != self.opaque:
            return None
        if unquote(params["uri"].split("?", 1)[0]) != request_path:
            return None
        password = password_of(params["username"])
        if password is None:
            return None
        if not hmac.compare_digest(
            params["response"].lower(), expected_response(params, method, password)
        ):
            return None
        return params["username"] if self._count(params["nonce"], params["nc"]) else None

    def _count(self, nonce: str, nc_hex: str) -> bool:
        """Accept each nonce count once, rising, within the nonce's lifetime."""
        try:
            nc = int(nc_hex, 16)
        except ValueError:
            return False
        with self._lock:
            entry = self._nonces.get(nonce)
            if entry is None or self._clock() - entry.issued_at > NONCE_TTL_S:
                return False
            if nc <= entry.last_nc:
                return False
            entry.last_nc = nc
            return True

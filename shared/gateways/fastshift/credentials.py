"""A merchant's FastShift account: one API token, sent as ``Authorization: Bearer``.

FastShift hands each merchant a token (a test one and a live one, both for the
same host); nothing else identifies the merchant, and no callback carries a
secret to check against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Long enough for any opaque or JWT-like token, short enough to refuse a pasted document.
MAX_TOKEN_LENGTH = 2000


@dataclass(frozen=True)
class FastShiftCredentials:
    """A validated token: non-empty, no whitespace or control characters (it is a header)."""

    api_token: str

    def __post_init__(self) -> None:
        token = self.api_token
        if not isinstance(token, str) or not token:
            raise ValueError("api_token is required")
        if len(token) > MAX_TOKEN_LENGTH:
            raise ValueError(f"api_token is longer than {MAX_TOKEN_LENGTH} characters")
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in token):
            raise ValueError("api_token contains whitespace or control characters")

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> FastShiftCredentials:
        """Stored credentials; a missing token is a ValueError naming it."""
        token = stored.get("api_token")
        if token in (None, ""):
            raise ValueError("missing FastShift credentials: api_token")
        return cls(api_token=str(token).strip())

    def bearer(self) -> dict[str, str]:
        """The headers every FastShift call carries (never logged: see the transport)."""
        return {"Authorization": f"Bearer {self.api_token}", "Accept": "application/json"}

    def __repr__(self) -> str:
        # Never let a traceback or a log line print the token.
        return "FastShiftCredentials(api_token=<redacted>)"

"""A merchant's Idram account: its Idram ID, the secret key Idram signs with, a page language.

Idram's technical staff set the merchant's SUCCESS_URL, FAIL_URL and RESULT_URL
(the cabinet) and hand over the secret key when the contract is signed; none of
those URLs is sent with an order, so they are not credentials here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.gateways.idram.wire import LANGUAGES

MAX_CREDENTIAL_LENGTH = 200
DEFAULT_LANGUAGE = "EN"
# Idram IDs are numbers in every sample; letters, '-' and '_' are tolerated (unverified).
_ACCOUNT = re.compile(r"[0-9A-Za-z_-]{1,64}")


@dataclass(frozen=True)
class IdramCredentials:
    """Validated Idram credentials.

    ``rec_account`` is ``EDP_REC_ACCOUNT`` (the merchant's IdramID); ``secret_key``
    only ever enters the confirmation checksum and never leaves malipo.
    """

    rec_account: str
    secret_key: str
    language: str = DEFAULT_LANGUAGE

    def __post_init__(self) -> None:
        if not _ACCOUNT.fullmatch(self.rec_account):
            raise ValueError("rec_account must be the Idram ID (digits; at most 64 characters)")
        if not self.secret_key:
            raise ValueError("secret_key is required")
        if len(self.secret_key) > MAX_CREDENTIAL_LENGTH:
            raise ValueError(f"secret_key is longer than {MAX_CREDENTIAL_LENGTH} characters")
        if any(ord(c) < 32 or ord(c) == 127 for c in self.secret_key):
            raise ValueError("secret_key contains control characters")
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> IdramCredentials:
        """Stored credentials; a missing required value is a ValueError naming it."""
        missing = [name for name in ("rec_account", "secret_key") if not stored.get(name)]
        if missing:
            raise ValueError(f"missing Idram credentials: {', '.join(missing)}")
        language = str(stored.get("language") or DEFAULT_LANGUAGE).strip().upper()
        return cls(
            rec_account=str(stored["rec_account"]).strip(),
            secret_key=str(stored["secret_key"]).strip(),
            language=language,
        )

    def __repr__(self) -> str:
        # Never let a traceback or log line print the secret key.
        return f"IdramCredentials(rec_account={self.rec_account!r}, language={self.language!r})"

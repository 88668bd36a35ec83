"""A merchant's InTouch agency: what TouchPay, the GU API and its callbacks need.

One agency is one InTouch merchant account in one country. TouchPay (the hosted
flow) needs the agency code, its secure code and the domain that code is tied
to; the GU API (push, check_status) needs the API and agent logins; InTouch's
calls to our callback URL carry the agency's HTTP Basic credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Long enough for any real value, short enough to refuse a pasted document.
MAX_CREDENTIAL_LENGTH = 200
CURRENCIES = ("XOF", "XAF")

REQUIRED = (
    "agency_code",
    "secure_code",
    "domain_name",
    "login_api",
    "password_api",
    "partner_id",
    "callback_username",
    "callback_password",
)
# Only the GU push needs these; a hosted-only merchant may leave them out.
PUSH_ONLY = ("login_agent", "password_agent", "service_code")


@dataclass(frozen=True)
class InTouchCredentials:
    """Validated InTouch credentials (every value non-empty text without control characters).

    ``currency`` is the agency's settlement currency when the merchant said it
    (XOF in UEMOA, XAF in CEMAC): InTouch's answers never name one, so only then
    can an amount InTouch reports be compared with the payment's.
    """

    agency_code: str
    secure_code: str
    domain_name: str
    login_api: str
    password_api: str
    partner_id: str
    callback_username: str
    callback_password: str
    login_agent: str | None = None
    password_agent: str | None = None
    service_code: str | None = None
    currency: str | None = None

    def __post_init__(self) -> None:
        for name in REQUIRED:
            _check_text(name, getattr(self, name))
        for name in PUSH_ONLY:
            value = getattr(self, name)
            if value is not None:
                _check_text(name, value)
        if ":" in self.callback_username:
            raise ValueError("callback_username cannot contain ':' (HTTP Basic splits on it)")
        if "/" in self.agency_code or "?" in self.agency_code:
            raise ValueError("agency_code is part of a URL path: no '/' or '?'")
        if self.currency is not None and self.currency not in CURRENCIES:
            raise ValueError(f"currency must be one of {CURRENCIES}")

    @property
    def can_push(self) -> bool:
        return all(getattr(self, name) for name in PUSH_ONLY)

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> InTouchCredentials:
        """Stored credentials; a missing required value is a ValueError naming it."""
        missing = [name for name in REQUIRED if not stored.get(name)]
        if missing:
            raise ValueError(f"missing InTouch credentials: {', '.join(missing)}")

        def optional(name: str) -> str | None:
            value = stored.get(name)
            return str(value).strip() if value not in (None, "") else None

        return cls(
            **{name: str(stored[name]).strip() for name in REQUIRED},
            login_agent=optional("login_agent"),
            password_agent=optional("password_agent"),
            service_code=optional("service_code"),
            currency=optional("currency"),
        )

    def __repr__(self) -> str:
        # Never let a traceback or log line print the secrets.
        return (
            f"InTouchCredentials(agency_code={self.agency_code!r}, partner_id={self.partner_id!r})"
        )


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required")
    if len(value) > MAX_CREDENTIAL_LENGTH:
        raise ValueError(f"{name} is longer than {MAX_CREDENTIAL_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{name} contains control characters")

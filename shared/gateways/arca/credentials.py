"""A merchant's ArCa iPay account: the API login, and its set-up at ArCa.

``username`` and ``password`` are the merchant's API account on the payment
engine (ArCa hands out logins like ``<merchant>_api``), sent with every call as
``userName`` / ``password``. ``two_step`` says whether the merchant was set up
for two-stage payments (``shared.gateways.bpc``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.gateways.bpc import two_step_of

# The engine's own limits: userName up to 100 characters, password up to 30 (BPC's API).
MAX_USERNAME: Final = 100
MAX_PASSWORD: Final = 30
REQUIRED: Final = ("username", "password")


@dataclass(frozen=True)
class ArcaCredentials:
    username: str
    password: str
    two_step: bool = False

    def __post_init__(self) -> None:
        _check_text("username", self.username, MAX_USERNAME)
        _check_text("password", self.password, MAX_PASSWORD)

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> ArcaCredentials:
        """Stored credentials; a missing or unusable value is a ValueError naming it."""
        missing = [name for name in REQUIRED if not stored.get(name)]
        if missing:
            raise ValueError(f"missing ArCa credentials: {', '.join(missing)}")
        return cls(
            username=str(stored["username"]).strip(),
            password=str(stored["password"]).strip(),
            two_step=two_step_of(stored),
        )

    def __repr__(self) -> str:
        # Never let a traceback or a log line print the password.
        return f"ArcaCredentials(username={self.username!r}, two_step={self.two_step!r})"


def _check_text(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required")
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{name} contains control characters")

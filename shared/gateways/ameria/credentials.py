"""A merchant's Ameriabank vPOS account: ClientID, the API login, and its set-up at the bank.

``client_id`` is the merchant's vPOS id (a GUID at Ameria), ``username`` and
``password`` the API login every call carries in its body. ``two_step`` says
whether Ameria set the vPOS up for two-stage payments (``shared.gateways.bpc``).
``order_id_range`` (``"low-high"``) bounds the OrderIDs malipo derives: Ameria's
test environment is reported to take only an assigned range (unverified: one
integrator's notes, e.g. ``30164001-30165000``); production takes any integer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.gateways.bpc import two_step_of

MAX_CREDENTIAL_LENGTH: Final = 200
REQUIRED: Final = ("client_id", "username", "password")
# OrderID is an integer at Ameria (a 32-bit one, by its .NET API): ours stay below 2**31.
MIN_ORDER_ID: Final = 1
MAX_ORDER_ID: Final = 2_000_000_000


@dataclass(frozen=True)
class AmeriaCredentials:
    client_id: str
    username: str
    password: str
    two_step: bool = False
    order_id_low: int = MIN_ORDER_ID
    order_id_high: int = MAX_ORDER_ID

    def __post_init__(self) -> None:
        for name in REQUIRED:
            _check_text(name, getattr(self, name))
        if not MIN_ORDER_ID <= self.order_id_low <= self.order_id_high <= MAX_ORDER_ID:
            raise ValueError(
                f"order_id_range must be within {MIN_ORDER_ID}-{MAX_ORDER_ID}, low <= high"
            )

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> AmeriaCredentials:
        """Stored credentials; a missing or unusable value is a ValueError naming it."""
        missing = [name for name in REQUIRED if not stored.get(name)]
        if missing:
            raise ValueError(f"missing Ameria credentials: {', '.join(missing)}")
        low, high = parse_order_id_range(stored.get("order_id_range"))
        return cls(
            **{name: str(stored[name]).strip() for name in REQUIRED},
            two_step=two_step_of(stored),
            order_id_low=low,
            order_id_high=high,
        )

    def __repr__(self) -> str:
        # Never let a traceback or a log line print the password.
        return f"AmeriaCredentials(client_id={self.client_id!r}, username={self.username!r})"


def parse_order_id_range(value: object) -> tuple[int, int]:
    """``"30164001-30165000"`` as (low, high); absent or empty: the whole range."""
    if value in (None, ""):
        return MIN_ORDER_ID, MAX_ORDER_ID
    low, dash, high = str(value).strip().partition("-")
    if not dash or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError("order_id_range must be 'low-high', e.g. 30164001-30165000")
    return int(low), int(high)


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required")
    if len(value) > MAX_CREDENTIAL_LENGTH:
        raise ValueError(f"{name} is longer than {MAX_CREDENTIAL_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{name} contains control characters")

"""A merchant's Telcell Money shop: its issuer (shop id), the shop key, a page language.

The shop id is what Telcell calls the ``issuer`` (often the e-mail address the shop
was registered with); the shop key signs invoice links and Telcell's results and
never leaves malipo. The result and return URLs live in Telcell's cabinet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.gateways.telcell.wire import LANGUAGES

MAX_SHOP_ID_LENGTH = 200
# Shop keys seen in integrations are ~130 printable characters of any kind.
MAX_SHOP_KEY_LENGTH = 500
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class TelcellCredentials:
    shop_id: str
    shop_key: str
    language: str = DEFAULT_LANGUAGE

    def __post_init__(self) -> None:
        _check_text("shop_id", self.shop_id, MAX_SHOP_ID_LENGTH)
        _check_text("shop_key", self.shop_key, MAX_SHOP_KEY_LENGTH)
        if any(c.isspace() for c in self.shop_id):
            raise ValueError("shop_id cannot contain spaces")
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> TelcellCredentials:
        """Stored credentials; a missing required value is a ValueError naming it."""
        missing = [name for name in ("shop_id", "shop_key") if not stored.get(name)]
        if missing:
            raise ValueError(f"missing Telcell credentials: {', '.join(missing)}")
        return cls(
            shop_id=str(stored["shop_id"]).strip(),
            shop_key=str(stored["shop_key"]).strip(),
            language=str(stored.get("language") or DEFAULT_LANGUAGE).strip().lower(),
        )

    def __repr__(self) -> str:
        # Never let a traceback or log line print the shop key.
        return f"TelcellCredentials(shop_id={self.shop_id!r}, language={self.language!r})"


def _check_text(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required")
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{name} contains control characters")

"""The IntaSend simulator's own knobs, read once from ``SANDBOX_INTASEND_*`` variables.

- ``SANDBOX_INTASEND_FEE_PERCENT`` (default 3.5): ``charges`` as a percentage of the
  value, rounded half up to cents (IntaSend's real M-Pesa fee is unverified).
- ``SANDBOX_INTASEND_RETRY_DELAYS_S`` (default ``1,2,4,8,16``): the delays before each
  retry of a failed webhook delivery (IntaSend: 5 retries, from 5 minutes up).
- ``SANDBOX_INTASEND_STRICT_PUBLIC_KEY`` (default off): refuse pushes without the
  ``INTASEND_PUBLIC_API_KEY`` header. Off because gunicorn drops header names with
  underscores (``header_map = drop``), so under ``malipo sandbox`` it never arrives;
  a header that does arrive must always match the account.
- ``SANDBOX_INTASEND_WEBHOOK_URL`` / ``SANDBOX_INTASEND_WEBHOOK_CHALLENGE``: the
  built-in account's dashboard webhook at start and after a reset (default: none,
  and the built-in challenge).
- ``SANDBOX_INTASEND_LIST_PAGE_SIZE`` (default 100): rows a page of ``GET
  transactions/``; small in tests that page.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sandbox.intasend.accounts import BUILTIN_CHALLENGE

DEFAULT_RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)
MAX_LIST_PAGE_SIZE = 1000


@dataclass(frozen=True)
class IntaSendSimSettings:
    fee_percent: Decimal = Decimal("3.5")
    retry_delays_s: tuple[float, ...] = DEFAULT_RETRY_DELAYS_S
    strict_public_key: bool = False
    webhook_url: str | None = None
    webhook_challenge: str = BUILTIN_CHALLENGE
    list_page_size: int = 100

    def __post_init__(self) -> None:
        if not self.fee_percent.is_finite() or not 0 <= self.fee_percent < 100:
            raise ValueError(f"fee_percent must be from 0 to 100, got {self.fee_percent}")
        if any(not math.isfinite(d) or d < 0 for d in self.retry_delays_s):
            raise ValueError("retry delays must be finite numbers >= 0")
        if not 1 <= self.list_page_size <= MAX_LIST_PAGE_SIZE:
            raise ValueError(f"list_page_size must be from 1 to {MAX_LIST_PAGE_SIZE}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IntaSendSimSettings:
        env = os.environ if environ is None else environ
        defaults = cls()
        fee_raw = env.get("SANDBOX_INTASEND_FEE_PERCENT", "").strip()
        delays_raw = env.get("SANDBOX_INTASEND_RETRY_DELAYS_S", "").strip()
        page_raw = env.get("SANDBOX_INTASEND_LIST_PAGE_SIZE", "").strip()
        try:
            fee = Decimal(fee_raw) if fee_raw else defaults.fee_percent
            page_size = int(page_raw) if page_raw else defaults.list_page_size
            delays = (
                tuple(float(part) for part in delays_raw.split(",") if part.strip())
                if delays_raw
                else defaults.retry_delays_s
            )
        except (InvalidOperation, ValueError):
            raise ValueError(
                "SANDBOX_INTASEND_FEE_PERCENT must be a number, "
                "SANDBOX_INTASEND_RETRY_DELAYS_S comma-separated seconds and "
                "SANDBOX_INTASEND_LIST_PAGE_SIZE a whole number"
            ) from None
        strict = env.get("SANDBOX_INTASEND_STRICT_PUBLIC_KEY", "").strip().lower()
        return cls(
            fee_percent=fee,
            retry_delays_s=delays,
            strict_public_key=strict in ("1", "true", "yes", "on"),
            webhook_url=env.get("SANDBOX_INTASEND_WEBHOOK_URL", "").strip() or None,
            webhook_challenge=env.get("SANDBOX_INTASEND_WEBHOOK_CHALLENGE", "").strip()
            or defaults.webhook_challenge,
            list_page_size=page_size,
        )

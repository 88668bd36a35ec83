"""Fixed-window request counting in PostgreSQL, shared by every ingress process.

Counts live in an UNLOGGED table: no WAL, so a count is one cheap upsert, and a
crash that loses the counts only forgives some requests. A fixed window can let
up to twice the limit through around a window boundary; that is the price of
one row per key and window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, text
from sqlalchemy.orm import Session

from shared.db.models import RateLimitWindow

_UPSERT = text(
    "INSERT INTO rate_limit_windows (key, window_start, count) VALUES (:key, :start, 1) "
    "ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limit_windows.count + 1 "
    "RETURNING count"
)
_PEEK = text("SELECT count FROM rate_limit_windows WHERE key = :key AND window_start = :start")


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int = 0


def _window(now: datetime, window_s: int) -> tuple[datetime, datetime]:
    epoch = int(now.timestamp())
    start = datetime.fromtimestamp(epoch - epoch % window_s, UTC)
    return start, start + timedelta(seconds=window_s)


def _decision(count: int, limit: int, now: datetime, end: datetime) -> RateDecision:
    if count <= limit:
        return RateDecision(True)
    return RateDecision(False, max(1, math.ceil((end - now).total_seconds())))


def consume(
    session: Session | Connection, key: str, limit: int, window_s: int, now: datetime
) -> RateDecision:
    """Count one request against ``key``; refused once the window holds more than ``limit``."""
    start, end = _window(now, window_s)
    count = session.execute(_UPSERT, {"key": key, "start": start}).scalar_one()
    return _decision(int(count), limit, now, end)


def peek(
    session: Session | Connection, key: str, limit: int, window_s: int, now: datetime
) -> RateDecision:
    """Would one more request be allowed? (Counts nothing.)"""
    start, end = _window(now, window_s)
    count = session.execute(_PEEK, {"key": key, "start": start}).scalar_one_or_none() or 0
    return _decision(int(count) + 1, limit, now, end)


def forget_before(session: Session, moment: datetime) -> int:
    """Drop windows that ended long ago (the scheduler's sweep calls this)."""
    result = session.execute(delete(RateLimitWindow).where(RateLimitWindow.window_start < moment))
    return int(getattr(result, "rowcount", 0) or 0)

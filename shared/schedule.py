"""Cron expressions as the scheduler reads them, and the windows a scheduled run covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """Five cron fields (minute hour day month day-of-week), or six with seconds first.

    Days of the week are best named (``mon-fri``): APScheduler counts 0 as Monday.
    Raises ValueError with what is wrong.
    """
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ValueError(f"{expression!r} must have five fields (or six, seconds first)")
    names = CRON_FIELDS if len(fields) == 5 else ("second", *CRON_FIELDS)
    try:
        return CronTrigger(timezone=ZoneInfo(timezone), **dict(zip(names, fields, strict=True)))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{expression!r}: {exc}") from None


def scheduled_window(
    fired_at: datetime, window_h: float, lag_s: float
) -> tuple[datetime, datetime]:
    """The window a run fired at ``fired_at`` covers: ``window_h`` hours ending ``lag_s``
    before it, whole seconds (two schedulers that fire together name the same window)."""
    end = fired_at.astimezone(UTC).replace(microsecond=0) - timedelta(seconds=lag_s)
    return end - timedelta(hours=window_h), end

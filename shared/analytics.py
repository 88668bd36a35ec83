"""Payment analytics: counts, volumes, success rates, fees, refunds and timings per bucket.

Everything is aggregated by PostgreSQL (``date_trunc``, ``FILTER``, ``percentile_cont``),
never by loading payments: a year of a busy gateway is millions of rows. A payment
belongs to the bucket of its ``accepted_at``, and the window is read through
``ix_payment_intents_accepted_at`` (or ``ix_payment_intents_merchant_accepted`` for one
merchant). Only buckets holding a payment have a row.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    Numeric,
    Select,
    and_,
    case,
    cast,
    extract,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from shared.db.models import PaymentIntent
from shared.domain.states import PaymentStatus

BUCKETS = ("hour", "day")
FINAL_STATUSES = tuple(status for status in PaymentStatus if status.is_final)
PENDING_STATUSES = tuple(status for status in PaymentStatus if not status.is_final)
# What a failure code explains: every final state but success.
UNSUCCESSFUL_STATUSES = tuple(s for s in FINAL_STATUSES if s != PaymentStatus.SUCCEEDED)
TOP_FAILURES = 5
ROW_KEYS = ("bucket", "gateway", "currency")
TOTAL_KEYS = ("currency",)
FIGURES = (
    "count",
    *(f"{status}_{kind}" for status in FINAL_STATUSES for kind in ("count", "minor")),
    "pending_count",
    "pending_minor",
    "success_rate",
    "gross_minor",
    "fees_minor",
    "net_minor",
    "refunds_minor",
    "processing_p50_ms",
    "processing_p95_ms",
    "top_failures",
)
# A row's fields, in the order of the CSV export's columns.
ROW_FIELDS = (*ROW_KEYS, *FIGURES)
# The figures that are counts or sums, as the statement names them.
_SUMMED = tuple(
    name for name in FIGURES if name.endswith(("count", "_minor")) and name != "net_minor"
)


def analytics_statement(
    *,
    start: datetime,
    end: datetime,
    bucket: str,
    gateway: str | None = None,
    merchant_id: uuid.UUID | None = None,
    tz: str = "UTC",
    by: Sequence[str] = ROW_KEYS,
) -> Select[Any]:
    """One statement: the figures of the payments accepted in ``[start, end)``, grouped ``by``
    some of ``bucket``, ``gateway``, ``currency``; buckets start at midnight (or the hour) in
    ``tz``."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    intent = PaymentIntent
    final = intent.status.in_(FINAL_STATUSES)
    elapsed_ms = extract("epoch", intent.finished_at - intent.accepted_at) * 1000
    scope = select(
        # The unit is spelled in the statement (checked above): one bucket expression only.
        func.date_trunc(
            literal_column(f"'{bucket}'"), intent.accepted_at, tz, type_=DateTime(timezone=True)
        ).label("bucket"),
        intent.gateway,
        intent.currency,
        intent.status,
        intent.amount_minor,
        intent.fee_minor,
        intent.refunded_minor,
        intent.failure_code,
        case((final, cast(elapsed_ms, Float))).label("processing_ms"),
    ).where(intent.accepted_at >= start, intent.accepted_at < end)
    if gateway is not None:
        scope = scope.where(intent.gateway == gateway)
    if merchant_id is not None:
        scope = scope.where(intent.merchant_id == merchant_id)
    window = scope.cte("analytics_window")
    keys = [window.c[name] for name in by]

    def count(*statuses: str) -> ColumnElement[int]:
        return func.count().filter(window.c.status.in_(statuses))

    def total(column: Any, *statuses: str) -> ColumnElement[Any]:
        summed = func.sum(column, type_=Numeric)
        chosen = summed.filter(window.c.status.in_(statuses)) if statuses else summed
        return func.coalesce(chosen, 0, type_=Numeric)

    succeeded = PaymentStatus.SUCCEEDED
    per_status = [
        figure
        for status in FINAL_STATUSES
        for figure in (
            count(status).label(f"{status}_count"),
            total(window.c.amount_minor, status).label(f"{status}_minor"),
        )
    ]
    figures = (
        select(
            *keys,
            func.count().label("count"),
            *per_status,
            count(*PENDING_STATUSES).label("pending_count"),
            total(window.c.amount_minor, *PENDING_STATUSES).label("pending_minor"),
            (
                cast(count(succeeded), Float) / cast(func.nullif(count(*FINAL_STATUSES), 0), Float)
            ).label("success_rate"),
            total(window.c.amount_minor, succeeded).label("gross_minor"),
            total(window.c.fee_minor, succeeded).label("fees_minor"),
            total(window.c.refunded_minor).label("refunds_minor"),
            func.percentile_cont(0.5).within_group(window.c.processing_ms).label("p50"),
            func.percentile_cont(0.95).within_group(window.c.processing_ms).label("p95"),
        )
        .group_by(*keys)
        .subquery("figures")
    )
    ranked = (
        select(
            *keys,
            window.c.failure_code,
            func.count().label("times"),
            func.row_number()
            # Ties by code, bytewise: the same order whatever the database's locale.
            .over(
                partition_by=keys,
                order_by=(func.count().desc(), window.c.failure_code.collate("C")),
            )
            .label("rank"),
        )
        .where(window.c.status.in_(UNSUCCESSFUL_STATUSES), window.c.failure_code.is_not(None))
        .group_by(*keys, window.c.failure_code)
        .subquery("ranked_failures")
    )
    top = (
        select(
            *[ranked.c[name] for name in by],
            func.array_agg(aggregate_order_by(ranked.c.failure_code, ranked.c.rank)).label("codes"),
            func.array_agg(aggregate_order_by(ranked.c.times, ranked.c.rank)).label("times"),
        )
        .where(ranked.c.rank <= TOP_FAILURES)
        .group_by(*[ranked.c[name] for name in by])
        .subquery("top_failures")
    )
    joined = figures.outerjoin(top, and_(*[figures.c[name] == top.c[name] for name in by]))
    return (
        select(figures, top.c.codes, top.c.times)
        .select_from(joined)
        .order_by(*[figures.c[name] for name in by])
    )


def analytics_rows(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    bucket: str,
    gateway: str | None,
    merchant_id: uuid.UUID | None,
    tz: str = "UTC",
) -> list[dict[str, Any]]:
    """One row per (bucket, gateway, currency), oldest bucket first, as the API shows it.

    ``success_rate`` is succeeded / final payments, and null when none is final yet;
    the processing percentiles (``finished_at - accepted_at`` of final payments, in ms)
    are null then too. ``top_failures``: the most frequent codes of unsuccessful payments.
    """
    statement = analytics_statement(
        start=start, end=end, bucket=bucket, gateway=gateway, merchant_id=merchant_id, tz=tz
    )
    zone = ZoneInfo(tz)
    return [
        {
            "bucket": row.bucket.astimezone(zone).isoformat(),
            "gateway": row.gateway,
            "currency": row.currency,
            **_figures(row),
        }
        for row in session.execute(statement)
    ]


def analytics_totals(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    gateway: str | None,
    merchant_id: uuid.UUID | None,
) -> dict[str, dict[str, Any]]:
    """The same figures over the whole window, per currency (amounts in different
    currencies never add up), computed from the payments, not from the rows: percentiles
    and top failures do not add."""
    statement = analytics_statement(
        start=start,
        end=end,
        bucket="day",
        gateway=gateway,
        merchant_id=merchant_id,
        by=TOTAL_KEYS,
    )
    return {
        row.currency: {"currency": row.currency, **_figures(row)}
        for row in session.execute(statement)
    }


def _figures(row: Any) -> dict[str, Any]:
    """The figures of one result row, JSON-ready, in ``FIGURES`` order."""
    found = row._mapping  # by name: a row's ``count`` attribute is the tuple method
    values: dict[str, Any] = {name: int(found[name]) for name in _SUMMED}
    failures = zip(found["codes"] or [], found["times"] or [], strict=True)
    values |= {
        "success_rate": _float(found["success_rate"]),
        "net_minor": values["gross_minor"] - values["fees_minor"],
        "processing_p50_ms": _float(found["p50"]),
        "processing_p95_ms": _float(found["p95"]),
        "top_failures": [{"code": code, "count": int(times)} for code, times in failures],
    }
    return {name: values[name] for name in FIGURES}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)

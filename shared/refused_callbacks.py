"""Refused callbacks as counts: per minute, gateway, merchant, source and reason.

The ingress counts what it refuses in memory and reports the counts every few
seconds (``ingress/refusals.py``); a worker adds them here. A flood of made-up
secrets so costs a few counter updates a minute, never a row per request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

_ADD = text(
    "INSERT INTO refused_callbacks (minute, gateway, merchant_id, source, reason, count,"
    " first_at, last_at, sample_sha256)"
    " VALUES (:minute, :gateway, :merchant_id, :source, :reason, :count, :first_at, :last_at,"
    " :sample_sha256)"
    " ON CONFLICT (minute, gateway,"
    " coalesce(merchant_id, '00000000-0000-0000-0000-000000000000'::uuid), source, reason)"
    " DO UPDATE SET count = refused_callbacks.count + excluded.count,"
    " first_at = least(refused_callbacks.first_at, excluded.first_at),"
    " last_at = greatest(refused_callbacks.last_at, excluded.last_at),"
    " sample_sha256 = CASE WHEN excluded.last_at >= refused_callbacks.last_at"
    " THEN coalesce(excluded.sample_sha256, refused_callbacks.sample_sha256)"
    " ELSE refused_callbacks.sample_sha256 END"
)


def bucket_row(bucket: Mapping[str, Any]) -> dict[str, Any]:
    """A reported bucket as the row's parameters (strict: a bad report fails loudly)."""
    merchant = bucket.get("merchant_id")
    count = int(bucket["count"])
    if count <= 0:
        raise ValueError(f"a refused-callback count must be positive, not {count}")
    return {
        "minute": datetime.fromisoformat(str(bucket["minute"])),
        "gateway": str(bucket["gateway"])[:32],
        "merchant_id": uuid.UUID(str(merchant)) if merchant else None,
        "source": str(bucket["source"])[:64],
        "reason": str(bucket["reason"])[:40],
        "count": count,
        "first_at": datetime.fromisoformat(str(bucket["first_at"])),
        "last_at": datetime.fromisoformat(str(bucket["last_at"])),
        "sample_sha256": bucket.get("sample_sha256"),
    }


def add_counts(session: Session, buckets: Iterable[Mapping[str, Any]]) -> int:
    """Add the buckets' counts (one upsert each); the number of buckets added."""
    rows = [bucket_row(b) for b in buckets]
    # A stable order: two reports touching the same buckets never deadlock.
    rows.sort(
        key=lambda r: (r["minute"], r["gateway"], str(r["merchant_id"]), r["source"], r["reason"])
    )
    for row in rows:
        session.execute(_ADD, row)
    return len(rows)

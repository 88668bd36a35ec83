"""Reading the counts of refused callbacks (``refused_callbacks``) in tests."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import select

from shared.db.models import RefusedCallback
from shared.db.session import Database


def refused_counts(
    db: Database, *, merchant_id: uuid.UUID | None = None, body: bytes | None = None
) -> list[RefusedCallback]:
    """The count rows of a merchant's refusals, or of those whose last body was ``body``."""
    query = select(RefusedCallback).order_by(RefusedCallback.id)
    if merchant_id is not None:
        query = query.where(RefusedCallback.merchant_id == merchant_id)
    if body is not None:
        query = query.where(RefusedCallback.sample_sha256 == hashlib.sha256(body).hexdigest())
    with db.transaction() as session:
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows

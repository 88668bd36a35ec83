"""The audit trail: who did what to which record, written in the caller's unit of work."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.orm import Session

from shared.db.models import AuditRecord


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: object,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row; commits or rolls back with the change it describes."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    session.add(
        AuditRecord(
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            detail=detail or {},
            request_id=str(request_id) if request_id else None,
        )
    )

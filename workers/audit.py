"""``seal_audit_log``: chain the audit rows committed since the last run.

The scheduler enqueues it periodically. It is idempotent and safe to run twice at
once: a second sealer finds the advisory lock taken and returns at once, leaving
the rows to the first (see :mod:`shared.audit`). It moves no money.
"""

from __future__ import annotations

import dramatiq

from shared.audit import seal_pending
from shared.messages import SEAL_AUDIT_LOG, SealAuditLog
from workers.broker import POLICIES
from workers.runtime import runtime


@dramatiq.actor(
    actor_name=SEAL_AUDIT_LOG.actor_name,
    queue_name=SEAL_AUDIT_LOG.queue_name,
    **POLICIES[SEAL_AUDIT_LOG.actor_name].actor_options(),
)
def seal_audit_log(**fields: object) -> None:
    SealAuditLog.from_kwargs(fields)
    seal_pending(runtime().db)

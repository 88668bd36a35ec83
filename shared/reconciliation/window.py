"""A reconciliation window, and the run id it names (the same range is the same run)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

RUN_NAMESPACE = uuid.UUID("5b0c7e6e-4f8a-4d55-9a43-6d616c69706f")
SOURCES = ("gateway", "statement")


@dataclass(frozen=True)
class Window:
    gateway: str
    start: datetime
    end: datetime
    merchant_id: uuid.UUID | None = None
    source: str = "gateway"  # the gateway's own APIs, or "statement" (an uploaded file)
    trigger: str = "ops"

    def run_id(self) -> uuid.UUID:
        """The run's id, from the window alone: whoever asks first, it is the same run."""
        merchant = str(self.merchant_id) if self.merchant_id else "*"
        name = "|".join(
            (
                self.gateway,
                merchant,
                self.start.astimezone(UTC).isoformat(),
                self.end.astimezone(UTC).isoformat(),
                self.source,
            )
        )
        return uuid.uuid5(RUN_NAMESPACE, name)

    def lock_key(self) -> int:
        """The advisory lock that keeps two runs of the window from overlapping."""
        digest = hashlib.sha256(self.run_id().bytes).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

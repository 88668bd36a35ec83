"""Retry policy as data: every actor states how it retries, and which errors may.

Only :class:`TransientError` (gateway unavailable, database unavailable, broker
unavailable, a callback whose payment is not stored yet) and explicit
``dramatiq.Retry`` are retried, with exponential backoff and jitter between the
bounds. Anything else — business refusals, malformed messages, bugs — fails at
once and goes to the dead-letter queue for an operator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Any

import dramatiq

from shared.domain.errors import MalipoError, PermanentError, TransientError
from shared.messages import current_message_retries
from shared.settings import ConfigurationError


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    min_backoff_ms: int
    max_backoff_ms: int
    time_limit_ms: int

    def should_retry(self, retries: int, exc: BaseException) -> bool:
        return isinstance(exc, (TransientError, dramatiq.Retry)) and retries < self.max_retries

    def is_last_try(self) -> bool:
        """True while processing the last delivery this policy allows."""
        return current_message_retries() >= self.max_retries

    def actor_options(self) -> dict[str, Any]:
        return {
            "max_retries": self.max_retries,
            "min_backoff": self.min_backoff_ms,
            "max_backoff": self.max_backoff_ms,
            "time_limit": self.time_limit_ms,
            "retry_when": self.should_retry,
            "throws": (PermanentError, MalipoError),
        }


DEFAULT_POLICIES: dict[str, RetryPolicy] = {
    # A push goes stale fast (the customer is at the checkout): a few quick retries.
    "initiate_payment": RetryPolicy(
        max_retries=6, min_backoff_ms=1_000, max_backoff_ms=20_000, time_limit_ms=120_000
    ),
    # A callback is the only copy of the gateway's word (Daraja never re-sends): keep trying.
    "apply_callback": RetryPolicy(
        max_retries=25, min_backoff_ms=500, max_backoff_ms=300_000, time_limit_ms=60_000
    ),
    "poll_payment": RetryPolicy(
        max_retries=10, min_backoff_ms=2_000, max_backoff_ms=120_000, time_limit_ms=90_000
    ),
    # Bookkeeping of refused callbacks: worth a few tries, not worth holding a queue for.
    "record_refused_callback": RetryPolicy(
        max_retries=5, min_backoff_ms=1_000, max_backoff_ms=60_000, time_limit_ms=30_000
    ),
    "count_refused_callbacks": RetryPolicy(
        max_retries=5, min_backoff_ms=1_000, max_backoff_ms=60_000, time_limit_ms=30_000
    ),
    # A notice is worth sending only while the customer still cares: about two minutes of
    # retries, then it is recorded failed (it never touches the payment).
    "notify_customer": RetryPolicy(
        max_retries=6, min_backoff_ms=1_000, max_backoff_ms=60_000, time_limit_ms=120_000
    ),
    # Delivery retries follow webhook_retry_delays(), not these: these retry only our own
    # transient failures (database, broker) and wait out another worker's open attempt.
    "notify_merchant": RetryPolicy(
        max_retries=10, min_backoff_ms=1_000, max_backoff_ms=300_000, time_limit_ms=120_000
    ),
    "relay_outbox": RetryPolicy(
        max_retries=2, min_backoff_ms=1_000, max_backoff_ms=10_000, time_limit_ms=60_000
    ),
    # Publishing to malipo.events: a broker outage is waited out; the scheduler's tick
    # starts it again anyway.
    "stream_events": RetryPolicy(
        max_retries=5, min_backoff_ms=500, max_backoff_ms=10_000, time_limit_ms=60_000
    ),
    "drain_dead_letters": RetryPolicy(
        max_retries=2, min_backoff_ms=1_000, max_backoff_ms=10_000, time_limit_ms=120_000
    ),
    # A customer's retry: the same rules as a first push.
    "retry_payment": RetryPolicy(
        max_retries=6, min_backoff_ms=1_000, max_backoff_ms=20_000, time_limit_ms=120_000
    ),
    "sweep_pending_payments": RetryPolicy(
        max_retries=2, min_backoff_ms=1_000, max_backoff_ms=10_000, time_limit_ms=60_000
    ),
    # Money out: a gateway that is down is waited for (the transfer stays pending and the
    # sweep sends it later); what may have been sent is never sent again (checked instead).
    "send_transfer": RetryPolicy(
        max_retries=8, min_backoff_ms=2_000, max_backoff_ms=120_000, time_limit_ms=120_000
    ),
    "check_transfer": RetryPolicy(
        max_retries=8, min_backoff_ms=2_000, max_backoff_ms=120_000, time_limit_ms=90_000
    ),
    "sweep_transfers": RetryPolicy(
        max_retries=2, min_backoff_ms=1_000, max_backoff_ms=10_000, time_limit_ms=60_000
    ),
    # A run of a window is idempotent; a gateway that cannot answer now is asked again.
    "reconcile_window": RetryPolicy(
        max_retries=3, min_backoff_ms=30_000, max_backoff_ms=600_000, time_limit_ms=3_600_000
    ),
    # An operator alert: worth retrying for a while (their webhook or mail server may blip).
    "notify_operators": RetryPolicy(
        max_retries=8, min_backoff_ms=5_000, max_backoff_ms=600_000, time_limit_ms=60_000
    ),
    "resolve_reconciliation_item": RetryPolicy(
        max_retries=5, min_backoff_ms=1_000, max_backoff_ms=60_000, time_limit_ms=30_000
    ),
    # Periodic and idempotent: the next scheduled run is the real retry.
    "seal_audit_log": RetryPolicy(
        max_retries=2, min_backoff_ms=1_000, max_backoff_ms=10_000, time_limit_ms=300_000
    ),
}


def effective_policies(overrides_json: str) -> dict[str, RetryPolicy]:
    """Defaults with ``MALIPO_RETRY_POLICIES`` applied; an unknown actor or field is an error."""
    policies = dict(DEFAULT_POLICIES)
    names = {field.name for field in fields(RetryPolicy)}
    for actor, changes in json.loads(overrides_json or "{}").items():
        if actor not in policies:
            raise ConfigurationError(f"MALIPO_RETRY_POLICIES names no actor {actor!r}")
        unknown = sorted(set(changes) - names)
        if unknown or not all(isinstance(v, int) and v >= 0 for v in changes.values()):
            raise ConfigurationError(
                f"MALIPO_RETRY_POLICIES[{actor!r}] takes non-negative integers for {sorted(names)}"
            )
        policies[actor] = replace(policies[actor], **changes)
    return policies

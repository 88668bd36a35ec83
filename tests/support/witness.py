"""The gateway as witness: how many prompts reached each customer, by the simulator's count.

malipo's ledger says what malipo believes; the Daraja simulator's own record of
the STK pushes it accepted (``/_sim/transactions``: one per prompt on a phone)
says what the customer saw. A push carries its attempt id in its CallBackURL
(``…/callbacks/daraja/<secret>/<attempt id>``); the attempt row names the payment.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from shared.db.models import PaymentAttempt, PaymentIntent
from shared.db.session import Database
from tests.support.sim import Simulator

# Outcomes only a customer who saw the prompt can produce.
ANSWERED_FAILURES = frozenset({"cancelled_by_user", "insufficient_funds", "wrong_pin"})


@dataclass(frozen=True)
class PushReport:
    """Prompts per payment (0 for a payment never pushed) and pushes after the payment ended."""

    per_payment: dict[uuid.UUID, int]
    after_final: list[uuid.UUID]
    answered: set[uuid.UUID]  # succeeded, or a refusal only the customer could give

    @property
    def spread(self) -> tuple[int, int]:
        counts = list(self.per_payment.values())
        return (min(counts), max(counts)) if counts else (0, 0)


def pushes(sim_base_url: str, db: Database, merchant_id: uuid.UUID) -> PushReport:
    """What the simulator received for the merchant's payments."""
    with db.transaction() as session:
        attempts = {
            str(attempt_id): intent_id
            for attempt_id, intent_id in session.execute(
                select(PaymentAttempt.id, PaymentAttempt.intent_id)
                .join(PaymentIntent, PaymentIntent.id == PaymentAttempt.intent_id)
                .where(PaymentIntent.merchant_id == merchant_id)
            )
        }
        intents = {
            row.id: row
            for row in session.execute(
                select(
                    PaymentIntent.id,
                    PaymentIntent.finished_at,
                    PaymentIntent.status,
                    PaymentIntent.failure_code,
                ).where(PaymentIntent.merchant_id == merchant_id)
            )
        }
    counts: Counter[uuid.UUID] = Counter({intent_id: 0 for intent_id in intents})
    after_final = []
    for transaction in Simulator(sim_base_url).transactions():
        intent_id = attempts.get(str(transaction["CallBackURL"]).rstrip("/").rsplit("/", 1)[-1])
        if intent_id is None:
            continue  # another merchant's (the simulator serves the whole suite)
        counts[intent_id] += 1
        finished_at = intents[intent_id].finished_at
        pushed_at = datetime.fromisoformat(str(transaction["created_at"]))
        # created_at is whole seconds, never later than the push: later still means after.
        if finished_at is not None and pushed_at > finished_at:
            after_final.append(intent_id)
    answered = {
        i
        for i, row in intents.items()
        if row.status == "succeeded" or row.failure_code in ANSWERED_FAILURES
    }
    return PushReport(dict(counts), after_final, answered)


def assert_pushed_once(report: PushReport) -> None:
    """No payment prompted twice; each one the customer answered (paid, cancelled, short of
    funds) prompted exactly once; none prompted after it was final.

    A payment may have had no prompt at all: the gateway never took its push (a
    failure malipo saw) or a crash left the push unknown (then it is never re-sent).
    """
    for payment_id, count in report.per_payment.items():
        assert count <= 1, f"payment {payment_id} prompted {count} times"
        if payment_id in report.answered:
            assert count == 1, f"payment {payment_id} was answered but never prompted"
    assert not report.after_final, f"prompts after the payment was final: {report.after_final}"

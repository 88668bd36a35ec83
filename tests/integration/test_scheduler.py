"""Only one scheduler enqueues at a time; the sweep finds payments whose poll was lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.db.models import PaymentIntent
from shared.db.session import Database
from shared.messages import SWEEP_PENDING, Publisher
from shared.settings import Settings
from tests.conftest import MerchantAccount
from tests.support.rabbit import Rabbit
from tests.support.seed import seed_submitted_payments
from tests.support.waiting import wait_until
from workers.scheduler import Scheduler


def scheduler(settings: Settings, broker: Any) -> Scheduler:
    db = Database(settings.database_url.get_secret_value(), pool_size=1)
    return Scheduler(settings, db, Publisher(broker))


def test_two_schedulers_enqueue_one_sweep_per_tick_and_the_survivor_takes_over(
    rabbit: Rabbit, settings: Settings, broker: Any, db: Database
) -> None:
    rabbit.purge(SWEEP_PENDING.queue_name)
    first, second = scheduler(settings, broker), scheduler(settings, broker)

    ticks = [(first.tick_sweep(), second.tick_sweep()) for _ in range(3)]
    first.leadership.release()  # the leader's process dies: its session lock goes with it
    # PostgreSQL frees the lock once it notices the disconnect; the next ticks take over.
    wait_until(second.tick_sweep, timeout_s=10, interval_s=0.2, what="the second scheduler to lead")

    assert ticks == [(True, False)] * 3
    assert rabbit.counts(SWEEP_PENDING.queue_name)[0] == 4
    second.leadership.release()
    rabbit.purge(SWEEP_PENDING.queue_name)


def test_the_sweep_polls_payments_whose_poll_is_overdue(
    rabbit: Rabbit, settings: Settings, broker: Any, db: Database, merchant: MerchantAccount
) -> None:
    from workers.polling import sweep
    from workers.runtime import runtime

    [overdue, _on_time] = seed_submitted_payments(db, merchant.id, 2, tag="sweep")
    with db.transaction() as session:
        session.get(PaymentIntent, overdue.id).next_poll_at = datetime.now(UTC) - timedelta(
            minutes=5
        )  # type: ignore[union-attr]
    rabbit.purge("polls")

    assert sweep(runtime()) == 1

    with db.transaction() as session:
        assert session.get(PaymentIntent, overdue.id).next_poll_at > datetime.now(UTC)  # type: ignore[union-attr]
    assert rabbit.counts("polls")[0] == 1
    rabbit.purge("polls")

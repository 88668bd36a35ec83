"""Only one scheduler enqueues at a time; the sweep finds payments whose poll was lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.db.models import PaymentIntent
from shared.db.session import Database
from shared.messages import SWEEP_PENDING, Publisher, SweepPendingPayments
from shared.settings import Settings
from tests.conftest import MerchantAccount
from tests.support.rabbit import Rabbit
from tests.support.seed import seed_submitted_payments
from tests.support.waiting import wait_until
from workers.scheduler import Scheduler


def scheduler(settings: Settings, broker: Any) -> Scheduler:
    db = Database(settings.database_url.get_secret_value(), pool_size=1)
    return Scheduler(settings, db, Publisher(broker))


def test_two_schedulers_enqueue_each_periodic_job_once_per_period_and_the_survivor_takes_over(
    rabbit: Rabbit, settings: Settings, broker: Any, db: Database
) -> None:
    # Given two schedulers running side by side
    rabbit.purge(SWEEP_PENDING.queue_name)
    first, second = scheduler(settings, broker), scheduler(settings, broker)
    jobs = [message for message, _ in first.jobs()]
    assert {job.spec.queue_name for job in jobs} == {"maintenance"}

    # When every periodic job comes due three times in both
    ticks = [(first.tick(job), second.tick(job)) for _ in range(3) for job in jobs]
    first.leadership.release()  # the leader's process dies: its session lock goes with it
    # PostgreSQL frees the lock once it notices the disconnect; the next ticks take over.
    sweep = SweepPendingPayments()
    wait_until(lambda: second.tick(sweep), timeout_s=10, interval_s=0.2, what="the second to lead")

    # Then each job was enqueued once per period, by the leader only
    assert ticks == [(True, False)] * (3 * len(jobs))
    assert rabbit.counts("maintenance")[0] == 3 * len(jobs) + 1
    second.leadership.release()
    rabbit.purge("maintenance")


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

"""``malipo scheduler``: enqueue periodic jobs, and nothing else.

Several schedulers may run; each tick, only the one holding a PostgreSQL
advisory lock (session-level, on a connection it keeps open) enqueues. If that
process or its connection dies, the lock is released and another takes over.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import Connection, text

from shared.db.session import Database
from shared.logging import configure_process_logging
from shared.messages import (
    DrainDeadLetters,
    MessageContract,
    Publisher,
    ReconcileWindow,
    RelayOutbox,
    SealAuditLog,
    StreamEvents,
    SweepPendingPayments,
    SweepTransfers,
    build_broker,
)
from shared.schedule import cron_trigger, scheduled_window
from shared.settings import Settings, settings_or_exit

log = structlog.stdlib.get_logger(__name__)
LEADER_LOCK_KEY = 0x6D616C69706F  # "malipo"


class Leadership:
    """Holds (or tries to take) the scheduler advisory lock on a dedicated connection."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None
        # One connection, so one user at a time (jobs can come due together).
        self._lock = threading.Lock()

    def is_leader(self) -> bool:
        with self._lock:
            return self._is_leader()

    def _is_leader(self) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self.db.engine.connect()
            held = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY}
            ).scalar()
            self._conn.commit()
            return bool(held)
        except Exception as exc:  # noqa: BLE001 - any failure means "not leader this tick"
            log.warning("scheduler cannot reach PostgreSQL; skipping this tick", error=repr(exc))
            self._release()
            return False

    def release(self) -> None:
        with self._lock:
            self._release()

    def _release(self) -> None:
        if self._conn is not None:
            # Invalidate, not close: a pooled connection would keep the session lock alive.
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None


class Scheduler:
    def __init__(self, settings: Settings, db: Database, publisher: Publisher) -> None:
        self.settings = settings
        self.leadership = Leadership(db)
        self.publisher = publisher

    def jobs(self) -> list[tuple[MessageContract, float]]:
        """Each periodic message and how often (seconds) it is enqueued."""
        return [
            (SweepPendingPayments(), self.settings.scheduler_sweep_interval_s),
            (SealAuditLog(), self.settings.audit_seal_interval_s),
            (RelayOutbox(), self.settings.outbox_relay_interval_s),
            (DrainDeadLetters(), self.settings.dead_letter_drain_interval_s),
            (SweepTransfers(), self.settings.transfer_sweep_interval_s),
            (StreamEvents(), self.settings.event_stream_interval_s),
        ]

    def reconciliations(self) -> list[str]:
        """The gateways a scheduled reconciliation covers (``MALIPO_RECONCILE_GATEWAYS``)."""
        return [g.strip() for g in self.settings.reconcile_gateways.split(",") if g.strip()]

    def reconcile_tick(self, gateway: str) -> bool:
        """Enqueue the reconciliation of the window that ends now (less the lag).

        The window comes from the clock, to the second: only the leader enqueues, and a
        window run twice is one run (its id is the window's), so it has one effect.
        """
        start, end = scheduled_window(
            datetime.now(UTC), self.settings.reconcile_window_h, self.settings.reconcile_lag_s
        )
        return self.tick(
            ReconcileWindow(gateway, start.isoformat(), end.isoformat(), trigger="schedule")
        )

    def tick(self, message: MessageContract) -> bool:
        """Enqueue ``message`` if this process leads; True if it did."""
        if not self.leadership.is_leader():
            return False
        try:
            self.publisher.send(message)
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            log.warning(
                "could not enqueue a periodic job", job=message.spec.actor_name, error=str(exc)
            )
            return False
        return True

    def run(self) -> None:
        # One thread: ticks are short, and each must finish (or fail) before the next.
        scheduler = BlockingScheduler(timezone="UTC", executors={"default": ThreadPoolExecutor(1)})
        for message, interval_s in self.jobs():
            scheduler.add_job(
                self.tick,
                "interval",
                args=(message,),
                seconds=interval_s,
                id=message.spec.actor_name,
                max_instances=1,
                coalesce=True,
            )

        for gateway in self.reconciliations():
            scheduler.add_job(
                self.reconcile_tick,
                cron_trigger(self.settings.reconcile_cron, self.settings.reconcile_timezone),
                args=(gateway,),
                id=f"reconcile:{gateway}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
            )

        def stop(signum: int, frame: FrameType | None) -> None:
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info(
            "scheduler started",
            jobs={m.spec.actor_name: s for m, s in self.jobs()},
            reconcile={"cron": self.settings.reconcile_cron, "gateways": self.reconciliations()},
        )
        scheduler.start()
        self.leadership.release()
        log.info("scheduler stopped")


def main() -> None:
    settings = settings_or_exit("scheduler")
    configure_process_logging(settings)
    db = Database(
        settings.database_url.get_secret_value(), pool_size=1, application_name="malipo-scheduler"
    )
    publisher = Publisher(
        build_broker(
            settings.broker_url.get_secret_value(),
            publish_only=True,
            queue_type=settings.queue_type,
        )
    )
    Scheduler(settings, db, publisher).run()


if __name__ == "__main__":
    main()

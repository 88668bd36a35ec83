"""``GET /healthz`` (the process answers) and ``GET /readyz`` (broker and database reachable)."""

from __future__ import annotations

from collections.abc import Callable

import falcon

from ingress.spool import CallbackSpool
from shared.db.session import Database
from shared.messages import Publisher


class HealthResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class ReadinessResource:
    def __init__(self, db: Database, publisher: Publisher, spool: CallbackSpool) -> None:
        self.db = db
        self.publisher = publisher
        self.spool = spool

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {"database": _check(self.db.ping), "broker": _check(self.publisher.ping)}
        ready = all(value == "ok" for value in checks.values())
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        resp.media = {
            "status": "ready" if ready else "unavailable",
            "checks": checks,
            # Callbacks held locally while the broker was down, waiting to be published.
            "spool_depth": self.spool.depth(),
        }


def _check(probe: Callable[[], None]) -> str:
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure as "down"
        return f"down: {type(exc).__name__}"
    return "ok"

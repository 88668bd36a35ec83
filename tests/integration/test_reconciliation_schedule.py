"""Two schedulers side by side enqueue each scheduled reconciliation window once."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.messages import RECONCILE_WINDOW
from tests.support.processes import ManagedProcess, python_module
from tests.support.rabbit import Rabbit

EVERY_S = 2


def test_two_schedulers_fire_each_reconciliation_window_once(
    rabbit: Rabbit, test_env: dict[str, str], log_dir: Path, broker: Any
) -> None:
    queue = RECONCILE_WINDOW.queue_name
    rabbit.purge(queue)
    env = {
        **test_env,
        "MALIPO_RECONCILE_CRON": f"*/{EVERY_S} * * * * *",  # six fields: every 2 s
        "MALIPO_RECONCILE_TIMEZONE": "Africa/Nairobi",
        "MALIPO_RECONCILE_GATEWAYS": "daraja",
        "MALIPO_RECONCILE_WINDOW_H": "24",
        "MALIPO_RECONCILE_LAG_S": "0",
    }
    schedulers = [
        ManagedProcess(f"scheduler-{n}", python_module("workers.scheduler"), env, log_dir).start()
        for n in (1, 2)
    ]
    try:
        time.sleep(5 * EVERY_S + 1)
    finally:
        for process in schedulers:
            process.stop()

    windows = [message["kwargs"] for message in rabbit.take_all(queue)]
    ends = sorted(datetime.fromisoformat(window["end"]) for window in windows)
    # Each fire time enqueued by one scheduler only: no window twice, one per period.
    assert len(ends) >= 3, windows
    assert len(set(ends)) == len(ends), ends
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(ends)}
    assert gaps == {float(EVERY_S)}, ends
    for window in windows:
        start, end = datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])
        assert (window["gateway"], window["trigger"]) == ("daraja", "schedule")
        assert (end - start).total_seconds() == 24 * 3600
        assert end.second % EVERY_S == 0

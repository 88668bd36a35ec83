"""RabbitMQ unreachable for a minute: the ingress and a worker say so in a handful of lines.

The broker URL of both processes points at a TCP proxy that is closed for 60 s
(connections refused, as with a stopped RabbitMQ), then opened. Their logs must
say the outage started, then at most one line per 30 s with the attempt count,
then that the broker is reachable again with the outage's duration; and the
callbacks the ingress spooled meanwhile are applied.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, make_merchant
from tests.support.env import free_port, free_port_outside_ephemeral_range
from tests.support.processes import ManagedProcess, ingress_process, worker_process
from tests.support.seed import seed_submitted_payments, status_counts, success_callback
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

pytestmark = pytest.mark.chaos

OUTAGE_S = 60
PAYMENTS = 5


def about_the_broker(output: str) -> list[dict[str, Any]]:
    """The JSON log lines that speak of the broker's connection."""
    lines = []
    for raw in output.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        text = json.dumps(line).lower()
        if line.get("outage") == "rabbitmq" or any(
            word in text for word in ("pika", "amqp", "consumer encountered", "restarting consumer")
        ):
            lines.append(line)
    return lines


def test_a_minute_without_rabbitmq_is_a_handful_of_log_lines_then_one_reconnected_line(
    db: Database,
    settings: Settings,
    cipher: Any,
    broker: Any,
    test_env: dict[str, str],
    log_dir: Path,
    tmp_path: Path,
) -> None:
    merchant = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    payments = seed_submitted_payments(db, merchant.id, PAYMENTS, tag="outage-logs")
    real = urlsplit(test_env["MALIPO_BROKER_URL"])
    proxy = TcpProxy(
        free_port_outside_ephemeral_range(), (real.hostname or "127.0.0.1", real.port or 5672)
    )
    netloc = real.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{proxy.port}"
    port = free_port()
    env = {
        **test_env,
        "MALIPO_BROKER_URL": urlunsplit(real._replace(netloc=netloc)),
        "MALIPO_INGRESS_PORT": str(port),
        "MALIPO_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "MALIPO_SPOOL_DIR": str(tmp_path / "spool"),
    }
    base = env["MALIPO_PUBLIC_BASE_URL"]
    ingress = ingress_process(env, log_dir, name="outage-logs-ingress").start()
    worker = worker_process(env, log_dir, name="outage-logs-worker").start()
    processes: list[ManagedProcess] = [ingress, worker]
    try:
        ingress.wait_http(f"{base}/healthz")
        started = time.monotonic()
        # The broker is unreachable: callbacks are spooled, commands and readiness refused.
        for number, payment in enumerate(payments):
            answer = requests.post(
                f"{base}/callbacks/daraja/{merchant.callback_secret}",
                data=success_callback(payment, receipt=f"RL{number:08d}"),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            assert answer.status_code == 200
        while time.monotonic() - started < OUTAGE_S:
            assert requests.get(f"{base}/readyz", timeout=30).status_code == 503
            command = requests.post(
                f"{base}/v1/payments",
                json={"amount": 100, "currency": "KES", "phone": "0712345678", "reference": "L-1"},
                headers=merchant.headers(f"outage-logs-{time.monotonic()}"),
                timeout=30,
            )
            assert command.status_code == 503
            time.sleep(0.5)

        during = {p.name: about_the_broker(p.output()) for p in processes}
        proxy.open()

        # Then the spooled callbacks flow and each process says the broker is back.
        wait_until(
            lambda: status_counts(db, merchant.id).get("succeeded") == PAYMENTS,
            timeout_s=90,
            what="the spooled callbacks applied",
        )
        for process in processes:
            wait_until(
                lambda p=process: (
                    [line for line in about_the_broker(p.output()) if line.get("outage_recovered")]
                    or None
                ),
                timeout_s=60,
                what=f"{process.name} saying the broker is back",
            )
    finally:
        proxy.close()
        for process in processes:
            process.stop()

    for process in processes:
        lines = during[process.name]
        assert 1 <= len(lines) <= 2 * (OUTAGE_S // 30 + 2), (process.name, lines)
        assert lines[0].get("outage_started") is True, lines[0]
        assert all("attempts" in line for line in lines[1:] if not line.get("outage_started"))
        recovered = [
            line for line in about_the_broker(process.output()) if line.get("outage_recovered")
        ]
        assert len(recovered) == 1, recovered
        assert recovered[0]["outage_s"] >= OUTAGE_S - 5

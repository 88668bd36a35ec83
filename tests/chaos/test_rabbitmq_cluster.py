"""A three-node RabbitMQ cluster with quorum queues loses a node mid-batch; nothing is lost.

The ingress, the workers and the scheduler each connect to a different node first
(``MALIPO_BROKER_URL`` lists all three, so a connection to a dead node moves to the
next); every queue is a quorum queue (``MALIPO_QUEUE_TYPE=quorum``). One node's
Erlang VM is SIGKILLed while payments are under way: the same promises as on one
node hold, and the customer was prompted once per payment.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.db.session import Database
from shared.settings import Settings
from tests.support.chaos import CHAOS_ENV, run_batch
from tests.support.chaos import CHAOS_PAYMENTS as PAYMENTS
from tests.support.env import free_port
from tests.support.processes import ManagedProcess, ingress_process, python_module, worker_process
from tests.support.rabbit_cluster import RabbitCluster, ctl

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

CLUSTER_ENV = {**CHAOS_ENV, "MALIPO_QUEUE_TYPE": "quorum"}


@pytest.fixture
def cluster_stack(
    test_env: dict[str, str], log_dir: Path, sandbox_server: ManagedProcess, db: Database
) -> Iterator[dict[str, Any]]:
    cluster = RabbitCluster().start()
    processes: list[ManagedProcess] = []
    try:
        vhost = f"malipo_cluster_{os.getpid()}"
        cluster.add_vhost(vhost)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **test_env,
            **CLUSTER_ENV,
            "MALIPO_INGRESS_PORT": str(port),
            "MALIPO_PUBLIC_BASE_URL": base,
            "MALIPO_SPOOL_DIR": tempfile.mkdtemp(prefix="malipo-cluster-spool-"),
        }
        # Workers first: they declare the queues (on their node).
        workers = worker_process(
            {**env, "MALIPO_BROKER_URL": cluster.urls(vhost, first=1)},
            log_dir,
            name="cluster-worker",
            threads=8,
        ).start()
        processes.append(workers)
        ingress = ingress_process(
            {**env, "MALIPO_BROKER_URL": cluster.urls(vhost, first=0)},
            log_dir,
            name="cluster-ingress",
        ).start()
        processes.append(ingress)
        scheduler = ManagedProcess(
            "cluster-scheduler",
            python_module("workers.scheduler"),
            {**env, "MALIPO_BROKER_URL": cluster.urls(vhost, first=2)},
            log_dir,
        ).start()
        processes.append(scheduler)
        ingress.wait_http(f"{base}/readyz", timeout_s=60)
        yield {"env": env, "cluster": cluster, "vhost": vhost}
    finally:
        for process in processes:
            process.stop()
        cluster.stop()


def test_a_cluster_node_sigkilled_mid_batch_loses_nothing(
    db: Database, settings: Settings, cipher: Any, cluster_stack: dict[str, Any]
) -> None:
    cluster: RabbitCluster = cluster_stack["cluster"]
    vhost = cluster_stack["vhost"]
    survivor = cluster.nodes[0]
    listed = ctl(survivor, "list_queues", "-p", vhost, "name", "type", "--formatter", "json")
    types = {queue["name"]: queue["type"] for queue in json.loads(listed)}
    assert types, "the workers declared no queues"
    assert set(types.values()) == {"quorum"}, types  # main, delay and dead-letter queues
    assert {"payments", "payments.DQ", "payments.XQ", "callbacks"} <= set(types)

    def kill_a_node() -> None:
        cluster.kill(cluster.nodes[1])  # the workers' first node

    statuses = run_batch(
        db,
        settings,
        cipher,
        PAYMENTS,
        cluster_stack["env"],
        kill_a_node,
        "RabbitMQ cluster node SIGKILLed",
    )

    assert cluster.running_nodes() == 2
    assert statuses.get("succeeded", 0) > PAYMENTS // 2

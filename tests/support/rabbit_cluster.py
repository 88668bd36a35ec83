"""A three-node RabbitMQ cluster on this machine, beside (never instead of) its own RabbitMQ.

Each node has its own node name (``malipo<N>-<run>@localhost``), AMQP and
distribution ports (below the ephemeral range), configuration, data and log
directories; nodes 2 and 3 join node 1 with ``rabbitmqctl join_cluster``. The nodes
run as the ``rabbitmq`` user with the machine's Erlang cookie, through the same
``rabbitmq-server`` and ``rabbitmqctl`` wrappers the machine's node uses. Torn down
(every node stopped, its directories removed) afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.env import free_port_outside_ephemeral_range
from tests.support.waiting import wait_until


@dataclass
class Node:
    name: str
    amqp_port: int
    dist_port: int
    base: Path
    pid: int | None = None  # its Erlang VM, once booted

    @property
    def env(self) -> dict[str, str]:
        return {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
        }

    def url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/{vhost}"


def ctl(node: Node, *args: str, timeout_s: float = 120) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", "-n", node.name, *args],
        env={**os.environ, **node.env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {node.name}: {result.stderr[-500:]}")
    return result.stdout


def booted(node: Node) -> None:
    """Wait for the node to have booted (until its VM is registered, rabbitmqctl cannot
    even ask: it exits 69, and is asked again)."""

    def up() -> bool:
        try:
            ctl(node, "await_startup", timeout_s=120)
        except RuntimeError:
            return False
        return True

    wait_until(up, timeout_s=180, interval_s=1, what=f"{node.name} to boot")
    node.pid = int(ctl(node, "eval", "list_to_integer(os:getpid()).", timeout_s=30).strip())


@dataclass
class RabbitCluster:
    size: int = 3
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    nodes: list[Node] = field(default_factory=list)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="malipo-cluster-")))

    def start(self) -> RabbitCluster:
        """Start and join the nodes; on any failure, tear down what was started."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> RabbitCluster:
        shutil.chown(self.root, "rabbitmq", "rabbitmq")
        for number in range(1, self.size + 1):
            base = self.root / f"node{number}"
            for sub in ("mnesia", "log"):
                (base / sub).mkdir(parents=True)
            amqp, dist = free_port_outside_ephemeral_range(), free_port_outside_ephemeral_range()
            node = Node(f"malipo{number}-{self.run}@localhost", amqp, dist, base)
            (base / "rabbitmq.conf").write_text(
                f"listeners.tcp.local = 127.0.0.1:{node.amqp_port}\nloopback_users.guest = true\n"
            )
            (base / "advanced.config").write_text("[].\n")
            (base / "enabled_plugins").write_text("[].\n")
            for path in [base, *base.rglob("*")]:
                shutil.chown(path, "rabbitmq", "rabbitmq")
            subprocess.run(
                ["rabbitmq-server", "-detached"],
                env={**os.environ, **node.env},
                check=True,
                capture_output=True,
                timeout=60,
            )
            self.nodes.append(node)
        for node in self.nodes:
            booted(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            ctl(node, "stop_app")
            ctl(node, "join_cluster", first.name)
            ctl(node, "start_app")
            booted(node)
        return self

    def add_vhost(self, vhost: str) -> None:
        first = self.nodes[0]
        ctl(first, "add_vhost", vhost)
        ctl(first, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def urls(self, vhost: str, *, first: int = 0) -> str:
        """``MALIPO_BROKER_URL`` for the cluster: every node, starting with node ``first``."""
        ordered = self.nodes[first:] + self.nodes[:first]
        return ";".join(node.url(vhost) for node in ordered)

    def running_nodes(self) -> int:
        for node in self.nodes:
            try:
                status = ctl(node, "eval", "length(rabbit_nodes:all_running()).", timeout_s=30)
            except RuntimeError:
                continue
            return int(status.strip())
        return 0

    def kill(self, node: Node) -> None:
        """SIGKILL the node's Erlang VM."""
        pid = node.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: self._gone(pid), timeout_s=30, what=f"{node.name}'s VM to be gone")

    @staticmethod
    def _gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    def stop(self) -> None:
        """SIGKILL every node's VM, remove its directories."""
        for node in self.nodes:
            if node.pid is None:  # started, never seen booted: ask it once
                with contextlib.suppress(RuntimeError, ValueError, subprocess.TimeoutExpired):
                    node.pid = int(
                        ctl(node, "eval", "list_to_integer(os:getpid()).", timeout_s=30).strip()
                    )
            if node.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.pid, signal.SIGKILL)
        time.sleep(1)
        shutil.rmtree(self.root, ignore_errors=True)

"""The benchmark's own resources and processes: database, vhost, sandbox, ingress, workers.

A bench runs on a PostgreSQL database and a RabbitMQ vhost of its own, both named
``malipo_bench`` (re-created at the start, removed at the end), and on free ports,
so it never touches ``make run``'s data or a test run's. Two benches at once on
one machine would share those names: don't.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pika
import pika.exceptions
import psutil
import requests
from sqlalchemy.engine import make_url

from shared.crypto import CredentialCipher
from shared.db.session import Database, sqlalchemy_url
from shared.merchants import create_merchant, issue_api_key, store_gateway_credentials
from shared.messages import broker_url_with_defaults
from shared.settings import parse_credentials_keys
from tests.support.env import (
    DARAJA_APP,
    DARAJA_PASSKEY,
    DARAJA_SHORTCODE,
    build_test_env,
    free_port,
)
from tests.support.processes import (
    ManagedProcess,
    ingress_process,
    python_module,
    sandbox_process,
)
from tests.support.services import broker_url, database_url, drop_database, ensure_vhost

BENCH_NAME = "malipo_bench"
GATEWAY = "daraja"
DARAJA_CREDENTIALS = {
    **DARAJA_APP,
    "shortcode": DARAJA_SHORTCODE,
    "passkey": DARAJA_PASSKEY,
    "mode": "paybill",
}
# Limits no benchmark should hit: the bench measures throughput, not the limiter's refusals.
UNLIMITED = str(10**9)


@dataclass(frozen=True)
class Topology:
    """How many processes and threads each side runs: parameters of the run."""

    ingress_workers: int
    ingress_threads: int
    worker_processes: int
    worker_threads: int

    @property
    def worker_connections(self) -> int:
        """Database connections the workers apply callbacks with (one per worker thread)."""
        return self.worker_processes * self.worker_threads


def bench_urls() -> tuple[str, str]:
    """The bench's database and broker URLs.

    ``MALIPO_BENCH_DATABASE_URL`` / ``MALIPO_BENCH_BROKER_URL`` win; otherwise the test
    suite's servers (``MALIPO_TEST_*`` or the local defaults) with ``malipo_bench`` as
    the database and vhost name.
    """
    db_url = os.environ.get("MALIPO_BENCH_DATABASE_URL") or (
        make_url(sqlalchemy_url(database_url()))
        .set(database=BENCH_NAME)
        .render_as_string(hide_password=False)
    )
    amqp_url = os.environ.get("MALIPO_BENCH_BROKER_URL") or urlunsplit(
        urlsplit(broker_url())._replace(path="/" + BENCH_NAME)
    )
    return db_url, amqp_url


def _guard_bench_names(db_url: str, amqp_url: str) -> None:
    """Refuse to drop anything that is not obviously a bench resource."""
    database = make_url(sqlalchemy_url(db_url)).database or ""
    vhost = vhost_name(amqp_url)
    if "bench" not in database or "bench" not in vhost:
        raise SystemExit(
            f"refusing to use database {database!r} / vhost {vhost!r}: the bench drops and "
            "re-creates both, so their names must contain 'bench'"
        )


def vhost_name(amqp_url: str) -> str:
    return unquote(urlsplit(amqp_url).path.lstrip("/")) or "/"


def create_resources(db_url: str, amqp_url: str) -> None:
    """A fresh, migrated database and an empty vhost for this run."""
    from tests.support.services import fresh_database

    _guard_bench_names(db_url, amqp_url)
    fresh_database(db_url)
    drop_vhost(amqp_url)
    ensure_vhost(amqp_url)


def drop_resources(db_url: str, amqp_url: str) -> None:
    _guard_bench_names(db_url, amqp_url)
    try:
        drop_database(db_url)
    finally:
        drop_vhost(amqp_url)


def drop_vhost(amqp_url: str) -> None:
    """Delete the bench vhost (``tests.support.services.delete_vhost`` only removes test ones)."""
    name = vhost_name(amqp_url)
    if "bench" not in name:
        raise ValueError(f"not a bench vhost: {name!r}")
    ctl = shutil.which("rabbitmqctl")
    if ctl:
        subprocess.run([ctl, "-q", "delete_vhost", name], capture_output=True, check=False)
        return
    parts = urlsplit(amqp_url)
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    api = f"http://{parts.hostname}:15672/api/vhosts/{quote(name, safe='')}"
    requests.delete(api, auth=auth, timeout=10)


def build_bench_env(
    topology: Topology, spool_dir: str, db_url: str, amqp_url: str
) -> dict[str, str]:
    """The test environment, re-pointed at the bench's resources and tuned for measuring.

    - process counts from ``topology``;
    - ``MALIPO_LOG_LEVEL=WARNING``: one log line per request would dominate the profile;
    - production's callback policy cache (30 s; the test suite turns it off);
    - rate limits out of reach, polls and expiry an hour away (no scheduler runs), so
      nothing but the measured work happens;
    - the simulator answers at once (``SANDBOX_LATENCY_S=0``) and sends its own
      callbacks only after an hour, so that initiation measures pushes alone; the
      end-to-end stages post their callbacks themselves.
    """
    env = build_test_env(spool_dir)
    # RabbitMQ's dead-letter TTL as in production: the bench process publishes too (stage 4),
    # and dramatiq reads it at import, so both sides must agree on the queues' arguments.
    env.pop("dramatiq_dead_message_ttl", None)
    env.update(
        {
            "MALIPO_DATABASE_URL": db_url,
            "MALIPO_BROKER_URL": amqp_url,
            "MALIPO_INGRESS_WORKERS": str(topology.ingress_workers),
            "MALIPO_INGRESS_THREADS": str(topology.ingress_threads),
            "MALIPO_WORKER_PROCESSES": str(topology.worker_processes),
            "MALIPO_WORKER_THREADS": str(topology.worker_threads),
            "MALIPO_LOG_LEVEL": "WARNING",
            "MALIPO_CALLBACK_POLICY_CACHE_S": "30",
            "MALIPO_MERCHANT_COMMANDS_PER_MINUTE": UNLIMITED,
            "MALIPO_PHONE_PUSH_LIMIT": UNLIMITED,
            "MALIPO_PHONE_PUSH_GLOBAL_LIMIT": UNLIMITED,
            "MALIPO_GATEWAY_READ_TIMEOUT_S": "10",
            "MALIPO_POLL_DELAY_S": "3600",
            "MALIPO_POLL_MIN_INTERVAL_S": "60",
            "MALIPO_POLL_MAX_INTERVAL_S": "600",
            "MALIPO_PAYMENT_EXPIRY_S": "3600",
            "MALIPO_INITIATION_WINDOW_S": "600",
            "SANDBOX_CALLBACK_DELAY_S": "3600",
            "SANDBOX_LATENCY_S": "0",
        }
    )
    return env


def clean_environment() -> None:
    """Forget exported ``MALIPO_*``/``SANDBOX_*`` values: child processes get the bench's only."""
    for name in list(os.environ):
        if name.startswith(("MALIPO_", "SANDBOX_")) and not name.startswith(
            ("MALIPO_BENCH_", "MALIPO_TEST_")
        ):
            del os.environ[name]


# -- merchants -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchMerchant:
    id: uuid.UUID
    api_key: str
    callback_secret: str

    @property
    def callback_path(self) -> str:
        return f"/callbacks/{GATEWAY}/{self.callback_secret}"


def create_merchants(
    db: Database, env: dict[str, str], count: int, label: str
) -> list[BenchMerchant]:
    """Merchants with the simulator's sandbox Daraja credentials, as ``make run`` makes one."""
    cipher = CredentialCipher(parse_credentials_keys(env["MALIPO_CREDENTIALS_KEYS"]))
    pepper = env["MALIPO_SECRET_KEY"].encode()
    merchants = []
    with db.transaction() as session:
        for i in range(count):
            merchant = create_merchant(session, f"bench-{label}-{i}")
            api_key = issue_api_key(session, pepper, merchant.id)
            secret = store_gateway_credentials(
                session, cipher, merchant.id, GATEWAY, dict(DARAJA_CREDENTIALS), production=False
            )
            merchants.append(BenchMerchant(merchant.id, api_key, secret))
    return merchants


# -- RabbitMQ --------------------------------------------------------------------------------


class Broker:
    """Questions to RabbitMQ about the bench vhost, each on a fresh connection."""

    def __init__(self, amqp_url: str) -> None:
        self.parameters = pika.URLParameters(broker_url_with_defaults(amqp_url, publish_only=True))

    @contextmanager
    def connection(self) -> Iterator[Any]:
        connection = pika.BlockingConnection(self.parameters)
        try:
            yield connection
        finally:
            with suppress(Exception):
                connection.close()

    def purge(self, *queues: str) -> int:
        """Empty the queues that exist (a missing one closes its channel: skip it)."""
        purged = 0
        with self.connection() as connection:
            for queue in queues:
                channel = connection.channel()
                try:
                    purged += int(channel.queue_purge(queue).method.message_count)
                except pika.exceptions.ChannelClosedByBroker:
                    continue
                with suppress(Exception):
                    channel.close()
        return purged

    def queue_state(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) of a queue; (0, 0) when it does not exist."""
        with self.connection() as connection:
            try:
                method = connection.channel().queue_declare(queue, passive=True).method
            except pika.exceptions.ChannelClosedByBroker:
                return 0, 0
            return int(method.message_count), int(method.consumer_count)

    def declare_durable(self, queue: str) -> None:
        with self.connection() as connection:
            connection.channel().queue_declare(queue, durable=True)

    def server_version(self) -> str:
        with self.connection() as connection:
            properties = connection._impl.server_properties  # pika keeps them there
            product = properties.get("product", b"RabbitMQ")
            version = properties.get("version", b"?")
            return f"{_text(product)} {_text(version)}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- processes -------------------------------------------------------------------------------


def baseline_process(
    env: dict[str, str], log_dir: Path, topology: Topology, port: int, queue: str
) -> ManagedProcess:
    """Baseline 1 under gunicorn with the ingress's settings (gthread, workers, threads,
    keep-alive, timeout); see ``tests/perf/baseline_app.py``."""
    argv = python_module(
        "gunicorn",
        "tests.perf.baseline_app:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        str(topology.ingress_workers),
        "--threads",
        str(topology.ingress_threads),
        "--keep-alive",
        "5",
        "--timeout",
        "60",
        "--no-control-socket",
    )
    baseline_env = {
        **env,
        "BENCH_BASELINE_BROKER_URL": env["MALIPO_BROKER_URL"],
        "BENCH_BASELINE_QUEUE": queue,
    }
    return ManagedProcess("baseline-app", argv, baseline_env, log_dir)


def workers_process(env: dict[str, str], log_dir: Path, topology: Topology) -> ManagedProcess:
    """``dramatiq workers.main`` with the run's processes and threads (as ``malipo workers``)."""
    argv = python_module(
        "dramatiq",
        "workers.main",
        "--processes",
        str(topology.worker_processes),
        "--threads",
        str(topology.worker_threads),
    )
    return ManagedProcess("workers", argv, env, log_dir)


@dataclass
class BenchStack:
    """Every process of the run; ``stop`` ends the ones that were started, in reverse order."""

    env: dict[str, str]
    topology: Topology
    log_dir: Path
    broker: Broker
    baseline_queue: str = "bench_baseline"
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    baseline_port: int = 0

    @property
    def ingress_url(self) -> str:
        return self.env["MALIPO_PUBLIC_BASE_URL"]

    @property
    def baseline_url(self) -> str:
        return f"http://127.0.0.1:{self.baseline_port}"

    @property
    def sandbox_url(self) -> str:
        return self.env["MALIPO_DARAJA_BASE_URL"]

    def start_sandbox(self) -> ManagedProcess:
        process = self._start("sandbox", sandbox_process(self.env, self.log_dir))
        process.wait_http(f"{self.sandbox_url}/_sim/health")
        return process

    def start_ingress(self) -> ManagedProcess:
        process = self._start("ingress", ingress_process(self.env, self.log_dir))
        process.wait_http(f"{self.ingress_url}/readyz", timeout_s=60)
        return process

    def start_baseline(self) -> ManagedProcess:
        self.broker.declare_durable(self.baseline_queue)
        self.baseline_port = free_port()
        process = self._start(
            "baseline-app",
            baseline_process(
                self.env, self.log_dir, self.topology, self.baseline_port, self.baseline_queue
            ),
        )
        process.wait_http(f"{self.baseline_url}/healthz")
        return process

    def start_workers(self, timeout_s: float = 60.0) -> ManagedProcess:
        """Start the workers and wait until every process consumes the callbacks queue."""
        process = self._start("workers", workers_process(self.env, self.log_dir, self.topology))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(f"workers exited; see {process.log_path}")
            if self.broker.queue_state("callbacks")[1] >= self.topology.worker_processes:
                return process
            time.sleep(0.2)
        raise RuntimeError(f"workers did not start consuming; see {process.log_path}")

    def _start(self, name: str, process: ManagedProcess) -> ManagedProcess:
        self.processes[name] = process.start()
        return process

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            with suppress(Exception):
                process.stop(timeout_s=10)


# -- memory ----------------------------------------------------------------------------------


@dataclass
class ProcessPeak:
    role: str
    pid: int
    command: str
    peak_rss_bytes: int = 0


@dataclass
class TreePeak:
    name: str
    root_pid: int
    peak_total_rss_bytes: int = 0
    processes: dict[int, ProcessPeak] = field(default_factory=dict)


class MemorySampler:
    """Sample the RSS of each watched process tree (root and every descendant) every 0.5 s."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.trees: dict[str, TreePeak] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self.samples = 0

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self.trees[name] = TreePeak(name, pid)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                trees = list(self.trees.values())
            for tree in trees:
                self._sample(tree)
            self.samples += 1
            self._stop.wait(self.interval_s)

    @staticmethod
    def _sample(tree: TreePeak) -> None:
        try:
            root = psutil.Process(tree.root_pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for process in members:
            try:
                rss = int(process.memory_info().rss)
                if process.pid not in tree.processes:
                    role = "main" if process.pid == tree.root_pid else "child"
                    command = " ".join(process.cmdline()[1:6])[:120]
                    tree.processes[process.pid] = ProcessPeak(role, process.pid, command)
            except psutil.Error:
                continue
            total += rss
            peak = tree.processes[process.pid]
            peak.peak_rss_bytes = max(peak.peak_rss_bytes, rss)
        tree.peak_total_rss_bytes = max(tree.peak_total_rss_bytes, total)


# -- what PostgreSQL waits on ----------------------------------------------------------------


class PgActivitySampler:
    """Sample ``pg_stat_activity`` of the bench database every 0.1 s, per stage.

    Counts, for each application (``malipo-ingress``, ``malipo-worker``), how many of
    its connections were running (``CPU``: active, no wait event), waiting on a lock
    (``Lock/transactionid``: another transaction holds the row), on the WAL flush
    (``IO/WALSync``...), or idle in a transaction (``Client/ClientRead`` while in a
    transaction: the client, i.e. Python, is holding the transaction open). The
    shares show where a stage's database time goes without touching the product.
    """

    def __init__(self, libpq: str, database: str, interval_s: float = 0.1) -> None:
        self.libpq = libpq
        self.database = database
        self.interval_s = interval_s
        self.stage: str | None = None
        self.samples: dict[str, int] = {}
        self.counts: dict[str, dict[str, dict[str, int]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-activity", daemon=True)

    def start(self) -> PgActivitySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @contextmanager
    def during(self, stage: str) -> Iterator[None]:
        self.stage = stage
        try:
            yield
        finally:
            self.stage = None

    def _run(self) -> None:
        import psycopg

        try:
            conn = psycopg.connect(self.libpq, autocommit=True)
        except psycopg.Error:
            return
        with conn:
            while not self._stop.is_set():
                stage = self.stage
                if stage is not None:
                    try:
                        rows = conn.execute(
                            "SELECT application_name, state, wait_event_type, wait_event"
                            " FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                            " AND application_name LIKE 'malipo-%%'",
                            (self.database,),
                        ).fetchall()
                    except psycopg.Error:
                        return
                    self._count(stage, rows)
                self._stop.wait(self.interval_s)

    def _count(self, stage: str, rows: list[tuple[Any, ...]]) -> None:
        self.samples[stage] = self.samples.get(stage, 0) + 1
        per_app = self.counts.setdefault(stage, {})
        for app, state, wait_type, wait_event in rows:
            if state == "idle":
                continue
            if state == "active":
                what = f"{wait_type}/{wait_event}" if wait_type else "CPU (running)"
            else:  # idle in transaction: Python holds the transaction between statements
                what = "idle in transaction (client)"
            counts = per_app.setdefault(str(app), {})
            counts[what] = counts.get(what, 0) + 1

    def summary(self) -> dict[str, Any]:
        """Per stage and application: average connections in each state over the stage."""
        out: dict[str, Any] = {}
        for stage, per_app in self.counts.items():
            n = max(self.samples.get(stage, 1), 1)
            out[stage] = {
                app: dict(
                    sorted(
                        ((what, round(count / n, 2)) for what, count in counts.items()),
                        key=lambda item: -item[1],
                    )
                )
                for app, counts in per_app.items()
            }
        return out


# -- CPU accounting --------------------------------------------------------------------------


def _tree_cpu_s(root: psutil.Process, exclude: frozenset[int] = frozenset()) -> float:
    """CPU seconds of a process, its live descendants and the children they reaped,
    leaving out the subtrees rooted at the ``exclude`` pids."""
    skipped = set(exclude)
    for pid in exclude:
        with suppress(psutil.Error):
            skipped.update(child.pid for child in psutil.Process(pid).children(recursive=True))
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        if process.pid in skipped:
            continue
        try:
            t = process.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _named_roots(name: str) -> list[psutil.Process]:
    """Processes called ``name`` whose parent is not: a server's main process."""
    roots = []
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] != name:
                continue
            parent = process.parent()
            if parent is None or parent.name() != name:
                roots.append(process)
        except psutil.Error:
            continue
    return roots


@dataclass
class CpuWindow:
    """CPU seconds per component over one measured interval (filled when it ends)."""

    wall_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)

    def utilisation(self) -> dict[str, float]:
        """Share of the whole machine (all cores) each component used."""
        capacity = self.wall_s * (os.cpu_count() or 1)
        return {k: round(v / capacity, 3) for k, v in self.cpu_s.items()} if capacity else {}


class CpuMeter:
    """Where the machine's CPU goes during a stage: each bench process tree, RabbitMQ,
    PostgreSQL (postmaster and every backend), the load generator (this process, wrk,
    py-spy) and the machine as a whole."""

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack

    def snapshot(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, managed in self.stack.processes.items():
            with suppress(psutil.Error):
                out[name] = _tree_cpu_s(psutil.Process(managed.pid))
        out["rabbitmq"] = sum(_tree_cpu_s(p) for p in _named_roots("beam.smp"))
        out["postgresql"] = sum(_tree_cpu_s(p) for p in _named_roots("postgres"))
        # This process (samplers, the open-loop generator) and wrk, but not the stack's
        # processes, which are its children too and counted above.
        stack_pids = frozenset(managed.pid for managed in self.stack.processes.values())
        out["load generator (bench, wrk)"] = _tree_cpu_s(psutil.Process(), exclude=stack_pids)
        t = psutil.cpu_times()
        out["machine"] = sum(
            getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal")
        )
        return out

    @contextmanager
    def measure(self) -> Iterator[CpuWindow]:
        window = CpuWindow()
        before, began = self.snapshot(), time.monotonic()
        try:
            yield window
        finally:
            after = self.snapshot()
            window.wall_s = time.monotonic() - began
            window.cpu_s = {
                k: round(after[k] - before.get(k, 0.0), 2) for k in after if k in before
            }

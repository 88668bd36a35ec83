"""``make bench`` / ``python -m tests.perf.run``: every stage against the real stack, one table.

Stages, in the order they run (docs/benchmarks.md says what each measures and why):

1. callback intake: wrk posts real Daraja callbacks; baseline 1 is the smallest
   gunicorn + Falcon app that durably enqueues a body (``baseline_app.py``);
2. payment commands: wrk posts unique, valid ``POST /v1/payments``;
   (baseline 3, PostgreSQL single-row commits, runs here, while nothing else does;
   then the workers start);
4. initiation: M ``initiate_payment`` messages straight onto the queue, STK pushes/s;
3. end to end: K callbacks of submitted payments as fast as the ingress takes them,
   until every ledger row is committed; then an open-loop stream at 300 callbacks/s;
5. latency under load: open-loop callbacks at 500 requests/s, accept latency;
6. memory: the RSS of every ingress and worker process, sampled throughout.

Progress goes to stderr; stdout gets the table only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from shared.crypto import payment_id_for, request_hash
from shared.db.session import Database
from shared.messages import InitiatePayment, Publisher, build_broker
from tests.perf.baselines import CommitBaseline, libpq_url, pg_commit_baseline
from tests.perf.load import HttpResult, Wrk, WrkSettings, open_loop, percentile, write_replay_file
from tests.perf.profiling import Profiler
from tests.perf.report import (
    MB,
    Row,
    fmt,
    machine_info,
    markdown_table,
    verdict,
    write_outputs,
)
from tests.perf.stack import (
    BenchMerchant,
    BenchStack,
    Broker,
    CpuMeter,
    CpuWindow,
    MemorySampler,
    PgActivitySampler,
    Topology,
    bench_urls,
    build_bench_env,
    clean_environment,
    create_merchants,
    create_resources,
    drop_resources,
)
from tests.perf.statements import (
    CapturedApply,
    Ids,
    StatementsBaseline,
    capture_apply,
    explain_apply,
    statements_baseline,
)
from tests.perf.volume import add_history, clear_payments, payments_in_database
from tests.support.seed import SeededPayment, seed_submitted_payments, success_callback

RESULTS_DIR = Path(__file__).parent / "results"

# Targets of the issue (for the benchmark, not for tests).
INTAKE_TARGET = 0.85  # callback intake ≥ 0.85 × baseline 1
COMMANDS_TARGET = 0.75  # payment commands ≥ 0.75 × baseline 1
E2E_TARGET = 0.5  # callbacks applied/s ≥ 0.5 × baseline 3
E2E_P99_TARGET_MS = 250.0  # p99 arrival → commit at 300 callbacks/s
WORKER_CPU_TARGET_MS = 2.0  # worker CPU per applied callback
ACCEPT_P99_TARGET_MS = 50.0  # p99 accept latency at 500 requests/s
RSS_TARGET_MB = 150.0  # each ingress and worker process
# A stage that waits for ledger rows gives up after this long without a new one.
STALL_S = 20.0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.perf.run",
        description="malipo's benchmark suite (see docs/benchmarks.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--ingress-workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--ingress-threads", type=int, default=16, help="gunicorn threads per worker")
    p.add_argument("--worker-processes", type=int, default=2, help="dramatiq processes")
    p.add_argument("--worker-threads", type=int, default=8, help="dramatiq threads per process")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of each wrk run")
    p.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of warm-up per wrk target, and before stage 5's figures",
    )
    p.add_argument("--connections", type=int, default=32, help="wrk connections")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads")
    p.add_argument("--merchants", type=int, default=1, help="merchants the callbacks are for")
    p.add_argument(
        "--intake-payments", type=int, default=2000, help="seeded payments whose callbacks cycle"
    )
    p.add_argument("--e2e-callbacks", type=int, default=3000, help="K: end-to-end burst size")
    p.add_argument("--e2e-rate", type=float, default=300.0, help="open-loop callbacks/s (stage 3)")
    p.add_argument("--e2e-rate-duration", type=float, default=10.0, help="seconds at that rate")
    p.add_argument("--initiations", type=int, default=1000, help="M: payments to initiate")
    p.add_argument("--load-rate", type=float, default=500.0, help="open-loop requests/s (5)")
    p.add_argument("--load-duration", type=float, default=10.0, help="seconds at that rate")
    p.add_argument(
        "--commit-baseline-duration", type=float, default=5.0, help="seconds of baseline 3"
    )
    p.add_argument(
        "--statements-callbacks",
        type=int,
        default=3000,
        help="callbacks the same-statements floor replays",
    )
    p.add_argument("--scaling-callbacks", type=int, default=2000, help="K of each scaling burst")
    p.add_argument(
        "--scaling-workers",
        default="1,2,4",
        help="worker process counts of the scaling table",
    )
    p.add_argument(
        "--scaling-rows",
        default="10000,1000000",
        help="payments already in the database for the scaling table (generated with COPY)",
    )
    p.add_argument(
        "--scaling-repeats", type=int, default=3, help="runs at each size (their spread is noise)"
    )
    p.add_argument(
        "--skip",
        default="",
        help="comma-separated stages to skip: intake,commands,statements,initiation,e2e,e2e-rate,"
        "load,scaling",
    )
    p.add_argument(
        "--profile", action="store_true", help="py-spy the ingress/workers during each stage"
    )
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--keep", action="store_true", help="keep the database and vhost afterwards")
    return p.parse_args(argv)


# -- the ledger, as the bench sees it --------------------------------------------------------


class LedgerWatcher:
    """Polls ``ledger_entries`` every ``interval_s`` and notes when each row became visible.

    A row seen by a query was committed before that query's snapshot, so the time
    the query *started* is an upper bound of its commit time (at most one interval
    late). Ids are handed out at insert, not at commit, so each poll looks back
    ``LOOKBACK`` ids below the highest seen.
    """

    LOOKBACK = 512

    def __init__(self, url: str, interval_s: float = 0.02) -> None:
        self.url = url
        self.interval_s = interval_s
        self.seen: dict[uuid.UUID, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-watcher", daemon=True)
        self._error: BaseException | None = None
        self.last_progress = time.monotonic()

    def __enter__(self) -> LedgerWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                high = 0
                while not self._stop.is_set():
                    began = time.time()
                    rows = conn.execute(
                        "SELECT id, intent_id FROM ledger_entries WHERE id > %s",
                        (max(0, high - self.LOOKBACK),),
                    ).fetchall()
                    for row_id, intent_id in rows:
                        high = max(high, int(row_id))
                        if intent_id not in self.seen:
                            self.seen[intent_id] = began
                            self.last_progress = time.monotonic()
                    self._stop.wait(self.interval_s)
        except BaseException as exc:  # surfaced by wait_for
            self._error = exc

    def count(self, ids: set[uuid.UUID]) -> int:
        if self._error is not None:
            raise RuntimeError("ledger watcher failed") from self._error
        return sum(1 for i in ids if i in self.seen)

    def stalled(self, seconds: float) -> bool:
        """No new ledger row for ``seconds``."""
        return time.monotonic() - self.last_progress > seconds

    def wait_for(self, ids: set[uuid.UUID], timeout_s: float, stall_s: float = 20.0) -> bool:
        """Until every id has its ledger row; gives up after ``timeout_s``, or ``stall_s``
        without any new row."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stalled(stall_s):
            if self.count(ids) >= len(ids):
                return True
            time.sleep(0.05)
        return self.count(ids) >= len(ids)


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": round(percentile(values, 50), 1),
        "p90": round(percentile(values, 90), 1),
        "p99": round(percentile(values, 99), 1),
        "max": round(max(values), 1) if values else float("nan"),
    }


SCALED_FIGURES = ("applied_per_s", "worker_cpu_ms", "postgresql_cpu_ms")
HIGHER_IS_BETTER = {"applied_per_s"}


def spread_of(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median and spread (max - min) of each scaled figure over repeated runs."""
    out = {}
    for name in SCALED_FIGURES:
        values = sorted(float(run[name]) for run in runs)
        out[name] = {
            "median": round(values[len(values) // 2], 3),
            "spread": round(values[-1] - values[0], 3),
        }
    return out


def grows_beyond_noise(by_rows: Sequence[dict[str, Any]]) -> dict[str, bool]:
    """For each figure, whether the largest table is worse than the smallest by more than
    the larger of their two spreads."""
    small, large = by_rows[0], by_rows[-1]
    verdicts = {}
    for name in SCALED_FIGURES:
        noise = max(small[name]["spread"], large[name]["spread"])
        change = large[name]["median"] - small[name]["median"]
        worse = -change if name in HIGHER_IS_BETTER else change
        verdicts[name] = worse > noise
    return verdicts


# -- the run ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
        self.topology = Topology(
            args.ingress_workers, args.ingress_threads, args.worker_processes, args.worker_threads
        )
        self.db_url, self.amqp_url = bench_urls()
        self.pq_url = libpq_url(self.db_url)
        self.workdir = Path(tempfile.mkdtemp(prefix="malipo-bench-"))
        (self.workdir / "logs").mkdir()
        self.env = build_bench_env(
            self.topology, str(self.workdir / "spool"), self.db_url, self.amqp_url
        )
        self.broker = Broker(self.amqp_url)
        self.stack = BenchStack(self.env, self.topology, self.workdir / "logs", self.broker)
        self.sampler = MemorySampler()
        self.cpu = CpuMeter(self.stack)
        database_name = self.pq_url.rsplit("/", 1)[-1].split("?", 1)[0]
        self.pg = PgActivitySampler(self.pq_url, database_name)
        self.wrk = Wrk(self.workdir, WrkSettings(args.wrk_threads, args.connections))
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.profile_dir = args.results_dir / "profiles" / self.stamp
        self.stages: dict[str, Any] = {}
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.receipts = 0
        self.db: Database | None = None
        self.merchants: list[BenchMerchant] = []
        self.captured: CapturedApply | None = None

    # -- helpers ---------------------------------------------------------------------------

    @property
    def database(self) -> Database:
        assert self.db is not None
        return self.db

    @contextmanager
    def profiled(self, name: str, process: str, duration_s: float) -> Iterator[None]:
        profiler = None
        if self.args.profile and process in self.stack.processes:
            profiler = Profiler(
                name, self.stack.processes[process].pid, duration_s, self.profile_dir
            )
        try:
            yield
        finally:
            if profiler is not None:
                summary = profiler.finish()
                if summary is not None:
                    log(f"profile of {name}: {summary}")

    @staticmethod
    def cpu_figures(window: CpuWindow, units: int) -> dict[str, Any]:
        """CPU seconds per component over a stage, and CPU ms per request/callback."""
        per_unit = {
            k: round(1000 * v / units, 3)
            for k, v in window.cpu_s.items()
            if units and k != "machine"
        }
        return {
            "wall_s": round(window.wall_s, 2),
            "units": units,
            "cpu_s": window.cpu_s,
            "share_of_machine": window.utilisation(),
            "cpu_ms_per_unit": per_unit,
        }

    def seed(self, label: str, count: int) -> list[tuple[SeededPayment, BenchMerchant]]:
        """``count`` submitted payments spread over the merchants, interleaved."""
        began = time.monotonic()
        per_merchant: list[list[tuple[SeededPayment, BenchMerchant]]] = []
        n = len(self.merchants)
        for j, merchant in enumerate(self.merchants):
            share = count // n + (1 if j < count % n else 0)
            seeded = seed_submitted_payments(self.database, merchant.id, share, f"{label}{j}")
            per_merchant.append([(payment, merchant) for payment in seeded])
        longest = max(len(group) for group in per_merchant)
        mixed = [group[k] for k in range(longest) for group in per_merchant if k < len(group)]
        log(f"seeded {len(mixed)} submitted payments ({label}) in {time.monotonic() - began:.1f} s")
        return mixed

    def callback_requests(
        self, pairs: Sequence[tuple[SeededPayment, BenchMerchant]]
    ) -> list[tuple[str, bytes]]:
        out = []
        for payment, merchant in pairs:
            self.receipts += 1
            out.append(
                (merchant.callback_path, success_callback(payment, f"BR{self.receipts:08d}"))
            )
        return out

    def arrival_to_commit(
        self, watcher: LedgerWatcher, ids: set[uuid.UUID]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """(arrival → commit seen, arrival → ledger transaction start), in ms."""
        with psycopg.connect(self.pq_url) as conn:
            arrivals: dict[uuid.UUID, datetime] = dict(
                conn.execute(
                    "SELECT intent_id, min(received_at) FROM gateway_events"
                    " WHERE intent_id = ANY(%s) AND source = 'callback' GROUP BY intent_id",
                    (list(ids),),
                ).fetchall()
            )
            starts: dict[uuid.UUID, datetime] = dict(
                conn.execute(
                    "SELECT intent_id, created_at FROM ledger_entries WHERE intent_id = ANY(%s)",
                    (list(ids),),
                ).fetchall()
            )
        to_commit = [
            (watcher.seen[i] - arrivals[i].timestamp()) * 1000
            for i in ids
            if i in watcher.seen and i in arrivals
        ]
        to_start = [
            (starts[i] - arrivals[i]).total_seconds() * 1000
            for i in ids
            if i in starts and i in arrivals
        ]
        return summary_ms(to_commit), summary_ms(to_start)

    # -- set-up ----------------------------------------------------------------------------

    def set_up(self) -> None:
        log(
            f"resources: {self.db_url.rsplit('/', 1)[-1]} database and vhost;"
            f" workdir {self.workdir}"
        )
        create_resources(self.db_url, self.amqp_url)
        self.db = Database(self.db_url, pool_size=4, application_name="malipo-bench")
        self.merchants = create_merchants(self.database, self.env, self.args.merchants, "callbacks")
        self.sampler.start()
        self.pg.start()
        for name, start in (
            ("sandbox", self.stack.start_sandbox),
            ("ingress", self.stack.start_ingress),
            ("baseline-app", self.stack.start_baseline),
        ):
            process = start()
            self.sampler.watch(name, process.pid)
        log(
            f"started sandbox, ingress ({self.topology.ingress_workers}×"
            f"{self.topology.ingress_threads}) and the baseline app (same gunicorn settings)"
        )

    def start_workers(self) -> None:
        process = self.stack.start_workers()
        self.sampler.watch("workers", process.pid)
        log(f"started workers ({self.topology.worker_processes}×{self.topology.worker_threads})")

    # -- 1. callback intake ----------------------------------------------------------------

    def callback_intake(self) -> None:
        pairs = self.seed("in", self.args.intake_payments)
        replay = write_replay_file(self.workdir / "intake.tsv", self.callback_requests(pairs))
        ingress, baseline = self.stack.ingress_url, self.stack.baseline_url
        queue = self.stack.baseline_queue
        self.wrk.replay("intake-warmup-malipo", ingress, replay, self.args.warmup)
        self.wrk.replay("intake-warmup-baseline", baseline, replay, self.args.warmup)
        self.broker.purge("callbacks", queue)
        with (
            self.profiled("intake-ingress", "ingress", self.args.duration),
            self.cpu.measure() as malipo_cpu,
        ):
            malipo = self.wrk.replay("intake-malipo", ingress, replay, self.args.duration)
        log(f"intake malipo: {malipo.accepted_rps} req/s, p99 {malipo.p99_ms} ms")
        self.broker.purge("callbacks")
        with (
            self.profiled("intake-baseline", "baseline-app", self.args.duration),
            self.cpu.measure() as floor_cpu,
        ):
            floor = self.wrk.replay("intake-baseline", baseline, replay, self.args.duration)
        log(f"intake baseline: {floor.accepted_rps} req/s, p99 {floor.p99_ms} ms")
        self.broker.purge(queue)
        ratio = malipo.accepted_rps / floor.accepted_rps if floor.accepted_rps else 0.0
        met = ratio >= INTAKE_TARGET and malipo.errors == 0
        malipo_figures = self.cpu_figures(malipo_cpu, malipo.requests)
        floor_figures = self.cpu_figures(floor_cpu, floor.requests)
        self.stages["callback_intake"] = {
            "malipo": malipo.to_json(),
            "baseline": floor.to_json(),
            "ratio": round(ratio, 3),
            "target_ratio": INTAKE_TARGET,
            "met": met,
            "cpu": {"malipo": malipo_figures, "baseline": floor_figures},
        }
        app_ms = malipo_figures["cpu_ms_per_unit"].get("ingress", float("nan"))
        floor_ms = floor_figures["cpu_ms_per_unit"].get("baseline-app", float("nan"))
        c = self.args.connections
        self.rows += [
            Row(
                "1. Callback intake",
                f"accepted req/s ({c} conns, {self.args.duration:.0f} s)",
                fmt(malipo.accepted_rps),
                fmt(floor.accepted_rps),
                f"{ratio:.2f}",
                f"≥ {INTAKE_TARGET} × baseline",
                verdict(met),
            ),
            self._latency_row("1. Callback intake", malipo, floor),
            self._errors_row("1. Callback intake", malipo, floor),
            Row(
                "1. Callback intake",
                "CPU per request: app processes / RabbitMQ",
                f"{app_ms:.2f} / "
                f"{malipo_figures['cpu_ms_per_unit'].get('rabbitmq', float('nan')):.2f} ms",
                f"{floor_ms:.2f} / "
                f"{floor_figures['cpu_ms_per_unit'].get('rabbitmq', float('nan')):.2f} ms",
                f"{app_ms / floor_ms:.2f}" if floor_ms else "",
            ),
        ]

    @staticmethod
    def _latency_row(stage: str, malipo: HttpResult, floor: HttpResult | None) -> Row:
        return Row(
            stage,
            "latency p50 / p99",
            f"{malipo.p50_ms:.1f} / {malipo.p99_ms:.1f} ms",
            f"{floor.p50_ms:.1f} / {floor.p99_ms:.1f} ms" if floor else "",
        )

    @staticmethod
    def _errors_row(stage: str, malipo: HttpResult, floor: HttpResult | None) -> Row:
        return Row(
            stage,
            "errors (socket + non-2xx)",
            str(malipo.errors),
            str(floor.errors) if floor else "",
            "",
            "0",
            verdict(malipo.errors == 0),
        )

    # -- 2. payment commands ---------------------------------------------------------------

    def payment_commands(self) -> None:
        merchant = self.merchants[0]
        ingress = self.stack.ingress_url
        self.wrk.commands("commands-warmup", ingress, merchant.api_key, "warm", self.args.warmup)
        self.broker.purge("payments")
        with (
            self.profiled("commands-ingress", "ingress", self.args.duration),
            self.cpu.measure() as window,
        ):
            malipo = self.wrk.commands(
                "commands-malipo", ingress, merchant.api_key, "cmd", self.args.duration
            )
        self.broker.purge("payments")
        log(f"commands malipo: {malipo.accepted_rps} req/s, p99 {malipo.p99_ms} ms")
        intake = self.stages.get("callback_intake")
        floor_rps = intake["baseline"]["accepted_rps"] if intake else None
        ratio = malipo.accepted_rps / floor_rps if floor_rps else None
        met = None if ratio is None else ratio >= COMMANDS_TARGET and malipo.errors == 0
        self.stages["payment_commands"] = {
            "malipo": malipo.to_json(),
            "baseline_rps": floor_rps,
            "baseline": "callback intake baseline (durable enqueue)",
            "ratio": round(ratio, 3) if ratio is not None else None,
            "target_ratio": COMMANDS_TARGET,
            "met": met,
            "cpu": self.cpu_figures(window, malipo.requests),
        }
        self.rows += [
            Row(
                "2. Payment commands",
                f"accepted req/s ({self.args.connections} conns, {self.args.duration:.0f} s)",
                fmt(malipo.accepted_rps),
                fmt(floor_rps) + " (intake)" if floor_rps else "n/a",
                f"{ratio:.2f}" if ratio is not None else "",
                f"≥ {COMMANDS_TARGET} × intake baseline",
                verdict(met),
            ),
            self._latency_row("2. Payment commands", malipo, None),
            self._errors_row("2. Payment commands", malipo, None),
        ]

    # -- baseline 3 ------------------------------------------------------------------------

    def commit_baseline(self) -> CommitBaseline:
        t = self.topology
        result = pg_commit_baseline(
            self.db_url, t.worker_processes, t.worker_threads, self.args.commit_baseline_duration
        )
        log(
            f"PostgreSQL baseline: {result.commits_per_s} commits/s on {result.connections} "
            f"connections ({result.processes} processes), p99 {result.p99_ms} ms"
        )
        self.stages["postgres_commit_baseline"] = asdict(result)
        return result

    # -- 4. initiation ---------------------------------------------------------------------

    def initiation(self) -> None:
        count = self.args.initiations
        merchant = create_merchants(self.database, self.env, 1, "initiation")[0]
        messages = []
        for i in range(count):
            key = f"init-{i}"
            request = {
                "amount": 100 * (1 + i % 50),
                "currency": "KES",
                "phone": f"2547{20000000 + i:08d}",
                "reference": f"INIT-{i}",
                "description": "bench",
                "gateway": "daraja",
                "customer_email": None,
            }
            messages.append(
                InitiatePayment(
                    payment_id=str(payment_id_for(merchant.id, key)),
                    merchant_id=str(merchant.id),
                    idempotency_key=key,
                    request=request,
                    request_hash=request_hash(request),
                    accepted_at=datetime.now(UTC).isoformat(),
                )
            )
        publisher = Publisher(build_broker(self.amqp_url, publish_only=True))
        started = time.time()
        with (
            self.profiled("initiation-workers", "workers", 20),
            self.cpu.measure() as window,
            ThreadPoolExecutor(8) as pool,
        ):
            list(pool.map(publisher.send, messages))
            enqueued_s = time.time() - started
            done = self._wait_initiated(merchant.id, count, timeout_s=180)
        publisher.close()
        with psycopg.connect(self.pq_url) as conn:
            statuses: dict[str, int] = dict(
                conn.execute(
                    "SELECT status, count(*) FROM payment_intents WHERE merchant_id = %s"
                    " GROUP BY status",
                    (merchant.id,),
                ).fetchall()
            )
            row = conn.execute(
                "SELECT max(submitted_at) FROM payment_intents WHERE merchant_id = %s",
                (merchant.id,),
            ).fetchone()
        last_submitted = row[0] if row else None
        submitted = int(statuses.get("submitted", 0))
        elapsed = (last_submitted.timestamp() - started) if last_submitted else float("nan")
        rate = submitted / elapsed if submitted and elapsed > 0 else 0.0
        log(f"initiation: {submitted}/{count} submitted, {rate:.0f} pushes/s ({statuses})")
        self.stages["initiation"] = {
            "payments": count,
            "statuses": statuses,
            "complete": done,
            "enqueue_s": round(enqueued_s, 2),
            "elapsed_s": round(elapsed, 2),
            "pushes_per_s": round(rate, 1),
            "measured": "from the first enqueue to the last payment's submitted_at",
            "cpu": self.cpu_figures(window, submitted),
        }
        failed = count - submitted
        self.rows.append(
            Row(
                "4. Initiation",
                f"STK pushes/s (M={count}, zero simulated latency)",
                fmt(rate),
                "",
                "",
                "(no target)",
                "" if failed == 0 else f"{failed} not submitted",
            )
        )

    def _wait_initiated(self, merchant_id: uuid.UUID, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with psycopg.connect(self.pq_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE status = 'created')"
                    " FROM payment_intents WHERE merchant_id = %s",
                    (merchant_id,),
                ).fetchone()
                if row is not None and row[0] >= count and row[1] == 0:
                    return True
                time.sleep(0.1)
        return False

    # -- 3. end to end ---------------------------------------------------------------------

    def burst(self, label: str, k: int) -> dict[str, Any]:
        """``k`` fresh submitted payments, their success callbacks posted as fast as the
        ingress takes them, until every ledger row is committed: the figures."""
        pairs = self.seed(label, k)
        ids = {payment.id for payment, _ in pairs}
        replay = write_replay_file(self.workdir / f"{label}.tsv", self.callback_requests(pairs))
        with LedgerWatcher(self.pq_url) as watcher:
            started = time.time()
            with self.profiled(f"{label}-workers", "workers", 20), self.cpu.measure() as window:
                accept = self.wrk.replay_once(
                    label,
                    self.stack.ingress_url,
                    replay,
                    until=lambda: watcher.count(ids) >= k or watcher.stalled(STALL_S),
                    timeout_s=180,
                )
                complete = watcher.wait_for(ids, timeout_s=5, stall_s=STALL_S)
        applied = watcher.count(ids)
        finished = max((watcher.seen[i] for i in ids if i in watcher.seen), default=started)
        elapsed = max(finished - started, 1e-9)
        to_commit, to_start = self.arrival_to_commit(watcher, ids)
        return {
            "callbacks": k,
            "applied": applied,
            "complete": complete,
            "elapsed_s": round(elapsed, 2),
            "posting_s": round(self._posting_seconds(ids, started), 2),
            "applied_per_s": round(applied / elapsed, 1),
            "arrival_to_commit_ms": to_commit,
            "arrival_to_txn_start_ms": to_start,
            "accept": accept.to_json(),
            "cpu": self.cpu_figures(window, applied),
        }

    def end_to_end(self, floor: CommitBaseline | None, same: StatementsBaseline | None) -> None:
        k = self.args.e2e_callbacks
        figures = self.burst("e2e", k)
        rate, to_commit = figures["applied_per_s"], figures["arrival_to_commit_ms"]
        log(
            f"end to end: {figures['applied']}/{k} applied in {figures['elapsed_s']} s = "
            f"{rate:.0f}/s (posted in {figures['posting_s']} s); "
            f"arrival→commit p99 {to_commit['p99']} ms"
        )
        ratio = rate / same.callbacks_per_s if same and same.callbacks_per_s else None
        commit_ratio = rate / floor.commits_per_s if floor and floor.commits_per_s else None
        met = None if ratio is None else ratio >= E2E_TARGET and figures["complete"]
        per_callback = figures["cpu"]["cpu_ms_per_unit"]
        worker_ms = per_callback.get("workers", float("nan"))
        self.stages["end_to_end"] = {
            **figures,
            "baseline": asdict(floor) if floor else None,
            "same_statements_baseline": asdict(same) if same else None,
            "ratio": round(ratio, 3) if ratio is not None else None,
            "ratio_to_commit_baseline": round(commit_ratio, 3) if commit_ratio else None,
            "target_ratio": E2E_TARGET,
            "met": met,
            "worker_cpu_ms": worker_ms,
            "target_worker_cpu_ms": WORKER_CPU_TARGET_MS,
            "worker_cpu_met": worker_ms <= WORKER_CPU_TARGET_MS,
        }
        self.rows += [
            Row(
                "3. End to end",
                f"callbacks applied/s (K={k}, posted at once)",
                fmt(rate),
                f"{fmt(same.callbacks_per_s)} callbacks/s (same statements, "
                f"{same.connections} conns)"
                if same
                else "",
                f"{ratio:.2f}" if ratio is not None else "",
                f"≥ {E2E_TARGET} × same-statements floor",
                verdict(met),
            ),
            Row(
                "3. End to end",
                "against one-row commits",
                "",
                f"{fmt(floor.commits_per_s)} commits/s ({floor.connections} conns)"
                if floor
                else "",
                f"{commit_ratio:.3f}" if commit_ratio is not None else "",
            ),
            Row(
                "3. End to end",
                "arrival → commit p50 / p99 (burst: queueing)",
                f"{fmt(to_commit['p50'])} / {fmt(to_commit['p99'])} ms",
                f"{fmt(same.p50_ms, 1)} / {fmt(same.p99_ms, 1)} ms (one replayed callback)"
                if same
                else "",
            ),
            Row(
                "3. End to end",
                "CPU per applied callback: workers / PostgreSQL",
                f"{worker_ms:.2f} / {per_callback.get('postgresql', float('nan')):.2f} ms",
                "",
                "",
                f"workers ≤ {WORKER_CPU_TARGET_MS:.0f} ms",
                verdict(worker_ms <= WORKER_CPU_TARGET_MS),
            ),
        ]

    # -- baseline 4: the same statements -----------------------------------------------------

    def captured_apply(self) -> CapturedApply:
        if self.captured is None:
            self.captured = capture_apply(self.env, self.pq_url, self.merchants[0].id)
        return self.captured

    def plans(self, label: str) -> list[dict[str, Any]]:
        """The captured statements' plans for a fresh payment (rolled back)."""
        pairs = self.seed(label, 2)
        with psycopg.connect(self.pq_url) as conn:
            attempts: dict[uuid.UUID, uuid.UUID] = dict(
                conn.execute(
                    "SELECT intent_id, id FROM payment_attempts WHERE intent_id = ANY(%s)",
                    ([p.id for p, _ in pairs],),
                ).fetchall()
            )
        warm_up, target = (
            Ids(p.id, attempts[p.id], p.checkout_id, f"PL{label}{n}")
            for n, (p, _) in enumerate(pairs)
        )
        return explain_apply(self.pq_url, self.captured_apply(), warm_up, target)

    def statements_floor(self) -> StatementsBaseline:
        """Capture what one applied callback sends to PostgreSQL, then replay it bare."""
        captured = self.captured_apply()
        log(
            f"one applied callback: {captured.statements} statements in "
            f"{len(captured.transactions)} transaction(s)"
        )
        pairs = self.seed("sf", self.args.statements_callbacks)
        with psycopg.connect(self.pq_url) as conn:
            attempts: dict[uuid.UUID, uuid.UUID] = dict(
                conn.execute(
                    "SELECT intent_id, id FROM payment_attempts WHERE intent_id = ANY(%s)",
                    ([p.id for p, _ in pairs],),
                ).fetchall()
            )
        targets = [
            Ids(p.id, attempts[p.id], p.checkout_id, f"SF{n:08d}") for n, (p, _) in enumerate(pairs)
        ]
        t = self.topology
        with self.cpu.measure() as window:
            result = statements_baseline(
                self.pq_url, captured, targets, t.worker_processes, t.worker_threads
            )
        log(
            f"same-statements floor: {result.callbacks_per_s} callbacks/s on "
            f"{result.connections} connections, p99 {result.p99_ms} ms"
        )
        self.stages["same_statements_baseline"] = {
            **asdict(result),
            "cpu": self.cpu_figures(window, result.callbacks),
        }
        return result

    def _posting_seconds(self, ids: set[uuid.UUID], started: float) -> float:
        with psycopg.connect(self.pq_url) as conn:
            row = conn.execute(
                "SELECT max(received_at) FROM gateway_events WHERE intent_id = ANY(%s)",
                (list(ids),),
            ).fetchone()
        return (row[0].timestamp() - started) if row and row[0] else float("nan")

    def end_to_end_at_rate(self) -> None:
        rate, duration = self.args.e2e_rate, self.args.e2e_rate_duration
        pairs = self.seed("r", round(rate * duration))
        ids = {payment.id for payment, _ in pairs}
        requests = self.callback_requests(pairs)
        with LedgerWatcher(self.pq_url) as watcher, self.cpu.measure() as window:
            accept, _ = open_loop("e2e-rate", self.stack.ingress_url, requests, rate)
            complete = watcher.wait_for(ids, timeout_s=120, stall_s=STALL_S)
        to_commit, to_start = self.arrival_to_commit(watcher, ids)
        log(
            f"end to end at {rate:.0f}/s: arrival→commit p50 {to_commit['p50']} ms, "
            f"p99 {to_commit['p99']} ms; accept p99 {accept.p99_ms} ms"
        )
        met = complete and to_commit["p99"] < E2E_P99_TARGET_MS and accept.errors == 0
        self.stages["end_to_end_at_rate"] = {
            "rate": rate,
            "duration_s": duration,
            "callbacks": len(ids),
            "applied": watcher.count(ids),
            "complete": complete,
            "arrival_to_commit_ms": to_commit,
            "arrival_to_txn_start_ms": to_start,
            "accept": accept.to_json(),
            "target_p99_ms": E2E_P99_TARGET_MS,
            "met": met,
            "cpu": self.cpu_figures(window, watcher.count(ids)),
        }
        self.rows.append(
            Row(
                "3. End to end",
                f"arrival → commit p50 / p99 at {rate:.0f} callbacks/s (open loop)",
                f"{fmt(to_commit['p50'])} / {fmt(to_commit['p99'])} ms",
                "",
                "",
                f"p99 < {E2E_P99_TARGET_MS:.0f} ms",
                verdict(met),
            )
        )

    # -- 5. latency under load -------------------------------------------------------------

    def latency_under_load(self) -> None:
        rate, duration, warmup = self.args.load_rate, self.args.load_duration, self.args.warmup
        pairs = self.seed("l", round(rate * (warmup + duration)))
        requests = self.callback_requests(pairs)
        with (
            self.profiled("load-ingress", "ingress", warmup + duration),
            self.profiled("load-workers", "workers", warmup + duration),
            self.cpu.measure() as window,
        ):
            accept, _ = open_loop("load", self.stack.ingress_url, requests, rate, warmup_s=warmup)
        log(
            f"accept at {rate:.0f}/s: p50 {accept.p50_ms} p99 {accept.p99_ms}"
            f" max {accept.max_ms} ms, {accept.errors} errors"
        )
        met = accept.p99_ms < ACCEPT_P99_TARGET_MS and accept.errors == 0
        self.stages["latency_under_load"] = {
            "accept": accept.to_json(),
            "workers_running": True,
            "target_p99_ms": ACCEPT_P99_TARGET_MS,
            "met": met,
            "cpu": self.cpu_figures(window, accept.requests),
        }
        self.rows += [
            Row(
                "5. Latency under load",
                f"callback accept p99 at {rate:.0f} req/s (open loop, {duration:.0f} s)",
                f"{accept.p99_ms:.1f} ms",
                "",
                "",
                f"< {ACCEPT_P99_TARGET_MS:.0f} ms",
                verdict(met),
            ),
            Row(
                "5. Latency under load",
                "p50 / p90 / max; achieved rate; errors",
                f"{accept.p50_ms:.1f} / {accept.p90_ms:.1f} / {accept.max_ms:.0f} ms; "
                f"{accept.accepted_rps:.0f}/s; {accept.errors}",
            ),
        ]

    # -- 7. how cost grows -------------------------------------------------------------------

    def restart_workers(self, processes: int) -> None:
        old = self.stack.processes.pop("workers", None)
        if old is not None:
            old.stop(timeout_s=15)
        self.topology = replace(self.topology, worker_processes=processes)
        self.stack.topology = self.topology
        process = self.stack.start_workers()
        self.sampler.watch(f"workers ({processes} processes)", process.pid)
        log(f"restarted workers ({processes}×{self.topology.worker_threads})")

    def top_up(self, size: int) -> int:
        """Payments in the database, after adding settled ones (``COPY``) up to ``size``."""
        have = payments_in_database(self.pq_url)
        if have < size:
            began = time.monotonic()
            add_history(
                self.pq_url,
                self.merchants[0].id,
                size - have,
                f"h{size}",
                progress=lambda done: log(f"history: {done:,} of {size - have:,} payments"),
            )
            log(f"added {size - have:,} settled payments in {time.monotonic() - began:.0f} s")
        return payments_in_database(self.pq_url)

    @staticmethod
    def scaling_figures(figures: dict[str, Any]) -> dict[str, Any]:
        per = figures["cpu"]["cpu_ms_per_unit"]
        return {
            "applied_per_s": figures["applied_per_s"],
            "complete": figures["complete"],
            "worker_cpu_ms": per.get("workers", float("nan")),
            "postgresql_cpu_ms": per.get("postgresql", float("nan")),
            "arrival_to_commit_p99_ms": figures["arrival_to_commit_ms"]["p99"],
        }

    def wait_quiet(self, quiet_s: float = 3.0, timeout_s: float = 300.0) -> None:
        """Until the workers have finished what earlier stages left them: no new ledger
        row for ``quiet_s`` (at the workers' pace, a backlog adds hundreds a second)."""
        deadline = time.monotonic() + timeout_s
        last, since = -1, time.monotonic()
        with psycopg.connect(self.pq_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute("SELECT count(*) FROM ledger_entries").fetchone()
                count = int(row[0]) if row else 0
                if count != last:
                    last, since = count, time.monotonic()
                elif time.monotonic() - since >= quiet_s:
                    return
                time.sleep(0.25)
        log("the workers did not go quiet; the scaling figures include earlier work")

    def scaling(self) -> None:
        """By table size first (from an emptied database, topped up with ``COPY``), with the
        run's worker processes; then by worker processes, at the small size."""
        self.wait_quiet()
        clear_payments(self.pq_url)
        k, repeats = self.args.scaling_callbacks, self.args.scaling_repeats
        counts = [int(x) for x in self.args.scaling_workers.split(",") if x.strip()]
        sizes = sorted(int(x) for x in self.args.scaling_rows.split(",") if x.strip())
        default_processes = self.topology.worker_processes
        by_rows: list[dict[str, Any]] = []
        by_workers: list[dict[str, Any]] = []

        def at_size(size: int) -> None:
            rows_now = self.top_up(size)
            self.wait_quiet()
            plans = self.plans(f"pl{size}")
            runs = [self.scaling_figures(self.burst(f"sr{size}x{r}", k)) for r in range(repeats)]
            by_rows.append({"rows": rows_now, "runs": runs, "plans": plans, **spread_of(runs)})
            log(f"scaling: {rows_now:,} payments: {spread_of(runs)}")

        at_size(sizes[0])
        for n in counts:
            self.restart_workers(n)
            self.wait_quiet()
            rows_now = payments_in_database(self.pq_url)
            figures = self.scaling_figures(self.burst(f"sw{n}", k))
            by_workers.append({"worker_processes": n, "rows": rows_now, **figures})
            log(f"scaling: {n} worker processes: {figures}")
        self.restart_workers(default_processes)
        for size in sizes[1:]:
            at_size(size)
        verdicts = grows_beyond_noise(by_rows)
        self.stages["scaling"] = {
            "callbacks_per_run": k,
            "worker_threads": self.topology.worker_threads,
            "by_workers": by_workers,
            "by_rows": by_rows,
            "noise": "the spread (max - min) of the runs at each size",
            "worse_beyond_noise": verdicts,
            "met": not any(verdicts.values()),
        }
        for entry in by_workers:
            self.rows.append(
                Row(
                    "7. Scaling",
                    f"{entry['worker_processes']} worker process(es) × "
                    f"{self.topology.worker_threads} threads: applied/s; worker CPU per callback",
                    f"{fmt(entry['applied_per_s'])}; {entry['worker_cpu_ms']:.2f} ms",
                )
            )
        for entry in by_rows:
            self.rows.append(
                Row(
                    "7. Scaling",
                    f"{entry['rows']:,} payments in the database: applied/s; worker / "
                    f"PostgreSQL CPU per callback (median of {repeats}, ± spread)",
                    f"{fmt(entry['applied_per_s']['median'])} ± "
                    f"{fmt(entry['applied_per_s']['spread'])}; "
                    f"{entry['worker_cpu_ms']['median']:.2f} ± "
                    f"{entry['worker_cpu_ms']['spread']:.2f} / "
                    f"{entry['postgresql_cpu_ms']['median']:.2f} ± "
                    f"{entry['postgresql_cpu_ms']['spread']:.2f} ms",
                )
            )
        for entry in by_rows:
            plans = entry["plans"]
            scans = sorted({t for p in plans for t in p["seq_scans"]})
            self.rows.append(
                Row(
                    "7. Scaling",
                    f"one callback's statements at {entry['rows']:,} payments (EXPLAIN ANALYZE):"
                    " execution ms; shared buffers; sequential scans",
                    f"{sum(p['ms'] for p in plans):.2f} ms; "
                    f"{sum(p['shared_hit'] + p['shared_read'] for p in plans)}; "
                    + (", ".join(scans) if scans else "none"),
                )
            )
        worse = [name for name, bad in verdicts.items() if bad]
        self.rows.append(
            Row(
                "7. Scaling",
                f"worse at {by_rows[-1]['rows']:,} than at {by_rows[0]['rows']:,} beyond noise",
                ", ".join(worse) if worse else "none",
                "",
                "",
                "none",
                verdict(not worse),
            )
        )

    # -- 6. memory -------------------------------------------------------------------------

    def memory(self) -> None:
        trees: dict[str, Any] = {}
        for name, tree in self.sampler.trees.items():
            trees[name] = {
                "root_pid": tree.root_pid,
                "peak_total_rss_mb": round(tree.peak_total_rss_bytes / MB, 1),
                "processes": [
                    {
                        "pid": p.pid,
                        "role": p.role,
                        "command": p.command,
                        "peak_rss_mb": round(p.peak_rss_bytes / MB, 1),
                    }
                    for p in tree.processes.values()
                ],
            }
        memory: dict[str, Any] = {
            "interval_s": self.sampler.interval_s,
            "samples": self.sampler.samples,
            "trees": trees,
            "target_rss_mb": RSS_TARGET_MB,
        }
        self.stages["memory"] = memory
        for name, label in (
            ("ingress", "gunicorn master / workers"),
            ("workers", "dramatiq main / worker processes"),
        ):
            peak = self.sampler.trees.get(name)
            if peak is None or not peak.processes:
                continue
            # The root first, then its children in pid order.
            ordered = sorted(peak.processes.values(), key=lambda p: (p.role != "main", p.pid))
            each = " / ".join(f"{p.peak_rss_bytes / MB:.0f}" for p in ordered)
            worst_mb = max(p.peak_rss_bytes for p in ordered) / MB
            met = worst_mb < RSS_TARGET_MB
            memory["met"] = bool(memory.get("met", True)) and met
            memory[f"{name}_max_rss_mb"] = round(worst_mb, 1)
            self.rows.append(
                Row(
                    "6. Memory",
                    f"peak RSS per {name} process ({label})",
                    f"{each} MB",
                    "",
                    "",
                    f"each < {RSS_TARGET_MB:.0f} MB",
                    verdict(met),
                )
            )

    # -- the whole run ---------------------------------------------------------------------

    def run(self) -> int:
        started = time.time()
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        ok = False
        machine: dict[str, Any] = {}
        try:
            self.set_up()
            machine = machine_info(self.pq_url, self.broker.server_version())
            if "intake" not in self.skip:
                with self.pg.during("callback_intake"):
                    self.callback_intake()
            if "commands" not in self.skip:
                with self.pg.during("payment_commands"):
                    self.payment_commands()
            floor = self.commit_baseline() if "e2e" not in self.skip else None
            same = self.statements_floor() if "statements" not in self.skip else None
            self.start_workers()
            if "initiation" not in self.skip:
                with self.pg.during("initiation"):
                    self.initiation()
            if "e2e" not in self.skip:
                with self.pg.during("end_to_end"):
                    self.end_to_end(floor, same)
            if "e2e-rate" not in self.skip:
                with self.pg.during("end_to_end_at_rate"):
                    self.end_to_end_at_rate()
            if "load" not in self.skip:
                with self.pg.during("latency_under_load"):
                    self.latency_under_load()
            if "scaling" not in self.skip:
                with self.pg.during("scaling"):
                    self.scaling()
            self.sampler.stop()
            self.pg.stop()
            self.memory()
            self.stages["pg_activity"] = self.pg.summary()
            ok = True
        except BaseException:
            log("the run failed:\n" + traceback.format_exc())
            for name, process in self.stack.processes.items():
                tail = process.output()[-1500:]
                if tail.strip():
                    log(f"--- {name} log tail ({process.log_path}) ---\n{tail}")
            raise
        finally:
            self.sampler.stop()
            self.pg.stop()
            self.stack.stop()
            if self.db is not None:
                self.db.dispose()
            if not self.args.keep:
                try:
                    drop_resources(self.db_url, self.amqp_url)
                except Exception as exc:
                    log(f"could not drop the bench database/vhost: {exc}")
            if ok:
                self.finish(started, started_at, machine)
        return 0

    def finish(self, started: float, started_at: str, machine: dict[str, Any]) -> None:
        duration = time.time() - started
        for stage, figures in self.stages.items():
            if isinstance(figures, dict) and figures.get("met") is False:
                self.notes.append(f"target not met: {stage} (see docs/benchmarks.md for why)")
        parameters = {
            "ingress_workers": self.topology.ingress_workers,
            "ingress_threads": self.topology.ingress_threads,
            "worker_processes": self.topology.worker_processes,
            "worker_threads": self.topology.worker_threads,
            "merchants": self.args.merchants,
            "wrk": f"{self.args.wrk_threads} threads, {self.args.connections} connections",
            "duration_s": self.args.duration,
            "intake_payments": self.args.intake_payments,
            "e2e_callbacks": self.args.e2e_callbacks,
            "e2e_rate": self.args.e2e_rate,
            "initiations": self.args.initiations,
            "load_rate": self.args.load_rate,
        }
        document = {
            "run": {
                "started_at": started_at,
                "duration_s": round(duration, 1),
                "parameters": parameters,
                "profiled": self.args.profile,
                "skipped": sorted(self.skip),
            },
            "machine": machine,
            "stages": self.stages,
            "notes": self.notes,
        }
        written = write_outputs(self.args.results_dir, self.stamp, document, self.rows)
        print(markdown_table(self.rows))
        log(f"run time {duration:.0f} s; wrote " + ", ".join(str(p) for p in written))


def main(argv: Sequence[str] | None = None) -> int:
    clean_environment()
    return Bench(parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())

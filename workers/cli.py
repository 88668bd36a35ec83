"""``malipo workers`` and ``malipo scheduler``."""

from __future__ import annotations

import os
import sys
import uuid
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import click

from shared.settings import ConfigurationError, load_settings
from workers.policies import RetryPolicy, effective_policies


@click.command("workers")
@click.option(
    "--processes", type=int, default=None, help="worker processes (MALIPO_WORKER_PROCESSES)"
)
@click.option(
    "--threads", type=int, default=None, help="threads per process (MALIPO_WORKER_THREADS)"
)
@click.option("--queues", multiple=True, help="only consume these queues")
@click.option("--show-policy", is_flag=True, help="print each actor's retry policy and exit")
def workers(
    processes: int | None, threads: int | None, queues: tuple[str, ...], show_policy: bool
) -> None:
    """Run the Dramatiq workers (replaces this process)."""
    try:
        settings = load_settings()
        policies = effective_policies(settings.retry_policies)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    if show_policy:
        click.echo(policy_table(policies))
        return
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.main",
        "--processes",
        str(processes or settings.worker_processes),
        "--threads",
        str(threads or settings.worker_threads),
    ]
    if queues:
        argv += ["--queues", *queues]
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process, no shell


@click.command("scheduler")
def scheduler() -> None:
    """Run the periodic-job scheduler (replaces this process)."""
    os.execv(sys.executable, [sys.executable, "-m", "workers.scheduler"])  # noqa: S606 - replaces this process, no shell


def policy_table(policies: dict[str, RetryPolicy]) -> str:
    """The effective retry policies, one actor per line."""
    header = ("actor", "max retries", "min backoff", "max backoff", "time limit")
    lines = ["{:26} {:>11} {:>12} {:>12} {:>11}".format(*header)]
    for actor, policy in sorted(policies.items()):
        lines.append(
            f"{actor:26} {policy.max_retries:>11} {policy.min_backoff_ms / 1000:>11g}s "
            f"{policy.max_backoff_ms / 1000:>11g}s {policy.time_limit_ms / 1000:>10g}s"
        )
    lines.append(
        "Only transient errors retry (exponential backoff with jitter); others dead-letter at once."
    )
    return "\n".join(lines)


def _moment(value: str, timezone: str) -> datetime:
    """A date (its midnight) or an ISO 8601 time; naive ones are in ``timezone``."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date or an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))


@click.group("reconcile", invoke_without_command=True)
@click.option(
    "--from", "start", help="start (date or ISO time; dates in MALIPO_RECONCILE_TIMEZONE)"
)
@click.option("--to", "end", help="end, exclusive (date or ISO time)")
@click.option("--gateway", multiple=True, help="only this gateway (default: the scheduled ones)")
@click.option("--merchant", type=click.UUID, help="only this merchant")
@click.option(
    "--statement",
    type=click.File("r", encoding="utf-8-sig"),
    help="an M-Pesa organisation portal statement (CSV) instead of the gateway's list",
)
@click.pass_context
def reconcile(
    ctx: click.Context,
    start: str | None,
    end: str | None,
    gateway: tuple[str, ...],
    merchant: uuid.UUID | None,
    statement: TextIO | None,
) -> None:
    """Reconcile the ledger with the gateways over [--from, --to); re-running is harmless."""
    if ctx.invoked_subcommand is not None:
        return
    if not start or not end:
        raise click.UsageError("give --from and --to (or a sub-command)")
    settings = load_settings()
    window_start = _moment(start, settings.reconcile_timezone)
    window_end = _moment(end, settings.reconcile_timezone)
    if window_end <= window_start:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    from shared.db.models import ReconciliationRun
    from shared.domain.errors import MalipoError
    from shared.reconciliation.statement import StatementInvalid, parse_statement
    from shared.reconciliation.window import Window
    from workers.reconcile import reconcile as run_window
    from workers.runtime import runtime

    rows = None
    gateways = list(gateway) or [
        g.strip() for g in settings.reconcile_gateways.split(",") if g.strip()
    ]
    if statement is not None:
        if merchant is None:
            raise click.UsageError("a statement is one merchant's: give --merchant")
        try:
            rows = parse_statement(statement.read())
        except StatementInvalid as exc:
            raise click.ClickException(f"{statement.name}: {exc}") from None
        gateways = list(gateway) or ["daraja"]
    for name in gateways:
        window = Window(
            gateway=name,
            start=window_start,
            end=window_end,
            merchant_id=merchant,
            source="statement" if rows is not None else "gateway",
            trigger="cli",
        )
        rt = runtime()
        bars = ProgressBars(f"{name}: ")
        try:
            run_id = run_window(rt, window, statement=rows, progress=bars.update)
        except MalipoError as exc:
            raise click.ClickException(f"{name}: {exc.detail}") from None
        finally:
            bars.close()
        if run_id is None:
            click.echo(f"{name}: a run of this window is under way; try again when it ends")
            continue
        with rt.db.transaction() as session:
            run = session.get(ReconciliationRun, run_id)
            assert run is not None
            session.expunge(run)
        counts = ", ".join(f"{kind} {n}" for kind, n in sorted(run.counts.items()))
        click.echo(
            f"{name}: run {run.id}: {counts or 'nothing in the window'}; "
            f"{run.discrepancies} open discrepancies"
        )


@reconcile.command("resolve")
@click.argument("item_id", type=int)
@click.option("--note", required=True, help="what was done about it (kept in the audit log)")
def resolve(item_id: int, note: str) -> None:
    """Mark a reconciliation item resolved, with a note."""
    from shared.audit import cli_actor
    from shared.domain.errors import MalipoError
    from workers.reconcile import resolve_item
    from workers.runtime import runtime

    try:
        done = resolve_item(runtime(), item_id, note, actor=cli_actor())
    except MalipoError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"item {item_id} resolved" if done else f"item {item_id} was already resolved")


class ProgressBars:
    """One progress bar per stage of a run (status queries, items), on stderr."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.stage: str | None = None
        self.bar: Any = None
        self.done = 0

    def update(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage, self.done = stage, 0
            self.bar = click.progressbar(
                length=max(total, 1), label=self.prefix + stage, file=sys.stderr
            )
            self.bar.__enter__()
        if self.bar is not None and done > self.done:
            self.bar.update(done - self.done)
            self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

"""``malipo workers`` and ``malipo scheduler``."""

from __future__ import annotations

import os
import sys

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

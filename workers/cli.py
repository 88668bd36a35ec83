"""``malipo workers`` and ``malipo scheduler``."""

from __future__ import annotations

import os
import sys

import click

from shared.settings import ConfigurationError, load_settings


@click.command("workers")
@click.option(
    "--processes", type=int, default=None, help="worker processes (MALIPO_WORKER_PROCESSES)"
)
@click.option(
    "--threads", type=int, default=None, help="threads per process (MALIPO_WORKER_THREADS)"
)
@click.option("--queues", multiple=True, help="only consume these queues")
def workers(processes: int | None, threads: int | None, queues: tuple[str, ...]) -> None:
    """Run the Dramatiq workers (replaces this process)."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
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

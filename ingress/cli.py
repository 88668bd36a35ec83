"""``malipo ingress``: run the HTTP ingress under gunicorn (replaces this process)."""

from __future__ import annotations

import os
import sys

import click


@click.command("ingress")
@click.option("--bind", default=None, help="host:port (default MALIPO_INGRESS_HOST/PORT)")
@click.option("--workers", type=int, default=None, help="gunicorn workers (MALIPO_INGRESS_WORKERS)")
@click.option(
    "--threads", type=int, default=None, help="threads per worker (MALIPO_INGRESS_THREADS)"
)
def ingress(bind: str | None, workers: int | None, threads: int | None) -> None:
    """Serve the ingress with gunicorn."""
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:ingress.gunicorn_conf"]
    if bind:
        argv += ["--bind", bind]
    if workers:
        argv += ["--workers", str(workers)]
    if threads:
        argv += ["--threads", str(threads)]
    os.execv(sys.executable, [*argv, "ingress.wsgi:application"])  # noqa: S606 - replaces this process, no shell

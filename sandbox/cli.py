"""``malipo sandbox`` / ``python -m sandbox``: serve the simulators with gunicorn.

One process serves the Daraja and SMS simulators, and the SMTP sink when asked
(``--smtp-port``, passed on to the app as ``SANDBOX_SMTP_PORT``).
"""

from __future__ import annotations

import os
import sys

import click


def gunicorn_argv(host: str, port: int) -> list[str]:
    """The command line that serves the simulator; one worker, as its state is in memory."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "sandbox.wsgi:application",
        "--bind",
        f"{host}:{port}",
        "--workers",
        "1",
        "--threads",
        "16",
        # Several gunicorns run side by side (ingress, simulator): no shared control socket.
        "--no-control-socket",
    ]


@click.command("sandbox")
@click.option(
    "--host",
    envvar="MALIPO_SANDBOX_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind (env MALIPO_SANDBOX_HOST).",
)
@click.option(
    "--port",
    envvar="MALIPO_SANDBOX_PORT",
    type=click.IntRange(1, 65535),
    default=8900,
    show_default=True,
    help="Port to bind (env MALIPO_SANDBOX_PORT).",
)
@click.option(
    "--smtp-port",
    envvar="SANDBOX_SMTP_PORT",
    type=click.IntRange(1, 65535),
    default=None,
    help="Also run the SMTP sink on this port; mails at /_sim/smtp (env SANDBOX_SMTP_PORT).",
)
def sandbox(host: str, port: int, smtp_port: int | None) -> None:
    """Run the Daraja and SMS simulators (replaces this process with gunicorn)."""
    if smtp_port is not None:
        os.environ["SANDBOX_SMTP_PORT"] = str(smtp_port)
    argv = gunicorn_argv(host, port)
    os.execvp(argv[0], argv)  # noqa: S606 - fixed argv, no shell involved

"""``malipo errors``: the error catalogue; ``malipo dev``: the local stack."""

from __future__ import annotations

import sys

import click

from shared.commands.base import cli_settings
from shared.commands.services import EXIT_SERVICE, report, service_problems
from shared.domain.errors import catalogue


@click.command("errors")
@click.option("--markdown", is_flag=True, help="as the README's table")
def errors_command(markdown: bool) -> None:
    """Print the error catalogue (code, HTTP status, meaning)."""
    for entry in catalogue():
        if markdown:
            click.echo(f"| `{entry.code}` | {entry.http_status} | {entry.message} |")
        else:
            click.echo(f"{entry.code:28} {entry.http_status}  {entry.message}")


@click.command("dev")
def dev() -> None:
    """Run the whole stack locally (what `make run` does after set-up)."""
    from shared.devstack import run_stack  # the supervisor is only needed here

    settings = cli_settings()
    problems = service_problems(settings, ports=True)
    if problems:  # before starting anything: one line each, not a log flood
        report(problems)
        sys.exit(EXIT_SERVICE)
    sys.exit(run_stack(settings))

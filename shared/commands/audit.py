"""``malipo audit``: seal the audit log now, or verify that no sealed row was edited or deleted."""

from __future__ import annotations

import click

from shared.audit import VerificationReport, seal_pending, verify
from shared.commands.base import cli_database, cli_settings

EXIT_INTACT, EXIT_BROKEN = 0, 1


@click.group("audit")
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("seal")
def audit_seal() -> None:
    """Chain every committed, unsealed audit row now (the worker also does it periodically)."""
    with cli_database(cli_settings()) as database:
        sealed = seal_pending(database, max_batches=1_000_000)
    click.echo(f"sealed {sealed} audit rows")


@audit.command("verify")
def audit_verify() -> None:
    """Check the whole chain; seals nothing.

    Exit status 0 when every sealed row is intact, 1 when any was edited or deleted
    or the head does not match (each problem is listed with its seq and row id).
    """
    with cli_database(cli_settings()) as database, database.transaction() as session:
        report = verify(session)
    for line in summary(report):
        click.echo(line)
    raise click.exceptions.Exit(EXIT_INTACT if report.intact else EXIT_BROKEN)


def summary(report: VerificationReport) -> list[str]:
    """The report as lines of text: totals first, then one line per problem."""
    head = f"head at seq {report.head.seq}" if report.head else "no head yet"
    lines = [
        f"audit chain: {report.sealed} sealed rows ({head}), {report.unsealed} not yet sealed",
        "intact" if report.intact else f"BROKEN: {report.problem_count} problems",
    ]
    lines += [f"  {problem}" for problem in report.problems]
    if report.problem_count > len(report.problems):
        lines.append(f"  ... and {report.problem_count - len(report.problems)} more")
    return lines

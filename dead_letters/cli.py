"""``malipo dlq``: what operators do with dead-lettered messages.

list, show, replay (one, several, or everything a filter selects, with a
progress bar), discard (a reason is required) and drain (archive what sits in
RabbitMQ's ``.XQ`` queues now). Every replay and discard is audited with the
operator's name and reason; a replay's audit row commits before its message is
published (``shared.dead_letter_replay``). A dead letter already replayed is
refused (counted in the summary) unless ``--force``.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from shared.archive import (
    AlreadyReplayed,
    Filters,
    NotReplayable,
    archive,
    discard,
    drain_dead_letter_queues,
    list_dead_letters,
    select_dead_letters,
    view,
)
from shared.commands.base import cli_database, cli_settings
from shared.db.models import DeadLetter
from shared.dead_letter_replay import replay_dead_letter
from shared.messages import ALL_ACTORS, BrokerUnavailable, Publisher, build_broker
from shared.settings import Settings

STATUSES = ("dead", "replayed", "discarded", "all")


@contextmanager
def _publisher(settings: Settings) -> Iterator[Publisher]:
    publisher = Publisher(
        build_broker(
            settings.broker_url.get_secret_value(),
            publish_only=True,
            queue_type=settings.queue_type,
        )
    )
    try:
        yield publisher
    finally:
        publisher.close()


def _filters(
    queue: str | None, actor: str | None, since: datetime | None, error: str | None, status: str
) -> Filters:
    return Filters(
        queue=queue,
        actor=actor,
        since=since,
        error=error,
        status=None if status == "all" else status,
    )


def filter_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--queue", default=None, help="only this queue"),
            click.option("--actor", default=None, help="only this actor"),
            click.option(
                "--since", type=click.DateTime(), default=None, help="last failed at or after"
            ),
            click.option("--error", default=None, help="error text contains"),
        ]
    ):
        command = option(command)
    return command


@click.group("dlq")
def dlq() -> None:
    """Dead-lettered messages: list, show, replay, discard, drain."""


@dlq.command("list")
@filter_options
@click.option("--status", type=click.Choice(STATUSES), default="dead", show_default=True)
@click.option("--limit", default=100, show_default=True)
def dlq_list(
    queue: str | None,
    actor: str | None,
    since: datetime | None,
    error: str | None,
    status: str,
    limit: int,
) -> None:
    """One line per dead letter: id, status, actor, retries, last failure, error."""
    settings = cli_settings()
    with cli_database(settings) as db, db.transaction() as session:
        rows = list_dead_letters(session, _filters(queue, actor, since, error, status), limit=limit)
        lines = [_line(row) for row in rows]
    for line in lines:
        click.echo(line)
    click.echo(f"{len(lines)} dead letter(s)", err=True)


def _line(row: DeadLetter) -> str:
    return (
        f"{row.id:>6}  {row.status:9} {row.actor:24} retries={row.retries:<3} "
        f"{row.last_failed_at:%Y-%m-%d %H:%M:%S}  {view(row)['error'][:90]}"
    )


@dlq.command("show")
@click.argument("dead_letter_id", type=int)
def dlq_show(dead_letter_id: int) -> None:
    """Everything about one dead letter, traceback included (phones masked)."""
    settings = cli_settings()
    with cli_database(settings) as db, db.transaction() as session:
        row = session.get(DeadLetter, dead_letter_id)
        if row is None:
            raise click.ClickException(f"no dead letter {dead_letter_id}")
        shown = view(row, full=True)
    click.echo(json.dumps(shown, indent=2))


@dlq.command("replay")
@click.argument("ids", type=int, nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="every dead letter the filters select")
@filter_options
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    default="dead",
    show_default=True,
    help="with --all: select dead letters in this status",
)
@click.option("--force", is_flag=True, help="replay even a dead letter already replayed")
@click.option("--operator", default=getpass.getuser, show_default="your user name")
@click.option("--reason", default="manual replay", show_default=True)
def dlq_replay(
    ids: tuple[int, ...],
    replay_all: bool,
    queue: str | None,
    actor: str | None,
    since: datetime | None,
    error: str | None,
    status: str,
    force: bool,
    operator: str,
    reason: str,
) -> None:
    """Re-enqueue dead letters on their queues with retries reset.

    A dead letter already replayed (and not dead again since) is refused unless --force:
    running its message a second time may do its work twice.
    """
    if bool(ids) == replay_all:
        raise click.UsageError("give dead-letter ids, or --all (with filters)")
    settings = cli_settings()
    with cli_database(settings) as db, _publisher(settings) as publisher:
        if replay_all:
            with db.transaction() as session:
                query = select_dead_letters(_filters(queue, actor, since, error, status))
                ids = tuple(session.scalars(query.with_only_columns(DeadLetter.id)))
        replayed = missing = refused = 0
        unpublished: int | None = None
        with click.progressbar(ids, label="replaying", show_pos=True) as bar:
            for dead_letter_id in bar:
                try:
                    found = replay_dead_letter(
                        db, publisher, dead_letter_id, operator=operator, reason=reason, force=force
                    )
                except AlreadyReplayed as exc:
                    click.echo(f"\n{exc} (--force)", err=True)
                    refused += 1
                    continue
                except NotReplayable as exc:
                    click.echo(f"\n{exc}", err=True)
                    refused += 1
                    continue
                except BrokerUnavailable:
                    unpublished = dead_letter_id  # the rest would fail the same way
                    break
                replayed += found
                missing += not found
    summary = (
        f"replayed {replayed} dead letter(s)"
        + (f"; {refused} refused" if refused else "")
        + (f"; {missing} not found" if missing else "")
    )
    if unpublished is not None:
        raise click.ClickException(
            f"{summary}; RabbitMQ did not take dead letter {unpublished}: it is dead again "
            "(audited as dead_letter.replay_failed); replay it again once the broker is back"
        )
    click.echo(summary)


@dlq.command("discard")
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option("--reason", required=True, help="why this message will not be processed")
@click.option("--operator", default=getpass.getuser, show_default="your user name")
def dlq_discard(ids: tuple[int, ...], reason: str, operator: str) -> None:
    """Give up on dead letters, saying why (audited)."""
    if not reason.strip():
        raise click.UsageError("--reason must say why")
    settings = cli_settings()
    with cli_database(settings) as db:
        done = 0
        for dead_letter_id in ids:
            with db.transaction() as session:
                done += discard(session, dead_letter_id, operator=operator, reason=reason)
    click.echo(f"discarded {done} dead letter(s)")


@dlq.command("drain")
def dlq_drain() -> None:
    """Archive now whatever sits in RabbitMQ's dead-letter (.XQ) queues."""
    settings = cli_settings()
    with cli_database(settings) as db, _publisher(settings) as publisher:

        def store(failure: Any) -> None:
            with db.transaction() as session:
                archive(session, failure, refresh=False)

        queues = sorted({spec.queue_name for spec in ALL_ACTORS})
        for queue in queues:
            publisher.broker.declare_queue(queue, ensure=True)
        drained = drain_dead_letter_queues(publisher.broker.channel, queues, store, limit=1_000_000)
    click.echo(f"archived {drained} message(s) from the dead-letter queues")

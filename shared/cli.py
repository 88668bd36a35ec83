"""The ``malipo`` command.

Process commands (``ingress``, ``workers``, ``scheduler``, ``sandbox``, and later
operator tools) are contributed by their own packages through the
``malipo.commands`` entry-point group and loaded only when used, so this module
imports none of them. Shared's own groups live in :mod:`shared.commands`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import click

from shared.commands.audit import audit
from shared.commands.db import db
from shared.commands.events import events
from shared.commands.keys import keys
from shared.commands.merchants import merchant, operator
from shared.commands.reference import dev, errors_command
from shared.commands.services import (
    EXIT_SERVICE,
    SERVICE_ERRORS,
    debugging,
    explain_service_error,
    preflight,
)
from shared.commands.templates import template
from shared.commands.transfers import payout, refund
from shared.commands.webhooks import webhook
from shared.settings import use_local_config


class PluginGroup(click.Group):
    """A group whose extra commands come from the ``malipo.commands`` entry points.

    A command that meets an unreachable or misconfigured PostgreSQL or RabbitMQ ends
    with one line saying which setting and why, and exit code 2, never a traceback
    (unless ``--debug``).
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SERVICE_ERRORS as exc:
            if ctx.params.get("debug") or debugging():
                raise
            click.echo(explain_service_error(exc), err=True)
            ctx.exit(EXIT_SERVICE)

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group="malipo.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        plugin = self._plugins().get(cmd_name)
        return plugin.load() if plugin is not None else None


@click.group(cls=PluginGroup)
@click.option("--debug", is_flag=True, help="show tracebacks (also MALIPO_LOG_LEVEL=DEBUG)")
def main(debug: bool) -> None:
    """malipo: mobile-money payments pipeline."""
    # Before any sub-command reads its options: a checkout's config/local.env fills what the
    # environment leaves unset (never in production), so commands work as the README shows.
    use_local_config()


for command in (
    db,
    merchant,
    operator,
    audit,
    keys,
    errors_command,
    dev,
    preflight,
    template,
    refund,
    payout,
    webhook,
    events,
):
    main.add_command(command)


if __name__ == "__main__":
    main()

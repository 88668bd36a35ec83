"""Who may use the bus: one RabbitMQ user per service, confined to what it needs.

A service may publish to ``malipo.commands`` and nowhere else (not into malipo's
worker queues, not onto ``malipo.events``), and may declare, bind, read and delete
only its own queues ``svc.<name>.*``: its reply queue and the queues it binds to
``malipo.events``. The signed envelope is checked on top of this (ADR 0022).
"""

from __future__ import annotations

import re
import secrets

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def permissions(name: str) -> tuple[str, str, str]:
    """(configure, write, read) regular expressions for service ``name``."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            "a service name is 1-63 of a-z, 0-9 and '-', starting with a letter or digit"
        )
    own = rf"svc\.{name}\..*"
    return f"^{own}$", rf"^(malipo\.commands|{own})$", rf"^(malipo\.events|{own})$"


def service_password() -> str:
    return secrets.token_urlsafe(24)


def rabbitmqctl_commands(name: str, vhost: str, password: str) -> list[list[str]]:
    configure, write, read = permissions(name)
    return [
        ["rabbitmqctl", "add_user", name, password],
        ["rabbitmqctl", "set_permissions", "-p", vhost, name, configure, write, read],
    ]

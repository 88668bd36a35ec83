"""Every gateway malipo knows: found as the packages of ``shared/gateways`` with a description.

Nothing here names a gateway: a package ``shared/gateways/<name>/`` whose
``__init__`` defines ``DESCRIPTION`` is a gateway.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

import shared.gateways
from shared.domain.errors import UNSUPPORTED_GATEWAY, MalipoError
from shared.gateways.description import GatewayDescription


@functools.cache
def descriptions() -> tuple[GatewayDescription, ...]:
    """The description of every gateway package, by name."""
    found = []
    for module in pkgutil.iter_modules(shared.gateways.__path__):
        if not module.ispkg:
            continue
        package = importlib.import_module(f"shared.gateways.{module.name}")
        description = getattr(package, "DESCRIPTION", None)
        if isinstance(description, GatewayDescription):
            found.append(description)
    return tuple(sorted(found, key=lambda d: d.name))


def describe(name: str) -> GatewayDescription:
    """The gateway called ``name`` (or formerly called so); ``unsupported_gateway`` if none."""
    for description in descriptions():
        if name == description.name or name in description.aliases:
            return description
    raise MalipoError(UNSUPPORTED_GATEWAY, f"no gateway named {name[:40]!r}")


def for_callback_segment(segment: str) -> GatewayDescription | None:
    """The gateway a ``/callbacks/<segment>/…`` path is for (its segment, name or alias)."""
    for description in descriptions():
        if segment in (description.callback_segment, description.name, *description.aliases):
            return description
    return None


def for_currency(currency: str) -> tuple[GatewayDescription, ...]:
    return tuple(d for d in descriptions() if currency in d.currencies)


def currencies() -> tuple[str, ...]:
    return tuple(sorted({c for d in descriptions() for c in d.currencies}))

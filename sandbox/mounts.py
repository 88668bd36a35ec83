"""Simulators served under a path prefix of their own: ``/<name>/…`` of the sandbox process.

A package ``sandbox/<name>/`` that defines ``mount(config) -> MountedSimulator`` is
found and served by the sandbox without being named anywhere else: its API and
its ``/_sim`` controls answer under ``/<name>``, with the prefix stripped, so a
gateway client is simply pointed at ``http://<sandbox>/<name>/<its API root>``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sandbox
from sandbox.config import SimulatorConfig

WsgiCallable = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class MountedSimulator:
    """A simulator's WSGI app, the prefix it answers under, and how to stop its threads."""

    prefix: str
    app: WsgiCallable
    close: Callable[[], None] = field(default=lambda: None)
    # What tests may reach into (state, scenario book), as the simulator chooses.
    state: Any = None

    def serves(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        inner = {
            **environ,
            "SCRIPT_NAME": str(environ.get("SCRIPT_NAME", "")) + self.prefix,
            "PATH_INFO": path[len(self.prefix) :] or "/",
        }
        return self.app(inner, start_response)


def discover(config: SimulatorConfig) -> list[MountedSimulator]:
    """Every ``sandbox/<name>`` package with a ``mount`` function, mounted."""
    mounted = []
    for module in pkgutil.iter_modules(sandbox.__path__):
        if not module.ispkg:
            continue
        package = importlib.import_module(f"sandbox.{module.name}")
        mount = getattr(package, "mount", None)
        if callable(mount):
            mounted.append(mount(config))
    return mounted

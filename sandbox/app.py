"""One sandbox process, every simulator: the gateways, the SMS provider and the SMTP mailbox.

Each simulator stays its own falcon app, with its own middleware and state; a
small WSGI dispatcher hands each request to the one that serves its path:
``/<name>/…`` to a mounted gateway simulator (``sandbox/mounts.py``),
``/version1/messaging`` and ``/_sim/sms/…`` to the SMS simulator, ``/_sim/smtp/…``
to the mailbox (when the SMTP sink runs), everything else to Daraja, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sandbox.config import SimulatorConfig
from sandbox.daraja import Simulator, create_simulator
from sandbox.mounts import MountedSimulator, discover
from sandbox.sms import SmsSimulator, create_sms_simulator
from sandbox.smtp import SmtpSink, SmtpSinkConfig, create_mailbox_app
from sandbox.smtp import serves as mailbox_serves

WsgiCallable = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Sandbox:
    """Every simulator of one process, and the WSGI entry point that routes between them."""

    def __init__(
        self,
        daraja: Simulator,
        sms: SmsSimulator,
        smtp: SmtpSink | None = None,
        mounted: list[MountedSimulator] | None = None,
    ) -> None:
        self.daraja = daraja
        self.sms = sms
        self.smtp = smtp
        self.mounted = {m.prefix.strip("/"): m for m in mounted or []}
        self._routes: list[tuple[Callable[[str], bool], WsgiCallable]] = [
            (m.serves, m) for m in self.mounted.values()
        ]
        self._routes.append((sms.serves, sms.app))
        if smtp is not None:
            self._routes.append((mailbox_serves, create_mailbox_app(smtp.mailbox)))

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        app = next((app for serves, app in self._routes if serves(path)), self.daraja.app)
        return app(environ, start_response)

    def close(self) -> None:
        """Stop the simulators' callback threads and the SMTP sink."""
        self.daraja.close()
        for mounted in self.mounted.values():
            mounted.close()
        if self.smtp is not None:
            self.smtp.stop()


def create_sandbox(config: SimulatorConfig, smtp: SmtpSinkConfig | None = None) -> Sandbox:
    """Build every simulator; the SMTP sink starts listening now when ``smtp.port`` is set."""
    sink = None
    if smtp is not None and smtp.port is not None:
        sink = SmtpSink(smtp.host, smtp.port).start()
    return Sandbox(create_simulator(config), create_sms_simulator(), sink, discover(config))

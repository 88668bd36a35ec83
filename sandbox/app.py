"""One sandbox process, every simulator: Daraja, the SMS provider and the SMTP sink's mailbox.

Each simulator stays its own falcon app, with its own middleware and state; a
small WSGI dispatcher hands each request to the one that serves its path:
``/version1/messaging`` and ``/_sim/sms/…`` to the SMS simulator, ``/_sim/smtp/…``
to the mailbox (when the SMTP sink runs), everything else to Daraja, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sandbox.config import SimulatorConfig
from sandbox.daraja import Simulator, create_simulator
from sandbox.sms import SmsSimulator, create_sms_simulator
from sandbox.smtp import SmtpSink, SmtpSinkConfig, create_mailbox_app
from sandbox.smtp import serves as mailbox_serves

WsgiCallable = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Sandbox:
    """Every simulator of one process, and the WSGI entry point that routes between them."""

    def __init__(self, daraja: Simulator, sms: SmsSimulator, smtp: SmtpSink | None = None) -> None:
        self.daraja = daraja
        self.sms = sms
        self.smtp = smtp
        self._routes: list[tuple[Callable[[str], bool], WsgiCallable]] = [(sms.serves, sms.app)]
        if smtp is not None:
            self._routes.append((mailbox_serves, create_mailbox_app(smtp.mailbox)))

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        app = next((app for serves, app in self._routes if serves(path)), self.daraja.app)
        return app(environ, start_response)

    def close(self) -> None:
        """Stop the Daraja callback thread and the SMTP sink."""
        self.daraja.close()
        if self.smtp is not None:
            self.smtp.stop()


def create_sandbox(config: SimulatorConfig, smtp: SmtpSinkConfig | None = None) -> Sandbox:
    """Build every simulator; the SMTP sink starts listening now when ``smtp.port`` is set."""
    sink = None
    if smtp is not None and smtp.port is not None:
        sink = SmtpSink(smtp.host, smtp.port).start()
    return Sandbox(create_simulator(config), create_sms_simulator(), sink)

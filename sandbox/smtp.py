"""An SMTP sink for development and tests: takes every mail, keeps it in memory, shows it over HTTP.

Two ways to run it:

* inside the sandbox process: set ``SANDBOX_SMTP_PORT`` (``malipo sandbox --smtp-port
  8925``); the mailbox is then served by the sandbox's HTTP port under ``/_sim/smtp``;
* alone: ``python -m sandbox.smtp --port 8925 --http-port 8926`` serves the same
  ``/_sim/smtp`` control API on its own HTTP port.

Control API (JSON): ``GET /_sim/smtp/messages?to=<address>`` (mails received, oldest
first), ``POST /_sim/smtp/failures`` ``{"code": 451, "times": 1}`` (the next mails
are answered that SMTP code at DATA instead of being taken), ``POST /_sim/smtp/reset``.
No TLS and no AUTH are offered: clients must not ask for STARTTLS or log in.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import itertools
import json
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Final, TypeGuard
from wsgiref.simple_server import make_server

import falcon
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

CONTROL_PREFIX: Final = "/_sim/smtp"
WsgiApp = falcon.App[falcon.Request, falcon.Response]


@dataclass(frozen=True)
class ReceivedMail:
    """One mail as the sink took it: the envelope, the main headers and the text body."""

    id: int
    mail_from: str
    rcpt_tos: list[str]
    sender: str
    to: str
    subject: str
    message_id: str
    body: str
    received_at: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class Mailbox:
    """Received mails and armed refusals, shared under a lock by the SMTP and HTTP threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self._refusals: list[list[int]] = []  # [code, remaining]
        self._ids = itertools.count(1)

    def take(self, envelope: Envelope) -> ReceivedMail:
        mail = _parsed(next(self._ids), envelope)
        with self._lock:
            self._mails.append(mail)
        return mail

    def mails(self, to: str | None = None) -> list[ReceivedMail]:
        with self._lock:
            return [m for m in self._mails if to is None or to in m.rcpt_tos]

    def refuse(self, code: int, times: int) -> None:
        with self._lock:
            self._refusals.append([code, times])

    def take_refusal(self) -> int | None:
        """The code to answer the next mail with, if a refusal is armed (consumes one)."""
        with self._lock:
            for refusal in self._refusals:
                if refusal[1] > 0:
                    refusal[1] -= 1
                    return refusal[0]
        return None

    def reset(self) -> None:
        with self._lock:
            self._mails.clear()
            self._refusals.clear()


def _parsed(mail_id: int, envelope: Envelope) -> ReceivedMail:
    raw = envelope.content if isinstance(envelope.content, bytes) else b""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = ""
    if isinstance(message, EmailMessage):
        part = message.get_body(preferencelist=("plain",))
        body = part.get_content() if isinstance(part, EmailMessage) else ""
    return ReceivedMail(
        id=mail_id,
        mail_from=envelope.mail_from or "",
        rcpt_tos=list(envelope.rcpt_tos),
        sender=str(message.get("From", "")),
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")),
        message_id=str(message.get("Message-ID", "")),
        body=body,
        received_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )


class MailboxHandler:
    """The aiosmtpd handler: every mail goes into the mailbox unless a refusal is armed."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        code = self.mailbox.take_refusal()
        if code is not None:
            enhanced = "4.3.0 Try again later" if code < 500 else "5.7.1 Refused by the sandbox"
            return f"{code} {enhanced}"
        mail = self.mailbox.take(envelope)
        return f"250 2.0.0 Ok: queued as {mail.id}"


@dataclass(frozen=True)
class SmtpSinkConfig:
    """Where the sink listens; no port means no sink."""

    host: str = "127.0.0.1"
    port: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SmtpSinkConfig:
        """``SANDBOX_SMTP_HOST`` / ``SANDBOX_SMTP_PORT``; a bad port raises ValueError naming it."""
        env = os.environ if environ is None else environ
        raw = env.get("SANDBOX_SMTP_PORT", "").strip()
        host = env.get("SANDBOX_SMTP_HOST", "").strip() or cls.host
        if not raw:
            return cls(host=host)
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise ValueError(f"SANDBOX_SMTP_PORT must be a port number, got {raw!r}")
        return cls(host=host, port=int(raw))


class SmtpSink:
    """The SMTP server (its own thread and event loop) in front of a :class:`Mailbox`."""

    def __init__(self, host: str, port: int, mailbox: Mailbox | None = None) -> None:
        self.host, self.port = host, port
        self.mailbox = mailbox or Mailbox()
        self._controller = Controller(MailboxHandler(self.mailbox), hostname=host, port=port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# -- control API -----------------------------------------------------------------------------


class MessagesResource:
    """``GET /_sim/smtp/messages?to=<address>``: mails received, oldest first."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [mail.to_json() for mail in self._mailbox.mails(req.get_param("to"))]


class FailuresResource:
    """``POST /_sim/smtp/failures`` ``{"code": 4xx|5xx, "times": n}``: refuse the next mails."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            body = json.loads(req.bounded_stream.read() or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None
        fields = body if isinstance(body, dict) else {}
        code, times = fields.get("code"), fields.get("times", 1)
        if not (_int_in(code, 400, 599) and _int_in(times, 1, 1000)):
            raise falcon.HTTPBadRequest(
                title="Invalid failure", description='expected {"code": 400-599, "times": 1-1000}'
            )
        self._mailbox.refuse(code, times)
        resp.status = 201
        resp.media = {"code": code, "times": times}


class ResetResource:
    """``POST /_sim/smtp/reset``: forget every mail and armed refusal."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._mailbox.reset()
        resp.media = {"reset": True}


def _int_in(value: object, low: int, high: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def serves(path: str) -> bool:
    """True for the paths the mailbox's control API answers."""
    return path == CONTROL_PREFIX or path.startswith(f"{CONTROL_PREFIX}/")


def create_mailbox_app(mailbox: Mailbox) -> WsgiApp:
    """The mailbox's control API as a falcon app."""
    app: WsgiApp = falcon.App()
    app.add_route(f"{CONTROL_PREFIX}/messages", MessagesResource(mailbox))
    app.add_route(f"{CONTROL_PREFIX}/failures", FailuresResource(mailbox))
    app.add_route(f"{CONTROL_PREFIX}/reset", ResetResource(mailbox))
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m sandbox.smtp --port 8925 --http-port 8926``: the sink and its control API."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.smtp", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8925, help="SMTP port")
    parser.add_argument("--http-port", type=int, default=8926, help="control API port")
    args = parser.parse_args(argv)
    with SmtpSink(args.host, args.port) as sink:
        server = make_server(args.host, args.http_port, create_mailbox_app(sink.mailbox))
        sys.stderr.write(
            f"SMTP sink on {args.host}:{args.port}, "
            f"mails at http://{args.host}:{args.http_port}{CONTROL_PREFIX}/messages\n"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


if __name__ == "__main__":
    main()

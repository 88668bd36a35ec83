"""E-mail over SMTP with :mod:`smtplib`: one connection per message.

STARTTLS is used when ``smtp_starttls`` is set (the default); port 465 means
implicit TLS (SMTPS). The client logs in only when a username is configured.
The server's reply decides what happens next, as SMTP defines it: a 4xx reply or
a dropped connection is transient (:class:`ChannelUnavailable`), a 5xx reply is a
refusal (:class:`Delivery` with ``accepted=False``). ``provider_ref`` is the
message's ``Message-ID``.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from shared.notify.base import ChannelUnavailable, Delivery, Notice

SMTPS_PORT = 465


class SmtpEmail:
    """The ``email`` channel. Thread-safe: nothing is shared between sends."""

    channel = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        timeout_s: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self._password = password
        self.starttls = starttls
        self.timeout_s = timeout_s

    def send(self, notice: Notice) -> Delivery:
        """Send one plain-text mail to ``notice.recipient``."""
        try:
            message = self._message(notice)
        except ValueError as exc:  # a header the e-mail policy refuses (line breaks, ...)
            return Delivery(accepted=False, error=f"cannot build the message: {exc}"[:300])
        try:
            self._transmit(message)
        except smtplib.SMTPRecipientsRefused as exc:
            return _reply_outcome(min(code for code, _ in exc.recipients.values()), "recipient")
        except smtplib.SMTPResponseException as exc:
            return _reply_outcome(exc.smtp_code, _text(exc.smtp_error))
        except smtplib.SMTPNotSupportedError as exc:
            return Delivery(accepted=False, error=f"SMTP server: {exc}"[:300])
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelUnavailable(f"SMTP server unreachable: {type(exc).__name__}") from exc
        return Delivery(accepted=True, provider_ref=str(message["Message-ID"])[:100])

    def _message(self, notice: Notice) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = notice.recipient
        message["Subject"] = notice.subject or ""
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(notice.body)
        return message

    def _transmit(self, message: EmailMessage) -> None:
        if self.port == SMTPS_PORT:
            context = ssl.create_default_context()
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout_s, context=context
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with client:
            if self.starttls and self.port != SMTPS_PORT:
                client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self._password or "")
            client.send_message(message)


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def _reply_outcome(code: int, text: str) -> Delivery:
    """A 4xx SMTP reply is worth another try later; anything else refuses for good."""
    if 400 <= code < 500:
        raise ChannelUnavailable(f"SMTP {code}: {text}"[:300])
    return Delivery(accepted=False, error=f"SMTP {code}: {text}"[:300])

"""SMS through an Africa's Talking-style HTTP API (unverified against the provider's live API).

``POST {base}/version1/messaging`` with the ``apiKey`` header and the form fields
``username``, ``to`` (``+2547…``), ``message`` and, when configured, ``from``
(the sender id). A taken message answers HTTP 201 with one entry per recipient
in ``SMSMessageData.Recipients``, each with a ``statusCode``:

* 100 Processed, 101 Sent, 102 Queued — taken (``messageId`` is the provider ref);
* 401 RiskHold … 407 CouldNotRoute — refused for good: a :class:`Delivery` refusal;
* 500 InternalServerError, 501 GatewayError, 502 RejectedByGateway — transient:
  :class:`ChannelUnavailable`.

A refused ``apiKey`` (HTTP 401, a plain-text body) is a configuration problem and a
refusal, not a retry; other HTTP 5xx, 429 and network errors are transient. The
wire format is the one in the provider's public documentation, as the sandbox
simulator (``sandbox/sms``) speaks it.
"""

from __future__ import annotations

import threading
from typing import Any

import requests
import structlog

from shared.notify.base import ChannelUnavailable, Delivery, Notice

log = structlog.stdlib.get_logger(__name__)

MESSAGING_PATH = "/version1/messaging"
TAKEN = frozenset({100, 101, 102})
TRANSIENT = frozenset({500, 501, 502})


class AfricasTalkingSms:
    """The ``sms`` channel. Thread-safe: one HTTP session per thread."""

    channel = "sms"

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        api_key: str,
        sender_id: str | None,
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> None:
        self.url = base_url.rstrip("/") + MESSAGING_PATH
        self.username = username
        self._api_key = api_key
        self.sender_id = sender_id
        self.timeout = (connect_timeout_s, read_timeout_s)
        self._local = threading.local()

    def send(self, notice: Notice) -> Delivery:
        """Send one SMS to ``notice.recipient`` (``2547…`` or ``+2547…``)."""
        response = self._post(self._form(notice))
        if response.status_code == 401:
            log.error("the SMS provider refused the API key; check MALIPO_SMS_API_KEY")
            return Delivery(accepted=False, error="provider refused the credentials (HTTP 401)")
        if response.status_code == 429 or response.status_code >= 500:
            raise ChannelUnavailable(f"SMS provider answered HTTP {response.status_code}")
        if response.status_code not in (200, 201):
            return Delivery(
                accepted=False, error=f"HTTP {response.status_code}: {response.text[:200]}"
            )
        return _recipient_outcome(_first_recipient(response))

    def _form(self, notice: Notice) -> dict[str, str]:
        to = notice.recipient if notice.recipient.startswith("+") else f"+{notice.recipient}"
        form = {"username": self.username, "to": to, "message": notice.body}
        if self.sender_id:
            form["from"] = self.sender_id
        return form

    def _post(self, form: dict[str, str]) -> requests.Response:
        try:
            return self._session.post(
                self.url,
                data=form,
                headers={"apiKey": self._api_key, "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ChannelUnavailable(f"SMS provider unreachable: {type(exc).__name__}") from exc

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session


def _first_recipient(response: requests.Response) -> dict[str, Any] | None:
    """The one recipient entry of a 2xx answer, or None when the body does not say."""
    try:
        recipients = response.json()["SMSMessageData"]["Recipients"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(recipients, list) and recipients and isinstance(recipients[0], dict):
        return recipients[0]
    return None


def _recipient_outcome(recipient: dict[str, Any] | None) -> Delivery:
    if recipient is None:
        # A 2xx without a recipient: the provider took the request but says nothing of
        # the message. Re-sending could send it twice, so it is a refusal to look into.
        return Delivery(accepted=False, error="provider answered without a recipient status")
    try:
        code = int(recipient.get("statusCode", -1))
    except (TypeError, ValueError):
        code = -1
    status = str(recipient.get("status") or "unknown")[:60]
    if code in TAKEN:
        ref = recipient.get("messageId")
        return Delivery(accepted=True, provider_ref=str(ref)[:100] if ref else None)
    if code in TRANSIENT:
        raise ChannelUnavailable(f"SMS provider status {code} {status}")
    return Delivery(accepted=False, error=f"{code} {status}")

"""Alerts for the platform's operators: a signed webhook and an e-mail, as configured.

``MALIPO_OPERATOR_WEBHOOK_URL`` receives ``{"type", "timestamp", "data"}`` signed like
merchant webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` under
``MALIPO_OPERATOR_WEBHOOK_SECRET``); ``MALIPO_OPERATOR_EMAILS`` (comma-separated)
receive the text. A channel that cannot take the alert now raises
:class:`ChannelUnavailable`, so the ``notify_operators`` actor retries it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
import structlog

from shared.notify import SmtpEmail
from shared.notify.base import ChannelUnavailable, Notice, mask_email
from shared.settings import Settings
from shared.webhooks import signed_headers

log = structlog.stdlib.get_logger(__name__)


@dataclass(frozen=True)
class OperatorAlert:
    alert_id: str
    event: str
    subject: str
    text: str
    data: dict[str, Any]

    @classmethod
    def new(cls, event: str, subject: str, text: str, data: dict[str, Any]) -> OperatorAlert:
        return cls(f"alert_{uuid.uuid4().hex}", event, subject, text, data)


def operator_emails(settings: Settings) -> list[str]:
    return [a.strip() for a in (settings.operator_emails or "").split(",") if a.strip()]


def deliver(settings: Settings, alert: OperatorAlert) -> list[str]:
    """Send ``alert`` on every configured channel; the channels that took it."""
    sent = []
    if settings.operator_webhook_url:
        _post(settings, alert)
        sent.append("webhook")
    recipients = operator_emails(settings)
    if recipients and settings.smtp_host and settings.smtp_from:
        mailer = SmtpEmail(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
        )
        for recipient in recipients:
            delivery = mailer.send(Notice(recipient, alert.text, alert.subject))
            if not delivery.accepted:
                log.warning(
                    "operator e-mail refused", to=mask_email(recipient), error=delivery.error
                )
        sent.append("email")
    if not sent:
        log.warning("operator alert not sent: no operator channel configured", alert=alert.event)
    return sent


def _post(settings: Settings, alert: OperatorAlert) -> None:
    assert settings.operator_webhook_url is not None
    assert settings.operator_webhook_secret is not None  # checked at start-up
    body = json.dumps(
        {"type": alert.event, "timestamp": datetime.now(UTC).isoformat(), "data": alert.data},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    headers = signed_headers(
        [settings.operator_webhook_secret.get_secret_value()],
        alert.alert_id,
        int(time.time()),
        body,
    )
    try:
        answer = requests.post(
            settings.operator_webhook_url,
            data=body,
            headers=headers,
            timeout=(settings.gateway_connect_timeout_s, settings.gateway_read_timeout_s),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise ChannelUnavailable(f"operator webhook: {exc}") from exc
    if answer.status_code >= 300:
        raise ChannelUnavailable(f"operator webhook answered {answer.status_code}")

"""Customer notifications: SMS and e-mail channels behind one small interface, and their wording.

:func:`notifiers_from_settings` builds the configured channels of a process; a
channel whose settings are missing is simply absent (the worker records such a
notice as failed with ``channel not configured``).
"""

from __future__ import annotations

from shared.notify.base import ChannelUnavailable, Delivery, Notice, Notifier, mask_recipient
from shared.notify.email import SmtpEmail
from shared.notify.sms import AfricasTalkingSms
from shared.settings import Settings

__all__ = [
    "AfricasTalkingSms",
    "ChannelUnavailable",
    "Delivery",
    "Notice",
    "Notifier",
    "SmtpEmail",
    "mask_recipient",
    "notifiers_from_settings",
]


def notifiers_from_settings(settings: Settings) -> dict[str, Notifier]:
    """The channels these settings configure, by name (``sms``, ``email``)."""
    notifiers: dict[str, Notifier] = {}
    if settings.sms_api_key is not None and settings.sms_username:
        notifiers["sms"] = AfricasTalkingSms(
            settings.sms_api_base_url(),
            username=settings.sms_username,
            api_key=settings.sms_api_key.get_secret_value(),
            sender_id=settings.sms_sender_id,
            connect_timeout_s=settings.gateway_connect_timeout_s,
            read_timeout_s=settings.gateway_read_timeout_s,
        )
    if settings.smtp_host and settings.smtp_from:
        password = settings.smtp_password
        notifiers["email"] = SmtpEmail(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            starttls=settings.smtp_starttls,
            timeout_s=settings.gateway_read_timeout_s,
        )
    return notifiers

"""``notify_operators``: deliver an alert to the platform's operators (webhook, e-mail)."""

from __future__ import annotations

import dramatiq
import structlog

from shared.messages import NOTIFY_OPERATORS, NotifyOperators
from shared.operator_alerts import OperatorAlert, deliver
from workers.broker import POLICIES
from workers.runtime import runtime

log = structlog.stdlib.get_logger(__name__)


@dramatiq.actor(
    actor_name=NOTIFY_OPERATORS.actor_name,
    queue_name=NOTIFY_OPERATORS.queue_name,
    **POLICIES[NOTIFY_OPERATORS.actor_name].actor_options(),
)
def notify_operators(**fields: object) -> None:
    message = NotifyOperators.from_kwargs(fields)
    alert = OperatorAlert(
        message.alert_id, message.event, message.subject, message.text, message.data
    )
    channels = deliver(runtime().settings, alert)
    log.info("operator alert sent", alert=alert.event, alert_id=alert.alert_id, channels=channels)

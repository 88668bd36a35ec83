"""The simulator's side of FastShift's page: finding orders, deciding and expiring them.

Implements :class:`sandbox.hosted.HostedCheckout` for the shared page: a decision
makes the order ``completed`` or ``rejected`` (the status API says so once
``status_lag_s`` has passed) and schedules its webhooks; the browser goes back to
``callback_url`` with ``status`` and ``order_number`` (FastShift's one return URL).
"""

from __future__ import annotations

from sandbox.fastshift.state import Order, SimulatorState
from sandbox.fastshift.webhooks import Expiry, WebhookDispatcher
from sandbox.hosted import HostedOrder


class FastShiftCheckout:
    def __init__(self, state: SimulatorState, dispatcher: WebhookDispatcher) -> None:
        self.state = state
        self.dispatcher = dispatcher

    # HostedCheckout

    def order(self, order_id: str) -> HostedOrder | None:
        """The page's order by FastShift's ``order_guid`` or the merchant's ``order_number``."""
        found = self.state.find(order_id)
        if found is None:
            return None
        self.expire_if_due(found)
        return found.page

    def decide(self, order: HostedOrder, paid: bool) -> None:
        found = self.state.find(order.order_id)
        if found is not None and self.state.settle(found, paid):
            self.dispatcher.schedule_result(found, "completed" if paid else "rejected")

    def page_delay_s(self, order: HostedOrder) -> float:
        found = self.state.find(order.order_id)
        return found.plan.page_delay_s if found is not None else 0.0

    # expiry

    def registered(self, order: Order) -> None:
        """A new order: if its plan says it expires, have the timer expire it then."""
        due_at = order.expire_due_at()
        if due_at is not None:
            self.dispatcher.push(due_at, Expiry(order, self.expire_if_due))

    def expire_if_due(self, order: Order, *, force: bool = False) -> bool:
        """Expire an undecided order that is due (or now, with ``force``), webhooks and all."""
        if self.state.expire(order, force=force):
            self.dispatcher.schedule_result(order, "expired")
            return True
        return False

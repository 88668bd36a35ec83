"""The gateway's own payment page, as every hosted-page simulator shows it.

Each simulator keeps its orders and knows what "the customer paid" means on its
wire (which result URL is called, how, how often); this module is the page the
customer sees and the two ways to decide an order:

* in a browser: the gateway's page route calls :meth:`HostedPages.show`, whose
  "Pay" / "Decline" buttons post to ``/_page/{order_id}``; the simulator decides
  the order, then the browser is redirected to the order's return URL;
* without one: ``POST /_sim/orders/{order_id}/decide`` ``{"choice": "pay"|"decline"}``
  decides it the same way and answers the return URL in JSON (for fast tests).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import falcon
import jinja2

from sandbox.web import json_object

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
)
CHOICES = ("pay", "decline")


@dataclass
class HostedOrder:
    """One order on a gateway's page."""

    order_id: str
    amount: str  # as the gateway's page shows it ("5000")
    currency: str
    description: str
    success_url: str | None = None
    fail_url: str | None = None
    status: str = "pending"  # pending | paid | declined
    created_at: float = field(default_factory=time.time)
    # The simulator's own details of the order (its wire fields, ids, scenario).
    extra: dict[str, Any] = field(default_factory=dict)

    def return_url(self) -> str | None:
        return self.success_url if self.status == "paid" else self.fail_url

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "amount": self.amount,
            "currency": self.currency,
            "description": self.description,
            "status": self.status,
            "success_url": self.success_url,
            "fail_url": self.fail_url,
            "extra": self.extra,
        }


class HostedCheckout(Protocol):
    """What a simulator gives its page."""

    def order(self, order_id: str) -> HostedOrder | None: ...

    def decide(self, order: HostedOrder, paid: bool) -> None:
        """Settle the order and call the merchant's result URL as the gateway does."""
        ...

    def page_delay_s(self, order: HostedOrder) -> float:
        """How long the page takes to show (the "slow page" scenario)."""
        ...


class HostedPages:
    """The page and both ways of deciding; ``title`` and ``colour`` make each gateway's own."""

    def __init__(self, checkout: HostedCheckout, title: str, colour: str = "#e8eef7") -> None:
        self.checkout = checkout
        self.title = title
        self.colour = colour
        self._lock = threading.Lock()

    def add_routes(self, app: falcon.App[falcon.Request, falcon.Response]) -> None:
        app.add_route("/_page/{order_id}", _PageResource(self))
        app.add_route("/_sim/orders/{order_id}/decide", _DecideResource(self))

    def show(self, req: falcon.Request, resp: falcon.Response, order: HostedOrder) -> None:
        """Answer ``resp`` with the order's page (after the scenario's delay)."""
        delay = self.checkout.page_delay_s(order)
        if delay > 0:
            time.sleep(delay)
        resp.content_type = falcon.MEDIA_HTML
        resp.text = _TEMPLATES.get_template("hosted_page.html").render(
            title=self.title,
            colour=self.colour,
            order=order,
            amount=order.amount,
            currency=order.currency,
            action=f"{req.root_path}/_page/{order.order_id}",
        )

    def decide(self, order_id: str, choice: object) -> HostedOrder:
        if choice not in CHOICES:
            raise falcon.HTTPBadRequest(description="choice must be 'pay' or 'decline'")
        order = self.checkout.order(order_id)
        if order is None:
            raise falcon.HTTPNotFound(description="no such order")
        with self._lock:
            if order.status != "pending":
                return order  # decided already: a second click changes nothing
            order.status = "paid" if choice == "pay" else "declined"
        self.checkout.decide(order, choice == "pay")
        return order


class _PageResource:
    def __init__(self, pages: HostedPages) -> None:
        self.pages = pages

    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        order = self.pages.checkout.order(order_id)
        if order is None:
            raise falcon.HTTPNotFound(description="no such order")
        self.pages.show(req, resp, order)

    def on_post(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        form = falcon.uri.parse_query_string((req.context.raw_body or b"").decode())
        order = self.pages.decide(order_id, form.get("choice"))
        target = order.return_url()
        if target:
            raise falcon.HTTPSeeOther(target)
        self.pages.show(req, resp, order)


class _DecideResource:
    def __init__(self, pages: HostedPages) -> None:
        self.pages = pages

    def on_post(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        order = self.pages.decide(order_id, json_object(req).get("choice"))
        resp.media = {**order.to_json(), "return_url": order.return_url()}

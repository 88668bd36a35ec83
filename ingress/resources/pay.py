"""malipo's pay page: ``/pay/{id}`` sends the customer on, ``/pay/{id}/return`` shows the truth.

For gateways whose customers pay on the gateway's own page (``pay_page`` in their
description), the merchant sends the customer to the ``pay_url`` it got with the
payment. That page waits for the payment's next action (the worker registers the
order or signs the form) and sends the browser on: an auto-submitted form, or a
redirect, with a button when scripts are off. The gateway sends the customer back
to ``/pay/{id}/return``; Idram and Telcell, whose return URLs are typed into their
cabinets once per merchant, come back to ``/pay/return``, and the payment is the one
this browser was sent from (a cookie the pay page set).

The return page shows the payment's real state: "confirming" until a result has
been applied, then paid or not paid (with the reason, and a "try again" button
when the merchant allows it), then hands the customer to the merchant's
``success_url`` or ``failure_url``. A visit never changes money: where the gateway
has a status API it only asks for one status check (at most one per payment every
few seconds), and that check goes through the same apply path as any poll.

Every page needs the link's token (query ``t`` or the cookie): without one, or with
an expired one, the answer is a plain "link not valid" page, the same for a payment
that does not exist.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import falcon
import jinja2
import structlog

from ingress.resources.payments import CommandLimits, request_retry
from shared.db.models import Merchant, PaymentIntent
from shared.db.session import Database
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.domain.states import PaymentStatus, can_retry
from shared.gateways.base import Capability
from shared.gateways.registry import GatewayRegistry
from shared.messages import BrokerUnavailable, PollPayment, Publisher
from shared.paypage import PayLinks
from shared.ratelimit import consume

log = structlog.stdlib.get_logger(__name__)
COOKIE = "malipo_pay"
# One status check per payment per this many seconds, however often the page is reloaded.
CHECK_EVERY_S = 5
REFRESH_S = 3
HANDOVER_S = 8
RETRY_WAIT_S = 20
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=True,
)


def _render(
    resp: falcon.Response, template: str, status: str = falcon.HTTP_200, **data: Any
) -> None:
    resp.status = status
    resp.content_type = "text/html; charset=utf-8"
    resp.set_header("Cache-Control", "no-store")
    resp.set_header("Referrer-Policy", "no-referrer")
    resp.set_header("X-Frame-Options", "DENY")
    resp.text = _TEMPLATES.get_template(template).render(**data)


def _not_valid(resp: falcon.Response) -> None:
    _render(resp, "missing.html", falcon.HTTP_404)


class PayPages:
    """The three pay page routes; one instance serves them all."""

    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        gateways: GatewayRegistry,
        links: PayLinks,
        limits: CommandLimits,
    ) -> None:
        self.db = db
        self.publisher = publisher
        self.gateways = gateways
        self.links = links
        self.limits = limits
        self.secure_cookie = links.public_base_url.startswith("https://")

    # -- /pay/{id} ---------------------------------------------------------------------------

    def on_get(self, req: falcon.Request, resp: falcon.Response, payment_id: str) -> None:
        found = self._payment(req, payment_id)
        if found is None:
            if self._accepted_not_stored(req, payment_id):
                return _render(resp, "preparing.html")
            return _not_valid(resp)
        intent, merchant, token = found
        if PaymentStatus(intent.status).is_final:
            if _retry_pending(req):
                return _render(resp, "preparing.html")  # the retry's new cycle is queued
            raise falcon.HTTPSeeOther(f"/pay/{intent.id}/return?t={token}")
        resp.set_cookie(
            COOKIE,
            f"{intent.id}.{token}",
            max_age=self.links.ttl_s,
            path="/pay",
            secure=self.secure_cookie,
            http_only=True,
            same_site="Lax",
        )
        action = intent.next_action if intent.status == PaymentStatus.SUBMITTED else None
        if action is not None and not _web_address(action.get("url")):
            # Only ever send a customer to an http(s) page, whatever a gateway answered.
            log.error("next action without an http(s) URL: not shown", payment_id=str(intent.id))
            action = None
        _render(resp, "pay.html", **self._common(intent, merchant), state="paying", action=action)

    # -- /pay/{id}/return --------------------------------------------------------------------

    def on_get_return(self, req: falcon.Request, resp: falcon.Response, payment_id: str) -> None:
        found = self._payment(req, payment_id)
        if found is None:
            return _not_valid(resp)
        intent, merchant, token = found
        status = PaymentStatus(intent.status)
        checkout = intent.checkout or {}
        common = self._common(intent, merchant)
        if not status.is_final:
            if req.get_param("checked") is None:
                self._check_status(intent)
            _render(
                resp,
                "return.html",
                **common,
                state="confirming",
                heading="Confirming your payment…",
                refresh_s=REFRESH_S,
                refresh_url=f"/pay/{intent.id}/return?t={token}&checked=1",
                window_minutes=max(1, round(self._window_s(intent) / 60)),
                continue_url=None,
            )
            return
        if status == PaymentStatus.SUCCEEDED:
            _render(
                resp,
                "return.html",
                **common,
                state="paid",
                heading="Paid",
                receipt=intent.receipt,
                continue_url=checkout.get("success_url"),
                handover_s=HANDOVER_S,
            )
            return
        retry = bool((merchant.pay_page or {}).get("allow_retries")) and can_retry(status)
        _render(
            resp,
            "return.html",
            **common,
            state="failed",
            heading="Not paid",
            reason=intent.failure_message or "The payment was not completed.",
            can_retry=retry,
            retry_url=f"/pay/{intent.id}/retry?t={token}",
            continue_url=checkout.get("failure_url"),
            # With a retry offered, the customer chooses: no automatic hand-over.
            handover_s=HANDOVER_S if not retry else 0,
        )

    # -- /pay/{id}/retry ---------------------------------------------------------------------

    def on_post_retry(self, req: falcon.Request, resp: falcon.Response, payment_id: str) -> None:
        found = self._payment(req, payment_id)
        if found is None:
            return _not_valid(resp)
        intent, merchant, token = found
        if not (merchant.pay_page or {}).get("allow_retries"):
            raise falcon.HTTPSeeOther(f"/pay/{intent.id}/return?t={token}")
        try:
            request_retry(self.db, self.publisher, self.limits, intent.merchant_id, intent.id)
        except MalipoError as exc:
            log.info("pay page retry refused", payment_id=str(intent.id), code=exc.error.code)
            raise falcon.HTTPSeeOther(f"/pay/{intent.id}/return?t={token}") from None
        log.info("pay page retry requested", payment_id=str(intent.id))
        # Until the worker has opened the new cycle the payment still looks finished:
        # the pay page waits for it (a little while) instead of showing the old result.
        since = int(time.time())
        raise falcon.HTTPSeeOther(f"/pay/{intent.id}?t={token}&retrying={since}")

    # -- /pay/return (cabinet return URLs) ---------------------------------------------------

    def on_get_cabinet(self, req: falcon.Request, resp: falcon.Response) -> None:
        payment_id, token = _cookie(req)
        if not payment_id or not token:
            return _not_valid(resp)
        raise falcon.HTTPSeeOther(f"/pay/{payment_id}/return?t={token}")

    # -- helpers -----------------------------------------------------------------------------

    def _linked(self, req: falcon.Request, payment_id: str) -> tuple[uuid.UUID, str] | None:
        """The payment id and the link's token (query ``t`` or the cookie), when it is valid."""
        try:
            wanted = uuid.UUID(payment_id)
        except ValueError:
            return None
        cookie_id, cookie_token = _cookie(req)
        token = req.get_param("t") or (cookie_token if cookie_id == str(wanted) else None)
        if not token or not self.links.valid(wanted, token, datetime.now(UTC)):
            return None
        return wanted, token

    def _payment(
        self, req: falcon.Request, payment_id: str
    ) -> tuple[PaymentIntent, Merchant, str] | None:
        linked = self._linked(req, payment_id)
        if linked is None:
            return None
        wanted, token = linked
        with self.db.transaction() as session:
            intent = session.get(PaymentIntent, wanted)
            if intent is None or intent.flow != Capability.HOSTED.value:
                return None
            merchant = session.get(Merchant, intent.merchant_id)
            if merchant is None:
                return None
            session.expunge_all()
        return intent, merchant, token

    def _accepted_not_stored(self, req: falcon.Request, payment_id: str) -> bool:
        """A valid link to a payment the worker had not stored yet (it is still queued).

        Also when the worker stored it a moment ago (between the first look and this
        one): the "preparing" page reloads itself and then finds it.
        """
        linked = self._linked(req, payment_id)
        if linked is None:
            return False
        with self.db.transaction() as session:
            intent = session.get(PaymentIntent, linked[0])
            return intent is None or intent.flow == Capability.HOSTED.value

    def _common(self, intent: PaymentIntent, merchant: Merchant) -> dict[str, Any]:
        description = self.gateways.describe(intent.gateway)
        return {
            "merchant_name": merchant.name,
            "support_url": (merchant.pay_page or {}).get("support_url"),
            "reference": intent.reference,
            "amount": _shown(Money(intent.amount_minor, intent.currency)),
            "description": intent.description or intent.reference,
            "gateway_title": description.title,
        }

    def _window_s(self, intent: PaymentIntent) -> float:
        if intent.expires_at is None or intent.submitted_at is None:
            return 60.0
        return (intent.expires_at - intent.submitted_at).total_seconds()

    def _check_status(self, intent: PaymentIntent) -> None:
        """Ask for one status check where the gateway has a status API (rate-limited)."""
        if intent.status != PaymentStatus.SUBMITTED:
            return
        if not self.gateways.describe(intent.gateway).has(Capability.STATUS):
            return
        with self.db.autocommit() as conn:
            decision = consume(
                conn, f"return-check:{intent.id}", 1, CHECK_EVERY_S, datetime.now(UTC)
            )
        if not decision.allowed:
            return
        try:
            self.publisher.send(PollPayment(payment_id=str(intent.id), once=True))
        except BrokerUnavailable as exc:
            log.warning("return page status check not queued", error=str(exc), outage="rabbitmq")
            return
        log.info("return page asked for a status check", payment_id=str(intent.id))


def _cookie(req: falcon.Request) -> tuple[str, str]:
    """The payment id and token the pay page left in this browser ("" when none)."""
    payment_id, _, token = (req.cookies.get(COOKIE) or "").partition(".")
    return payment_id, token


def _retry_pending(req: falcon.Request) -> bool:
    """A retry was asked for moments ago (``retrying`` is when): its cycle may not be open yet."""
    since = req.get_param("retrying") or ""
    return since.isascii() and since.isdigit() and 0 <= time.time() - int(since) < RETRY_WAIT_S


def _web_address(url: object) -> bool:
    return isinstance(url, str) and urlsplit(url).scheme in ("http", "https")


def _shown(money: Money) -> str:
    """``5000 AMD``: whole units without decimals, others with their exponent."""
    major = money.to_decimal()
    text = f"{major:,.0f}" if major == major.to_integral_value() else f"{major:,}"
    return f"{text} {money.currency}"

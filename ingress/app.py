"""The ingress application: authenticate, check shape, enqueue, answer. Nothing else.

``create_app`` takes its collaborators, so tests build it with real ones pointed
at test resources; ``wsgi.py`` builds them from the environment for gunicorn.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid

import falcon
import structlog

from ingress import errors
from ingress.auth import Authenticator
from ingress.resources.analytics import AnalyticsResource
from ingress.resources.callbacks import CallbackResource, RefusalFront
from ingress.resources.customers import CustomerResource
from ingress.resources.dead_letters import DeadLettersResource
from ingress.resources.health import HealthResource, ReadinessResource
from ingress.resources.ops import OpsEventsResource, RefusedCallbacksResource
from ingress.resources.pay import PayPages
from ingress.resources.payments import (
    CommandLimits,
    PaymentDesk,
    PaymentResource,
    PaymentsResource,
    RetryResource,
)
from ingress.resources.reconciliations import (
    ReconciliationResource,
    ReconciliationsResource,
    ResolveItemResource,
)
from ingress.resources.redemptions import RedeemResource, RedemptionsResource
from ingress.resources.transfers import (
    OpsTransferResource,
    PayoutResource,
    PayoutsResource,
    RefundResource,
    RefundsResource,
    TransferCommands,
)
from ingress.resources.webhooks import (
    OpsWebhooksResource,
    WebhookReplayResource,
    WebhookResendResource,
)
from ingress.spool import CallbackSpool
from ingress.waiting import ChangeWatcher, WaitSlots
from shared.db.session import Database
from shared.domain import errors as errors_catalogue
from shared.domain.errors import MalipoError
from shared.gateways.registry import GatewayRegistry
from shared.gateways.transfers import TransferKind
from shared.messages import Publisher
from shared.paypage import PayLinks
from shared.redemptions import RedemptionRules
from shared.settings import Settings

log = structlog.stdlib.get_logger("ingress.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class RequestContext:
    """Bind a request id (the caller's, if sane) for every log line; log one access line."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        structlog.contextvars.clear_contextvars()
        given = req.get_header("X-Request-ID") or ""
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        req.context.request_id = request_id
        req.context.started = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=request_id)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        resp.set_header("X-Request-ID", str(req.context.get("request_id", "")))
        started = float(req.context.get("started") or time.perf_counter())
        if req.context.get("refused_callback"):
            # Counted instead (ingress/refusals.py): a flood must not become a log flood.
            structlog.contextvars.clear_contextvars()
            return
        # The route template, never the path: callback paths carry secrets.
        log.info(
            "request",
            method=req.method,
            route=req.uri_template or "(no route)",
            status=resp.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        structlog.contextvars.clear_contextvars()


class RequestLimits:
    """Refuse oversized requests with catalogue codes before any resource runs.

    gunicorn's own limits are set above these (see gunicorn_conf), so that it is
    this middleware, answering in JSON, that refuses a request that is merely too large.
    """

    def __init__(self, max_headers: int, max_header_bytes: int, max_uri_bytes: int = 4096) -> None:
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self.max_uri_bytes = max_uri_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if len(req.relative_uri) > self.max_uri_bytes:
            raise MalipoError(errors_catalogue.URI_TOO_LONG)
        headers = req.headers
        if len(headers) > self.max_headers:
            raise MalipoError(
                errors_catalogue.HEADERS_TOO_LARGE, f"at most {self.max_headers} headers"
            )
        if any(len(name) + len(value) > self.max_header_bytes for name, value in headers.items()):
            raise MalipoError(
                errors_catalogue.HEADERS_TOO_LARGE,
                f"a header is longer than {self.max_header_bytes} bytes",
            )


def create_app(
    settings: Settings,
    *,
    db: Database,
    publisher: Publisher,
    gateways: GatewayRegistry,
    spool: CallbackSpool | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """The ingress; ``spool`` defaults to one in ``settings.spool_dir`` (drained by wsgi.py)."""
    return _build(settings, db=db, publisher=publisher, gateways=gateways, spool=spool)[0]


def create_wsgi(
    settings: Settings,
    *,
    db: Database,
    publisher: Publisher,
    gateways: GatewayRegistry,
    spool: CallbackSpool | None = None,
) -> RefusalFront:
    """What gunicorn serves: the ingress behind the refused-callback front (no Falcon cost
    for a callback over its source's refusal budget)."""
    app, callbacks = _build(settings, db=db, publisher=publisher, gateways=gateways, spool=spool)
    return RefusalFront(app, callbacks)


def _build(
    settings: Settings,
    *,
    db: Database,
    publisher: Publisher,
    gateways: GatewayRegistry,
    spool: CallbackSpool | None,
) -> tuple[falcon.App[falcon.Request, falcon.Response], CallbackResource]:
    spool = spool or CallbackSpool.from_settings(settings)
    limits = RequestLimits(settings.max_headers, settings.max_header_bytes)
    middleware: list[RequestContext | RequestLimits] = [RequestContext(), limits]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    # ASCII-only JSON: any text echoed back (a field name, say) is escaped, whatever it holds.
    json_handler = falcon.media.JSONHandler(dumps=functools.partial(json.dumps, ensure_ascii=True))
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    errors.install(app)
    auth = Authenticator(db, settings.secret_key.get_secret_value().encode())

    callbacks = CallbackResource(db, publisher, gateways, spool, settings)
    links = PayLinks.from_settings(settings)
    limits_ = CommandLimits.from_settings(settings)
    desk = PaymentDesk(db, publisher, gateways, limits_, links)
    app.add_route("/v1/payments", PaymentsResource(desk, auth))
    app.add_route(
        "/v1/payments/{payment_id}",
        PaymentResource(
            db,
            auth,
            settings.max_wait_s,
            gateways,
            links,
            WaitSlots(settings.waiting_requests_limit(), settings.max_waits_per_key),
            ChangeWatcher(settings.database_url.get_secret_value()),
        ),
    )
    rules = RedemptionRules(settings.redeem_window_s, settings.redeem_tolerance_minor)
    redeemer = RedeemResource(db, auth, rules)
    app.add_route("/v1/payments/{payment_id}/redeem", redeemer)
    app.add_route("/v1/redemptions", RedemptionsResource(redeemer, gateways))
    app.add_route(
        "/v1/payments/{payment_id}/retry",
        RetryResource(desk, auth),
    )
    app.add_route("/v1/customers/{phone}", CustomerResource(db, auth))
    pay = PayPages(db, publisher, gateways, links, limits_)
    app.add_route("/pay/return", pay, suffix="cabinet")
    app.add_route("/pay/{payment_id}", pay)
    app.add_route("/pay/{payment_id}/return", pay, suffix="return")
    app.add_route("/pay/{payment_id}/retry", pay, suffix="retry")
    commands = TransferCommands(db, auth, publisher, settings.max_body_bytes)
    app.add_route("/v1/payments/{payment_id}/refunds", RefundsResource(commands))
    app.add_route("/v1/refunds/{refund_id}", RefundResource(commands))
    app.add_route("/v1/payouts", PayoutsResource(commands))
    payouts = PayoutResource(commands)
    app.add_route("/v1/payouts/{payout_id}", payouts)
    app.add_route("/v1/payouts/{payout_id}/approve", payouts, suffix="approve")
    app.add_route("/v1/payouts/{payout_id}/reject", payouts, suffix="reject")
    for kind in TransferKind:
        app.add_route(
            f"/ops/{kind.value}s/{{transfer_id}}/complete",
            OpsTransferResource(commands, kind),
            suffix="complete",
        )
    app.add_route("/callbacks/{gateway}/{secret}", callbacks)
    app.add_route("/callbacks/{gateway}/{secret}/{attempt_ref}", callbacks)
    app.add_route("/ops/events", OpsEventsResource(db, auth, gateways.names()))
    app.add_route("/ops/refused-callbacks", RefusedCallbacksResource(db, auth, gateways.names()))
    analytics = AnalyticsResource(db, auth, gateways.names())
    app.add_route("/ops/analytics", analytics)
    app.add_route("/ops/analytics.csv", analytics, suffix="csv")
    app.add_route("/ops/reconciliations", ReconciliationsResource(db, auth, publisher, gateways))
    run = ReconciliationResource(db, auth)
    app.add_route("/ops/reconciliations/{run_id}", run)
    app.add_route("/ops/reconciliations/{run_id}.csv", run, suffix="csv")
    app.add_route(
        "/ops/reconciliations/items/{item_id}/resolve", ResolveItemResource(db, auth, publisher)
    )
    app.add_route("/ops/webhooks", OpsWebhooksResource(db, auth))
    app.add_route(
        "/ops/webhooks/replay",
        WebhookReplayResource(db, auth, publisher, settings.max_body_bytes),
    )
    app.add_route("/ops/webhooks/{event_id}/resend", WebhookResendResource(db, auth, publisher))
    dead_letters = DeadLettersResource(db, auth, publisher)
    one = "/ops/dead-letters/{dead_letter_id:int(min=1, max=9223372036854775807)}"
    app.add_route("/ops/dead-letters", dead_letters)
    app.add_route(one, dead_letters, suffix="one")
    app.add_route(f"{one}/replay", dead_letters, suffix="replay")
    app.add_route(f"{one}/discard", dead_letters, suffix="discard")
    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", ReadinessResource(db, publisher, spool))
    return app, callbacks

"""The ingress application: authenticate, check shape, enqueue, answer. Nothing else.

``create_app`` takes its collaborators, so tests build it with real ones pointed
at test resources; ``wsgi.py`` builds them from the environment for gunicorn.
"""

from __future__ import annotations

import re
import time
import uuid

import falcon
import structlog

from ingress import errors
from ingress.auth import Authenticator
from ingress.resources.callbacks import CallbackResource
from ingress.resources.health import HealthResource, ReadinessResource
from ingress.resources.payments import PaymentResource, PaymentsResource
from shared.db.session import Database
from shared.gateways.registry import GatewayRegistry
from shared.messages import Publisher
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
        # The route template, never the path: callback paths carry secrets.
        log.info(
            "request",
            method=req.method,
            route=req.uri_template or "(no route)",
            status=resp.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        structlog.contextvars.clear_contextvars()


def create_app(
    settings: Settings, *, db: Database, publisher: Publisher, gateways: GatewayRegistry
) -> falcon.App[falcon.Request, falcon.Response]:
    app = falcon.App(middleware=[RequestContext()])
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    auth = Authenticator(db, settings.secret_key.get_secret_value().encode())

    callbacks = CallbackResource(db, publisher, gateways)
    app.add_route(
        "/v1/payments", PaymentsResource(db, auth, publisher, gateways, settings.max_body_bytes)
    )
    app.add_route("/v1/payments/{payment_id}", PaymentResource(db, auth, settings.max_wait_s))
    app.add_route("/callbacks/{gateway}/{secret}", callbacks)
    app.add_route("/callbacks/{gateway}/{secret}/{attempt_ref}", callbacks)
    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", ReadinessResource(db, publisher))
    return app

"""Errors to HTTP, in one place: every refusal is ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from typing import Any

import falcon
import structlog

from shared.domain import errors
from shared.domain.errors import ErrorCode, MalipoError, RateLimited, TransientError
from shared.messages import BrokerUnavailable

log = structlog.stdlib.get_logger(__name__)

_BY_STATUS = {
    400: errors.INVALID_REQUEST,
    401: errors.UNAUTHORIZED,
    403: errors.FORBIDDEN,
    404: errors.NOT_FOUND,
    405: errors.METHOD_NOT_ALLOWED,
    413: errors.PAYLOAD_TOO_LARGE,
    414: errors.URI_TOO_LONG,
    415: errors.UNSUPPORTED_MEDIA_TYPE,
    431: errors.HEADERS_TOO_LARGE,
}


def error_body(
    error: ErrorCode, message: str | None = None, facts: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": message or error.message, **(facts or {})}}


def respond_with(
    resp: falcon.Response,
    error: ErrorCode,
    message: str | None = None,
    facts: dict[str, Any] | None = None,
) -> None:
    resp.status = falcon.code_to_http_status(error.http_status)
    resp.media = error_body(error, message, facts)


def handle_malipo_error(
    req: falcon.Request, resp: falcon.Response, exc: MalipoError, params: dict[str, Any]
) -> None:
    respond_with(resp, exc.error, exc.detail, exc.facts)
    if isinstance(exc, RateLimited):
        resp.set_header("Retry-After", str(exc.retry_after_s))
    elif exc.error.http_status == 503:
        resp.set_header("Retry-After", "5")


def handle_http_error(
    req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError, params: dict[str, Any]
) -> None:
    """Falcon's own refusals (routing, bad headers) in our shape and codes."""
    status = int(exc.status_code)
    error = _BY_STATUS.get(
        status, errors.INVALID_REQUEST if status < 500 else errors.INTERNAL_ERROR
    )
    resp.status = exc.status
    resp.media = error_body(error, exc.description if status == 400 and exc.description else None)
    resp.set_headers(exc.headers or {})


def handle_transient(
    req: falcon.Request, resp: falcon.Response, exc: TransientError, params: dict[str, Any]
) -> None:
    """PostgreSQL or RabbitMQ unreachable for now: nothing was done; the caller retries."""
    service = "rabbitmq" if isinstance(exc, BrokerUnavailable) else "postgresql"
    log.warning(
        "request refused: a dependency is unavailable", error=str(exc)[:300], outage=service
    )
    respond_with(resp, errors.SERVICE_UNAVAILABLE)
    resp.set_header("Retry-After", "5")


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    log.exception("unhandled error", method=req.method, route=req.uri_template)
    respond_with(resp, errors.INTERNAL_ERROR)


def install(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    # Falcon picks the most specific handler registered for an exception's class.
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(MalipoError, handle_malipo_error)
    app.add_error_handler(TransientError, handle_transient)

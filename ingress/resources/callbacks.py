"""``POST /callbacks/{gateway}/{secret}[/{attempt_ref}]``: authenticate, enqueue, acknowledge."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import falcon
import structlog

from shared.db.session import Database
from shared.domain.errors import SERVICE_UNAVAILABLE, MalipoError
from shared.gateways.base import InboundCallback
from shared.gateways.registry import GatewayRegistry
from shared.merchants import credential_for_callback_secret
from shared.messages import ApplyCallback, BrokerUnavailable, Publisher

log = structlog.stdlib.get_logger(__name__)
MAX_CALLBACK_BYTES = 65_536
_FORWARDED_HEADERS = ("content-type", "user-agent", "businessshortcode", "x-forwarded-for")


class CallbackResource:
    def __init__(self, db: Database, publisher: Publisher, gateways: GatewayRegistry) -> None:
        self.db = db
        self.publisher = publisher
        self.gateways = gateways

    def on_post(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        gateway: str,
        secret: str,
        attempt_ref: str | None = None,
    ) -> None:
        received_at = datetime.now(UTC)
        if gateway not in self.gateways.names() or len(secret) > 128:
            raise falcon.HTTPNotFound()
        adapter = self.gateways.get(gateway)
        with self.db.transaction() as session:
            credential = credential_for_callback_secret(session, gateway, secret)
            merchant_id = credential.merchant_id if credential else None
            expected_hash = credential.callback_secret_hash if credential else "0" * 64
        body = req.bounded_stream.read(MAX_CALLBACK_BYTES + 1)
        headers = {k.lower(): v for k, v in req.headers.items() if k.lower() in _FORWARDED_HEADERS}
        inbound = InboundCallback(
            body=body, headers=headers, remote_addr=req.remote_addr, path_secret=secret
        )
        if merchant_id is None or not adapter.authenticate_callback(expected_hash, inbound):
            log.warning("callback refused", gateway=gateway, remote_addr=req.remote_addr)
            raise falcon.HTTPNotFound()
        if len(body) > MAX_CALLBACK_BYTES:
            raise falcon.HTTPPayloadTooLarge()
        message = ApplyCallback(
            gateway=gateway,
            merchant_id=str(merchant_id),
            body_b64=base64.b64encode(body).decode("ascii"),
            headers=headers,
            received_at=received_at.isoformat(),
            remote_addr=req.remote_addr,
            attempt_ref=attempt_ref[:64] if attempt_ref else None,
        )
        try:
            self.publisher.send(message)
        except BrokerUnavailable as exc:
            log.error("callback not enqueued: broker unavailable", gateway=gateway, error=str(exc))
            raise MalipoError(SERVICE_UNAVAILABLE) from exc
        log.info("callback accepted", gateway=gateway, bytes=len(body))
        resp.media = adapter.acknowledgement()

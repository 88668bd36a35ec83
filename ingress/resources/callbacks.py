"""``/callbacks/{gateway}/{secret}[/{attempt_ref}]``: authenticate, enqueue, acknowledge.

``{gateway}`` is a gateway's public path segment (``daraja``: Safaricom refuses
CallBackURLs that say ``mpesa``), its name, or a former name. GET and POST are
both callbacks: TouchPay reports in a query string.

Checks, in order: the path secret (by its hash, in constant time), the
merchant's source-IP allowlist (the socket peer, or what a trusted proxy says),
the merchant's signature requirement, then the gateway's own proof (IntaSend's
challenge, InTouch's Basic credentials) through its callback reader. Every
refusal is a bare 404 whatever the reason, and is recorded for operators. An
accepted callback is acknowledged, in the form its gateway expects, only once
RabbitMQ confirmed it, or once it is fsynced in the local spool when RabbitMQ
is down: Daraja never sends it again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network
from typing import Any

import falcon
import structlog
from sqlalchemy.exc import SQLAlchemyError

from ingress.net import client_address
from ingress.policy_cache import StaleWhileUnavailableCache
from ingress.spool import CallbackSpool
from shared.callback_auth import SIGNATURE_HEADER, Refusal, check_signature, ip_allowed
from shared.db.session import Database
from shared.gateways import catalogue
from shared.gateways.base import (
    CallbackMalformed,
    CallbackReader,
    Capability,
    InboundCallback,
    Precheck,
    PrecheckReader,
)
from shared.gateways.description import sha256_verifier
from shared.gateways.registry import GatewayRegistry
from shared.merchants import credential_for_callback_secret
from shared.messages import (
    ActorSpec,
    ApplyCallback,
    BrokerUnavailable,
    Publisher,
    RecordRefusedCallback,
    current_log_options,
)
from shared.payments import bill_is_payable
from shared.settings import Settings, parse_networks

log = structlog.stdlib.get_logger(__name__)
MAX_CALLBACK_BYTES = 65_536
MAX_QUERY_BYTES = 4096


@dataclass(frozen=True)
class CallbackPolicy:
    """What the ingress needs to know of the merchant behind a callback secret."""

    merchant_id: Any
    secret_hash: str
    ip_allowlist: list[str] | None
    require_signature: bool
    verifiers: dict[str, str]


@dataclass(frozen=True)
class SigningConfig:
    secret: bytes | None
    tolerance_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningConfig:
        secret = settings.callback_signing_secret
        return cls(
            secret.get_secret_value().encode() if secret else None,
            settings.callback_signature_tolerance_s,
        )


class CallbackResource:
    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        gateways: GatewayRegistry,
        spool: CallbackSpool,
        settings: Settings,
    ) -> None:
        self.db = db
        self.publisher = publisher
        self.gateways = gateways
        self.spool = spool
        self.signing = SigningConfig.from_settings(settings)
        self.policies: StaleWhileUnavailableCache[CallbackPolicy | None] = (
            StaleWhileUnavailableCache(ttl_s=settings.callback_policy_cache_s)
        )
        self.trusted_proxies: list[IPv4Network | IPv6Network] = parse_networks(
            settings.trusted_proxies
        )

    def on_post(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        gateway: str,
        secret: str,
        attempt_ref: str | None = None,
    ) -> None:
        received_at = datetime.now(UTC)
        description = catalogue.for_callback_segment(gateway)
        if (
            description is None
            or not description.has(Capability.CALLBACKS)
            or len(req.query_string) > MAX_QUERY_BYTES
        ):
            raise falcon.HTTPNotFound()
        body = req.bounded_stream.read(MAX_CALLBACK_BYTES + 1)
        client_ip = client_address(
            req.remote_addr, req.get_header("X-Forwarded-For"), self.trusted_proxies
        )
        reader = self.gateways.reader(description.name)
        inbound = InboundCallback(
            method=req.method,
            query_string=req.query_string,
            body=body,
            headers={k.lower(): v for k, v in req.headers.items()},
            remote_addr=client_ip,
            path_secret=secret,
        )
        policy = self._policy(description.name, secret)
        refusal = self._check(reader, policy, inbound, req)
        if refusal is not None:
            self._refuse(description.name, refusal, body, client_ip, received_at, policy)
            raise falcon.HTTPNotFound()
        assert policy is not None  # _check refuses an unknown secret
        if isinstance(reader, PrecheckReader) and self._answer_precheck(
            description.name, reader, policy, inbound, resp
        ):
            return
        message = ApplyCallback(
            gateway=description.name,
            merchant_id=str(policy.merchant_id),
            body_b64=base64.b64encode(body).decode("ascii"),
            headers=description.keep_headers(inbound.headers),
            received_at=received_at.isoformat(),
            remote_addr=client_ip,
            attempt_ref=attempt_ref[:64] if attempt_ref else None,
            method=req.method,
            query_string=req.query_string,
        )
        self._enqueue_or_spool(message)
        reply = reader.acknowledgement(inbound)
        resp.status = falcon.code_to_http_status(reply.status)
        resp.content_type = reply.content_type
        resp.data = reply.body

    on_get = on_post

    def _answer_precheck(
        self,
        gateway: str,
        reader: PrecheckReader,
        policy: CallbackPolicy,
        inbound: InboundCallback,
        resp: falcon.Response,
    ) -> bool:
        """Answer a gateway asking whether a bill may be paid; False when this is no precheck.

        Read-only and synchronous (the gateway waits for the answer before it takes
        the customer's money); nothing is enqueued. Anything doubtful is a "no": a
        refused precheck costs the customer a retry, a wrong "yes" could take money
        for a bill that cannot be credited.
        """
        try:
            question = reader.precheck(inbound)
        except CallbackMalformed as exc:
            log.warning("precheck malformed: refused", gateway=gateway, error=str(exc))
            good = False
        else:
            if question is None:
                return False
            good = self._bill_is_good(gateway, policy, question)
            log.info(
                "precheck answered",
                gateway=gateway,
                gateway_ref=question.gateway_ref,
                amount=question.amount.amount_minor,
                payable=good,
            )
        reply = reader.precheck_reply(good)
        resp.status = falcon.code_to_http_status(reply.status)
        resp.content_type = reply.content_type
        resp.data = reply.body
        return True

    def _bill_is_good(self, gateway: str, policy: CallbackPolicy, question: Precheck) -> bool:
        expected_account = policy.verifiers.get("account")
        if expected_account is not None and not hmac.compare_digest(
            sha256_verifier(question.account or ""), expected_account
        ):
            return False
        try:
            with self.db.transaction() as session:
                return bill_is_payable(
                    session,
                    policy.merchant_id,
                    gateway,
                    question.gateway_ref,
                    question.amount,
                    datetime.now(UTC),
                )
        except SQLAlchemyError as exc:
            log.warning(
                "precheck refused: database unavailable", error=str(exc), outage="postgresql"
            )
            return False

    def _policy(self, gateway: str, secret: str) -> CallbackPolicy | None:
        if len(secret) > 128:
            return None
        key = (gateway, hashlib.sha256(secret.encode()).hexdigest())
        return self.policies.get(key, lambda: self._load_policy(gateway, secret))

    def _load_policy(self, gateway: str, secret: str) -> CallbackPolicy | None:
        with self.db.transaction() as session:
            row = credential_for_callback_secret(session, gateway, secret)
            if row is None or not row.enabled:
                return None  # a disabled gateway takes no callbacks: refused like a stranger
            return CallbackPolicy(
                row.merchant_id,
                row.callback_secret_hash,
                row.ip_allowlist,
                row.require_signature,
                dict(row.callback_verifiers or {}),
            )

    def _check(
        self,
        reader: CallbackReader,
        policy: CallbackPolicy | None,
        inbound: InboundCallback,
        req: falcon.Request,
    ) -> str | None:
        """None when the callback may be enqueued, else the reason it is refused."""
        # Compare even for an unknown secret, so both answers take the same time.
        presented = hashlib.sha256(inbound.path_secret.encode()).hexdigest()
        expected = policy.secret_hash if policy else "0" * 64
        if not hmac.compare_digest(presented, expected) or policy is None:
            return Refusal.UNKNOWN_SECRET
        if len(inbound.body) > MAX_CALLBACK_BYTES:
            return Refusal.BODY_TOO_LARGE
        client_ip = inbound.remote_addr
        if policy.ip_allowlist is not None and not ip_allowed(client_ip, policy.ip_allowlist):
            return Refusal.IP_NOT_ALLOWED
        if policy.require_signature:
            if self.signing.secret is None:
                log.error("signed callbacks required, MALIPO_CALLBACK_SIGNING_SECRET unset")
                return Refusal.SIGNING_NOT_CONFIGURED
            signature = check_signature(
                req.get_header(SIGNATURE_HEADER),
                inbound.body,
                self.signing.secret,
                now=time.time(),
                tolerance_s=self.signing.tolerance_s,
            )
            if signature is not None:
                return signature
        return reader.authenticate_callback(policy.verifiers, inbound)

    def _refuse(
        self,
        gateway: str,
        refusal: str,
        body: bytes,
        client_ip: str | None,
        received_at: datetime,
        policy: CallbackPolicy | None,
    ) -> None:
        log.warning("callback refused", gateway=gateway, reason=str(refusal), remote_addr=client_ip)
        record = RecordRefusedCallback(
            gateway=gateway,
            reason=str(refusal),
            body_sha256=hashlib.sha256(body).hexdigest(),
            body_bytes=len(body),
            received_at=received_at.isoformat(),
            remote_addr=client_ip,
            merchant_id=str(policy.merchant_id) if policy else None,
        )
        try:
            self.publisher.send(record)
        except BrokerUnavailable:
            log.warning(
                "refused callback not recorded: broker unavailable",
                reason=str(refusal),
                outage="rabbitmq",
            )

    def _enqueue_or_spool(self, message: ApplyCallback) -> None:
        try:
            self.publisher.send(message)
        except BrokerUnavailable as exc:
            self.spool.append(spool_entry(message.spec, message.to_kwargs()))
            log.warning(
                "broker unavailable: callback spooled",
                error=str(exc),
                depth=self.spool.depth(),
                outage="rabbitmq",
            )
            return
        log.info("callback accepted", gateway=message.gateway)


def spool_entry(spec: ActorSpec, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {
        "actor": spec.actor_name,
        "queue": spec.queue_name,
        "kwargs": kwargs,
        "options": current_log_options(),
    }


def publish_spooled(publisher: Publisher) -> Any:
    """The drainer's publish function: re-enqueue a spool entry exactly as it was built."""

    def publish(entry: dict[str, Any]) -> None:
        publisher.enqueue(
            ActorSpec(entry["actor"], entry["queue"]), entry["kwargs"], options=entry["options"]
        )

    return publish

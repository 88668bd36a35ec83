"""``/callbacks/{gateway}/{secret}[/{attempt_ref}]``: authenticate, enqueue, acknowledge.

``{gateway}`` is a gateway's public path segment (``daraja``: Safaricom refuses
CallBackURLs that say ``mpesa``), its name, or a former name. GET and POST are
both callbacks: TouchPay reports in a query string.

Checks, in order: the path secret (by its hash, in constant time), the
merchant's source-IP allowlist (the socket peer, or what a trusted proxy says),
the merchant's signature requirement, then the gateway's own proof (IntaSend's
challenge, InTouch's Basic credentials) through its callback reader. Every
refusal is a bare 404 whatever the reason, and is counted for operators (per
minute, source and reason: ``ingress/refusals.py``). A source that keeps being
refused, and whose secret the process has never seen work, is answered 429 before
any database read. An accepted callback is acknowledged, in the form its gateway expects, only once
RabbitMQ confirmed it, or once it is fsynced in the local spool when RabbitMQ
is down: Daraja never sends it again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network
from typing import Any

import falcon
import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ingress.errors import error_body
from ingress.net import client_address
from ingress.policy_book import Changes, PolicyBook
from ingress.policy_cache import StaleWhileUnavailableCache
from ingress.refusals import RefusalLimiter, RefusalReporter, RefusalTally
from ingress.spool import CallbackSpool
from shared.callback_auth import SIGNATURE_HEADER, Refusal, check_signature, ip_allowed
from shared.db.models import GatewayCredential
from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import RateLimited
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
    CountRefusedCallbacks,
    Publisher,
    current_log_options,
)
from shared.payments import bill_is_payable
from shared.settings import Settings, parse_networks

log = structlog.stdlib.get_logger(__name__)
MAX_CALLBACK_BYTES = 65_536
MAX_QUERY_BYTES = 4096
TOO_MANY_REFUSALS = "too many refused callbacks from this source"


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
        self.policies: StaleWhileUnavailableCache[CallbackPolicy] = StaleWhileUnavailableCache(
            ttl_s=settings.callback_policy_cache_s,
            max_entries=settings.callback_policy_cache_entries,
            max_missing=settings.callback_policy_cache_entries,
        )
        self.limiter = RefusalLimiter(
            settings.callback_refusals_per_source_per_min,
            settings.callback_refusals_global_per_min,
        )
        self.refusals = RefusalTally()
        self.book: PolicyBook[CallbackPolicy] = PolicyBook(
            self._load_changes,
            refresh_s=settings.callback_policy_cache_s,
            max_entries=settings.callback_policy_cache_entries,
        )
        self.reporter = RefusalReporter(
            self.refusals,
            lambda buckets: publisher.send(CountRefusedCallbacks(buckets=buckets)),
            settings.callback_refusal_report_s,
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
        client_ip = client_address(
            req.remote_addr, req.get_header("X-Forwarded-For"), self.trusted_proxies
        )
        self.book.refresh_if_due()
        self._within_refusal_budget(req, description.name, secret, client_ip)
        body = req.bounded_stream.read(MAX_CALLBACK_BYTES + 1)
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
            req.context.refused_callback = True
            self._refuse(description.name, refusal, body, client_ip, received_at, policy)
            raise falcon.HTTPNotFound()
        assert policy is not None  # _check refuses an unknown secret
        prechecks = self.gateways.prechecker(description.name)
        if prechecks is not None and self._answer_precheck(
            description.name, prechecks, policy, inbound, resp
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

    @staticmethod
    def _policy_key(gateway: str, secret: str) -> tuple[str, str]:
        return gateway, hashlib.sha256(secret.encode()).hexdigest()

    def _within_refusal_budget(
        self, req: falcon.Request, gateway: str, secret: str, client_ip: str | None
    ) -> None:
        retry_after = self.over_refusal_budget(gateway, secret, client_ip)
        if retry_after is not None:
            req.context.refused_callback = True
            raise RateLimited(retry_after, TOO_MANY_REFUSALS)

    def over_refusal_budget(self, gateway: str, secret: str, client_ip: str | None) -> int | None:
        """Seconds to wait when this source (or this process) is out of refusals, else None.

        Only for a secret this process does not know: a known merchant's callbacks
        never wait on a flood's budget, and it costs no I/O to tell them apart. An
        answer over budget is counted as a ``rate_limited`` refusal.
        """
        if len(secret) <= 128:
            key = self._policy_key(gateway, secret)
            if self.book.knows(key) or self.policies.known(key):
                return None
        decision = self.limiter.check(client_ip or "unknown")
        if decision.allowed:
            return None
        self.refusals.add(gateway=gateway, reason="rate_limited", source=client_ip)
        self.reporter.ensure_running()
        return decision.retry_after_s

    def front_refusal(
        self, segment: str, secret: str, peer: str | None, forwarded_for: str | None
    ) -> int | None:
        """:meth:`over_refusal_budget` from the raw request, for :class:`RefusalFront`."""
        description = catalogue.for_callback_segment(segment)
        if description is None or not description.has(Capability.CALLBACKS):
            return None  # the app answers 404 for it, as for any unknown path
        client_ip = client_address(peer, forwarded_for, self.trusted_proxies)
        if len(secret) <= 128 and not self.book.knows(self._policy_key(description.name, secret)):
            self.book.refresh_if_due()  # a merchant made a moment ago is not refused by the front
        return self.over_refusal_budget(description.name, secret, client_ip)

    def _policy(self, gateway: str, secret: str) -> CallbackPolicy | None:
        """The merchant's policy from the book, else from PostgreSQL (one lookup, cached).

        A miss is looked up rather than refused: the book may be a beat behind a merchant
        made or a secret rotated a moment ago. What a miss may cost is bounded by the
        refusal budget, spent before this is reached.
        """
        if len(secret) > 128:
            return None
        key = self._policy_key(gateway, secret)
        policy = self.book.get(key)
        if policy is not None:
            return policy
        return self.policies.get(key, lambda: self._load_policy(gateway, secret))

    def _load_changes(self, since: datetime | None, limit: int) -> Changes[CallbackPolicy]:
        """Enabled credentials (all, or every one changed after ``since``), as the book wants."""
        with self.db.transaction() as session:
            as_of = session.scalar(select(func.now()))
            query = select(GatewayCredential)
            if since is None:
                query = query.where(GatewayCredential.enabled.is_(True))
            else:
                query = query.where(GatewayCredential.updated_at > since)
            rows = session.scalars(
                query.order_by(GatewayCredential.updated_at.desc()).limit(limit)
            ).all()
        assert as_of is not None
        return Changes(
            [(row, _policy_of(row)) for row in rows[: limit - 1]], as_of, len(rows) < limit
        )

    def _load_policy(self, gateway: str, secret: str) -> CallbackPolicy | None:
        with self.db.transaction() as session:
            row = credential_for_callback_secret(session, gateway, secret)
            if row is None or not row.enabled:
                return None  # a disabled gateway takes no callbacks: refused like a stranger
            return _policy_of(row)

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
        """Count the refusal (reported, and logged in sum, every few seconds); spend the budget."""
        log.debug("callback refused", gateway=gateway, reason=str(refusal), remote_addr=client_ip)
        self.limiter.spend(client_ip or "unknown")
        self.refusals.add(
            gateway=gateway,
            reason=str(refusal),
            source=client_ip,
            merchant_id=str(policy.merchant_id) if policy else None,
            body_sha256=hashlib.sha256(body).hexdigest(),
            at=received_at,
        )
        self.reporter.ensure_running()

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


def _policy_of(row: GatewayCredential) -> CallbackPolicy:
    return CallbackPolicy(
        row.merchant_id,
        row.callback_secret_hash,
        row.ip_allowlist,
        row.require_signature,
        dict(row.callback_verifiers or {}),
    )


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


class RefusalFront:
    """In front of the app: a callback over its source's refusal budget is answered ``429``
    before a request object, a route or a middleware exists for it.

    A flood of made-up secrets then costs the ingress little more than parsing the
    request; what is under budget (and every known merchant's callback) goes on to
    the app, which checks everything again.
    """

    def __init__(self, app: Any, callbacks: CallbackResource) -> None:
        self.app = app
        self.callbacks = callbacks
        self.body = json.dumps(
            error_body(errors.RATE_LIMITED, TOO_MANY_REFUSALS), ensure_ascii=True
        ).encode()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = str(environ.get("PATH_INFO") or "")
        if path.startswith("/callbacks/"):
            parts = path.split("/", 4)  # "", "callbacks", segment, secret[, attempt]
            if len(parts) >= 4 and parts[3]:
                retry_after = self.callbacks.front_refusal(
                    parts[2],
                    parts[3],
                    environ.get("REMOTE_ADDR"),
                    environ.get("HTTP_X_FORWARDED_FOR"),
                )
                if retry_after is not None:
                    start_response(
                        "429 Too Many Requests",
                        [
                            ("Content-Type", "application/json"),
                            ("Content-Length", str(len(self.body))),
                            ("Retry-After", str(retry_after)),
                        ],
                    )
                    return [self.body]
        return self.app(environ, start_response)

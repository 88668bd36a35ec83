"""A property-based fuzz of the ingress: thousands of malformed requests, never a 5xx.

Requirement: "A property-based fuzz test (hypothesis) posts at least 5,000 generated
malformed requests (bodies, headers, paths, encodings) at the ingress: zero 5xx,
zero unhandled exceptions in logs."

The real app (real PostgreSQL, real RabbitMQ with publisher confirms) is built once
for the module with real merchants, keys and callback secrets, so that generated
requests sometimes authenticate and reach the deeper code. It trusts 127.0.0.1 as
a proxy, so generated ``X-Forwarded-For`` headers are parsed, and it spools into a
directory of its own, so "nothing was spooled" is exact. A smaller part sends raw
bytes to the real gunicorn ingress.

The tests at the end reproduce defects the fuzz once found, so they stay fixed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import re
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import falcon.testing
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ingress.app import create_app
from ingress.spool import CallbackSpool
from shared.crypto import CredentialCipher
from shared.db.models import GatewayEvent, PaymentIntent
from shared.db.session import Database
from shared.domain.errors import catalogue
from shared.gateways.registry import GatewayRegistry
from shared.merchants import (
    OPERATOR_SCOPES,
    SCOPES,
    issue_api_key,
    set_callback_policy,
    set_ip_allowlist,
)
from shared.messages import (
    APPLY_CALLBACK,
    INITIATE_PAYMENT,
    NOTIFY_MERCHANT,
    RECONCILE_WINDOW,
    RETRY_PAYMENT,
    SEND_TRANSFER,
    Publisher,
    build_broker,
)
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, make_merchant
from tests.support import fuzz
from tests.support.fuzz import FuzzRequest, FuzzTargets
from tests.support.processes import ManagedProcess
from tests.support.rabbit import Rabbit

MIN_EXAMPLES = 5_000
RAW_EXAMPLES = 320
CATALOGUE_CODES = frozenset(entry.code for entry in catalogue())
ALLOWED_SOURCE_IP = "203.0.113.7"
UNHANDLED = re.compile(r"unhandled error|Traceback")

SENT: Counter[str] = Counter()  # requests sent in process, by test
ANSWERS: Counter[tuple[str, int]] = Counter()  # (test, status) of every answer
REFUSALS: Counter[tuple[str, str]] = Counter()  # (test, catalogue code) of every refusal
# What a payment command is refused with once its body reached the field checks.
FIELD_REFUSALS = frozenset(
    {
        "invalid_request",
        "invalid_amount",
        "amount_out_of_range",
        "invalid_currency",
        "invalid_phone",
        "invalid_reference",
        "unsupported_gateway",
    }
)


def fuzz_settings(max_examples: int) -> hypothesis_settings:
    return hypothesis_settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )


# --- the app, its world and its logs ---------------------------------------------------------


class LogCapture(logging.Handler):
    """Every record that reaches the root logger, formatted (structlog's event dict included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception as exc:  # a record we cannot format is itself worth seeing
            self.lines.append(f"unformattable log record {record!r}: {exc!r}")

    def unhandled(self, since: int = 0) -> list[str]:
        return [line for line in self.lines[since:] if UNHANDLED.search(line)]


@pytest.fixture(scope="module")
def logs(broker: Any) -> Iterator[LogCapture]:
    """Root-logger capture for the module (the broker fixture configured malipo's logging)."""
    capture = LogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    yield capture
    root.removeHandler(capture)


@dataclass
class FuzzApp:
    client: falcon.testing.TestClient
    targets: FuzzTargets
    spool: CallbackSpool


def _seed_payment(
    db: Database, merchant_id: uuid.UUID, status: str, amount: int, failure: str | None = None
) -> str:
    payment_id = uuid.uuid4()
    now = datetime.now(UTC)
    with db.transaction() as session:
        session.add(
            PaymentIntent(
                id=payment_id,
                merchant_id=merchant_id,
                idempotency_key=f"fuzz-{payment_id}",
                request_hash="fuzz",
                gateway="daraja",
                amount_minor=amount,
                currency="KES",
                phone="254712345678",
                reference=f"FUZZ-{payment_id.hex[:8]}",
                status=status,
                failure_code=failure,
                failure_message="seeded" if failure else None,
                receipt="NLJ7RT61SV" if status == "succeeded" else None,
                accepted_at=now,
                submitted_at=now,
                finished_at=now,
            )
        )
    return str(payment_id)


def _seed_event(db: Database, merchant_id: uuid.UUID, outcome: str) -> int:
    with db.transaction() as session:
        event = GatewayEvent(
            gateway="daraja",
            event_key=f"fuzz:{uuid.uuid4()}",
            source="callback",
            merchant_id=merchant_id,
            outcome=outcome,
            body_masked='{"PhoneNumber": "2547****5678"}',
            received_at=datetime.now(UTC),
        )
        session.add(event)
        session.flush()
        return int(event.id)


def build_targets(db: Database, settings: Settings, cipher: CredentialCipher) -> FuzzTargets:
    """Merchants, keys, callback secrets, finished payments and events, all real."""
    pepper = settings.secret_key.get_secret_value().encode()
    merchant = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    other = make_merchant(db, settings, cipher, daraja=None)
    signed = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    allowlisted = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    with db.transaction() as session:
        ops_key = issue_api_key(session, pepper, merchant.id, scopes=("ops:read",))
        operator_key = issue_api_key(session, pepper, None, scopes=("ops:read",))
        set_callback_policy(session, signed.id, "daraja", require_signature=True)
        set_ip_allowlist(session, allowlisted.id, "daraja", [f"{ALLOWED_SOURCE_IP}/32"])
    assert merchant.callback_secret
    assert signed.callback_secret
    assert allowlisted.callback_secret
    secret = settings.callback_signing_secret
    assert secret is not None, "the test environment sets MALIPO_CALLBACK_SIGNING_SECRET"
    return FuzzTargets(
        merchant_key=merchant.api_key,
        other_merchant_key=other.api_key,
        ops_key=ops_key,
        operator_key=operator_key,
        callback_secret=merchant.callback_secret,
        signed_callback_secret=signed.callback_secret,
        allowlisted_callback_secret=allowlisted.callback_secret,
        allowed_source_ip=ALLOWED_SOURCE_IP,
        signing_secret=secret.get_secret_value().encode(),
        final_payment_ids=(
            _seed_payment(db, merchant.id, "succeeded", 1500),
            _seed_payment(db, merchant.id, "failed", 2500, failure="insufficient_funds"),
            _seed_payment(db, merchant.id, "expired", 300, failure="expired"),
        ),
        redeemable_payment_id=_seed_payment(db, merchant.id, "succeeded", 4200),
        redeemable_amount=4200,
        event_ids=tuple(_seed_event(db, merchant.id, o) for o in ("orphan", "mismatch", "refused")),
    )


@pytest.fixture(scope="module")
def app(
    rabbit: Rabbit,
    settings: Settings,
    db: Database,
    broker: Any,
    cipher: CredentialCipher,
    logs: LogCapture,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FuzzApp]:
    """The real ingress app, once for the module; its queues are purged at the end."""
    publisher = Publisher(build_broker(settings.broker_url.get_secret_value()))
    spool = CallbackSpool(tmp_path_factory.mktemp("fuzz-spool"))
    behind_a_proxy = settings.model_copy(update={"trusted_proxies": "127.0.0.1/32"})
    ingress = create_app(
        behind_a_proxy,
        db=db,
        publisher=publisher,
        gateways=GatewayRegistry.from_settings(settings),
        spool=spool,
    )
    yield FuzzApp(falcon.testing.TestClient(ingress), build_targets(db, settings, cipher), spool)
    publisher.close()
    for spec in (INITIATE_PAYMENT, APPLY_CALLBACK):  # nobody consumes here: leave nothing behind
        rabbit.purge(spec.queue_name)


# --- sending and judging one request ---------------------------------------------------------


def send(app: FuzzApp, request: FuzzRequest) -> falcon.testing.Result:
    return app.client.simulate_request(
        request.method,
        request.path,
        query_string=request.query or None,
        headers=list(request.headers),
        body=request.body,
    )


def assert_answered_properly(request: FuzzRequest, result: falcon.testing.Result) -> None:
    """Below 500; a refusal in the catalogue's JSON shape; HEAD without a body."""
    summary = f"{request.method} {request.path[:200]} -> {result.status} {result.text[:300]!r}"
    assert result.status_code < 500, summary
    assert result.headers.get("X-Request-ID"), summary
    if request.method == "HEAD":
        assert result.content == b"", summary
        return
    if result.status_code >= 400:
        try:
            body = json.loads(result.text)
        except ValueError:
            raise AssertionError(f"a refusal that is not JSON: {summary}") from None
        assert isinstance(body, dict), summary
        assert set(body) == {"error"}, summary
        error = body["error"]
        extra = {"order_id"} if error.get("code") == "already_redeemed" else set()
        if error.get("code") in ("invalid_request", "forbidden") and "param" in error:
            extra.add("param")  # which parameter was refused, where a resource says
        assert set(error) == {"code", "message"} | extra, summary
        assert isinstance(error["code"], str), summary
        assert isinstance(error["message"], str), summary
        assert error["message"], summary
        assert error["code"] in CATALOGUE_CODES, summary
    elif result.content:
        json.loads(result.text)


def fuzz_one(app: FuzzApp, logs: LogCapture, request: FuzzRequest, test: str) -> None:
    """Send one generated request; judge the answer and what it logged."""
    logged_before = len(logs.lines)

    result = send(app, request)
    SENT[test] += 1
    ANSWERS[test, result.status_code] += 1

    assert_answered_properly(request, result)
    if result.status_code >= 400 and request.method != "HEAD":
        REFUSALS[test, json.loads(result.text)["error"]["code"]] += 1
    assert logs.unhandled(logged_before) == []


# --- the fuzz ----------------------------------------------------------------------------------


@fuzz_settings(max_examples=1_500)
@given(data=st.data())
def test_merchant_commands_never_fail_on_our_side(
    app: FuzzApp, logs: LogCapture, data: st.DataObject
) -> None:
    # Given a payment command with any part malformed (but sometimes a valid key)
    request = data.draw(fuzz.merchant_commands(app.targets), label="request")

    # When it is posted, Then the answer is below 500, in the catalogue, and nothing crashed
    fuzz_one(app, logs, request, "merchant_commands")


@fuzz_settings(max_examples=1_300)
@given(data=st.data())
def test_payment_views_redemptions_and_customers_never_fail_on_our_side(
    app: FuzzApp, logs: LogCapture, data: st.DataObject
) -> None:
    # Given a read, a redemption or a customer record with odd ids, phones, bodies and headers
    request = data.draw(fuzz.merchant_reads(app.targets), label="request")

    # When it is sent, Then the answer is below 500, in the catalogue, and nothing crashed
    fuzz_one(app, logs, request, "merchant_reads")


@fuzz_settings(max_examples=150)
@given(data=st.data())
def test_waiting_on_finished_payments_never_fails_on_our_side(
    app: FuzzApp, logs: LogCapture, data: st.DataObject
) -> None:
    # Given a ?wait= of 1-30 s (in any digits) on a payment that is already final
    request = data.draw(fuzz.finished_payment_waits(app.targets), label="request")

    # When it is sent, Then it is answered at once and properly
    fuzz_one(app, logs, request, "finished_payment_waits")


@fuzz_settings(max_examples=1_300)
@given(data=st.data())
def test_gateway_callbacks_never_fail_on_our_side(
    app: FuzzApp, logs: LogCapture, data: st.DataObject
) -> None:
    # Given a callback with a right or wrong secret, signature, source and any body
    request = data.draw(fuzz.gateway_callbacks(app.targets), label="request")

    # When it is posted, Then the answer is below 500 (refusals a bare JSON 404)
    fuzz_one(app, logs, request, "gateway_callbacks")


@fuzz_settings(max_examples=1_300)
@given(data=st.data())
def test_operator_views_health_and_unknown_paths_never_fail_on_our_side(
    app: FuzzApp, logs: LogCapture, data: st.DataObject
) -> None:
    # Given an operator query, a health check or a path that matches no route
    request = data.draw(fuzz.anything_else(app.targets), label="request")

    # When it is sent, Then the answer is below 500, in the catalogue, and nothing crashed
    fuzz_one(app, logs, request, "anything_else")


# --- every /ops and /v1 route, over the parameters it declares ---------------------------------

# Digits to str.isdigit() that int() refuses, and digits of other scripts that int() reads.
DIGIT_LOOKALIKES = st.sampled_from(["²", "¹⁰", "①", "٣¹", "١٢٣", "００１", "𝟙", "½"]).map(
    fuzz.encoded
)
# Well-formed ids stay far above any row another test made: an ops:write key acts on what exists.
# Weighted to the edges (bigint's, digits int() refuses), which a few dozen examples must reach.
INTEGER_IDS = fuzz.weighted(
    (3, st.sampled_from([str(2**63 - 1), str(2**63), str(2**64), "9" * 19, "9" * 40, "0", "-1"])),
    (3, DIGIT_LOOKALIKES),
    (2, st.integers(min_value=10**12, max_value=2**63 - 1).map(str)),
    (1, st.integers(min_value=2**63, max_value=2**200).map(str)),
    (1, st.integers(max_value=0).map(str)),
    (1, st.sampled_from(["", "00", "1e3", "0x10", "1.5", "+7", " 7", "9" * 5000])),
    (1, st.sampled_from(fuzz.RAW_PERCENT_GARBAGE)),
)
BEYOND_BIGINT = st.sampled_from([str(2**63), str(2**64), "9" * 40])
QUERY_INTEGERS = fuzz.weighted(
    (3, INTEGER_IDS), (2, BEYOND_BIGINT), (1, fuzz.BEFORE_IDS), (1, fuzz.LIMITS)
)
WEBHOOK_STATUSES = st.one_of(
    st.sampled_from(["pending", "delivered,failed", "held", "", ",", "PENDING", "dead"]),
    st.text(max_size=20).map(fuzz.encoded),
)
DEAD_LETTER_STATUSES = st.sampled_from(["dead", "replayed", "discarded", "all", "", "DEAD", "%00"])
TEXT_FILTERS = st.one_of(
    st.sampled_from(["apply_callback", "callbacks", "%", "_", "\\", "%00", "x" * 201]),
    st.text(max_size=40).map(fuzz.encoded),
)
PARAM_BODIES: st.SearchStrategy[bytes | None] = st.one_of(
    st.none(),
    fuzz.RAW_BODIES,
    st.sampled_from(
        [
            b"{}",
            b'{"reason": 1}',
            b'{"evidence": "fuzz", "paid": "yes"}',
            b'{"merchant_id": "nope", "since": "yesterday"}',
        ]
    ),
)


@dataclass(frozen=True)
class RouteTargets:
    """The module's targets with keys that hold every scope the routes ask for."""

    targets: FuzzTargets
    merchant_ids: tuple[str, ...]
    payment_ids: st.SearchStrategy[str]


@pytest.fixture(scope="module")
def route_targets(
    app: FuzzApp, db: Database, settings: Settings, rabbit: Rabbit
) -> Iterator[RouteTargets]:
    pepper = settings.secret_key.get_secret_value().encode()
    with db.transaction() as session:
        payment = session.get(PaymentIntent, uuid.UUID(app.targets.final_payment_ids[0]))
        assert payment is not None
        merchant_id = payment.merchant_id
        merchant_scopes = tuple(s for s in SCOPES if not s.startswith("ops:"))
        full = issue_api_key(session, pepper, merchant_id, scopes=merchant_scopes)
        merchant_ops = issue_api_key(session, pepper, merchant_id, scopes=OPERATOR_SCOPES)
        operator = issue_api_key(session, pepper, None, scopes=OPERATOR_SCOPES)
    targets = dataclasses.replace(
        app.targets, merchant_key=full, ops_key=merchant_ops, operator_key=operator
    )
    payment_ids = fuzz.weighted(
        (3, st.sampled_from([*targets.final_payment_ids, targets.redeemable_payment_id])),
        (2, st.uuids().map(str)),
        (1, fuzz.UUID_VARIANTS),
        (1, DIGIT_LOOKALIKES),
        (1, fuzz.SEGMENTS),
    )
    yield RouteTargets(targets, (str(merchant_id),), payment_ids)
    # Nobody consumes here: whatever a command got through to enqueue goes with the module.
    for spec in (SEND_TRANSFER, NOTIFY_MERCHANT, RETRY_PAYMENT, RECONCILE_WINDOW):
        rabbit.purge(spec.queue_name)


def route_requests(route: str, where: RouteTargets) -> st.SearchStrategy[FuzzRequest]:
    """Requests to one route template: its own path and query parameters in doubt."""
    t, ids = where.targets, where.payment_ids
    merchant_ids = st.one_of(
        st.sampled_from(where.merchant_ids), fuzz.UUID_VARIANTS, DIGIT_LOOKALIKES
    )
    method, _, template = route.partition(" ")
    operator = template.startswith("/ops")
    path_params: dict[str, st.SearchStrategy[str]] = {
        "payment_id": ids,
        "refund_id": ids,
        "payout_id": ids,
        "transfer_id": ids,
        "phone": fuzz.PHONE_SEGMENTS,
        "event_id": INTEGER_IDS,
        "dead_letter_id": INTEGER_IDS,
        "run_id": ids,
        "item_id": INTEGER_IDS,
    }
    queries: dict[str, dict[str, st.SearchStrategy[str]]] = {
        "/v1/payments/{payment_id}": {"wait": fuzz.NON_HOLDING_WAITS, "until": fuzz.UNTILS},
        "/ops/events": {
            "outcome": fuzz.OUTCOMES,
            "limit": QUERY_INTEGERS,
            "since": fuzz.SINCES,
            "before_id": QUERY_INTEGERS,
            "gateway": fuzz.GATEWAY_FILTERS,
        },
        "/ops/refused-callbacks": {
            "limit": QUERY_INTEGERS,
            "since": fuzz.SINCES,
            "before_id": QUERY_INTEGERS,
            "gateway": fuzz.GATEWAY_FILTERS,
            "reason": TEXT_FILTERS,
            "source": TEXT_FILTERS,
        },
        "/ops/webhooks": {
            "merchant_id": merchant_ids,
            "status": WEBHOOK_STATUSES,
            "since": fuzz.SINCES,
            "limit": QUERY_INTEGERS,
            "before_id": QUERY_INTEGERS,
        },
        "/ops/analytics": {
            "from": fuzz.SINCES,
            "to": fuzz.SINCES,
            "bucket": TEXT_FILTERS,
            "tz": TEXT_FILTERS,
            "gateway": fuzz.GATEWAY_FILTERS,
            "merchant": merchant_ids,
        },
        "/ops/reconciliations": {"limit": QUERY_INTEGERS, "gateway": fuzz.GATEWAY_FILTERS},
        "/ops/reconciliations/{run_id}": {"kind": TEXT_FILTERS},
        "/ops/dead-letters": {
            "status": DEAD_LETTER_STATUSES,
            "queue": TEXT_FILTERS,
            "actor": TEXT_FILTERS,
            "error": TEXT_FILTERS,
            "since": fuzz.SINCES,
            "limit": QUERY_INTEGERS,
            "after_id": QUERY_INTEGERS,
        },
    }
    names = re.findall(r"{(\w+)}", template)

    @st.composite
    def paths(draw: st.DrawFn) -> str:
        values = {name: draw(path_params[name], label=name) for name in names}
        return template.format(**values) + str(draw(fuzz.TRAILERS))

    # Mostly a key with the route's scope and nothing else odd, so the parameters are what is
    # judged; sometimes every other part of the request is in doubt too.
    key = t.operator_key if operator else t.merchant_key
    proper: tuple[tuple[str, str], ...] = (
        ("Authorization", f"Bearer {key}"),
        ("Content-Type", "application/json"),
        ("Idempotency-Key", str(uuid.uuid4())),
    )
    named = queries.get(template, {})
    return st.builds(
        FuzzRequest,
        method=fuzz.weighted((8, st.just(method)), (1, st.sampled_from(fuzz.METHODS))),
        path=paths(),
        query=fuzz.weighted(
            (3, one_parameter(named)),
            (2, fuzz.query_string(named, extras=False)),
            (1, fuzz.query_string(named)),
        ),
        headers=fuzz.weighted((4, st.just(proper)), (1, fuzz.headers(t, operator=operator))),
        body=PARAM_BODIES,
    )


def one_parameter(named: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    """One declared parameter alone, so that a refusal of another cannot hide how it is read."""
    if not named:
        return st.just("")
    return st.sampled_from(sorted(named)).flatmap(
        lambda name: named[name].map(lambda value: f"{name}={value}")
    )


# Each /ops and /v1 route ingress/app.py declares, with the method it is meant for.
ROUTES = (
    "GET /v1/payments/{payment_id}",
    "POST /v1/payments/{payment_id}/redeem",
    "POST /v1/redemptions",
    "POST /v1/payments/{payment_id}/retry",
    "PUT /v1/customers/{phone}",
    "GET /v1/customers/{phone}",
    "DELETE /v1/customers/{phone}",
    "POST /v1/payments/{payment_id}/refunds",
    "GET /v1/refunds/{refund_id}",
    "POST /v1/payouts",
    "GET /v1/payouts/{payout_id}",
    "POST /v1/payouts/{payout_id}/approve",
    "POST /v1/payouts/{payout_id}/reject",
    "POST /ops/refunds/{transfer_id}/complete",
    "POST /ops/payouts/{transfer_id}/complete",
    "GET /ops/events",
    "GET /ops/refused-callbacks",
    "GET /ops/webhooks",
    "POST /ops/webhooks/replay",
    "POST /ops/webhooks/{event_id}/resend",
    "GET /ops/dead-letters",
    "GET /ops/dead-letters/{dead_letter_id}",
    "POST /ops/dead-letters/{dead_letter_id}/replay",
    "POST /ops/dead-letters/{dead_letter_id}/discard",
    "GET /ops/analytics",
    "GET /ops/analytics.csv",
    "GET /ops/reconciliations",
    "POST /ops/reconciliations",
    "GET /ops/reconciliations/{run_id}",
    "GET /ops/reconciliations/{run_id}.csv",
    "POST /ops/reconciliations/items/{item_id}/resolve",
)
ROUTE_EXAMPLES = 60


@pytest.mark.parametrize("route", ROUTES)
def test_every_ops_and_v1_route_refuses_bad_parameters_without_a_5xx(
    app: FuzzApp, logs: LogCapture, route_targets: RouteTargets, route: str
) -> None:
    # Given a route and requests whose path and query parameters are anything at all
    requests = route_requests(route, route_targets)

    @fuzz_settings(max_examples=ROUTE_EXAMPLES)
    @given(request=requests)
    def send_one(request: FuzzRequest) -> None:
        # When one is sent, Then the answer is below 500, in the catalogue, and nothing crashed
        fuzz_one(app, logs, request, "route_parameters")

    send_one()


def test_at_least_5000_generated_requests_were_sent_and_some_went_deep() -> None:
    assert sum(SENT.values()) >= MIN_EXAMPLES, dict(SENT)
    # Some got all the way through: accepted, applied, answered (not only refused at the door).
    reached = sorted(ANSWERS.items())
    assert ANSWERS["merchant_commands", 202] > 0, reached
    # (a 422 is rare among ~1,500 commands: most stop at the door; any field refusal shows
    # that bodies reached the field checks)
    field_refusals = sum(REFUSALS["merchant_commands", code] for code in FIELD_REFUSALS)
    assert field_refusals > 0, sorted(REFUSALS.items())
    assert ANSWERS["merchant_reads", 200] > 0, reached
    assert ANSWERS["gateway_callbacks", 200] > 0, reached
    assert ANSWERS["anything_else", 200] > 0, reached


def test_the_whole_run_logged_no_unhandled_error(logs: LogCapture) -> None:
    # The capture really saw the app's logs (one access line per request; a refused callback
    # is counted instead, so the callbacks may have none) ...
    access_lines = [line for line in logs.lines if "'event': 'request'" in line]
    assert len(access_lines) >= sum(SENT.values()) - SENT["gateway_callbacks"]
    # ... and none of them is an unhandled error or a traceback.
    assert logs.unhandled() == []


def test_nothing_was_spooled_while_the_broker_was_up(app: FuzzApp) -> None:
    assert app.spool.entries() == []
    assert list(Path(app.spool.directory).glob("*.tmp")) == []


# --- raw HTTP against the real gunicorn ingress ------------------------------------------------

STATUS_LINE = re.compile(rb"HTTP/\d\.\d (\d{3})")


def exchange(host: str, port: int, raw: bytes, timeout_s: float = 5.0) -> bytes:
    """Send ``raw``, half-close, and read until the server closes; fail if it hangs."""
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse before reading everything
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65_536)
            except ConnectionResetError:
                break
            except TimeoutError:
                raise AssertionError(f"no answer within {timeout_s}s to {raw[:200]!r}") from None
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_raw_malformed_http_never_gets_a_5xx_from_the_ingress_process(
    ingress_server: ManagedProcess, test_env: dict[str, str], app: FuzzApp, settings: Settings
) -> None:
    # Given the real gunicorn ingress, and where its log and its spool stand now
    address = urlsplit(test_env["MALIPO_PUBLIC_BASE_URL"])
    host, port = address.hostname or "127.0.0.1", address.port or 80
    log_start = len(ingress_server.output())
    spooled_before = sorted(Path(settings.spool_dir).glob("*.json"))
    answered: Counter[str] = Counter()

    @fuzz_settings(max_examples=RAW_EXAMPLES)
    @given(raw=fuzz.raw_requests(app.targets))
    def send_raw(raw: bytes) -> None:
        # When a malformed request is sent as raw bytes
        response = exchange(host, port, raw)

        # Then every status it gets is below 500 (gunicorn's own 400s included)
        statuses = [int(s) for s in STATUS_LINE.findall(response[:4096])]
        assert all(status < 500 for status in statuses), (raw[:300], response[:500])
        answered["with a status" if statuses else "closed without one"] += 1

    send_raw()

    # And the process logged no unhandled error or traceback for any of them
    assert sum(answered.values()) >= 300, dict(answered)
    assert answered["with a status"] >= 250, dict(answered)
    new_output = ingress_server.output()[log_start:]
    assert [line for line in new_output.splitlines() if UNHANDLED.search(line)] == []
    # And nothing was spooled: the broker was up all along
    assert sorted(Path(settings.spool_dir).glob("*.json")) == spooled_before


# --- defects the fuzz found, kept fixed ---------------------------------------------------------


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_superscript_digit_in_wait_is_refused_not_a_500(app: FuzzApp, logs: LogCapture) -> None:
    # Given a merchant's own finished payment
    payment_id = app.targets.final_payment_ids[0]
    logged_before = len(logs.lines)

    # When it is read with ?wait=² (a digit to str.isdigit(), not to int())
    result = app.client.simulate_get(
        f"/v1/payments/{payment_id}",
        query_string="wait=%C2%B2",
        headers=_auth(app.targets.merchant_key),
    )

    # Then it is an invalid_request, not an internal error
    assert (result.status_code, result.json["error"]["code"]) == (400, "invalid_request")
    assert logs.unhandled(logged_before) == []


def test_a_nul_in_the_ops_gateway_filter_is_refused_not_a_500(
    app: FuzzApp, logs: LogCapture
) -> None:
    logged_before = len(logs.lines)

    result = app.client.simulate_get(
        "/ops/events", query_string="gateway=%00", headers=_auth(app.targets.ops_key)
    )

    assert result.status_code < 500
    assert logs.unhandled(logged_before) == []


def test_an_ops_before_id_beyond_bigint_is_refused_not_a_500(
    app: FuzzApp, logs: LogCapture
) -> None:
    logged_before = len(logs.lines)

    result = app.client.simulate_get(
        "/ops/events",
        query_string=f"before_id={2**63}",
        headers=_auth(app.targets.operator_key),
    )

    assert result.status_code < 500
    assert logs.unhandled(logged_before) == []


@pytest.mark.parametrize("route", ["/v1/payments", "/v1/payments/{payment_id}/redeem"])
def test_an_unknown_field_with_a_lone_surrogate_is_refused_not_a_500(
    app: FuzzApp, logs: LogCapture, route: str
) -> None:
    logged_before = len(logs.lines)

    result = app.client.simulate_post(
        route.format(payment_id=app.targets.redeemable_payment_id),
        body=b'{"\\ud800": 1}',
        headers={
            **_auth(app.targets.merchant_key),
            "Idempotency-Key": str(uuid.uuid4()),
            "Content-Type": "application/json",
        },
    )

    assert result.status_code == 400
    assert result.json["error"]["code"] == "invalid_request"
    assert logs.unhandled(logged_before) == []


def test_a_signed_callback_with_a_superscript_timestamp_is_refused_not_a_500(
    app: FuzzApp, logs: LogCapture
) -> None:
    # Given a merchant that requires signed callbacks, and a correctly signed body
    body = b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": 0}}}'
    mac = hmac.new(app.targets.signing_secret, "²".encode() + b"." + body, hashlib.sha256)
    logged_before = len(logs.lines)

    # When the signature's timestamp is a superscript digit
    result = app.client.simulate_post(
        f"/callbacks/mpesa/{app.targets.signed_callback_secret}",
        body=body,
        headers={
            "Content-Type": "application/json",
            fuzz.SIGNATURE_HEADER: f"t=²,v1={mac.hexdigest()}",
        },
    )

    # Then the callback is refused like any bad signature (a bare 404), not a 500
    assert result.status_code == 404
    assert logs.unhandled(logged_before) == []


def test_a_superscript_digit_in_a_webhook_event_id_is_refused_not_a_500(
    app: FuzzApp, logs: LogCapture, route_targets: RouteTargets
) -> None:
    # Given an operator key that may resend webhooks
    logged_before = len(logs.lines)

    # When it asks to resend event "²" (a digit to str.isdigit(), not to int())
    result = app.client.simulate_post(
        "/ops/webhooks/%C2%B2/resend", headers=_auth(route_targets.targets.operator_key)
    )

    # Then there is no such event, rather than an internal error
    assert (result.status_code, result.json["error"]["code"]) == (404, "not_found")
    assert logs.unhandled(logged_before) == []


@pytest.mark.parametrize("before_id", [str(2**63), "9" * 40])
def test_a_webhooks_before_id_beyond_bigint_is_refused_not_a_500(
    app: FuzzApp, logs: LogCapture, before_id: str
) -> None:
    logged_before = len(logs.lines)

    result = app.client.simulate_get(
        "/ops/webhooks",
        query_string=f"before_id={before_id}",
        headers=_auth(app.targets.operator_key),
    )

    assert (result.status_code, result.json["error"]["code"]) == (400, "invalid_request")
    assert logs.unhandled(logged_before) == []

"""The Idram adapter over real HTTP against the sandbox's Idram simulator.

Self-contained: the whole sandbox is served by a threaded wsgiref server on a free
port, and a small local server stands in for malipo's callback endpoint, answering
Idram's prechecks through the adapter as the ingress does (a bill it issued, the
same amount, the merchant's own account), and its pay return page.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from sandbox.app import Sandbox, create_sandbox
from sandbox.config import SimulatorConfig
from shared.domain.money import Money
from shared.gateways.base import (
    CallbackReply,
    CustomerDetails,
    InboundCallback,
    NextAction,
    Outcome,
    PaymentRequest,
    Precheck,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.idram import DESCRIPTION
from shared.gateways.idram.client import IdramAdapter
from shared.gateways.idram.credentials import IdramCredentials
from tests.support.idram_sim import IdramSimulator
from tests.support.serving import serving_wsgi
from tests.support.waiting import wait_until

DELAY_S = 0.2

# -- the sandbox ------------------------------------------------------------------------------


@dataclass
class Served:
    sandbox: Sandbox
    root: str  # http://127.0.0.1:<port>

    @property
    def base_url(self) -> str:
        return f"{self.root}/idram"


@pytest.fixture
def served() -> Iterator[Served]:
    sandbox = create_sandbox(SimulatorConfig(callback_delay_s=DELAY_S))
    with serving_wsgi(sandbox) as root:
        yield Served(sandbox, root)
    sandbox.close()


@pytest.fixture
def idram(served: Served) -> Iterator[IdramSimulator]:
    client = IdramSimulator(served.base_url)
    yield client
    client.close()


# -- malipo's side: the callback URL and the return page ---------------------------------------


def inbound(method: str, query: str, body: bytes, headers: dict[str, str]) -> InboundCallback:
    return InboundCallback(
        method=method,
        query_string=query,
        body=body,
        headers=headers,
        remote_addr="127.0.0.1",
        path_secret="s3cret",
    )


@dataclass
class Malipo:
    """What the ingress does with Idram's calls, done with the adapter."""

    url: str
    adapter: IdramAdapter
    verifiers: dict[str, str] = field(default_factory=dict)
    bills: dict[str, Money] = field(default_factory=dict)
    callbacks: list[InboundCallback] = field(default_factory=list)
    prechecks: list[tuple[Precheck, bool]] = field(default_factory=list)
    returns: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def callback_url(self) -> str:
        return f"{self.url}/callbacks/idram/s3cret"

    @property
    def return_url(self) -> str:
        return f"{self.url}/pay/return"

    def answer(self, callback: InboundCallback) -> CallbackReply:
        if self.adapter.authenticate_callback(self.verifiers, callback) is not None:
            return CallbackReply(404)
        question = self.adapter.precheck(callback)
        if question is None:
            with self.lock:
                self.callbacks.append(callback)
            return self.adapter.acknowledgement(callback)
        good = self.bills.get(question.gateway_ref) == question.amount
        with self.lock:
            self.prechecks.append((question, good))
        return self.adapter.precheck_reply(good)

    def results(self) -> list[InboundCallback]:
        with self.lock:
            return list(self.callbacks)


class _MalipoServer(ThreadingHTTPServer):
    malipo: Malipo


class _MalipoHandler(BaseHTTPRequestHandler):
    server: _MalipoServer

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.malipo.answer(inbound("POST", parts.query, body, headers))
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def do_GET(self) -> None:
        with self.server.malipo.lock:
            self.server.malipo.returns.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def adapter(served: Served) -> IdramAdapter:
    return IdramAdapter(GatewaySettings(served.base_url, 2, 2))


@pytest.fixture
def malipo(adapter: IdramAdapter) -> Iterator[Malipo]:
    server = _MalipoServer(("127.0.0.1", 0), _MalipoHandler)
    server.malipo = Malipo(f"http://127.0.0.1:{server.server_port}", adapter)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.malipo
    server.shutdown()
    server.server_close()


Merchant = Callable[[], IdramCredentials]


@pytest.fixture
def merchant(idram: IdramSimulator, malipo: Malipo) -> Merchant:
    """A fresh Idram account whose cabinet points at malipo; its verifiers go to malipo."""

    def make() -> IdramCredentials:
        stored = idram.new_account(
            result_url=malipo.callback_url,
            success_url=malipo.return_url,
            fail_url=malipo.return_url,
        )
        malipo.verifiers = DESCRIPTION.callback_verifiers(stored)
        return IdramCredentials.from_stored(stored)

    return make


def request(drams: int = 5000) -> PaymentRequest:
    return PaymentRequest(
        payment_id=str(uuid.uuid4()),
        attempt_ref=str(uuid.uuid4()),
        amount=Money(drams * 100, "AMD"),
        phone="37491123456",
        reference="ORDER-42",
        description="Two coffees",
        callback_url="http://unused.invalid/callbacks/idram/s3cret",
        customer=CustomerDetails(email="anna@example.am"),
    )


def start(
    adapter: IdramAdapter, credentials: IdramCredentials, malipo: Malipo, drams: int = 5000
) -> tuple[PaymentRequest, str, NextAction]:
    """Start a payment as the worker does, and note its bill as malipo would."""
    payment = request(drams)
    started = adapter.start_hosted(credentials, payment)
    assert started.accepted
    assert started.gateway_ref is not None
    assert started.next_action is not None
    malipo.bills[started.gateway_ref] = payment.amount
    return payment, started.gateway_ref, started.next_action


def browse(idram: IdramSimulator, action: NextAction) -> str:
    """The browser posts the form to Idram; Idram's order id."""
    assert action.type == "form_post"
    assert action.url is not None
    order_id, page = idram.open_page(action.url, action.fields)
    assert 'id="pay"' in page.text
    return order_id


# -- the flows --------------------------------------------------------------------------------


def test_a_paid_bill_is_prechecked_then_confirmed_and_reads_back(
    adapter: IdramAdapter, merchant: Merchant, idram: IdramSimulator, malipo: Malipo
) -> None:
    credentials = merchant()
    payment, gateway_ref, action = start(adapter, credentials, malipo)
    assert gateway_ref == payment.attempt_ref
    order_id = browse(idram, action)

    decided = idram.decide(gateway_ref, "pay")

    assert decided["order_id"] == order_id
    assert decided["status"] == "paid"
    assert decided["return_url"] == f"{malipo.return_url}?EDP_BILL_NO={gateway_ref}"
    [(question, good)] = malipo.prechecks
    assert question == Precheck(gateway_ref, Money(500000, "AMD"), credentials.rec_account)
    assert good
    [confirmation] = wait_until(malipo.results, timeout_s=5, what="the confirmation")
    assert adapter.verify_callback(credentials, confirmation) is None
    event = adapter.parse_callback(confirmation)
    trans_id = idram.order(order_id)["extra"]["trans_id"]
    assert event.event_key == f"idram:{trans_id}"
    assert event.gateway_ref == gateway_ref
    assert event.verdict.outcome is Outcome.SUCCEEDED
    assert event.verdict.amount == payment.amount
    assert event.verdict.receipt == trans_id
    assert credentials.secret_key not in event.masked_body
    assert "EDP_CHECKSUM" not in event.masked_body
    assert [d["kind"] for d in idram.deliveries(order_id)] == ["precheck", "confirmation"]


def test_the_browser_clicking_pay_lands_on_malipos_return_page(
    adapter: IdramAdapter, merchant: Merchant, idram: IdramSimulator, malipo: Malipo
) -> None:
    _, gateway_ref, action = start(adapter, merchant(), malipo)
    assert action.url is not None
    _, page = idram.open_page(action.url, action.fields)
    form_action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert form_action is not None

    landed = idram.http.post(
        f"{urlsplit(page.url).scheme}://{urlsplit(page.url).netloc}{form_action.group(1)}",
        data={"choice": "pay"},
        timeout=10,
    )

    assert landed.status_code == 200
    assert malipo.returns == [f"/pay/return?EDP_BILL_NO={gateway_ref}"]
    wait_until(malipo.results, timeout_s=5, what="the confirmation")


def test_a_precheck_about_another_amount_is_refused_and_nothing_is_paid(
    adapter: IdramAdapter, merchant: Merchant, idram: IdramSimulator, malipo: Malipo
) -> None:
    credentials = merchant()
    idram.scenario(match={"amount": 6100}, precheck_amount=True)
    _, gateway_ref, action = start(adapter, credentials, malipo, drams=6100)
    browse(idram, action)

    decided = idram.decide(gateway_ref, "pay")

    assert decided["status"] == "declined"
    [(question, good)] = malipo.prechecks
    assert (question.amount, good) == (Money(610100, "AMD"), False)
    [precheck] = idram.deliveries(gateway_ref)
    assert precheck["answer"] == "NO"
    assert malipo.results() == []


def test_a_declined_bill_tells_malipo_nothing(
    adapter: IdramAdapter, merchant: Merchant, idram: IdramSimulator, malipo: Malipo
) -> None:
    _, gateway_ref, action = start(adapter, merchant(), malipo)
    browse(idram, action)

    assert idram.decide(gateway_ref, "decline")["status"] == "declined"
    assert idram.deliveries(gateway_ref) == []


def test_a_wrong_checksum_is_refused_by_the_worker_check(
    adapter: IdramAdapter, merchant: Merchant, idram: IdramSimulator, malipo: Malipo
) -> None:
    credentials = merchant()
    idram.scenario(match={"amount": 6200}, wrong_checksum=True)
    _, gateway_ref, action = start(adapter, credentials, malipo, drams=6200)
    browse(idram, action)
    idram.decide(gateway_ref, "pay")

    [confirmation] = wait_until(malipo.results, timeout_s=5, what="the confirmation")

    assert adapter.verify_callback(credentials, confirmation) == "checksum_mismatch"


def test_a_confirmation_sent_twice_is_the_same_event(
    adapter: IdramAdapter, merchant: Merchant, idram: IdramSimulator, malipo: Malipo
) -> None:
    _, gateway_ref, action = start(adapter, merchant(), malipo, drams=6300)
    idram.scenario(match={"bill_no": gateway_ref}, result="twice")
    browse(idram, action)
    idram.decide(gateway_ref, "pay")

    first, second = wait_until(
        lambda: malipo.results() if len(malipo.results()) >= 2 else None,
        timeout_s=5,
        what="two confirmations",
    )

    assert adapter.parse_callback(first).event_key == adapter.parse_callback(second).event_key


def test_another_accounts_calls_are_refused_at_the_ingress(
    adapter: IdramAdapter, merchant: Merchant, idram: IdramSimulator, malipo: Malipo
) -> None:
    other = merchant()
    merchant()  # malipo now holds the newest account's verifiers
    payment, gateway_ref, action = start(adapter, other, malipo)
    browse(idram, action)

    decided = idram.decide(gateway_ref, "pay")

    assert decided["status"] == "declined"  # the precheck was not answered OK
    assert malipo.prechecks == []
    [precheck] = idram.deliveries(gateway_ref)
    assert precheck["status"] == 404
    assert payment.amount == malipo.bills[gateway_ref]

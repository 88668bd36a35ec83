"""The Telcell adapter over real HTTP against the sandbox's Telcell simulator.

Self-contained: the whole sandbox is served by a threaded wsgiref server on a free
port, and a small local server stands in for malipo's callback endpoint and its pay
return page.
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
    InboundCallback,
    NextAction,
    Outcome,
    PaymentRequest,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.telcell.client import TelcellAdapter
from shared.gateways.telcell.credentials import TelcellCredentials
from tests.support.serving import serving_wsgi
from tests.support.telcell_sim import TelcellSimulator
from tests.support.waiting import wait_until

DELAY_S = 0.2

# -- the sandbox ------------------------------------------------------------------------------


@dataclass
class Served:
    sandbox: Sandbox
    root: str

    @property
    def base_url(self) -> str:
        return f"{self.root}/telcell"


@pytest.fixture
def served() -> Iterator[Served]:
    sandbox = create_sandbox(SimulatorConfig(callback_delay_s=DELAY_S))
    with serving_wsgi(sandbox) as root:
        yield Served(sandbox, root)
    sandbox.close()


@pytest.fixture
def telcell(served: Served) -> Iterator[TelcellSimulator]:
    client = TelcellSimulator(served.base_url)
    yield client
    client.close()


# -- malipo's side ----------------------------------------------------------------------------


@dataclass
class Malipo:
    url: str
    adapter: TelcellAdapter
    callbacks: list[InboundCallback] = field(default_factory=list)
    returns: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def callback_url(self) -> str:
        return f"{self.url}/callbacks/telcell/s3cret"

    @property
    def return_url(self) -> str:
        return f"{self.url}/pay/return"

    def results(self) -> list[InboundCallback]:
        with self.lock:
            return list(self.callbacks)


class _MalipoServer(ThreadingHTTPServer):
    malipo: Malipo


class _MalipoHandler(BaseHTTPRequestHandler):
    server: _MalipoServer

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        callback = InboundCallback(
            method="POST",
            query_string=parts.query,
            body=self.rfile.read(int(self.headers.get("Content-Length") or 0)),
            headers={k.lower(): v for k, v in self.headers.items()},
            remote_addr="127.0.0.1",
            path_secret="s3cret",
        )
        malipo = self.server.malipo
        reply = CallbackReply(404)
        if malipo.adapter.authenticate_callback({}, callback) is None:
            with malipo.lock:
                malipo.callbacks.append(callback)
            reply = malipo.adapter.acknowledgement(callback)
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
def adapter(served: Served) -> TelcellAdapter:
    return TelcellAdapter(GatewaySettings(served.base_url, 2, 2))


@pytest.fixture
def malipo(adapter: TelcellAdapter) -> Iterator[Malipo]:
    server = _MalipoServer(("127.0.0.1", 0), _MalipoHandler)
    server.malipo = Malipo(f"http://127.0.0.1:{server.server_port}", adapter)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.malipo
    server.shutdown()
    server.server_close()


Merchant = Callable[[], TelcellCredentials]


@pytest.fixture
def merchant(telcell: TelcellSimulator, malipo: Malipo) -> Merchant:
    def make() -> TelcellCredentials:
        stored = telcell.new_shop(
            result_url=malipo.callback_url,
            success_url=malipo.return_url,
            fail_url=f"{malipo.return_url}?failed=1",
        )
        return TelcellCredentials.from_stored(stored)

    return make


def start(
    adapter: TelcellAdapter, credentials: TelcellCredentials, drams: int = 5000
) -> tuple[PaymentRequest, str, NextAction]:
    payment = PaymentRequest(
        payment_id=str(uuid.uuid4()),
        attempt_ref=str(uuid.uuid4()),
        amount=Money(drams * 100, "AMD"),
        phone="37491123456",
        reference="ORDER-42",
        description="Սուրճ",
        callback_url="http://unused.invalid/callbacks/telcell/s3cret",
    )
    started = adapter.start_hosted(credentials, payment)
    assert started.accepted
    assert started.gateway_ref is not None
    assert started.next_action is not None
    return payment, started.gateway_ref, started.next_action


def browse(telcell: TelcellSimulator, action: NextAction) -> str:
    """The browser follows the link to Telcell; Telcell's invoice id."""
    assert action.type == "redirect"
    assert action.url is not None
    invoice, page = telcell.open_page(action.url)
    assert 'id="pay"' in page.text
    return invoice


# -- the flows --------------------------------------------------------------------------------


def test_a_paid_invoice_ends_in_a_signed_result_the_adapter_reads(
    adapter: TelcellAdapter, merchant: Merchant, telcell: TelcellSimulator, malipo: Malipo
) -> None:
    credentials = merchant()
    payment, gateway_ref, action = start(adapter, credentials)
    assert gateway_ref == payment.attempt_ref
    invoice = browse(telcell, action)

    decided = telcell.decide(gateway_ref, "pay")

    assert (decided["order_id"], decided["status"]) == (invoice, "paid")
    assert decided["return_url"] == malipo.return_url
    [result] = wait_until(malipo.results, timeout_s=5, what="the result")
    assert adapter.verify_callback(credentials, result) is None
    event = adapter.parse_callback(result)
    payment_id = telcell.order(invoice)["extra"]["payment_id"]
    assert event.event_key == f"telcell:{payment_id}"
    assert (event.gateway_ref, event.secondary_ref) == (gateway_ref, invoice)
    assert event.verdict.outcome is Outcome.SUCCEEDED
    assert event.verdict.amount == payment.amount
    assert event.verdict.receipt == payment_id
    assert "checksum" not in event.masked_body
    [link] = telcell.requests("invoice")
    assert link["query"]["issuer"] == credentials.shop_id


def test_a_refused_invoice_is_a_signed_failure(
    adapter: TelcellAdapter, merchant: Merchant, telcell: TelcellSimulator, malipo: Malipo
) -> None:
    credentials = merchant()
    _, gateway_ref, action = start(adapter, credentials)
    browse(telcell, action)

    telcell.decide(gateway_ref, "decline")

    [result] = wait_until(malipo.results, timeout_s=5, what="the rejection")
    assert adapter.verify_callback(credentials, result) is None
    event = adapter.parse_callback(result)
    assert event.gateway_ref == gateway_ref
    assert event.verdict.outcome is Outcome.FAILED
    assert (event.verdict.result_code, event.verdict.failure_code) == (
        "REJECTED",
        "cancelled_by_user",
    )


def test_the_browser_clicking_pay_lands_on_malipos_return_page(
    adapter: TelcellAdapter, merchant: Merchant, telcell: TelcellSimulator, malipo: Malipo
) -> None:
    _, _, action = start(adapter, merchant())
    assert action.url is not None
    _, page = telcell.open_page(action.url)
    form_action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert form_action is not None
    here = urlsplit(page.url)

    landed = telcell.http.post(
        f"{here.scheme}://{here.netloc}{form_action.group(1)}", data={"choice": "pay"}, timeout=10
    )

    assert landed.status_code == 200
    assert malipo.returns == ["/pay/return"]


def test_a_link_signed_with_another_key_is_refused_by_telcell(
    adapter: TelcellAdapter, merchant: Merchant, telcell: TelcellSimulator
) -> None:
    credentials = merchant()
    forged = TelcellCredentials(credentials.shop_id, "not-the-shop-key")
    _, _, action = start(adapter, forged)
    assert action.url is not None

    answer = telcell.http.get(action.url, timeout=10)

    assert answer.status_code == 400
    assert "security_code" in answer.text
    assert telcell.orders() == []


def test_a_wrong_checksum_is_refused_by_the_worker_check(
    adapter: TelcellAdapter, merchant: Merchant, telcell: TelcellSimulator, malipo: Malipo
) -> None:
    credentials = merchant()
    telcell.scenario(match={"amount": 6200}, wrong_checksum=True)
    _, gateway_ref, action = start(adapter, credentials, drams=6200)
    browse(telcell, action)
    telcell.decide(gateway_ref, "pay")

    [result] = wait_until(malipo.results, timeout_s=5, what="the result")

    assert adapter.verify_callback(credentials, result) == "checksum_mismatch"


def test_a_result_sent_twice_is_the_same_event(
    adapter: TelcellAdapter, merchant: Merchant, telcell: TelcellSimulator, malipo: Malipo
) -> None:
    _, gateway_ref, action = start(adapter, merchant(), drams=6300)
    telcell.scenario(match={"issuer_id": gateway_ref}, result="twice")
    browse(telcell, action)
    telcell.decide(gateway_ref, "pay")

    first, second = wait_until(
        lambda: malipo.results() if len(malipo.results()) >= 2 else None,
        timeout_s=5,
        what="two results",
    )

    assert adapter.parse_callback(first) == adapter.parse_callback(second)

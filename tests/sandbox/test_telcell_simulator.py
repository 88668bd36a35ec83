"""The Telcell simulator: the signed invoice link, its page, the result, the controls."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import falcon.testing
import pytest

from sandbox.config import SimulatorConfig
from sandbox.telcell import TelcellSimulator, create_telcell_simulator, mount
from tests.support.waiting import wait_until

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SUCCESS_URL = "https://malipo.example/pay/return"
FAIL_URL = "https://malipo.example/pay/return?failed=1"


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- a merchant's RESULT_URL ------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    posts: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def all(self) -> list[dict[str, str]]:
        with self.lock:
            return list(self.posts)


class _Server(ThreadingHTTPServer):
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with self.server.receiver.lock:
            self.server.receiver.posts.append(dict(parse_qsl(body, keep_blank_values=True)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = Receiver(f"http://127.0.0.1:{server.server_port}/callbacks/telcell/s3cret")
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()


# -- the simulator ----------------------------------------------------------------------------


@dataclass
class Shop:
    issuer: str
    key: str


@dataclass
class Sim:
    simulator: TelcellSimulator
    client: falcon.testing.TestClient

    def control(self, method: str, path: str, **kw: Any) -> falcon.testing.Result:
        return self.client.simulate_request(method, f"/_sim{path}", **kw)

    def shop(self, result_url: str | None) -> Shop:
        shop = Shop(f"shop-{uuid.uuid4().hex[:8]}@telcell.test", f"key-{uuid.uuid4().hex}")
        created = self.control(
            "POST",
            "/cabinet",
            json={
                "issuer": shop.issuer,
                "shop_key": shop.key,
                "result_url": result_url,
                "success_url": SUCCESS_URL,
                "fail_url": FAIL_URL,
            },
        )
        assert created.status_code == 201, created.text
        return shop

    def link(self, shop: Shop, reference: str | None = None, **changes: str) -> dict[str, str]:
        """The invoice link's parameters, signed with the shop's key unless told otherwise."""
        params = {
            "action": "PostInvoice",
            "issuer": shop.issuer,
            "currency": "֏",
            "price": "5000",
            "product": b64("Սուրճ"),
            "issuer_id": b64(reference or str(uuid.uuid4())),
            "valid_days": "1",
            "lang": "am",
        }
        params.update(changes)
        if "security_code" not in changes:
            params["security_code"] = md5(
                shop.key
                + params["issuer"]
                + params["currency"]
                + params["price"]
                + params["product"]
                + params["issuer_id"]
                + params["valid_days"]
            )
        return params

    def follow(self, params: dict[str, str]) -> falcon.testing.Result:
        query = urlencode(params, quote_via=quote, safe="")
        return self.client.simulate_get("/invoices", query_string=query)

    def open(self, shop: Shop, reference: str | None = None, **changes: str) -> str:
        """Follow the link; Telcell's invoice id."""
        result = self.follow(self.link(shop, reference, **changes))
        assert result.status_code == 303, result.text
        return result.headers["location"].rsplit("/", 1)[-1]

    def decide(self, key: str, choice: str) -> dict[str, Any]:
        result = self.control("POST", f"/orders/{key}/decide", json={"choice": choice})
        assert result.status_code == 200, result.text
        decided: dict[str, Any] = result.json
        return decided


@pytest.fixture
def sim() -> Iterator[Sim]:
    simulator = create_telcell_simulator(SimulatorConfig(callback_delay_s=0.05), environ={})
    yield Sim(simulator, falcon.testing.TestClient(simulator.app))
    simulator.close()


def result_checksum(key: str, fields: dict[str, str]) -> str:
    names = ("invoice", "issuer_id", "payment_id", "currency", "sum", "time", "status")
    return md5(key + "".join(fields[name] for name in names))


def settle(seconds: float = 0.3) -> None:
    time.sleep(seconds)


# -- the link and the page ----------------------------------------------------------------------


def test_a_signed_link_opens_an_invoice_and_sends_the_browser_to_its_page(
    sim: Sim, receiver: Receiver
) -> None:
    shop = sim.shop(receiver.url)
    reference = str(uuid.uuid4())

    followed = sim.follow(sim.link(shop, reference))

    assert followed.status_code == 303
    page = sim.client.simulate_get(followed.headers["location"])
    assert page.status_code == 200
    assert "5000 AMD" in page.text
    assert "Սուրճ" in page.text
    order = sim.control("GET", f"/orders/{reference}").json
    invoice = followed.headers["location"].rsplit("/", 1)[-1]
    assert order["order_id"] == invoice
    assert order["extra"]["merchant_ref"] == reference
    assert order["extra"]["issuer_id"] == b64(reference)
    assert (order["status"], order["success_url"], order["fail_url"]) == (
        "pending",
        SUCCESS_URL,
        FAIL_URL,
    )
    assert sim.control("GET", f"/orders/{b64(reference)}").json["order_id"] == invoice
    assert receiver.all() == []


def test_the_same_link_followed_again_is_the_same_invoice(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    reference = str(uuid.uuid4())

    first, again = sim.open(shop, reference), sim.open(shop, reference)
    other_price = sim.follow(sim.link(shop, reference, price="6000"))

    assert first == again
    assert other_price.status_code == 409


def test_the_link_may_be_posted_as_a_form(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)

    posted = sim.client.simulate_post("/invoices", body=urlencode(sim.link(shop)), headers=FORM)

    assert posted.status_code == 303


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"security_code": "0" * 32}, "security_code"),
        ({"issuer": "nobody@telcell.test"}, "Unknown issuer"),
        ({"action": "GetInvoice"}, "action"),
        ({"currency": "AMD"}, "currency"),
        ({"price": "0"}, "price"),
        ({"price": "5,000"}, "price"),
        ({"product": "not base64!"}, "product"),
        ({"issuer_id": ""}, "issuer_id"),
        ({"valid_days": "0"}, "valid_days"),
        ({"lang": "fr"}, "lang"),
    ],
)
def test_a_bad_link_is_an_html_error_page(
    sim: Sim, receiver: Receiver, changes: dict[str, str], reason: str
) -> None:
    shop = sim.shop(receiver.url)

    result = sim.follow(sim.link(shop, **changes))

    assert result.status_code == 400
    assert result.headers["content-type"].startswith("text/html")
    assert reason in result.text
    assert sim.control("GET", "/orders").json["orders"] == []


def test_a_link_signed_over_decoded_fields_is_refused(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    params = sim.link(shop, "ref-1")
    decoded = md5(shop.key + shop.issuer + "֏" + "5000" + "Սուրճ" + "ref-1" + "1")

    assert sim.follow({**params, "security_code": decoded}).status_code == 400


def test_an_upper_case_security_code_is_taken(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    params = sim.link(shop)

    assert sim.follow({**params, "security_code": params["security_code"].upper()}).status_code == (
        303
    )


def test_the_built_in_shop_takes_invoices_without_setup(sim: Sim) -> None:
    builtin = Shop("sandbox-shop@telcell.test", "sandbox-telcell-shop-key-5e1b7c")

    assert sim.open(builtin)


# -- results ------------------------------------------------------------------------------------


def test_paying_posts_a_signed_paid_result(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    reference = str(uuid.uuid4())
    invoice = sim.open(shop, reference)

    decided = sim.decide(reference, "pay")

    assert (decided["status"], decided["return_url"]) == ("paid", SUCCESS_URL)
    [result] = wait_until(receiver.all, timeout_s=5, what="the result")
    assert list(result) == [
        "issuer_id",
        "status",
        "invoice",
        "payment_id",
        "currency",
        "sum",
        "time",
        "checksum",
    ]
    assert result["issuer_id"] == b64(reference)
    assert (result["status"], result["invoice"], result["currency"], result["sum"]) == (
        "PAID",
        invoice,
        "֏",
        "5000",
    )
    assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", result["time"])
    assert result["checksum"] == result_checksum(shop.key, result)


def test_declining_posts_a_signed_rejection(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    invoice = sim.open(shop)

    decided = sim.decide(invoice, "decline")

    assert (decided["status"], decided["return_url"]) == ("declined", FAIL_URL)
    [result] = wait_until(receiver.all, timeout_s=5, what="the rejection")
    assert result["status"] == "REJECTED"
    assert result["payment_id"]
    assert result["checksum"] == result_checksum(shop.key, result)


def test_every_result_has_its_own_payment_id(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    for _ in range(3):
        sim.decide(sim.open(shop), "pay")

    results = wait_until(
        lambda: receiver.all() if len(receiver.all()) >= 3 else None,
        timeout_s=5,
        what="three results",
    )

    assert len({r["payment_id"] for r in results}) == 3


def test_the_pages_buttons_decide_and_send_the_browser_home(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    invoice = sim.open(shop)

    clicked = sim.client.simulate_post(f"/_page/{invoice}", body="choice=decline", headers=FORM)

    assert clicked.status_code == 303
    assert clicked.headers["location"] == FAIL_URL


def test_without_a_result_url_the_result_is_recorded_undelivered(sim: Sim) -> None:
    shop = sim.shop(None)
    invoice = sim.open(shop)

    sim.decide(invoice, "pay")

    [delivery] = wait_until(
        lambda: sim.control("GET", "/deliveries").json["deliveries"],
        timeout_s=5,
        what="the attempt",
    )
    assert delivery["status"] is None
    assert "RESULT_URL" in delivery["error"]


# -- scenarios ----------------------------------------------------------------------------------


def test_result_twice_sends_the_same_result_again(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    sim.control("POST", "/scenarios", json={"match": {"amount": 7000}, "result": "twice"})

    sim.decide(sim.open(shop, price="7000"), "pay")

    first, second = wait_until(
        lambda: receiver.all() if len(receiver.all()) >= 2 else None,
        timeout_s=5,
        what="two results",
    )
    assert first == second


def test_result_none_sends_nothing(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    reference = str(uuid.uuid4())
    sim.control("POST", "/scenarios", json={"match": {"issuer_id": reference}, "result": "none"})

    assert sim.decide(sim.open(shop, reference), "pay")["status"] == "paid"
    settle()
    assert receiver.all() == []


def test_a_wrong_checksum_is_not_the_shops(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    sim.control("POST", "/scenarios", json={"match": {"amount": "7100"}, "wrong_checksum": True})

    sim.decide(sim.open(shop, price="7100"), "pay")

    [result] = wait_until(receiver.all, timeout_s=5, what="the result")
    assert re.fullmatch(r"[0-9a-f]{32}", result["checksum"])
    assert result["checksum"] != result_checksum(shop.key, result)


def test_a_slow_page_takes_its_time(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    sim.control("POST", "/scenarios", json={"match": {"amount": 7300}, "page_delay_s": 0.3})
    invoice = sim.open(shop, price="7300")

    started = time.monotonic()
    sim.client.simulate_get(f"/_page/{invoice}")

    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(
    "document",
    [
        {"result": "once"},
        {"match": {"bill_no": "x"}},
        {"match": {"amount": -1}},
        {"match": {"amount": 5000}, "result": "often"},
        {"match": {"amount": 5000}, "precheck_amount": True},
        {"match": {"amount": 5000}, "result_delay_s": "soon"},
    ],
)
def test_a_scenario_the_simulator_cannot_use_is_refused(sim: Sim, document: dict[str, Any]) -> None:
    assert sim.control("POST", "/scenarios", json=document).status_code == 400


# -- controls -----------------------------------------------------------------------------------


def test_a_new_shop_needs_its_key_and_keys_are_never_shown(sim: Sim) -> None:
    assert sim.control("POST", "/cabinet", json={"issuer": "s@t.am"}).status_code == 400
    created = sim.control("POST", "/cabinet", json={"issuer": "s@t.am", "shop_key": "k-123"})

    assert created.status_code == 201
    assert created.json["shop_key"] == "<redacted>"
    changed = sim.control("POST", "/cabinet", json={"issuer": "s@t.am", "result_url": None})
    assert changed.status_code == 200
    assert "k-123" not in sim.control("GET", "/cabinet").text


def test_the_built_in_cabinet_comes_from_the_environment() -> None:
    simulator = create_telcell_simulator(
        SimulatorConfig(), environ={"SANDBOX_TELCELL_RESULT_URL": "http://127.0.0.1:8/cb"}
    )
    try:
        shop = simulator.state.shop("sandbox-shop@telcell.test")
        assert shop is not None
        assert shop.result_url == "http://127.0.0.1:8/cb"
    finally:
        simulator.close()
    with pytest.raises(ValueError, match="SANDBOX_TELCELL_FAIL_URL"):
        create_telcell_simulator(SimulatorConfig(), environ={"SANDBOX_TELCELL_FAIL_URL": "x"})


def test_requests_to_telcells_side_are_recorded(sim: Sim, receiver: Receiver) -> None:
    shop = sim.shop(receiver.url)
    invoice = sim.open(shop)
    sim.client.simulate_get(f"/_page/{invoice}")

    records = sim.control("GET", "/requests").json["requests"]

    assert [(r["kind"], r["status"]) for r in records] == [("invoice", 303), ("page", 200)]
    assert records[0]["query"]["issuer"] == shop.issuer


def test_a_closed_invoice_can_be_reported_again_and_an_open_one_cannot(
    sim: Sim, receiver: Receiver
) -> None:
    shop = sim.shop(receiver.url)
    invoice = sim.open(shop)
    assert sim.control("POST", f"/orders/{invoice}/resend").status_code == 409
    sim.decide(invoice, "pay")
    wait_until(receiver.all, timeout_s=5, what="the result")

    assert sim.control("POST", f"/orders/{invoice}/resend").status_code == 202

    first, again = wait_until(
        lambda: receiver.all() if len(receiver.all()) >= 2 else None,
        timeout_s=5,
        what="the result again",
    )
    assert first == again


def test_reset_forgets_all_but_the_built_in_shop(sim: Sim, receiver: Receiver) -> None:
    sim.open(sim.shop(receiver.url))

    sim.control("POST", "/reset")

    health = sim.control("GET", "/health").json
    assert (health["gateway"], health["orders"], health["shops"]) == ("telcell", 0, 1)
    assert sim.control("GET", "/orders/nope").status_code == 404


def test_the_mounted_simulator_answers_under_telcell() -> None:
    mounted = mount(SimulatorConfig(callback_delay_s=0.05))
    try:
        client = falcon.testing.TestClient(mounted)
        builtin = Shop("sandbox-shop@telcell.test", "sandbox-telcell-shop-key-5e1b7c")
        sim = Sim(mounted.state, client)
        query = urlencode(sim.link(builtin), quote_via=quote, safe="")

        followed = client.simulate_get("/telcell/invoices", query_string=query)

        assert followed.status_code == 303
        assert followed.headers["location"].startswith("/telcell/_page/")
        assert client.simulate_get("/telcell/_sim/health").json["status"] == "ok"
    finally:
        mounted.close()

"""The Idram simulator: the payment form, its page, the precheck, the confirmation, controls."""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

import falcon.testing
import pytest

from sandbox.config import SimulatorConfig
from sandbox.idram import IdramSimulator, create_idram_simulator, mount
from tests.support.waiting import wait_until

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SUCCESS_URL = "https://malipo.example/pay/return"
FAIL_URL = "https://malipo.example/pay/return?failed=1"

# -- a merchant's RESULT_URL ------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    posts: list[dict[str, str]] = field(default_factory=list)
    # What the merchant answers, by kind of call.
    answers: dict[str, str] = field(
        default_factory=lambda: {"precheck": "OK", "confirmation": "OK"}
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def all(self) -> list[dict[str, str]]:
        with self.lock:
            return list(self.posts)

    def confirmations(self) -> list[dict[str, str]]:
        return [p for p in self.all() if "EDP_PRECHECK" not in p]


class _Server(ThreadingHTTPServer):
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        fields = dict(parse_qsl(body, keep_blank_values=True))
        receiver = self.server.receiver
        with receiver.lock:
            receiver.posts.append(fields)
        kind = "precheck" if "EDP_PRECHECK" in fields else "confirmation"
        answer = receiver.answers[kind].encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = Receiver(f"http://127.0.0.1:{server.server_port}/callbacks/idram/s3cret")
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()


# -- the simulator ----------------------------------------------------------------------------


@dataclass
class Sim:
    simulator: IdramSimulator
    client: falcon.testing.TestClient

    def control(self, method: str, path: str, **kw: Any) -> falcon.testing.Result:
        return self.client.simulate_request(method, f"/_sim{path}", **kw)

    def account(self, result_url: str | None) -> tuple[str, str]:
        """A fresh account whose cabinet points at ``result_url``: (EDP_REC_ACCOUNT, secret)."""
        rec_account, secret = f"3{uuid.uuid4().int % 10**8:08d}", f"secret-{uuid.uuid4().hex}"
        created = self.control(
            "POST",
            "/cabinet",
            json={
                "EDP_REC_ACCOUNT": rec_account,
                "secret_key": secret,
                "result_url": result_url,
                "success_url": SUCCESS_URL,
                "fail_url": FAIL_URL,
            },
        )
        assert created.status_code == 201, created.text
        return rec_account, secret

    def post_form(self, rec_account: str, **changes: str) -> falcon.testing.Result:
        form = {
            "EDP_LANGUAGE": "EN",
            "EDP_REC_ACCOUNT": rec_account,
            "EDP_DESCRIPTION": "Two coffees",
            "EDP_AMOUNT": "5000",
            "EDP_BILL_NO": str(uuid.uuid4()),
            **changes,
        }
        form = {k: v for k, v in form.items() if v is not None}
        return self.client.simulate_post("/Payment/GetPayment", body=urlencode(form), headers=FORM)

    def open(self, rec_account: str, **changes: str) -> str:
        """Post the form; Idram's order id."""
        result = self.post_form(rec_account, **changes)
        assert result.status_code == 303, result.text
        return result.headers["location"].rsplit("/", 1)[-1]

    def decide(self, key: str, choice: str) -> dict[str, Any]:
        result = self.control("POST", f"/orders/{key}/decide", json={"choice": choice})
        assert result.status_code == 200, result.text
        decided: dict[str, Any] = result.json
        return decided

    def deliveries(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.control("GET", "/deliveries").json["deliveries"]
        return found


@pytest.fixture
def sim() -> Iterator[Sim]:
    simulator = create_idram_simulator(SimulatorConfig(callback_delay_s=0.05), environ={})
    yield Sim(simulator, falcon.testing.TestClient(simulator.app))
    simulator.close()


def checksum(fields: dict[str, str], secret: str) -> str:
    base = ":".join(
        [
            fields["EDP_REC_ACCOUNT"],
            fields["EDP_AMOUNT"],
            secret,
            fields["EDP_BILL_NO"],
            fields["EDP_PAYER_ACCOUNT"],
            fields["EDP_TRANS_ID"],
            fields["EDP_TRANS_DATE"],
        ]
    )
    return hashlib.md5(base.encode(), usedforsecurity=False).hexdigest().upper()


def settle(seconds: float = 0.3) -> None:
    """Give a call that should not come the time it would have taken."""
    time.sleep(seconds)


# -- the form and the page ----------------------------------------------------------------------


def test_the_form_opens_an_order_and_sends_the_browser_to_its_page(
    sim: Sim, receiver: Receiver
) -> None:
    rec_account, _ = sim.account(receiver.url)
    bill = str(uuid.uuid4())

    posted = sim.post_form(rec_account, EDP_BILL_NO=bill, EDP_EMAIL="anna@example.am")

    assert posted.status_code == 303
    page = sim.client.simulate_get(posted.headers["location"])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "5000 AMD" in page.text
    assert 'id="pay"' in page.text
    assert "Two coffees" in page.text
    order = sim.control("GET", f"/orders/{bill}").json
    assert order["order_id"] == posted.headers["location"].rsplit("/", 1)[-1]
    assert order["order_id"] != bill  # Idram's own id
    assert (order["status"], order["amount"], order["currency"]) == ("pending", "5000", "AMD")
    assert order["extra"]["merchant_ref"] == bill
    assert order["extra"]["email"] == "anna@example.am"
    assert order["success_url"] == f"{SUCCESS_URL}?EDP_BILL_NO={bill}"
    assert order["fail_url"] == f"{FAIL_URL}&EDP_BILL_NO={bill}"
    assert sim.control("GET", f"/orders/{order['order_id']}").json["order_id"] == order["order_id"]
    assert receiver.all() == []  # nothing is asked before the customer pays


def test_the_same_bill_posted_again_is_the_same_order(sim: Sim, receiver: Receiver) -> None:
    rec_account, _ = sim.account(receiver.url)
    bill = str(uuid.uuid4())

    first, again = sim.open(rec_account, EDP_BILL_NO=bill), sim.open(rec_account, EDP_BILL_NO=bill)
    other_amount = sim.post_form(rec_account, EDP_BILL_NO=bill, EDP_AMOUNT="6000")

    assert first == again
    assert other_amount.status_code == 409
    assert other_amount.headers["content-type"].startswith("text/html")
    assert len(sim.control("GET", "/orders").json["orders"]) == 1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"EDP_REC_ACCOUNT": "999999999"}, "Unknown merchant"),
        ({"EDP_BILL_NO": None}, "EDP_BILL_NO"),
        ({"EDP_AMOUNT": None}, "EDP_AMOUNT"),
        ({"EDP_AMOUNT": "0"}, "EDP_AMOUNT"),
        ({"EDP_AMOUNT": "-5"}, "EDP_AMOUNT"),
        ({"EDP_AMOUNT": "5,000"}, "EDP_AMOUNT"),
        ({"EDP_AMOUNT": "50.001"}, "EDP_AMOUNT"),
        ({"EDP_LANGUAGE": "FR"}, "EDP_LANGUAGE"),
    ],
)
def test_a_bad_form_is_an_html_error_page(
    sim: Sim, receiver: Receiver, changes: dict[str, Any], reason: str
) -> None:
    rec_account, _ = sim.account(receiver.url)

    result = sim.post_form(changes.pop("EDP_REC_ACCOUNT", rec_account), **changes)

    assert result.status_code == 400
    assert result.headers["content-type"].startswith("text/html")
    assert reason in result.text
    assert sim.control("GET", "/orders").json["orders"] == []


def test_the_built_in_account_takes_payments_without_setup(sim: Sim) -> None:
    order_id = sim.open("110000601")

    assert sim.control("GET", f"/orders/{order_id}").json["status"] == "pending"


# -- paying -------------------------------------------------------------------------------------


def test_paying_asks_the_precheck_then_sends_a_signed_confirmation(
    sim: Sim, receiver: Receiver
) -> None:
    rec_account, secret = sim.account(receiver.url)
    bill = str(uuid.uuid4())
    order_id = sim.open(rec_account, EDP_BILL_NO=bill)

    decided = sim.decide(bill, "pay")

    assert decided["status"] == "paid"
    assert decided["return_url"] == f"{SUCCESS_URL}?EDP_BILL_NO={bill}"
    precheck, confirmation = wait_until(
        lambda: receiver.all() if len(receiver.all()) >= 2 else None,
        timeout_s=5,
        what="the precheck and the confirmation",
    )
    assert precheck == {
        "EDP_PRECHECK": "YES",
        "EDP_BILL_NO": bill,
        "EDP_REC_ACCOUNT": rec_account,
        "EDP_AMOUNT": "5000",
    }
    assert list(confirmation) == [
        "EDP_BILL_NO",
        "EDP_REC_ACCOUNT",
        "EDP_PAYER_ACCOUNT",
        "EDP_AMOUNT",
        "EDP_TRANS_ID",
        "EDP_TRANS_DATE",
        "EDP_CHECKSUM",
    ]
    assert (confirmation["EDP_BILL_NO"], confirmation["EDP_AMOUNT"]) == (bill, "5000")
    assert re.fullmatch(r"[0-9]{14}", confirmation["EDP_TRANS_ID"])
    assert re.fullmatch(r"[0-9]{2}/[0-9]{2}/[0-9]{4}", confirmation["EDP_TRANS_DATE"])
    assert confirmation["EDP_CHECKSUM"] == checksum(confirmation, secret)
    order = sim.control("GET", f"/orders/{order_id}").json
    assert order["extra"]["trans_id"] == confirmation["EDP_TRANS_ID"]
    # The receiver has the confirmation a moment before the simulator records its answer.
    deliveries = wait_until(
        lambda: found if len(found := sim.deliveries()) == 2 else None,
        timeout_s=5,
        what="both deliveries recorded",
    )
    assert [d["kind"] for d in deliveries] == ["precheck", "confirmation"]
    assert [d["answer"] for d in deliveries] == ["OK", "OK"]


def test_every_payment_has_its_own_transaction_id(sim: Sim, receiver: Receiver) -> None:
    rec_account, _ = sim.account(receiver.url)
    bills = [str(uuid.uuid4()) for _ in range(3)]
    for bill in bills:
        sim.open(rec_account, EDP_BILL_NO=bill)
        sim.decide(bill, "pay")

    confirmations = wait_until(
        lambda: receiver.confirmations() if len(receiver.confirmations()) >= 3 else None,
        timeout_s=5,
        what="three confirmations",
    )

    assert len({c["EDP_TRANS_ID"] for c in confirmations}) == 3


@pytest.mark.parametrize("answer", ["NO", "", "OK, thanks", "<html>OK</html>", "ok"])
def test_a_precheck_not_answered_ok_declines_the_order_and_confirms_nothing(
    sim: Sim, receiver: Receiver, answer: str
) -> None:
    receiver.answers["precheck"] = answer
    rec_account, _ = sim.account(receiver.url)
    bill = str(uuid.uuid4())
    sim.open(rec_account, EDP_BILL_NO=bill)

    decided = sim.decide(bill, "pay")

    assert decided["status"] == "declined"
    assert decided["return_url"] == f"{FAIL_URL}&EDP_BILL_NO={bill}"
    settle()
    assert [p.get("EDP_PRECHECK") for p in receiver.all()] == ["YES"]
    assert "trans_id" not in decided["extra"]


def test_an_ok_with_whitespace_is_an_ok(sim: Sim, receiver: Receiver) -> None:
    receiver.answers["precheck"] = "  OK\r\n"
    rec_account, _ = sim.account(receiver.url)
    bill = str(uuid.uuid4())
    sim.open(rec_account, EDP_BILL_NO=bill)

    assert sim.decide(bill, "pay")["status"] == "paid"


def test_without_a_result_url_the_payment_cannot_happen(sim: Sim) -> None:
    rec_account, _ = sim.account(None)
    order_id = sim.open(rec_account)

    assert sim.decide(order_id, "pay")["status"] == "declined"
    [delivery] = sim.deliveries()
    assert (delivery["kind"], delivery["status"]) == ("precheck", None)
    assert "RESULT_URL" in delivery["error"]


def test_an_unreachable_result_url_declines_the_order(sim: Sim) -> None:
    rec_account, _ = sim.account("http://127.0.0.1:9/callbacks/idram/s3cret")
    order_id = sim.open(rec_account)

    assert sim.decide(order_id, "pay")["status"] == "declined"
    assert sim.deliveries()[0]["error"]


def test_a_decline_sends_nothing(sim: Sim, receiver: Receiver) -> None:
    rec_account, _ = sim.account(receiver.url)
    bill = str(uuid.uuid4())
    sim.open(rec_account, EDP_BILL_NO=bill)

    decided = sim.decide(bill, "decline")

    assert decided["status"] == "declined"
    assert decided["return_url"] == f"{FAIL_URL}&EDP_BILL_NO={bill}"
    settle()
    assert receiver.all() == []


def test_a_decided_order_stays_as_it_was_decided(sim: Sim, receiver: Receiver) -> None:
    rec_account, _ = sim.account(receiver.url)
    order_id = sim.open(rec_account)
    sim.decide(order_id, "pay")

    assert sim.decide(order_id, "decline")["status"] == "paid"
    wait_until(receiver.confirmations, timeout_s=5, what="the confirmation")
    settle()
    assert len(receiver.all()) == 2


def test_the_pages_buttons_decide_and_send_the_browser_home(sim: Sim, receiver: Receiver) -> None:
    rec_account, _ = sim.account(receiver.url)
    bill = str(uuid.uuid4())
    order_id = sim.open(rec_account, EDP_BILL_NO=bill)

    clicked = sim.client.simulate_post(f"/_page/{order_id}", body="choice=pay", headers=FORM)

    assert clicked.status_code == 303
    assert clicked.headers["location"] == f"{SUCCESS_URL}?EDP_BILL_NO={bill}"
    closed = sim.client.simulate_get(f"/_page/{order_id}")
    assert 'id="outcome"' in closed.text
    assert "Paid" in closed.text


def test_the_cabinet_at_the_decision_says_where_the_browser_goes(
    sim: Sim, receiver: Receiver
) -> None:
    rec_account, _ = sim.account(receiver.url)
    bill = str(uuid.uuid4())
    sim.open(rec_account, EDP_BILL_NO=bill)
    sim.control("POST", "/cabinet", json={"EDP_REC_ACCOUNT": rec_account, "fail_url": SUCCESS_URL})

    assert sim.decide(bill, "decline")["return_url"] == f"{SUCCESS_URL}?EDP_BILL_NO={bill}"


# -- scenarios ----------------------------------------------------------------------------------


def test_result_twice_sends_the_same_confirmation_again(sim: Sim, receiver: Receiver) -> None:
    rec_account, _ = sim.account(receiver.url)
    sim.control("POST", "/scenarios", json={"match": {"amount": 7000}, "result": "twice"})
    order_id = sim.open(rec_account, EDP_AMOUNT="7000")

    sim.decide(order_id, "pay")

    first, second = wait_until(
        lambda: receiver.confirmations() if len(receiver.confirmations()) >= 2 else None,
        timeout_s=5,
        what="two confirmations",
    )
    assert first == second


def test_result_none_sends_the_precheck_only(sim: Sim, receiver: Receiver) -> None:
    rec_account, _ = sim.account(receiver.url)
    bill = str(uuid.uuid4())
    sim.control("POST", "/scenarios", json={"match": {"bill_no": bill}, "result": "none"})
    sim.open(rec_account, EDP_BILL_NO=bill)

    assert sim.decide(bill, "pay")["status"] == "paid"
    settle()
    assert [p.get("EDP_PRECHECK") for p in receiver.all()] == ["YES"]


def test_a_wrong_checksum_is_not_the_accounts(sim: Sim, receiver: Receiver) -> None:
    rec_account, secret = sim.account(receiver.url)
    sim.control("POST", "/scenarios", json={"match": {"amount": "7100"}, "wrong_checksum": True})
    order_id = sim.open(rec_account, EDP_AMOUNT="7100")

    sim.decide(order_id, "pay")

    [confirmation] = wait_until(receiver.confirmations, timeout_s=5, what="the confirmation")
    assert re.fullmatch(r"[0-9A-F]{32}", confirmation["EDP_CHECKSUM"])
    assert confirmation["EDP_CHECKSUM"] != checksum(confirmation, secret)


@pytest.mark.parametrize(("precheck_amount", "asked"), [(True, "7201"), ("7000", "7000")])
def test_the_precheck_can_ask_about_another_amount(
    sim: Sim, receiver: Receiver, precheck_amount: object, asked: str
) -> None:
    receiver.answers["precheck"] = "NO"  # what malipo answers to a wrong amount
    rec_account, _ = sim.account(receiver.url)
    sim.control(
        "POST",
        "/scenarios",
        json={"match": {"amount": 7200}, "precheck_amount": precheck_amount},
    )
    order_id = sim.open(rec_account, EDP_AMOUNT="7200")

    assert sim.decide(order_id, "pay")["status"] == "declined"
    [precheck] = receiver.all()
    assert precheck["EDP_AMOUNT"] == asked


def test_the_newest_scenario_for_the_bill_beats_one_for_the_amount(
    sim: Sim, receiver: Receiver
) -> None:
    rec_account, _ = sim.account(receiver.url)
    bill = str(uuid.uuid4())
    sim.control("POST", "/scenarios", json={"match": {"bill_no": bill}, "result": "none"})
    sim.control("POST", "/scenarios", json={"match": {"amount": 5000}, "result": "twice"})
    sim.open(rec_account, EDP_BILL_NO=bill)

    assert sim.decide(bill, "pay")["extra"]["scenario"] == "sc_1"


def test_a_slow_page_takes_its_time(sim: Sim, receiver: Receiver) -> None:
    rec_account, _ = sim.account(receiver.url)
    sim.control("POST", "/scenarios", json={"match": {"amount": 7300}, "page_delay_s": 0.3})
    order_id = sim.open(rec_account, EDP_AMOUNT="7300")

    started = time.monotonic()
    page = sim.client.simulate_get(f"/_page/{order_id}")

    assert page.status_code == 200
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(
    "document",
    [
        {"result": "once"},
        {"match": {"phone": "37491123456"}},
        {"match": {"amount": 0}},
        {"match": {"amount": 5000}, "result": "thrice"},
        {"match": {"amount": 5000}, "wrong_checksum": "yes"},
        {"match": {"amount": 5000}, "precheck_amount": -1},
        {"match": {"amount": 5000}, "page_delay_s": -1},
        {"match": {"amount": 5000}, "surprise": True},
    ],
)
def test_a_scenario_the_simulator_cannot_use_is_refused(sim: Sim, document: dict[str, Any]) -> None:
    assert sim.control("POST", "/scenarios", json=document).status_code == 400


def test_scenarios_are_listed_and_cleared(sim: Sim) -> None:
    sim.control("POST", "/scenarios", json={"match": {"amount": 5000}, "result": "none"})

    [listed] = sim.control("GET", "/scenarios").json
    assert listed["match"] == {"amount": "5000"}
    sim.control("DELETE", "/scenarios")
    assert sim.control("GET", "/scenarios").json == []


# -- controls -----------------------------------------------------------------------------------


def test_a_new_account_needs_its_secret_and_secrets_are_never_shown(sim: Sim) -> None:
    assert sim.control("POST", "/cabinet", json={"EDP_REC_ACCOUNT": "42"}).status_code == 400
    created = sim.control(
        "POST", "/cabinet", json={"EDP_REC_ACCOUNT": "42", "secret_key": "s3cret-key"}
    )

    assert created.status_code == 201
    assert created.json["secret_key"] == "<redacted>"
    listed = sim.control("GET", "/cabinet").json["accounts"]
    assert {a["rec_account"] for a in listed} == {"110000601", "42"}
    assert "s3cret-key" not in sim.control("GET", "/cabinet").text


def test_a_cabinet_naming_no_account_is_the_built_in_one_s(sim: Sim) -> None:
    answer = sim.control("POST", "/cabinet", json={"result_url": "http://127.0.0.1:9/cb"})
    assert (answer.status, answer.json["rec_account"]) == ("200 OK", "110000601")
    assert answer.json["result_url"] == "http://127.0.0.1:9/cb"


@pytest.mark.parametrize(
    "document",
    [
        {"EDP_REC_ACCOUNT": " ", "secret_key": "k"},
        {"EDP_REC_ACCOUNT": "42", "secret_key": ""},
        {"EDP_REC_ACCOUNT": "42", "secret_key": "k", "result_url": "ftp://x"},
        {"EDP_REC_ACCOUNT": "42", "secret_key": "k", "colour": "red"},
    ],
)
def test_a_bad_cabinet_document_is_refused(sim: Sim, document: dict[str, Any]) -> None:
    assert sim.control("POST", "/cabinet", json=document).status_code == 400


def test_the_built_in_cabinet_comes_from_the_environment() -> None:
    simulator = create_idram_simulator(
        SimulatorConfig(),
        environ={
            "SANDBOX_IDRAM_RESULT_URL": "http://127.0.0.1:8000/callbacks/idram/x",
            "SANDBOX_IDRAM_SUCCESS_URL": "http://127.0.0.1:8000/pay/return",
        },
    )
    try:
        account = simulator.state.account("110000601")
        assert account is not None
        assert account.result_url == "http://127.0.0.1:8000/callbacks/idram/x"
        assert (account.success_url, account.fail_url) == ("http://127.0.0.1:8000/pay/return", None)
    finally:
        simulator.close()
    with pytest.raises(ValueError, match="SANDBOX_IDRAM_RESULT_URL"):
        create_idram_simulator(SimulatorConfig(), environ={"SANDBOX_IDRAM_RESULT_URL": "nope"})


def test_requests_to_idrams_side_are_recorded_and_controls_are_not(
    sim: Sim, receiver: Receiver
) -> None:
    rec_account, _ = sim.account(receiver.url)
    order_id = sim.open(rec_account)
    sim.client.simulate_get(f"/_page/{order_id}")

    records = sim.control("GET", "/requests").json["requests"]

    assert [(r["kind"], r["status"]) for r in records] == [("payment", 303), ("page", 200)]
    assert records[0]["form"]["EDP_REC_ACCOUNT"] == rec_account
    assert [r["kind"] for r in sim.control("GET", "/requests?kind=page").json["requests"]] == [
        "page"
    ]


def test_a_paid_order_can_be_confirmed_again_and_an_open_one_cannot(
    sim: Sim, receiver: Receiver
) -> None:
    rec_account, _ = sim.account(receiver.url)
    order_id = sim.open(rec_account)
    assert sim.control("POST", f"/orders/{order_id}/resend").status_code == 409
    sim.decide(order_id, "pay")
    wait_until(receiver.confirmations, timeout_s=5, what="the confirmation")

    assert sim.control("POST", f"/orders/{order_id}/resend").status_code == 202

    first, again = wait_until(
        lambda: receiver.confirmations() if len(receiver.confirmations()) >= 2 else None,
        timeout_s=5,
        what="the confirmation again",
    )
    assert first == again


def test_unknown_orders_are_404(sim: Sim) -> None:
    assert sim.control("GET", "/orders/nope").status_code == 404
    assert sim.control("POST", "/orders/nope/decide", json={"choice": "pay"}).status_code == 404
    assert sim.control("POST", "/orders/nope/resend").status_code == 404


def test_reset_forgets_all_but_the_built_in_account(sim: Sim, receiver: Receiver) -> None:
    rec_account, _ = sim.account(receiver.url)
    sim.open(rec_account)

    sim.control("POST", "/reset")

    health = sim.control("GET", "/health").json
    assert (health["status"], health["gateway"], health["orders"], health["accounts"]) == (
        "ok",
        "idram",
        0,
        1,
    )
    assert sim.control("GET", "/requests").json["requests"] == []


def test_the_mounted_simulator_answers_under_idram(receiver: Receiver) -> None:
    mounted = mount(SimulatorConfig(callback_delay_s=0.05))
    try:
        client = falcon.testing.TestClient(mounted)
        form = {
            "EDP_LANGUAGE": "AM",
            "EDP_REC_ACCOUNT": "110000601",
            "EDP_AMOUNT": "100",
            "EDP_BILL_NO": "b-1",
        }

        posted = client.simulate_post(
            "/idram/Payment/GetPayment", body=urlencode(form), headers=FORM
        )

        assert mounted.prefix == "/idram"
        assert posted.status_code == 303
        assert posted.headers["location"].startswith("/idram/_page/")
        page = client.simulate_get(posted.headers["location"])
        assert 'action="/idram/_page/' in page.text
        assert client.simulate_get("/idram/_sim/health").json["status"] == "ok"
    finally:
        mounted.close()

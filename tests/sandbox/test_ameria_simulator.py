"""The Ameria vPOS simulator over real HTTP: InitPayment, the page, GetPaymentDetails, scenarios."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox.config import SimulatorConfig
from sandbox.mounts import discover
from tests.support.ameria_sim import CLIENT_ID, PASSWORD, USERNAME, AmeriaSimulator, serving

BACK_URL = "https://malipo.example/pay/p1/back?t=abc"


@dataclass
class Vpos:
    root: str
    sim: AmeriaSimulator

    @property
    def api(self) -> str:
        return f"{self.root}/ameria/VPOS"

    def init(self, **changes: Any) -> dict[str, Any]:
        body = {
            "ClientID": CLIENT_ID,
            "Username": USERNAME,
            "Password": PASSWORD,
            "OrderID": uuid.uuid4().int % 2_000_000_000 + 1,
            "Amount": 5000,
            "Currency": "051",
            "Description": "Two tickets",
            "BackURL": BACK_URL,
            "Opaque": str(uuid.uuid4()),
            **changes,
        }
        response = requests.post(f"{self.api}/api/VPOS/InitPayment", json=body, timeout=5)
        return {"status": response.status_code, "body": body, "answer": _json(response)}

    def paid_id(self, **changes: Any) -> str:
        started = self.init(**changes)
        assert started["answer"]["ResponseCode"] == 1, started
        return str(started["answer"]["PaymentID"])

    def details(self, payment_id: str, **changes: Any) -> dict[str, Any]:
        body = {"PaymentID": payment_id, "Username": USERNAME, "Password": PASSWORD, **changes}
        response = requests.post(f"{self.api}/api/VPOS/GetPaymentDetails", json=body, timeout=5)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


@pytest.fixture
def vpos() -> Iterator[Vpos]:
    with serving(SimulatorConfig()) as (_, root):
        sim = AmeriaSimulator(f"{root}/ameria")
        yield Vpos(root, sim)
        sim.close()


def test_the_sandbox_discovers_and_mounts_it_under_ameria() -> None:
    mounted = {m.prefix: m for m in discover(SimulatorConfig())}

    assert "/ameria" in mounted
    for simulator in mounted.values():
        simulator.close()


def test_a_customer_pays_on_the_page_and_returns_with_ameria_s_parameters(vpos: Vpos) -> None:
    started = vpos.init()
    answer = started["answer"]
    assert (started["status"], answer["ResponseCode"], answer["ResponseMessage"]) == (200, 1, "OK")
    payment_id = answer["PaymentID"]
    assert details_status(vpos, payment_id) == (0, "0-100")

    page = requests.get(
        f"{vpos.api}/Payments/Pay", params={"id": payment_id, "lang": "en"}, timeout=5
    )
    assert page.status_code == 200
    assert "5000 AMD" in page.text
    assert "Two tickets" in page.text
    assert f'action="/ameria/_page/{payment_id}"' in page.text

    paid = requests.post(
        f"{vpos.root}/ameria/_page/{payment_id}",
        data={"choice": "pay"},
        allow_redirects=False,
        timeout=5,
    )
    assert paid.status_code == 303
    location = urlsplit(paid.headers["Location"])
    assert location.geturl().startswith("https://malipo.example/pay/p1/back?t=abc&")
    assert parse_qs(location.query) == {
        "t": ["abc"],
        "orderID": [str(started["body"]["OrderID"])],
        "resposneCode": ["00"],
        "paymentID": [payment_id],
        "opaque": [started["body"]["Opaque"]],
    }

    document = vpos.details(payment_id)
    assert (document["OrderStatus"], document["ResponseCode"]) == (2, "00")
    assert document["PaymentState"] == "payment_deposited"
    assert (document["Amount"], document["DepositedAmount"]) == (5000.0, 5000.0)
    assert document["OrderID"] == started["body"]["OrderID"]
    assert document["Opaque"] == started["body"]["Opaque"]
    assert document["rrn"]


def details_status(vpos: Vpos, payment_id: str) -> tuple[int, str]:
    document = vpos.details(payment_id)
    return document["OrderStatus"], document["ResponseCode"]


def test_orders_are_found_by_payment_id_opaque_or_order_id(vpos: Vpos) -> None:
    started = vpos.init()
    payment_id = started["answer"]["PaymentID"]

    for key in (
        payment_id,
        payment_id.lower(),
        started["body"]["Opaque"],
        str(started["body"]["OrderID"]),
    ):
        order = vpos.sim.order(key)
        assert order["order_id"] == payment_id
    assert order["extra"]["merchant_ref"] == started["body"]["Opaque"]
    assert [o["order_id"] for o in vpos.sim.orders()] == [payment_id]


def test_a_decline_carries_the_scenario_s_code_to_the_return_and_the_details(vpos: Vpos) -> None:
    vpos.sim.scenario(match={"amount": 7100}, decline_code="0116")
    payment_id = vpos.paid_id(Amount=7100)

    decided = vpos.sim.decide(payment_id, "decline")

    assert decided["status"] == "declined"
    assert parse_qs(urlsplit(decided["return_url"]).query)["resposneCode"] == ["0116"]
    assert details_status(vpos, payment_id) == (6, "0116")
    again = vpos.sim.decide(payment_id, "pay")  # decided already: nothing changes
    assert again["status"] == "declined"
    assert details_status(vpos, payment_id) == (6, "0116")


def test_a_forged_return_claims_success_but_the_details_say_declined(vpos: Vpos) -> None:
    vpos.sim.scenario(match={"amount": 7200}, forged_return=True)
    payment_id = vpos.paid_id(Amount=7200)

    decided = vpos.sim.decide(payment_id, "decline")

    assert parse_qs(urlsplit(decided["return_url"]).query)["resposneCode"] == ["00"]
    assert details_status(vpos, payment_id) == (6, "0100")


def test_the_status_lags_behind_the_page_as_the_scenario_says(vpos: Vpos) -> None:
    vpos.sim.scenario(match={"amount": 7300}, status_lag_s=0.6)
    payment_id = vpos.paid_id(Amount=7300)

    vpos.sim.decide(payment_id, "pay")

    assert details_status(vpos, payment_id) == (0, "0-100")
    time.sleep(0.7)
    assert details_status(vpos, payment_id) == (2, "00")


def test_a_two_stage_vpos_leaves_a_paid_order_approved(vpos: Vpos) -> None:
    vpos.sim.scenario(match={"amount": 7400}, two_step=True)
    payment_id = vpos.paid_id(Amount=7400)

    vpos.sim.decide(payment_id, "pay")

    document = vpos.details(payment_id)
    assert (document["OrderStatus"], document["PaymentState"]) == (1, "payment_approved")
    assert document["DepositedAmount"] == 0.0


def test_an_injected_init_error_registers_nothing_and_runs_out(vpos: Vpos) -> None:
    vpos.sim.scenario(match={"amount": 7500}, init_error={"status": 500, "times": 1})

    failed = vpos.init(Amount=7500)
    assert failed["status"] == 500
    assert vpos.sim.orders() == []
    assert vpos.init(Amount=7500)["answer"]["ResponseCode"] == 1


def test_a_slow_page(vpos: Vpos) -> None:
    vpos.sim.scenario(match={"amount": 7600}, page_delay_s=0.4)
    payment_id = vpos.paid_id(Amount=7600)

    started = time.monotonic()
    page = requests.get(f"{vpos.api}/Payments/Pay", params={"id": payment_id}, timeout=5)

    assert page.status_code == 200
    assert time.monotonic() - started >= 0.4


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"Password": "wrong"}, 20),
        ({"ClientID": "someone-else"}, 20),
        ({"Description": ""}, 4),
        ({"OrderID": None}, 4),
        ({"OrderID": -3}, 510),
        ({"OrderID": 1.5}, 510),
        ({"Amount": 10.005}, 50),
        ({"Amount": 0}, 50),
        ({"Amount": "lots"}, 50),
        ({"Currency": "840"}, 3),
        ({"BackURL": "ftp://x"}, 510),
    ],
)
def test_init_refusals(vpos: Vpos, changes: dict[str, Any], code: int) -> None:
    refused = vpos.init(**changes)

    assert refused["status"] == 200
    assert (refused["answer"]["ResponseCode"], refused["answer"]["PaymentID"]) == (code, None)
    assert vpos.sim.orders() == []


def test_a_registered_order_id_is_refused_not_charged_twice(vpos: Vpos) -> None:
    first = vpos.init(OrderID=424242)

    second = vpos.init(OrderID=424242)

    assert first["answer"]["ResponseCode"] == 1
    assert second["answer"]["ResponseCode"] == 8204
    assert len(vpos.sim.orders()) == 1


def test_a_body_that_is_not_json_is_a_400(vpos: Vpos) -> None:
    response = requests.post(f"{vpos.api}/api/VPOS/InitPayment", data="nope", timeout=5)

    assert response.status_code == 400


def test_details_refusals(vpos: Vpos) -> None:
    payment_id = vpos.paid_id()

    assert vpos.details(payment_id, Password="wrong")["ResponseCode"] == "20"
    unknown = vpos.details(str(uuid.uuid4()).upper())
    assert unknown["ResponseCode"] == "06"
    assert "OrderStatus" not in unknown
    # An Opaque is not a PaymentID: the API knows orders by PaymentID only.
    assert vpos.details(vpos.sim.order(payment_id)["extra"]["opaque"])["ResponseCode"] == "06"


def test_the_bank_side_can_void_or_refund_an_order(vpos: Vpos) -> None:
    payment_id = vpos.paid_id()
    vpos.sim.decide(payment_id, "pay")

    vpos.sim.set_status(payment_id, 4)

    document = vpos.details(payment_id)
    assert (document["OrderStatus"], document["PaymentState"]) == (4, "payment_refunded")
    assert document["RefundedAmount"] == 5000.0


def test_requests_are_recorded_without_passwords_and_reset_forgets(vpos: Vpos) -> None:
    payment_id = vpos.paid_id()
    vpos.details(payment_id)

    [init] = vpos.sim.requests("init")
    [details] = vpos.sim.requests("details")
    assert init["body"]["Password"] == "<redacted>"
    assert init["body"]["Username"] == USERNAME
    assert details["body"]["Password"] == "<redacted>"
    assert init["response"]["PaymentID"] == payment_id

    vpos.sim.reset()
    assert (vpos.sim.orders(), vpos.sim.requests()) == ([], [])


def test_bad_scenarios_and_choices_are_400s(vpos: Vpos) -> None:
    for scenario in (
        {"match": {"phone": "1"}},
        {"match": {"amount": 1}, "callback": "once"},
        {"match": {"amount": 1}, "init_error": {"status": 200}},
        {"match": {"amount": 1}, "decline_code": 116},
        {"match": {"amount": 1}, "status_lag_s": -1},
    ):
        response = requests.post(f"{vpos.sim.base_url}/_sim/scenarios", json=scenario, timeout=5)
        assert response.status_code == 400, scenario
    payment_id = vpos.paid_id()
    response = requests.post(
        f"{vpos.sim.base_url}/_sim/orders/{payment_id}/decide", json={"choice": "x"}, timeout=5
    )
    assert response.status_code == 400
    missing = requests.get(f"{vpos.api}/Payments/Pay", params={"id": "nope"}, timeout=5)
    assert missing.status_code == 404
    health = requests.get(f"{vpos.sim.base_url}/_sim/health", timeout=5)
    assert health.json() == {"status": "ok", "gateway": "ameria", "orders": 1}


def test_a_new_account_is_a_merchant_of_its_own(vpos: Vpos) -> None:
    account = vpos.sim.new_account()
    assert account["client_id"] != CLIENT_ID
    login = {
        "ClientID": account["client_id"],
        "Username": account["username"],
        "Password": account["password"],
    }
    shared_order_id = 5_550_555

    mine = vpos.init(OrderID=shared_order_id, **login)
    builtin = vpos.init(OrderID=shared_order_id)  # OrderIDs are unique per merchant only

    assert (mine["answer"]["ResponseCode"], builtin["answer"]["ResponseCode"]) == (1, 1)
    mine_id = mine["answer"]["PaymentID"]
    assert (
        vpos.details(mine_id, Username=account["username"], Password=account["password"])[
            "OrderStatus"
        ]
        == 0
    )
    assert vpos.details(mine_id)["ResponseCode"] == "06"  # another merchant's order
    assert len(vpos.sim.accounts()) == 2
    vpos.sim.reset()
    assert [a["client_id"] for a in vpos.sim.accounts()] == [CLIENT_ID]

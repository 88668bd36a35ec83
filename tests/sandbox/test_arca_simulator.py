"""The ArCa iPay simulator over real HTTP: register.do, the page, the status call, scenarios."""

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
from tests.support.arca_sim import PASSWORD, USERNAME, ArcaSimulator, serving

RETURN_URL = "https://malipo.example/pay/p1/back?t=ok"
FAIL_URL = "https://malipo.example/pay/p1/back?t=ko"


@dataclass
class Engine:
    root: str
    sim: ArcaSimulator

    @property
    def api(self) -> str:
        return f"{self.root}/arca/payment/rest"

    def register(self, **changes: Any) -> dict[str, Any]:
        form = {
            "userName": USERNAME,
            "password": PASSWORD,
            "orderNumber": uuid.uuid4().hex,
            "amount": "500000",
            "currency": "051",
            "returnUrl": RETURN_URL,
            "failUrl": FAIL_URL,
            "description": "Two tickets",
            **changes,
        }
        form = {k: v for k, v in form.items() if v is not None}
        response = requests.post(f"{self.api}/register.do", data=form, timeout=5)
        return {"status": response.status_code, "form": form, "answer": _json(response)}

    def order_id(self, **changes: Any) -> str:
        registered = self.register(**changes)
        assert "orderId" in registered["answer"], registered
        return str(registered["answer"]["orderId"])

    def status(self, order_id: str, **changes: str) -> dict[str, Any]:
        form = {"userName": USERNAME, "password": PASSWORD, "orderId": order_id, **changes}
        response = requests.post(f"{self.api}/getOrderStatusExtended.do", data=form, timeout=5)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    def state(self, order_id: str) -> tuple[int, int]:
        document = self.status(order_id)
        return document["orderStatus"], document["actionCode"]


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


@pytest.fixture
def engine() -> Iterator[Engine]:
    with serving(SimulatorConfig()) as (_, root):
        sim = ArcaSimulator(f"{root}/arca")
        yield Engine(root, sim)
        sim.close()


def test_the_sandbox_discovers_and_mounts_it_under_arca() -> None:
    mounted = {m.prefix: m for m in discover(SimulatorConfig())}

    assert "/arca" in mounted
    for simulator in mounted.values():
        simulator.close()


def test_a_customer_pays_on_the_form_url_and_returns_to_the_return_url(engine: Engine) -> None:
    registered = engine.register()
    answer = registered["answer"]
    order_id = answer["orderId"]
    assert answer["formUrl"] == (
        f"{engine.root}/arca/payment/merchants/ipay/payment.html?mdOrder={order_id}"
    )
    assert engine.state(order_id) == (0, 0)

    page = requests.get(answer["formUrl"], timeout=5)
    assert page.status_code == 200
    assert "5000.00 AMD" in page.text
    assert f'action="/arca/_page/{order_id}"' in page.text

    paid = requests.post(
        f"{engine.root}/arca/_page/{order_id}",
        data={"choice": "pay"},
        allow_redirects=False,
        timeout=5,
    )
    assert paid.status_code == 303
    location = urlsplit(paid.headers["Location"])
    assert parse_qs(location.query) == {"t": ["ok"], "orderId": [order_id]}

    document = engine.status(order_id)
    assert (document["errorCode"], document["orderStatus"], document["actionCode"]) == ("0", 2, 0)
    assert document["orderNumber"] == registered["form"]["orderNumber"]
    assert (document["amount"], document["currency"]) == (500000, "051")
    assert document["paymentAmountInfo"]["depositedAmount"] == 500000
    assert document["authRefNum"]


def test_orders_are_found_by_order_id_or_order_number(engine: Engine) -> None:
    reference = str(uuid.uuid4())
    order_id = engine.order_id(orderNumber=reference.replace("-", ""))

    for key in (order_id, reference.replace("-", ""), reference):
        assert engine.sim.order(key)["order_id"] == order_id
    assert engine.status("", orderNumber=reference.replace("-", ""))["orderStatus"] == 0


def test_a_decline_goes_to_the_fail_url_with_the_scenario_s_action_code(engine: Engine) -> None:
    engine.sim.scenario(match={"amount": 710000}, decline_code=116)
    order_id = engine.order_id(amount="710000")

    decided = engine.sim.decide(order_id, "decline")

    assert decided["return_url"] == f"{FAIL_URL}&orderId={order_id}"
    assert engine.state(order_id) == (6, 116)
    assert engine.status(order_id)["actionCodeDescription"] == "Not enough money"


def test_without_a_fail_url_a_decline_returns_to_the_return_url(engine: Engine) -> None:
    order_id = engine.order_id(failUrl=None)

    decided = engine.sim.decide(order_id, "decline")

    assert decided["return_url"] == f"{RETURN_URL}&orderId={order_id}"
    assert engine.state(order_id) == (6, 100)


def test_a_forged_return_sends_a_decline_to_the_success_url(engine: Engine) -> None:
    engine.sim.scenario(match={"amount": 720000}, forged_return=True)
    order_id = engine.order_id(amount="720000")

    decided = engine.sim.decide(order_id, "decline")

    assert decided["return_url"] == f"{RETURN_URL}&orderId={order_id}"
    assert engine.state(order_id) == (6, 100)


def test_the_status_lags_behind_the_page_as_the_scenario_says(engine: Engine) -> None:
    engine.sim.scenario(match={"amount": 730000}, status_lag_s=0.6)
    order_id = engine.order_id(amount="730000")

    engine.sim.decide(order_id, "pay")

    assert engine.state(order_id) == (0, 0)
    time.sleep(0.7)
    assert engine.state(order_id) == (2, 0)


def test_a_two_stage_merchant_leaves_a_paid_order_approved(engine: Engine) -> None:
    engine.sim.scenario(match={"amount": 740000}, two_step=True)
    order_id = engine.order_id(amount="740000")

    engine.sim.decide(order_id, "pay")

    document = engine.status(order_id)
    assert document["orderStatus"] == 1
    assert document["paymentAmountInfo"]["paymentState"] == "APPROVED"
    assert document["paymentAmountInfo"]["depositedAmount"] == 0


def test_an_injected_register_error_registers_nothing_and_runs_out(engine: Engine) -> None:
    engine.sim.scenario(match={"amount": 750000}, init_error={"status": 503, "times": 2})

    assert engine.register(amount="750000")["status"] == 503
    assert engine.register(amount="750000")["status"] == 503
    assert engine.sim.orders() == []
    assert "orderId" in engine.register(amount="750000")["answer"]


def test_a_slow_page(engine: Engine) -> None:
    engine.sim.scenario(match={"amount": 760000}, page_delay_s=0.4)
    registered = engine.register(amount="760000")

    started = time.monotonic()
    page = requests.get(registered["answer"]["formUrl"], timeout=5)

    assert page.status_code == 200
    assert time.monotonic() - started >= 0.4


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"password": "wrong"}, "5"),
        ({"userName": "someone_api"}, "5"),
        ({"orderNumber": None}, "4"),
        ({"amount": ""}, "4"),
        ({"returnUrl": None}, "4"),
        ({"orderNumber": "x" * 33}, "5"),
        ({"amount": "0"}, "5"),
        ({"amount": "50.5"}, "5"),
        ({"currency": "840"}, "3"),
        ({"failUrl": "javascript:alert(1)"}, "5"),
    ],
)
def test_register_refusals(engine: Engine, changes: dict[str, Any], code: str) -> None:
    refused = engine.register(**changes)

    assert refused["status"] == 200
    assert refused["answer"]["errorCode"] == code
    assert refused["answer"]["errorMessage"]
    assert engine.sim.orders() == []


def test_a_registered_order_number_is_refused_not_charged_twice(engine: Engine) -> None:
    first = engine.register(orderNumber="same-number")

    second = engine.register(orderNumber="same-number")

    assert "orderId" in first["answer"]
    assert second["answer"]["errorCode"] == "1"
    assert len(engine.sim.orders()) == 1


def test_status_refusals(engine: Engine) -> None:
    order_id = engine.order_id()

    assert engine.status(order_id, password="wrong")["errorCode"] == "5"
    unknown = engine.status(str(uuid.uuid4()))
    assert (unknown["errorCode"], unknown["errorMessage"]) == ("6", "Order not found")
    assert "orderStatus" not in unknown


def test_the_engine_side_can_reverse_or_refund_an_order(engine: Engine) -> None:
    order_id = engine.order_id()
    engine.sim.decide(order_id, "pay")

    engine.sim.set_status(order_id, 3)

    assert engine.state(order_id) == (3, 0)


def test_requests_are_recorded_without_passwords_and_reset_forgets(engine: Engine) -> None:
    order_id = engine.order_id()
    engine.status(order_id)

    [register] = engine.sim.requests("register")
    [status] = engine.sim.requests("status")
    assert register["body"]["password"] == "<redacted>"
    assert register["body"]["userName"] == USERNAME
    assert status["body"]["password"] == "<redacted>"
    assert register["response"]["orderId"] == order_id

    engine.sim.reset()
    assert (engine.sim.orders(), engine.sim.requests()) == ([], [])


def test_bad_scenarios_and_choices_are_400s(engine: Engine) -> None:
    for scenario in (
        {"match": {"amount": "1"}},
        {"match": {"amount": 1}, "callback": "once"},
        {"match": {"amount": 1}, "decline_code": "116"},
        {"match": {"amount": 1}, "decline_code": 0},
        {"match": {"amount": 1}, "page_delay_s": "slow"},
    ):
        response = requests.post(f"{engine.sim.base_url}/_sim/scenarios", json=scenario, timeout=5)
        assert response.status_code == 400, scenario
    order_id = engine.order_id()
    response = requests.post(
        f"{engine.sim.base_url}/_sim/orders/{order_id}/decide", json={"choice": "x"}, timeout=5
    )
    assert response.status_code == 400
    page = requests.get(
        f"{engine.root}/arca/payment/merchants/ipay/payment.html",
        params={"mdOrder": "no"},
        timeout=5,
    )
    assert page.status_code == 404


def test_a_new_account_is_a_merchant_of_its_own(engine: Engine) -> None:
    account = engine.sim.new_account()
    assert account["username"] != USERNAME
    login = {"userName": account["username"], "password": account["password"]}

    mine = engine.register(orderNumber="shared-number", **login)
    builtin = engine.register(orderNumber="shared-number")  # unique per merchant only

    assert "orderId" in mine["answer"]
    assert "orderId" in builtin["answer"]
    mine_id = mine["answer"]["orderId"]
    assert engine.status(mine_id, **login)["orderStatus"] == 0
    assert engine.status(mine_id)["errorCode"] == "6"  # another merchant's order
    assert len(engine.sim.accounts()) == 2
    engine.sim.reset()
    assert [a["username"] for a in engine.sim.accounts()] == [USERNAME]

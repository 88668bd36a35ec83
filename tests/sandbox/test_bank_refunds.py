"""The Ameria and ArCa simulators' refund calls over real HTTP, each test run for both
banks: up to what is left, the total in the status answer, declines, and the witness of
refunds made. Amounts are in luma; each bank's case (``WIRES``) speaks its own wire
(RefundPayment's JSON in drams, refund.do's form in luma) and names its codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from sandbox.config import SimulatorConfig
from tests.sandbox.test_ameria_simulator import Vpos
from tests.sandbox.test_arca_simulator import Engine
from tests.support import ameria_sim, arca_sim


def _post_ameria(vpos: Vpos, order_id: str, luma: int, **changes: Any) -> str:
    body = {
        "PaymentID": order_id,
        "Username": ameria_sim.USERNAME,
        "Password": ameria_sim.PASSWORD,
        "Amount": luma // 100,
    }
    response = requests.post(
        f"{vpos.api}/api/VPOS/RefundPayment", json={**body, **changes}, timeout=5
    )
    assert response.status_code == 200, response.text
    return str(response.json()["ResponseCode"])


def _post_arca(engine: Engine, order_id: str, luma: int, **changes: Any) -> str:
    form = {
        "userName": arca_sim.USERNAME,
        "password": arca_sim.PASSWORD,
        "orderId": order_id,
        "amount": str(luma),
    }
    response = requests.post(f"{engine.api}/refund.do", data={**form, **changes}, timeout=5)
    assert response.status_code == 200, response.text
    return str(response.json()["errorCode"])


def _shown_ameria(vpos: Vpos, order_id: str) -> tuple[int, int]:
    details = vpos.details(order_id)
    return details["OrderStatus"], round(details["RefundedAmount"] * 100)


def _shown_arca(engine: Engine, order_id: str) -> tuple[int, int]:
    document = engine.status(order_id)
    return document["orderStatus"], document["paymentAmountInfo"]["refundedAmount"]


@dataclass(frozen=True)
class Wire:
    """One bank's simulator as these tests call it (amounts in luma)."""

    gateway: str
    serve: Callable[[str, Any], Any]  # (root, its controls' client) -> Vpos or Engine
    controls: Callable[[str], Any]
    serving: Callable[[SimulatorConfig], Any]
    registered: Callable[[Any, int | None], str]  # an order of that many luma (None: default)
    post: Callable[..., str]  # a refund's answer code
    shown: Callable[[Any, str], tuple[int, int]]  # (order state, refunded total in luma)
    login: tuple[str, str]  # the refund call's user and password fields
    unit: int  # the smallest step of an amount the call takes, in luma
    done: str
    refused: str  # more than is left, or nothing to refund (not deposited)
    unpaid: str
    unknown: str  # an unknown order, or another merchant's
    wrong_login: str
    unknown_id: str
    decline: object  # a scenario's refund_decline, and the code it answers
    witnessed: Callable[[int], str]  # a refund's amount in the witness
    matched: Callable[[int], int]  # a scenario's match.amount for an order of that many luma


WIRES = [
    Wire(
        gateway="ameria",
        serve=Vpos,
        controls=ameria_sim.AmeriaSimulator,
        serving=ameria_sim.serving,
        registered=lambda vpos, luma: vpos.paid_id(
            **({} if luma is None else {"Amount": luma // 100})
        ),
        post=_post_ameria,
        shown=_shown_ameria,
        login=("Username", "Password"),
        unit=100,
        done="00",
        refused="50",
        unpaid="0-100",
        unknown="06",
        wrong_login="20",
        unknown_id="00000000-0000-0000-0000-000000000000",
        decline="0-2001",
        witnessed=lambda luma: str(luma // 100),
        matched=lambda luma: luma // 100,
    ),
    Wire(
        gateway="arca",
        serve=Engine,
        controls=arca_sim.ArcaSimulator,
        serving=arca_sim.serving,
        registered=lambda engine, luma: engine.order_id(
            **({} if luma is None else {"amount": str(luma)})
        ),
        post=_post_arca,
        shown=_shown_arca,
        login=("userName", "password"),
        unit=1,
        done="0",
        refused="7",
        unpaid="7",
        unknown="6",
        wrong_login="5",
        unknown_id="no-such-order",
        decline=7,
        witnessed=lambda luma: f"{luma / 100:.2f}",
        matched=lambda luma: luma,
    ),
]


@dataclass
class Bank:
    wire: Wire
    client: Any  # Vpos or Engine

    @property
    def sim(self) -> Any:
        return self.client.sim

    def order(self, luma: int | None = None) -> str:
        return self.wire.registered(self.client, luma)

    def paid(self, luma: int = 500_000) -> str:
        order_id = self.order(luma)
        self.sim.decide(order_id, "pay")
        return order_id

    def refund(self, order_id: str, luma: int, **changes: Any) -> str:
        return self.wire.post(self.client, order_id, luma, **changes)

    def shown(self, order_id: str) -> tuple[int, int]:
        return self.wire.shown(self.client, order_id)


@pytest.fixture(params=WIRES, ids=[w.gateway for w in WIRES])
def bank(request: pytest.FixtureRequest) -> Iterator[Bank]:
    wire: Wire = request.param
    with wire.serving(SimulatorConfig()) as (_, root):
        sim = wire.controls(f"{root}/{wire.gateway}")
        yield Bank(wire, wire.serve(root, sim))
        sim.close()


def test_refunds_give_back_up_to_what_is_left_and_show_in_the_status(bank: Bank) -> None:
    wire, order_id = bank.wire, bank.paid()

    assert bank.refund(order_id, 200_000) == wire.done

    assert bank.shown(order_id) == (2, 200_000)  # partly refunded: still deposited
    assert bank.refund(order_id, 300_000 + wire.unit) == wire.refused
    assert bank.refund(order_id, 300_000) == wire.done
    assert bank.shown(order_id) == (4, 500_000)
    assert bank.refund(order_id, wire.unit) == wire.refused  # nothing left
    witness = bank.sim.transfers(order_id)
    assert [(t["amount"], t["times_moved"]) for t in witness] == [
        (wire.witnessed(200_000), 1),
        (wire.witnessed(300_000), 1),
    ]
    passwords = [r["body"][wire.login[1]] for r in bank.sim.requests("refund")]
    assert passwords == ["<redacted>"] * 4


def test_an_unpaid_unknown_or_foreign_order_is_not_refunded(bank: Bank) -> None:
    wire, unpaid = bank.wire, bank.order()
    user, password = wire.login

    assert bank.refund(unpaid, 10_000) == wire.unpaid
    assert bank.refund(wire.unknown_id, 10_000) == wire.unknown
    assert bank.refund(unpaid, 10_000, **{password: "wrong"}) == wire.wrong_login
    other = bank.sim.new_account()
    login = {user: other["username"], password: other["password"]}
    assert bank.refund(bank.paid(), 10_000, **login) == wire.unknown
    assert bank.sim.transfers() == []


def test_a_scenario_declines_the_order_s_refunds(bank: Bank) -> None:
    wire = bank.wire
    bank.sim.scenario(match={"amount": wire.matched(710_000)}, refund_decline=wire.decline)
    order_id = bank.paid(710_000)

    assert bank.refund(order_id, 10_000) == str(wire.decline)
    assert bank.shown(order_id)[1] == 0
    assert bank.sim.transfers(order_id) == []


def test_a_refund_at_the_bank_counts_as_refunded_in_full(bank: Bank) -> None:
    order_id = bank.paid()

    bank.sim.set_status(order_id, 4)

    assert bank.shown(order_id) == (4, 500_000)

"""The IntaSend simulator: its API, auth and both error shapes, life cycle, controls, webhooks."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import falcon.testing
import pytest

from sandbox.config import SimulatorConfig
from sandbox.intasend import IntaSendSimulator, create_simulator, mount
from sandbox.intasend.accounts import (
    BUILTIN_CHALLENGE,
    BUILTIN_PUBLISHABLE_KEY,
    BUILTIN_SECRET_KEY,
    BUILTIN_WALLET_ID,
)
from sandbox.intasend.settings import IntaSendSimSettings
from tests.sandbox.helpers import WAIT_S, CallbackReceiver

PUSH = "/api/v1/payment/mpesa-stk-push/"
COLLECTION = "/api/v1/payment/collection/"
STATUS = "/api/v1/payment/status/"
AUTH = {
    "Authorization": f"Bearer {BUILTIN_SECRET_KEY}",
    "INTASEND_PUBLIC_API_KEY": BUILTIN_PUBLISHABLE_KEY,
}
DELAY_S = 0.2
FAST_RETRIES = (0.05, 0.05, 0.05, 0.05, 0.05)


class Sim:
    """A simulator and a client for its app (paths without the /intasend prefix)."""

    def __init__(self, sim: IntaSendSimulator) -> None:
        self.sim = sim
        self.client = falcon.testing.TestClient(sim.app)

    def push(self, headers: dict[str, str] | None = None, **fields: Any) -> falcon.testing.Result:
        body = {"currency": "KES", "method": "M-PESA", "amount": "100.00"}
        body.update({"phone_number": "254712345678", "api_ref": "attempt-1", **fields})
        return self.client.simulate_post(
            PUSH, json=body, headers=AUTH if headers is None else headers
        )

    def status(self, invoice_id: str, **extra: Any) -> falcon.testing.Result:
        body = {"invoice_id": invoice_id, "public_key": BUILTIN_PUBLISHABLE_KEY, **extra}
        return self.client.simulate_post(STATUS, json=body)

    def control(self, method: str, path: str, body: Any = None) -> falcon.testing.Result:
        return self.client.simulate_request(method, f"/_sim{path}", json=body)

    def webhook(self, url: str, challenge: str = BUILTIN_CHALLENGE) -> None:
        body = {"public_key": BUILTIN_PUBLISHABLE_KEY, "url": url, "challenge": challenge}
        assert self.control("POST", "/webhooks", body).status_code == 200

    def deliveries(self, count: int, timeout_s: float = WAIT_S) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            found: list[dict[str, Any]] = self.control("GET", "/deliveries").json
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, found
                return found
            time.sleep(0.02)


SimMaker = Callable[..., Sim]


@pytest.fixture
def make_sim() -> Iterator[SimMaker]:
    built: list[IntaSendSimulator] = []

    def make(delay_s: float = DELAY_S, **settings: Any) -> Sim:
        options = {"retry_delays_s": FAST_RETRIES, **settings}
        sim = create_simulator(
            SimulatorConfig(callback_delay_s=delay_s), IntaSendSimSettings(**options)
        )
        built.append(sim)
        return Sim(sim)

    yield make
    for sim in built:
        sim.close()
        assert not sim.dispatcher.is_alive()


@pytest.fixture
def sim(make_sim: SimMaker) -> Sim:
    return make_sim()


# -- the API ---------------------------------------------------------------------------------


def test_the_mounted_simulator_answers_under_intasend() -> None:
    mounted = mount(SimulatorConfig(callback_delay_s=DELAY_S))
    try:
        client = falcon.testing.TestClient(mounted)
        assert client.simulate_get("/intasend/_sim/health").json["gateway"] == "intasend"
        body = {"invoice_id": "NOPE", "public_key": BUILTIN_PUBLISHABLE_KEY}
        assert client.simulate_post(f"/intasend{STATUS}", json=body).status_code == 404
        assert isinstance(mounted.state, IntaSendSimulator)
    finally:
        mounted.close()


def test_a_push_creates_a_pending_invoice_with_charges(sim: Sim) -> None:
    answer = sim.push(name="Wanjiku Kamau", email="w@example.com")

    assert answer.status_code == 200
    invoice = answer.json["invoice"]
    assert invoice["state"] == "PENDING"
    assert re.fullmatch(r"[A-Z]{7}", invoice["invoice_id"])
    assert (invoice["value"], invoice["charges"], invoice["net_amount"]) == (
        "100.00",
        "3.50",
        "96.50",
    )
    assert (invoice["account"], invoice["api_ref"]) == ("254712345678", "attempt-1")
    assert answer.json["customer"]["first_name"] == "Wanjiku"


def test_the_invoice_goes_pending_processing_complete(sim: Sim) -> None:
    invoice_id = sim.push().json["invoice"]["invoice_id"]

    assert sim.status(invoice_id).json["invoice"]["state"] == "PENDING"
    time.sleep(DELAY_S * 0.6)
    assert sim.status(invoice_id).json["invoice"]["state"] == "PROCESSING"
    time.sleep(DELAY_S * 0.6)
    done = sim.status(invoice_id).json
    assert done["invoice"]["state"] == "COMPLETE"
    assert len(done["invoice"]["mpesa_reference"]) == 10
    assert done["meta"]["customer"]["phone_number"] == "254712345678"


def test_a_built_in_phone_fails_with_its_m_pesa_code(sim: Sim) -> None:
    invoice_id = sim.push(phone_number="254700001032").json["invoice"]["invoice_id"]
    time.sleep(DELAY_S * 1.2)

    invoice = sim.status(invoice_id).json["invoice"]
    assert (invoice["state"], invoice["failed_code"]) == ("FAILED", "1032")
    assert invoice["failed_reason"] == "Request cancelled by user"
    assert invoice["mpesa_reference"] is None


def test_the_older_collection_endpoint_takes_the_public_key_in_the_body(sim: Sim) -> None:
    body = {
        "public_key": BUILTIN_PUBLISHABLE_KEY,
        "currency": "KES",
        "method": "M-PESA",
        "amount": 10,
        "phone_number": "254712345678",
    }
    assert sim.client.simulate_post(COLLECTION, json=body).status_code == 200
    body["public_key"] = "ISPubKey_test_unknown"
    assert sim.client.simulate_post(COLLECTION, json=body).status_code == 401


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Authentication credentials were not provided."),
        ({"Authorization": "Bearer ISSecretKey_test_wrong"}, "Invalid authentication credentials"),
        (
            {"Authorization": AUTH["Authorization"], "INTASEND_PUBLIC_API_KEY": "ISPubKey_test_x"},
            "Invalid authentication credentials",
        ),
    ],
)
def test_wrong_or_missing_keys_are_401_with_a_detail(
    sim: Sim, headers: dict[str, str], detail: str
) -> None:
    answer = sim.push(headers=headers)
    assert (answer.status_code, answer.json) == (401, {"detail": detail})


def test_the_public_key_header_may_be_required(make_sim: SimMaker) -> None:
    strict = make_sim(strict_public_key=True)
    lenient = make_sim()
    only_bearer = {"Authorization": AUTH["Authorization"]}
    assert strict.push(headers=only_bearer).status_code == 401
    assert lenient.push(headers=only_bearer).status_code == 200


def test_validation_errors_use_the_listed_shape(sim: Sim) -> None:
    answer = sim.push(amount="200000", phone_number="0712", currency="USD", wallet_id="NOPE")

    assert answer.status_code == 400
    assert answer.json["type"] == "client_error"
    assert {e["attr"] for e in answer.json["errors"]} == {
        "amount",
        "phone_number",
        "currency",
        "wallet_id",
    }
    assert all(e["code"] and e["detail"] for e in answer.json["errors"])


def test_the_account_s_wallet_is_accepted(sim: Sim) -> None:
    assert sim.push(wallet_id=BUILTIN_WALLET_ID).status_code == 200


def test_status_checks_the_key_and_the_invoice_owner(sim: Sim) -> None:
    invoice_id = sim.push().json["invoice"]["invoice_id"]
    other = sim.control("POST", "/accounts", {}).json

    assert sim.status(invoice_id, public_key=other["publishable_key"]).status_code == 404
    assert sim.status(invoice_id, public_key="ISPubKey_test_nobody").status_code == 401
    missing = sim.client.simulate_post(STATUS, json={"public_key": BUILTIN_PUBLISHABLE_KEY})
    assert (missing.status_code, missing.json["errors"][0]["attr"]) == (400, "invoice_id")
    assert sim.client.simulate_post(STATUS, body=b"{", headers=AUTH).json["type"] == "client_error"


def test_an_added_account_pushes_with_its_own_keys(sim: Sim) -> None:
    account = sim.control("POST", "/accounts", {}).json
    headers = {
        "Authorization": f"Bearer {account['secret_key']}",
        "INTASEND_PUBLIC_API_KEY": account["publishable_key"],
    }
    assert account["publishable_key"].startswith("ISPubKey_test_")
    assert account["secret_key"].startswith("ISSecretKey_test_")
    assert sim.push(headers=headers).status_code == 200


# -- scenarios -------------------------------------------------------------------------------


def test_a_scenario_by_amount_fails_with_its_code(sim: Sim) -> None:
    scenario = {"match": {"amount": 250}, "outcome": "fail", "failed_code": "2001"}
    assert sim.control("POST", "/scenarios", scenario).status_code == 201

    invoice_id = sim.push(amount="250.00").json["invoice"]["invoice_id"]
    time.sleep(DELAY_S * 1.2)

    invoice = sim.status(invoice_id).json["invoice"]
    assert (invoice["state"], invoice["failed_code"]) == ("FAILED", "2001")
    assert invoice["failed_reason"] == "The initiator information is invalid."


def test_a_pending_scenario_never_finishes(sim: Sim) -> None:
    sim.control("POST", "/scenarios", {"match": {"phone": "254711000111"}, "outcome": "pending"})
    invoice_id = sim.push(phone_number="254711000111").json["invoice"]["invoice_id"]
    time.sleep(DELAY_S * 1.5)
    assert sim.status(invoice_id).json["invoice"]["state"] == "PROCESSING"


@pytest.mark.parametrize(("status", "shape"), [(503, "detail"), (500, "html"), (400, "errors")])
def test_push_errors_are_injected_then_used_up(sim: Sim, status: int, shape: str) -> None:
    scenario = {"match": {"phone": "254711000222"}, "push_error": {"status": status, "times": 1}}
    sim.control("POST", "/scenarios", scenario)

    failed = sim.push(phone_number="254711000222")
    assert failed.status_code == status
    if shape == "html":
        assert failed.headers["content-type"].startswith("text/html")
    else:
        assert shape in failed.json
    assert sim.push(phone_number="254711000222").status_code == 200
    assert len(sim.control("GET", "/invoices").json) == 1


@pytest.mark.parametrize(
    "scenario",
    [
        {"match": {}},
        {"match": {"phone": "2547"}, "outcome": "maybe"},
        {"match": {"phone": "2547"}, "webhook": "thrice"},
        {"match": {"amount": "ten"}},
        {"match": {"phone": "2547"}, "push_error": {"status": 200}},
        {"match": {"phone": "2547"}, "surprise": 1},
    ],
)
def test_bad_scenarios_are_400(sim: Sim, scenario: dict[str, Any]) -> None:
    assert sim.control("POST", "/scenarios", scenario).status_code == 400


def test_requests_are_recorded_with_the_bearer_redacted(sim: Sim) -> None:
    sim.push()
    [record] = sim.control("GET", "/requests?kind=stk_push").json
    assert record["headers"]["authorization"] == "Bearer <redacted>"
    assert BUILTIN_SECRET_KEY not in str(record)
    assert (record["path"], record["status"], record["body"]["amount"]) == (PUSH, 200, "100.00")


def test_reset_forgets_invoices_scenarios_and_accounts(sim: Sim) -> None:
    sim.push()
    sim.control("POST", "/scenarios", {"match": {"amount": 5}})
    sim.control("POST", "/accounts", {})

    assert sim.control("POST", "/reset").json == {"reset": True}

    assert sim.control("GET", "/invoices").json == []
    assert sim.control("GET", "/scenarios").json == []
    assert len(sim.control("GET", "/accounts").json) == 1
    assert sim.control("GET", "/requests").json == []


# -- webhooks --------------------------------------------------------------------------------


def test_each_state_change_is_posted_with_the_challenge(
    sim: Sim, receiver: CallbackReceiver
) -> None:
    sim.webhook(receiver.url)
    invoice_id = sim.push().json["invoice"]["invoice_id"]

    received = receiver.wait_for(2)

    assert [r.body["state"] for r in received] == ["PROCESSING", "COMPLETE"]
    assert all(r.body["challenge"] == BUILTIN_CHALLENGE for r in received)
    assert all(r.body["invoice_id"] == invoice_id for r in received)
    assert received[1].body["charges"] == "3.50"


@pytest.mark.parametrize(
    ("phone", "states"),
    [
        ("254700009998", ["PROCESSING", "COMPLETE", "COMPLETE"]),
        ("254700009997", ["PROCESSING", "COMPLETE", "PROCESSING"]),
    ],
)
def test_built_in_phones_repeat_or_reorder_webhooks(
    sim: Sim, receiver: CallbackReceiver, phone: str, states: list[str]
) -> None:
    sim.webhook(receiver.url)
    sim.push(phone_number=phone)
    assert [r.body["state"] for r in receiver.wait_for(3)] == states


def test_a_phone_without_webhooks_sends_none(sim: Sim, receiver: CallbackReceiver) -> None:
    sim.webhook(receiver.url)
    invoice_id = sim.push(phone_number="254700009999").json["invoice"]["invoice_id"]
    time.sleep(DELAY_S * 1.5)
    assert receiver.received == []
    assert sim.status(invoice_id).json["invoice"]["state"] == "COMPLETE"


def test_failed_deliveries_are_retried_five_times(sim: Sim, receiver: CallbackReceiver) -> None:
    receiver.status = 500
    sim.webhook(receiver.url)
    sim.push(phone_number="254700009996")  # only one change: PROCESSING

    attempts = sim.deliveries(6)
    time.sleep(0.2)

    assert [a["attempt"] for a in sim.control("GET", "/deliveries").json] == [1, 2, 3, 4, 5, 6]
    assert {a["status"] for a in attempts} == {500}


def test_a_retry_that_is_answered_ends_the_retries(sim: Sim, receiver: CallbackReceiver) -> None:
    receiver.status = 503
    sim.webhook(receiver.url)
    sim.push(phone_number="254700009996")
    sim.deliveries(2)
    receiver.status = 200

    time.sleep(0.4)

    statuses = [a["status"] for a in sim.control("GET", "/deliveries").json]
    assert statuses[-1] == 200
    assert statuses.count(200) == 1


def test_an_unreachable_webhook_records_the_error(make_sim: SimMaker) -> None:
    sim = make_sim(retry_delays_s=())
    sim.webhook("http://127.0.0.1:1/nothing")
    sim.push(phone_number="254700009996")
    [attempt] = sim.deliveries(1)
    assert attempt["status"] is None
    assert "ConnectionError" in attempt["error"]


def test_without_a_webhook_the_change_is_recorded_undelivered(sim: Sim) -> None:
    sim.push(phone_number="254700009996")
    [attempt] = sim.deliveries(1)
    assert (attempt["url"], attempt["error"]) == (None, "no webhook configured for the account")


def test_resend_posts_the_current_state_now(sim: Sim, receiver: CallbackReceiver) -> None:
    invoice_id = sim.push(phone_number="254700009999").json["invoice"]["invoice_id"]
    time.sleep(DELAY_S * 1.2)
    sim.webhook(receiver.url, challenge="another")

    resent = sim.control("POST", f"/invoices/{invoice_id}/resend")

    assert (resent.status_code, resent.json["state"]) == (202, "COMPLETE")
    [received] = receiver.wait_for(1)
    assert (received.body["state"], received.body["challenge"]) == ("COMPLETE", "another")
    assert sim.control("POST", "/invoices/NOPE/resend").status_code == 404


def test_amounts_can_be_numbers(sim: Sim, receiver: CallbackReceiver) -> None:
    sim.webhook(receiver.url)
    sim.push(phone_number="254700009995")
    completed = receiver.wait_for(2)[1].body
    assert (completed["value"], completed["charges"]) == (100.0, 3.5)


def test_a_fee_percentage_is_configurable(make_sim: SimMaker) -> None:
    sim = make_sim(fee_percent=Decimal("1.5"))
    invoice = sim.push(amount="333").json["invoice"]
    assert (invoice["charges"], invoice["net_amount"]) == ("5.00", "328.00")


def test_settings_are_read_from_the_environment() -> None:
    settings = IntaSendSimSettings.from_env(
        {
            "SANDBOX_INTASEND_FEE_PERCENT": "2",
            "SANDBOX_INTASEND_RETRY_DELAYS_S": "0.1, 0.2",
            "SANDBOX_INTASEND_STRICT_PUBLIC_KEY": "1",
            "SANDBOX_INTASEND_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        }
    )
    assert settings.retry_delays_s == (0.1, 0.2)
    assert settings.strict_public_key
    assert (settings.webhook_url, settings.webhook_challenge) == (
        "http://127.0.0.1:9/hook",
        BUILTIN_CHALLENGE,
    )
    with pytest.raises(ValueError, match="SANDBOX_INTASEND"):
        IntaSendSimSettings.from_env({"SANDBOX_INTASEND_FEE_PERCENT": "lots"})

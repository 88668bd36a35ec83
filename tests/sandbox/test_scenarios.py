"""Scenarios registered through the control API, and the rest of the control API."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.sandbox.helpers import PHONE, CallbackReceiver, Daraja, FakeClock, SimFactory, basic

BUSY = {"status": 500, "errorCode": "500.003.02", "errorMessage": "System is busy"}


def test_push_error_answers_the_next_n_pushes_then_succeeds(
    daraja: Daraja, receiver: CallbackReceiver
) -> None:
    daraja.scenario({"match": {"phone": PHONE}, "push_error": {**BUSY, "times": 2}})

    first, second, third = (daraja.push() for _ in range(3))

    for failed in (first, second):
        assert failed.status_code == 500
        assert failed.json["errorCode"] == "500.003.02"
        assert failed.json["errorMessage"] == "System is busy"
        assert failed.json["requestId"]
    assert third.status_code == 200
    assert len(daraja.control("GET", "/transactions").json) == 1
    receiver.wait_for(1)
    assert daraja.control("GET", "/scenarios").json[0]["push_error"]["times"] == 0


def test_amount_scenario(daraja: Daraja, receiver: CallbackReceiver) -> None:
    daraja.scenario({"match": {"amount": 77}, "result_code": 1, "callback": "twice"})

    checkout_id = daraja.accepted(Amount=77)
    daraja.accepted(Amount=78)

    received = receiver.wait_for(3)
    codes = sorted(r.body["Body"]["stkCallback"]["ResultCode"] for r in received)
    assert codes == [0, 1, 1]
    tx = daraja.control("GET", f"/transactions/{checkout_id}").json
    assert tx["outcome_source"] == "scenario:" + daraja.control("GET", "/scenarios").json[0]["id"]


def test_phone_scenario_beats_amount_scenario_and_builtin_rule(
    make_sim: SimFactory,
) -> None:
    clock = FakeClock()
    daraja = Daraja(make_sim(clock=clock))
    daraja.scenario({"match": {"phone": "254700001032"}, "result_code": 2001})
    daraja.scenario({"match": {"amount": 10}, "result_code": 1})

    by_phone = daraja.accepted(PhoneNumber="254700001032", Amount=10)
    by_amount = daraja.accepted(PhoneNumber="254700000017", Amount=10)
    by_builtin = daraja.accepted(PhoneNumber="254700000017", Amount=11)
    clock.advance(1)

    codes = [daraja.query(c).json["ResultCode"] for c in (by_phone, by_amount, by_builtin)]
    assert codes == ["2001", "1", "17"]


def test_newest_matching_scenario_wins(make_sim: SimFactory) -> None:
    clock = FakeClock()
    daraja = Daraja(make_sim(clock=clock))
    daraja.scenario({"match": {"phone": PHONE}, "result_code": 1})
    daraja.scenario({"match": {"phone": PHONE}, "result_code": 1032})

    checkout_id = daraja.accepted()
    clock.advance(1)

    assert daraja.query(checkout_id).json["ResultCode"] == "1032"


def test_scenario_callback_delay_overrides_config(make_sim: SimFactory) -> None:
    clock = FakeClock()
    daraja = Daraja(make_sim(clock=clock, callback_delay_s=1))
    daraja.scenario({"match": {"phone": PHONE}, "callback": "none", "callback_delay_s": 100})

    checkout_id = daraja.accepted()
    clock.advance(50)
    pending = daraja.query(checkout_id)
    clock.advance(50)

    assert pending.json["errorMessage"] == "The transaction is being processed"
    assert daraja.query(checkout_id).json["ResultCode"] == "0"


def test_amount_in_callback_tampers_with_the_callback_only(
    daraja: Daraja, receiver: CallbackReceiver
) -> None:
    daraja.scenario({"match": {"phone": PHONE}, "amount_in_callback": 1})

    checkout_id = daraja.accepted(Amount=500)

    (received,) = receiver.wait_for(1)
    items = received.body["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    assert {"Name": "Amount", "Value": 1.0} in items
    assert daraja.control("GET", f"/transactions/{checkout_id}").json["Amount"] == 500


def test_query_error_answers_the_next_n_queries(make_sim: SimFactory) -> None:
    clock = FakeClock()
    daraja = Daraja(make_sim(clock=clock))
    checkout_id = daraja.accepted()
    clock.advance(1)
    quota = {"status": 500, "errorCode": "500.003.03", "errorMessage": "Quota Violation"}
    daraja.scenario({"match": {"phone": PHONE}, "query_error": quota})

    failed = daraja.query(checkout_id)

    assert failed.status_code == 500
    assert failed.json["errorCode"] == "500.003.03"
    assert daraja.query(checkout_id).json["ResultCode"] == "0"


def test_push_delay_answers_late_but_still_processes(
    daraja: Daraja, receiver: CallbackReceiver
) -> None:
    daraja.scenario({"match": {"phone": PHONE}, "push_delay_s": 0.2})

    started = time.monotonic()
    result = daraja.push()

    assert time.monotonic() - started >= 0.2
    assert result.status_code == 200
    receiver.wait_for(1)


@pytest.mark.parametrize(
    "document",
    [
        [],
        {},
        {"match": {}},
        {"match": {"phone": "2547x"}},
        {"match": {"amount": 0}},
        {"match": {"amount": 1.5}},
        {"match": {"phone": PHONE, "amount": 1}},
        {"match": {"phone": PHONE}, "result_code": None},
        {"match": {"phone": PHONE}, "result_code": True},
        {"match": {"phone": PHONE}, "callback": "thrice"},
        {"match": {"phone": PHONE}, "callback_delay_s": -1},
        {"match": {"phone": PHONE}, "push_delay_s": "slow"},
        {"match": {"phone": PHONE}, "push_error": {"errorCode": "x"}},
        {"match": {"phone": PHONE}, "push_error": {**BUSY, "times": 0}},
        {"match": {"phone": PHONE}, "push_error": {**BUSY, "status": 200}},
        {"match": {"phone": PHONE}, "query_error": "busy"},
        {"match": {"phone": PHONE}, "amount_in_callback": "1"},
        {"match": {"phone": PHONE}, "typo": 1},
    ],
)
def test_bad_scenarios_are_400(daraja: Daraja, document: Any) -> None:
    result = daraja.control("POST", "/scenarios", document)

    assert result.status_code == 400
    assert result.json["title"]
    assert daraja.control("GET", "/scenarios").json == []


def test_scenarios_can_be_listed_and_cleared(daraja: Daraja) -> None:
    first = daraja.scenario({"match": {"phone": PHONE}})
    second = daraja.scenario({"match": {"amount": 5}, "result_code": "1032"})

    listed = daraja.control("GET", "/scenarios").json

    assert [s["id"] for s in listed] == [first, second]
    assert listed[1]["result_code"] == 1032
    assert daraja.control("DELETE", "/scenarios").status_code == 200
    assert daraja.control("GET", "/scenarios").json == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/shortcodes", {"shortcode": "12", "passkey": "pk"}),
        ("/shortcodes", {"shortcode": "600000"}),
        ("/shortcodes", "not an object"),
        ("/apps", {"consumer_key": "a:b", "consumer_secret": "s"}),
        ("/apps", {"consumer_key": "a"}),
        ("/apps", None),
    ],
)
def test_bad_control_input_is_400(daraja: Daraja, path: str, body: Any) -> None:
    assert daraja.control("POST", path, body).status_code == 400


def test_invalid_control_json_is_400(daraja: Daraja) -> None:
    result = daraja.client.simulate_post("/_sim/scenarios", body="{oops")

    assert result.status_code == 400
    assert result.json["title"] == "Invalid JSON"


def test_requests_are_recorded_with_credentials_redacted(daraja: Daraja) -> None:
    daraja.push(Amount=0)

    oauth = daraja.control("GET", "/requests", None)
    pushes = daraja.client.simulate_get("/_sim/requests", params={"kind": "stkpush"}).json

    assert [r["kind"] for r in oauth.json] == ["oauth", "stkpush"]
    assert oauth.json[0]["headers"]["authorization"] == "Basic <redacted>"
    assert oauth.json[0]["response"]["access_token"] == "<redacted>"
    (push,) = pushes
    assert push["method"] == "POST"
    assert push["path"] == "/mpesa/stkpush/v1/processrequest"
    assert push["headers"]["authorization"] == "Bearer <redacted>"
    assert push["body"]["Amount"] == 0
    assert push["status"] == 400
    assert push["time"]


def test_unknown_request_kind_is_400(daraja: Daraja) -> None:
    result = daraja.client.simulate_get("/_sim/requests", params={"kind": "c2b"})

    assert result.status_code == 400


def test_transactions_listing_and_unknown_id(daraja: Daraja) -> None:
    checkout_id = daraja.accepted()

    assert [t["CheckoutRequestID"] for t in daraja.control("GET", "/transactions").json] == [
        checkout_id
    ]
    assert daraja.control("GET", "/transactions/ws_CO_nope").status_code == 404


def test_reset_forgets_all_but_builtins(daraja: Daraja) -> None:
    daraja.control("POST", "/apps", {"consumer_key": "k2", "consumer_secret": "s2"})
    daraja.scenario({"match": {"phone": PHONE}, "result_code": 1})
    old_token = daraja.token()
    daraja.push()

    assert daraja.control("POST", "/reset").status_code == 200

    assert daraja.control("GET", "/transactions").json == []
    assert daraja.control("GET", "/scenarios").json == []
    assert daraja.control("GET", "/requests").json == []
    assert daraja.post("/mpesa/stkpush/v1/processrequest", {}, token=old_token).status_code == 404
    assert daraja.token(fresh=True)
    assert daraja.push().status_code == 200
    assert daraja.oauth(basic("k2", "s2")).json["errorCode"] == "400.008.01"


def test_health(daraja: Daraja) -> None:
    health = daraja.control("GET", "/health")

    assert health.status_code == 200
    assert health.json == {"status": "ok", "transactions": 0, "pending_callbacks": 0}

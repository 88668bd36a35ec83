"""The InTouch simulator: Digest auth, TouchPay's SDK checkout, scenarios and callbacks."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import falcon.testing
import pytest

from sandbox.config import SimulatorConfig
from sandbox.intouch import InTouchSimulator, create_intouch_simulator, mount
from sandbox.intouch.scenarios import international
from tests.support.waiting import wait_until

AGENCY = "SNSANDBOX01"
API_USER, API_PASSWORD = "sandbox-api", "sandbox-api-password"
AGENT = {"loginAgent": "sandbox-agent", "passwordAgent": "sandbox-agent-password"}
PUSH_PATH = f"/apidist/sec/touchpayapi/{AGENCY}/transaction"
STATUS_PATH = f"/apidist/sec/v1/{AGENCY}/check_status"
SERVICE = "SN_PAIEMENTMARCHAND_OM_TP"
BASIC_USER, BASIC_PASSWORD = "sandbox-touchpay", "sandbox-touchpay-password"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sim:
    simulator: InTouchSimulator
    client: falcon.testing.TestClient
    clock: FakeClock | None = None
    nc: int = 0

    def digest(self, method: str, path: str, *, password: str = API_PASSWORD) -> str:
        """Get a challenge, and answer it as an RFC 2617 client would."""
        challenge = self.client.simulate_request(method, path).headers["www-authenticate"]
        self.nc += 1
        return digest_header(challenge, method, path, API_USER, password, nc=self.nc)

    def push(self, body: dict[str, Any], **kw: Any) -> falcon.testing.Result:
        uri = f"{PUSH_PATH}?loginAgent={AGENT['loginAgent']}&passwordAgent={AGENT['passwordAgent']}"
        headers = {"Authorization": self.digest("PUT", uri)}
        return self.client.simulate_put(
            PUSH_PATH, params=kw.get("params", AGENT), json=body, headers=headers
        )

    def check_status(self, order_number: str, **changes: str) -> falcon.testing.Result:
        body = {
            "partner_id": "SANDBOX-PARTNER-01",
            "partner_transaction_id": order_number,
            "login_api": API_USER,
            "password_api": API_PASSWORD,
            **changes,
        }
        headers = {"Authorization": self.digest("POST", STATUS_PATH)}
        return self.client.simulate_post(STATUS_PATH, json=body, headers=headers)

    def control(self, method: str, path: str, **kw: Any) -> falcon.testing.Result:
        return self.client.simulate_request(method, f"/_sim{path}", **kw)


def digest_header(
    challenge: str, method: str, uri: str, user: str, password: str, *, nc: int = 1
) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.partition(" ")[2]))
    cnonce, nc_text = "0a4f113b", f"{nc:08x}"

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    ha1 = md5(f"{user}:{params['realm']}:{password}")
    ha2 = md5(f"{method}:{uri}")
    response = md5(f"{ha1}:{params['nonce']}:{nc_text}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{uri}", response="{response}", opaque="{params["opaque"]}", algorithm=MD5, '
        f'qop=auth, nc={nc_text}, cnonce="{cnonce}"'
    )


def push_body(order: str = "order-1", phone: str = "771234567", **changes: Any) -> dict[str, Any]:
    return {
        "idFromClient": order,
        "amount": 1500,
        "callback": "http://127.0.0.1:9/cb",
        "recipientNumber": phone,
        "serviceCode": SERVICE,
        "additionnalInfos": {
            "recipientEmail": "awa@example.com",
            "recipientFirstName": "Awa",
            "recipientLastName": "Diop",
            "destinataire": phone,
        },
        **changes,
    }


def sdk(order: str = "order-1", **changes: Any) -> dict[str, Any]:
    return {
        "order_number": order,
        "agency_code": AGENCY,
        "secure_code": "sandbox-secure-code-7f3a9c2e",
        "domain_name": "localhost",
        "url_redirection_success": "https://shop.example/ok",
        "url_redirection_failed": "https://shop.example/ko",
        "amount": 2500,
        "city": "Dakar",
        "email": "awa@example.com",
        "clientFirstName": "Awa",
        "clientLastName": "Diop",
        "clientPhone": "771234567",
        **changes,
    }


@pytest.fixture
def sim() -> Iterator[Sim]:
    """A simulator on a clock that moves only when told."""
    clock = FakeClock()
    simulator = create_intouch_simulator(
        SimulatorConfig(callback_delay_s=5), environ={}, clock=clock
    )
    yield Sim(simulator, falcon.testing.TestClient(simulator.app), clock)
    simulator.close()


@pytest.fixture
def live() -> Iterator[Sim]:
    """A simulator on the real clock with a short delay, for callbacks."""
    simulator = create_intouch_simulator(SimulatorConfig(callback_delay_s=0.05), environ={})
    yield Sim(simulator, falcon.testing.TestClient(simulator.app))
    simulator.close()


# -- a local callback receiver ----------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def basic(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user, password


@dataclass
class Receiver:
    url: str
    items: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.items)


class _Server(ThreadingHTTPServer):
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _receive(self) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        item = Received(
            self.command,
            parts.path,
            dict(parse_qsl(parts.query)),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        with self.server.receiver.lock:
            self.server.receiver.items.append(item)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = _receive

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = Receiver(f"http://127.0.0.1:{server.server_port}")
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()


# -- Digest -----------------------------------------------------------------------------------


def test_an_unauthenticated_call_is_challenged_for_digest(sim: Sim) -> None:
    result = sim.client.simulate_put(PUSH_PATH, params=AGENT, json=push_body())

    assert result.status_code == 401
    challenge = result.headers["www-authenticate"]
    assert challenge.startswith("Digest ")
    assert 'qop="auth"' in challenge
    assert re.search(r'realm="[^"]+"', challenge)
    assert re.search(r'nonce="[0-9a-f]{32}"', challenge)


def test_the_right_digest_answer_is_let_in(sim: Sim) -> None:
    result = sim.push(push_body())

    assert result.status_code == 200, result.text
    assert result.json["status"] == "INITIATED"
    assert result.json["idFromClient"] == "order-1"
    assert result.json["idFromGU"].startswith("GU")


def test_a_wrong_password_a_replayed_nonce_count_and_another_uri_are_refused(sim: Sim) -> None:
    uri = f"{PUSH_PATH}?loginAgent=sandbox-agent&passwordAgent=sandbox-agent-password"
    wrong = sim.digest("PUT", uri, password="nope")
    assert (
        sim.client.simulate_put(
            PUSH_PATH, params=AGENT, json=push_body(), headers={"Authorization": wrong}
        ).status_code
        == 401
    )

    good = sim.digest("PUT", uri)
    first = sim.client.simulate_put(
        PUSH_PATH, params=AGENT, json=push_body("a"), headers={"Authorization": good}
    )
    replay = sim.client.simulate_put(
        PUSH_PATH, params=AGENT, json=push_body("b"), headers={"Authorization": good}
    )
    assert (first.status_code, replay.status_code) == (200, 401)

    elsewhere = sim.digest("PUT", "/apidist/sec/touchpayapi/OTHER/transaction")
    result = sim.client.simulate_put(
        PUSH_PATH, params=AGENT, json=push_body("c"), headers={"Authorization": elsewhere}
    )
    assert result.status_code == 401


def test_the_agent_login_is_checked_too(sim: Sim) -> None:
    result = sim.push(push_body(), params={**AGENT, "passwordAgent": "nope"})

    assert result.status_code == 401
    assert "loginAgent" in result.json["message"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": "lots"}, "amount"),
        ({"serviceCode": "XX"}, "serviceCode"),
        ({"callback": "ftp://x"}, "callback"),
        ({"recipientNumber": "77-12"}, "recipientNumber"),
        ({"idFromClient": ""}, "idFromClient"),
    ],
)
def test_bad_push_bodies_are_refused(sim: Sim, changes: dict[str, Any], reason: str) -> None:
    result = sim.push(push_body(**changes))

    assert result.status_code == 400
    assert reason in result.json["message"]


def test_an_order_number_is_used_once(sim: Sim) -> None:
    assert sim.push(push_body("same")).status_code == 200

    assert sim.push(push_body("same")).status_code == 409


def test_the_mounted_app_checks_the_digest_uri_with_its_prefix() -> None:
    mounted = mount(SimulatorConfig(callback_delay_s=5))
    try:
        client = falcon.testing.TestClient(mounted)
        path = f"/intouch{STATUS_PATH}"
        challenge = client.simulate_post(path).headers["www-authenticate"]
        body = {
            "partner_id": "SANDBOX-PARTNER-01",
            "partner_transaction_id": "nothing",
            "login_api": API_USER,
            "password_api": API_PASSWORD,
        }
        header = digest_header(challenge, "POST", path, API_USER, API_PASSWORD)

        result = client.simulate_post(path, json=body, headers={"Authorization": header})

        assert mounted.prefix == "/intouch"
        assert result.status_code == 404  # let in; InTouch knows no such order
        assert client.simulate_get("/intouch/_sim/health").json["status"] == "ok"
    finally:
        mounted.close()


# -- check_status ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "code", "status"),
    [("771234567", 200, "SUCCESSFUL"), ("770000001", 300, "FAILED"), ("770000004", 201, "PENDING")],
)
def test_check_status_is_pending_until_the_outcome_is_due(
    sim: Sim, phone: str, code: int, status: str
) -> None:
    assert sim.push(push_body(phone=phone)).status_code == 200

    before = sim.check_status("order-1")
    assert sim.clock is not None
    sim.clock.now += 5
    after = sim.check_status("order-1")

    assert (before.json["code"], before.json["status"]) == (201, "PENDING")
    assert (after.json["code"], after.json["status"]) == (code, status)
    assert after.json["amount"] == "1500.0"


def test_check_status_needs_the_partner_and_api_login(sim: Sim) -> None:
    assert sim.check_status("x", partner_id="other").status_code == 401
    assert sim.check_status("x", password_api="nope").status_code == 401
    assert sim.check_status("unknown").json == {
        "code": 404,
        "status": "NOT_FOUND",
        "message": "unknown transaction",
    }


# -- TouchPay's SDK checkout --------------------------------------------------------------------


REQUIRED = (
    "order_number",
    "agency_code",
    "secure_code",
    "domain_name",
    "url_redirection_success",
    "url_redirection_failed",
    "amount",
)


@pytest.mark.parametrize("missing", REQUIRED)
def test_each_of_the_first_seven_sdk_parameters_is_required(sim: Sim, missing: str) -> None:
    parameters = sdk()
    del parameters[missing]

    result = sim.control("POST", "/touchpay/checkout", json=parameters)

    assert result.status_code == 400
    assert missing in result.json["description"]


def test_the_last_five_sdk_parameters_are_optional(sim: Sim) -> None:
    parameters = {name: value for name, value in sdk().items() if name in REQUIRED}

    result = sim.control("POST", "/touchpay/checkout", json=parameters)

    assert result.status_code == 200, result.text
    assert result.json["status"] == "PENDING"
    assert result.json["payment_token"].startswith("TP")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"secure_code": "someone-elses"}, "secure code"),
        ({"domain_name": "evil.example"}, "domain"),
        ({"agency_code": "NOPE"}, "agency"),
        ({"amount": -1}, "amount"),
        ({"surprise": 1}, "unknown parameters"),
    ],
)
def test_the_checkout_checks_the_agency_its_secure_code_and_domain(
    sim: Sim, changes: dict[str, Any], reason: str
) -> None:
    result = sim.control("POST", "/touchpay/checkout", json=sdk(**changes))

    assert result.status_code == 400
    assert reason in result.json["description"]


def test_a_checkout_is_a_transaction_check_status_knows(sim: Sim) -> None:
    sim.control("POST", "/touchpay/checkout", json=sdk("hosted-1"))
    assert sim.clock is not None
    sim.clock.now += 5

    status = sim.check_status("hosted-1")
    transaction = sim.control("GET", "/transactions/hosted-1").json

    assert (status.json["code"], status.json["amount"]) == (200, "2500.0")
    assert (transaction["flow"], transaction["status"]) == ("touchpay", "SUCCESSFUL")
    assert transaction["customer"]["clientLastName"] == "Diop"


# -- scenarios ---------------------------------------------------------------------------------


def test_scenarios_match_the_phone_in_any_form_and_the_amount(sim: Sim) -> None:
    sim.control(
        "POST", "/scenarios", json={"match": {"phone": "+221 77 555 00 00"}, "outcome": "failed"}
    )
    sim.control("POST", "/scenarios", json={"match": {"amount": 999}, "outcome": "pending"})

    sim.push(push_body("by-phone", phone="775550000"))
    sim.push(push_body("by-amount", amount=999))
    sim.push(push_body("default"))

    outcomes = {
        t["order_number"]: t for t in sim.control("GET", "/transactions").json["transactions"]
    }
    assert outcomes["by-phone"]["outcome"] == "failed"
    assert outcomes["by-amount"]["outcome"] == "pending"
    assert (outcomes["default"]["outcome"], outcomes["default"]["outcome_source"]) == (
        "success",
        "default",
    )


def test_an_injected_push_error_is_given_the_asked_number_of_times(sim: Sim) -> None:
    created = sim.control(
        "POST",
        "/scenarios",
        json={"match": {"phone": "775550001"}, "push_error": {"status": 503, "times": 2}},
    )
    assert created.status_code == 201

    statuses = [sim.push(push_body(f"o{i}", phone="775550001")).status_code for i in range(3)]

    assert statuses == [503, 503, 200]


@pytest.mark.parametrize(
    "document",
    [
        {"match": {}},
        {"match": {"phone": "abc"}},
        {"match": {"amount": 0}},
        {"match": {"amount": 5}, "outcome": "maybe"},
        {"match": {"amount": 5}, "callback": "thrice"},
        {"match": {"amount": 5}, "push_error": {"status": 200}},
        {"match": {"amount": 5}, "extra": True},
    ],
)
def test_unusable_scenarios_are_refused(sim: Sim, document: dict[str, Any]) -> None:
    assert sim.control("POST", "/scenarios", json=document).status_code == 400


def test_phones_are_compared_in_international_form() -> None:
    assert international("770000001", "221") == "221770000001"
    assert international("+221 77 000 00 01", "221") == "221770000001"
    assert international("00221770000001", "221") == "221770000001"


# -- callbacks ----------------------------------------------------------------------------------


def _point_callbacks_at(sim: Sim, receiver: Receiver, **changes: Any) -> None:
    result = sim.control(
        "POST",
        "/agencies",
        json={"agency_code": AGENCY, "callback_url": f"{receiver.url}/cb/touchpay", **changes},
    )
    assert result.status_code == 200, result.text


def test_touchpay_calls_the_agency_back_with_a_get_and_basic_credentials(
    live: Sim, receiver: Receiver
) -> None:
    _point_callbacks_at(live, receiver)

    live.control("POST", "/touchpay/checkout", json=sdk("tp-1"))
    [callback] = wait_until(receiver.all, timeout_s=5, what="the TouchPay callback")

    assert (callback.method, callback.path, callback.body) == ("GET", "/cb/touchpay", b"")
    assert callback.basic == (BASIC_USER, BASIC_PASSWORD)
    assert callback.query["command_number"] == "tp-1"
    assert callback.query["payment_status"] == "200"
    assert callback.query["paid_amount"] == "2500.0"
    assert set(callback.query) == {
        "payment_mode",
        "paid_sum",
        "paid_amount",
        "payment_token",
        "payment_status",
        "command_number",
        "payment_validation_date",
    }
    [delivery] = wait_until(
        lambda: live.control("GET", "/deliveries").json["deliveries"], what="the delivery record"
    )
    assert (delivery["order_number"], delivery["status"]) == ("tp-1", 200)


def test_an_agency_can_ask_for_a_json_body_too(live: Sim, receiver: Receiver) -> None:
    _point_callbacks_at(live, receiver, callback_json_body=True)

    live.control("POST", "/touchpay/checkout", json=sdk("tp-2", clientPhone="770000001"))
    [callback] = wait_until(receiver.all, timeout_s=5, what="the TouchPay callback")

    assert json.loads(callback.body) == callback.query
    assert callback.query["payment_status"] != "200"  # the built-in failing phone


def test_a_gu_push_is_called_back_with_json_at_its_callback_url(
    live: Sim, receiver: Receiver
) -> None:
    live.push(push_body("gu-1", callback=f"{receiver.url}/cb/gu"))

    [callback] = wait_until(receiver.all, timeout_s=5, what="the GU callback")

    assert (callback.method, callback.path) == ("POST", "/cb/gu")
    document = json.loads(callback.body)
    assert (document["partner_transaction_id"], document["status"]) == ("gu-1", "SUCCESSFUL")
    assert document["gu_transaction_id"].startswith("GU")
    assert callback.basic == (BASIC_USER, BASIC_PASSWORD)


def test_built_in_phones_call_back_twice_or_never(live: Sim, receiver: Receiver) -> None:
    live.push(push_body("twice", phone="770000003", callback=f"{receiver.url}/twice"))
    live.push(push_body("never", phone="770000002", callback=f"{receiver.url}/never"))

    wait_until(lambda: len(receiver.all()) >= 2, timeout_s=5, what="two callbacks")
    wait_until(lambda: live.simulator.dispatcher.pending() == 0, what="nothing left to send")

    assert [r.path for r in receiver.all()] == ["/twice", "/twice"]


def test_a_callback_can_be_resent(live: Sim, receiver: Receiver) -> None:
    live.push(push_body("late", phone="770000002", callback=f"{receiver.url}/late"))
    wait_until(
        lambda: live.control("GET", "/transactions/late").json["status"] == "SUCCESSFUL",
        what="the outcome",
    )

    result = live.control("POST", "/transactions/late/resend")
    [callback] = wait_until(receiver.all, timeout_s=5, what="the resent callback")

    assert result.status_code == 202
    assert json.loads(callback.body)["status"] == "SUCCESSFUL"
    assert live.control("POST", "/transactions/nope/resend").status_code == 404


def test_a_touchpay_callback_without_a_url_is_recorded_as_undeliverable(live: Sim) -> None:
    live.control("POST", "/touchpay/checkout", json=sdk("nowhere"))

    [delivery] = wait_until(
        lambda: live.control("GET", "/deliveries").json["deliveries"], what="the attempt"
    )

    assert delivery["status"] is None
    assert "callback URL" in delivery["error"]


# -- controls ------------------------------------------------------------------------------------


def test_requests_are_recorded_with_their_secrets_redacted(sim: Sim) -> None:
    sim.push(push_body())
    sim.check_status("order-1")
    sim.control("POST", "/touchpay/checkout", json=sdk("hosted"))

    records = sim.control("GET", "/requests").json["requests"]

    text = json.dumps(records)
    for secret in (API_PASSWORD, AGENT["passwordAgent"], "sandbox-secure-code-7f3a9c2e"):
        assert secret not in text
    kinds = [r["kind"] for r in records]
    assert kinds == ["push", "push", "check_status", "check_status", "checkout"]
    assert records[1]["headers"]["authorization"] == "Digest <redacted>"


def test_agencies_can_be_added_and_changed(sim: Sim) -> None:
    new = {
        "agency_code": "CIAGENCY02",
        "secure_code": "ci-secure",
        "domain_name": "shop.example",
        "login_agent": "a",
        "password_agent": "b",
        "login_api": "c",
        "password_api": "d",
        "partner_id": "e",
        "service_codes": ["CI_PAIEMENTMARCHAND_MTN"],
        "country_code": "225",
    }
    assert sim.control("POST", "/agencies", json=new).status_code == 201
    assert sim.control("POST", "/agencies", json={"agency_code": "NEW"}).status_code == 400
    assert sim.control("POST", "/agencies", json={**new, "bogus": 1}).status_code == 400
    changed = sim.control(
        "POST", "/agencies", json={"agency_code": "CIAGENCY02", "domain_name": "x.example"}
    )

    assert changed.status_code == 200
    assert sim.control("GET", "/agencies/CIAGENCY02").json["domain_name"] == "x.example"
    checkout = sdk(agency_code="CIAGENCY02", secure_code="ci-secure", domain_name="x.example")
    assert sim.control("POST", "/touchpay/checkout", json=checkout).status_code == 200


def test_reset_forgets_everything_but_the_built_in_agency(sim: Sim) -> None:
    sim.control("POST", "/scenarios", json={"match": {"amount": 5}})
    sim.push(push_body())

    assert sim.control("POST", "/reset").status_code == 200

    assert sim.control("GET", "/transactions").json == {"transactions": []}
    assert sim.control("GET", "/scenarios").json == {"scenarios": []}
    assert sim.control("GET", "/requests").json == {"requests": []}
    assert [a["agency_code"] for a in sim.control("GET", "/agencies").json["agencies"]] == [AGENCY]
    health = sim.control("GET", "/health").json
    assert (health["status"], health["agencies"], health["transactions"]) == ("ok", 1, 0)


def test_the_built_in_agency_reads_its_callback_url_from_the_environment() -> None:
    simulator = create_intouch_simulator(
        SimulatorConfig(),
        environ={"SANDBOX_INTOUCH_CALLBACK_URL": "http://127.0.0.1:8000/callbacks/intouch/x"},
    )
    try:
        agency = simulator.state.agency(AGENCY)
        assert agency is not None
        assert agency.callback_url == "http://127.0.0.1:8000/callbacks/intouch/x"
    finally:
        simulator.close()
    with pytest.raises(ValueError, match="SANDBOX_INTOUCH_CALLBACK_URL"):
        create_intouch_simulator(SimulatorConfig(), environ={"SANDBOX_INTOUCH_CALLBACK_URL": "x"})

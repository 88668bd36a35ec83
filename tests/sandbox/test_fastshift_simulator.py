"""The FastShift simulator over real HTTP: Bearer auth, register, status, the page, webhooks.

The mounted simulator is served by a threaded wsgiref server on a free port (so
redirect URLs, the page's form and the webhooks all go over the network), and a
small local server stands in for malipo's webhook endpoint.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests

from sandbox.app import create_sandbox
from sandbox.config import SimulatorConfig
from sandbox.fastshift import PREFIX, FastShiftSimulator, create_fastshift_simulator
from sandbox.mounts import MountedSimulator
from tests.support.fastshift_sim import BUILTIN_TOKEN
from tests.support.fastshift_sim import FastShiftSimulator as Controls
from tests.support.serving import serving_wsgi
from tests.support.waiting import wait_until

DELAY_S = 0.05
BEARER = {"Authorization": f"Bearer {BUILTIN_TOKEN}"}
RETURN_URL = "https://malipo.example/pay/p-1/return?t=tok"


# -- servers ------------------------------------------------------------------------------------


@dataclass
class Served:
    simulator: FastShiftSimulator
    root: str  # http://127.0.0.1:<port>
    controls: Controls
    http: requests.Session

    @property
    def base(self) -> str:
        return f"{self.root}{PREFIX}"

    @property
    def api(self) -> str:
        return f"{self.base}/api/en/vpos"

    def register(
        self, token: str = BUILTIN_TOKEN, **changes: Any
    ) -> tuple[requests.Response, dict[str, Any]]:
        body: dict[str, Any] = {
            "order_number": str(uuid.uuid4()),
            "amount": 5000,
            "description": "Two books",
            "callback_url": RETURN_URL,
            **changes,
        }
        body = {k: v for k, v in body.items() if v is not None}
        response = self.http.post(
            f"{self.api}/order/register",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        return response, body

    def registered(self, **changes: Any) -> dict[str, Any]:
        """Register and return ``data`` (the order and the redirect URL)."""
        response, _ = self.register(**changes)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def status(self, order_number: str, token: str = BUILTIN_TOKEN) -> requests.Response:
        return self.http.get(
            f"{self.api}/order/status/{order_number}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

    def status_word(self, order_number: str) -> str:
        response = self.status(order_number)
        assert response.status_code == 200, response.text
        return str(response.json()["data"]["order"]["status"])


@pytest.fixture
def served() -> Iterator[Served]:
    simulator = create_fastshift_simulator(SimulatorConfig(callback_delay_s=DELAY_S), environ={})
    mounted = MountedSimulator(prefix=PREFIX, app=simulator.app, close=simulator.close)
    with serving_wsgi(mounted) as root:
        http = requests.Session()
        controls = Controls(f"{root}{PREFIX}")
        yield Served(simulator, root, controls, http)
        controls.close()
        http.close()
    simulator.close()


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def fields(self) -> dict[str, str]:
        if self.headers.get("content-type", "").startswith("application/json"):
            document: dict[str, str] = json.loads(self.body)
            return document
        return dict(parse_qsl(self.body.decode()))


@dataclass
class Receiver:
    url: str
    items: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.items)


class _ReceiverServer(ThreadingHTTPServer):
    receiver: Receiver


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _ReceiverServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        item = Received(
            self.command,
            urlsplit(self.path).path,
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        with self.server.receiver.lock:
            self.server.receiver.items.append(item)
        reply = b'{"status": "OK"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = _ReceiverServer(("127.0.0.1", 0), _ReceiverHandler)
    server.receiver = Receiver(f"http://127.0.0.1:{server.server_port}/callbacks/fastshift/s")
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()
    thread.join(5)


def settle(seconds: float = 0.3) -> None:
    """Give a webhook that should not come the time it would have taken."""
    time.sleep(seconds)


# -- the mount ----------------------------------------------------------------------------------


def test_the_sandbox_serves_the_simulator_under_fastshift() -> None:
    sandbox = create_sandbox(SimulatorConfig(callback_delay_s=DELAY_S))
    try:
        assert "fastshift" in sandbox.mounted
        assert sandbox.mounted["fastshift"].prefix == "/fastshift"
    finally:
        sandbox.close()


def test_health(served: Served) -> None:
    health = served.controls.health()

    assert health["status"] == "ok"
    assert (health["accounts"], health["orders"]) == (1, 0)


# -- Bearer -------------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic c2FuZGJveDp4", "Bearer"])
def test_register_without_the_accounts_token_is_unauthorized(
    served: Served, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    body = {"order_number": str(uuid.uuid4()), "amount": 1, "description": "x"}

    response = served.http.post(
        f"{served.api}/order/register", json=body, headers=headers, timeout=5
    )

    assert response.status_code == 401
    assert response.json()["status"] == "UNAUTHORIZED"
    assert served.controls.orders() == []


def test_status_wants_the_token_too(served: Served) -> None:
    data = served.registered()

    assert served.status(data["order"]["order_number"], token="nope").status_code == 401


def test_an_added_account_has_orders_of_its_own(served: Served) -> None:
    token = served.controls.new_account("shop-2")["api_token"]
    mine = served.registered(token=token)["order"]["order_number"]

    assert served.status(mine, token=token).status_code == 200
    not_yours = served.status(mine)  # the built-in account's token
    assert (not_yours.status_code, not_yours.json()["status"]) == (404, "NOT_FOUND")
    listed = served.controls.accounts()
    assert [a["name"] for a in listed] == ["sandbox", "shop-2"]
    assert all(a["token"].endswith("…") for a in listed)  # never shown in full


# -- register -----------------------------------------------------------------------------------


def test_register_answers_the_order_and_a_page_url_on_this_server(served: Served) -> None:
    response, body = served.register(webhook_url="https://x.example/wh", external_order_id="O-1")

    assert response.status_code == 200, response.text
    document = response.json()
    assert document["status"] == "OK"
    order = document["data"]["order"]
    assert order["order_number"] == body["order_number"]
    assert order["order_guid"] != body["order_number"]
    assert (order["amount"], order["status"], order["completed_at"]) == (5000, "pending", None)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", order["created_at"])
    assert order["external_order_id"] == "O-1"
    assert document["data"]["redirect_url"] == f"{served.base}/pay/{order['order_guid']}"
    kept = served.controls.order(body["order_number"])  # found by our order number…
    assert kept == served.controls.order(order["order_guid"])  # …and by FastShift's id
    assert kept["extra"]["merchant_ref"] == body["order_number"]
    assert kept["order_id"] == order["order_guid"]
    assert served.status_word(body["order_number"]) == "pending"


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"order_number": "order-1"}, "order_number"),
        ({"order_number": 12}, "order_number"),
        ({"amount": 0}, "amount"),
        ({"amount": "5000"}, "amount"),
        ({"amount": 50.5}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 2**32}, "amount"),
        ({"description": ""}, "description"),
        ({"callback_url": "ftp://x"}, "callback_url"),
        ({"webhook_url": "not a url"}, "webhook_url"),
    ],
)
def test_invalid_fields_are_invalid_data_by_name(
    served: Served, changes: dict[str, Any], field_name: str
) -> None:
    response, _ = served.register(**changes)

    assert response.status_code == 422
    assert response.json()["status"] == "INVALID_DATA"
    assert set(response.json()["errors"]) == {field_name}


def test_missing_required_fields_are_each_named(served: Served) -> None:
    response = served.http.post(f"{served.api}/order/register", json={}, headers=BEARER, timeout=5)

    assert response.status_code == 422
    assert set(response.json()["errors"]) == {
        "order_number",
        "amount",
        "description",
        "callback_url",
    }


def test_a_body_that_is_not_a_json_object_is_an_error(served: Served) -> None:
    response = served.http.post(
        f"{served.api}/order/register", data=b"amount=1", headers=BEARER, timeout=5
    )

    assert (response.status_code, response.json()["status"]) == (400, "ERROR")


def test_an_order_number_is_registered_once_per_account(served: Served) -> None:
    number = str(uuid.uuid4())
    assert served.register(order_number=number)[0].status_code == 200

    again, _ = served.register(order_number=number)
    elsewhere, _ = served.register(
        token=served.controls.new_account()["api_token"], order_number=number
    )

    assert (again.status_code, again.json()["status"]) == (400, "ERROR")
    assert elsewhere.status_code == 200


def test_status_of_an_unknown_order_is_not_found(served: Served) -> None:
    response = served.status(str(uuid.uuid4()))

    assert (response.status_code, response.json()["status"]) == (404, "NOT_FOUND")


def test_requests_are_recorded_with_the_token_redacted(served: Served) -> None:
    data = served.registered()
    served.status(data["order"]["order_number"])

    [register] = served.controls.requests("register")
    [status] = served.controls.requests("status")
    assert register["headers"]["authorization"] == "Bearer <redacted>"
    assert register["body"]["amount"] == 5000
    assert register["response"]["data"]["redirect_url"] == data["redirect_url"]
    assert status["status"] == 200
    assert BUILTIN_TOKEN not in json.dumps(served.controls.requests())


# -- the page -----------------------------------------------------------------------------------


def test_the_page_shows_the_order_and_paying_there_returns_the_browser(
    served: Served, receiver: Receiver
) -> None:
    data = served.registered(webhook_url=receiver.url)
    number = data["order"]["order_number"]

    page = served.http.get(data["redirect_url"], timeout=5)
    assert page.status_code == 200
    assert "5000 AMD" in page.text
    assert 'id="pay"' in page.text
    assert 'id="decline"' in page.text
    [action] = re.findall(r'<form method="post" action="([^"]+)"', page.text)
    paid = served.http.post(
        f"{served.root}{action}", data={"choice": "pay"}, allow_redirects=False, timeout=5
    )

    assert paid.status_code == 303
    back = urlsplit(paid.headers["location"])
    assert back._replace(query="").geturl() == "https://malipo.example/pay/p-1/return"
    assert parse_qs(back.query) == {
        "t": ["tok"],
        "status": ["completed"],
        "order_number": [number],
    }
    assert served.status_word(number) == "completed"
    [hook] = wait_until(receiver.all, timeout_s=5, what="the webhook")
    assert (hook.method, hook.path) == ("POST", "/callbacks/fastshift/s")
    assert hook.headers["content-type"] == "application/json"
    assert hook.fields() == {"status": "completed", "order_number": number}
    assert "authorization" not in hook.headers  # FastShift signs nothing
    [delivery] = wait_until(lambda: served.controls.deliveries(number), what="its record")
    assert (delivery["status"], delivery["format"]) == (200, "json")


def test_declining_sends_the_browser_to_the_same_url_with_rejected(
    served: Served, receiver: Receiver
) -> None:
    data = served.registered(webhook_url=receiver.url)
    number = data["order"]["order_number"]

    decided = served.controls.decide(number, "decline")

    assert decided["status"] == "declined"
    assert parse_qs(urlsplit(decided["return_url"]).query)["status"] == ["rejected"]
    status = served.status(number).json()["data"]
    assert (status["order"]["status"], status["fastshift_id"]) == ("rejected", None)
    assert status["order"]["completed_at"] is not None
    [hook] = wait_until(receiver.all, timeout_s=5, what="the webhook")
    assert hook.fields()["status"] == "rejected"


def test_a_decided_order_stays_decided(served: Served, receiver: Receiver) -> None:
    data = served.registered(webhook_url=receiver.url)
    number = data["order"]["order_number"]
    served.controls.decide(data["order"]["order_guid"], "pay")

    again = served.controls.decide(number, "decline")

    assert again["status"] == "paid"
    assert served.status_word(number) == "completed"
    wait_until(receiver.all, timeout_s=5, what="the webhook")
    settle()
    assert len(receiver.all()) == 1


def test_a_paid_status_names_the_payers_fastshift_id(served: Served) -> None:
    number = served.registered()["order"]["order_number"]
    served.controls.decide(number, "pay")

    data = served.status(number).json()["data"]

    assert re.fullmatch(r"\d{8}", data["fastshift_id"])
    assert data["order"]["amount"] == 5000


def test_an_undecided_order_stays_pending(served: Served) -> None:
    number = served.registered()["order"]["order_number"]
    settle()

    assert served.status_word(number) == "pending"


def test_an_order_without_a_webhook_url_sends_none(served: Served) -> None:
    number = served.registered()["order"]["order_number"]

    served.controls.decide(number, "pay")
    settle()

    assert served.controls.deliveries() == []
    assert served.status_word(number) == "completed"


def test_an_unknown_page_is_not_found(served: Served) -> None:
    assert served.http.get(f"{served.base}/pay/{uuid.uuid4()}", timeout=5).status_code == 404


# -- scenarios ----------------------------------------------------------------------------------


def test_a_webhook_can_come_twice(served: Served, receiver: Receiver) -> None:
    served.controls.scenario(match={"amount": 1200}, result="twice")
    number = served.registered(amount=1200, webhook_url=receiver.url)["order"]["order_number"]

    served.controls.decide(number, "pay")

    first, second = wait_until(
        lambda: receiver.all() if len(receiver.all()) >= 2 else None, timeout_s=5, what="two"
    )
    assert first.fields() == second.fields() == {"status": "completed", "order_number": number}


def test_a_lost_webhook_leaves_only_the_status_api(served: Served, receiver: Receiver) -> None:
    served.controls.scenario(match={"amount": 1300}, webhook="none")  # the alias of result
    number = served.registered(amount=1300, webhook_url=receiver.url)["order"]["order_number"]

    served.controls.decide(number, "pay")
    settle()

    assert receiver.all() == []
    assert served.status_word(number) == "completed"


def test_the_webhook_can_be_a_form(served: Served, receiver: Receiver) -> None:
    served.controls.scenario(match={"amount": 1400}, webhook_format="form")
    number = served.registered(amount=1400, webhook_url=receiver.url)["order"]["order_number"]

    served.controls.decide(number, "decline")

    [hook] = wait_until(receiver.all, timeout_s=5, what="the webhook")
    assert hook.headers["content-type"] == "application/x-www-form-urlencoded"
    assert hook.fields() == {"status": "rejected", "order_number": number}


def test_the_status_can_lag_behind_the_webhook(served: Served, receiver: Receiver) -> None:
    served.controls.scenario(match={"amount": 1500}, status_lag_s=0.6, webhook_delay_s=0)
    number = served.registered(amount=1500, webhook_url=receiver.url)["order"]["order_number"]

    served.controls.decide(number, "pay")
    [hook] = wait_until(receiver.all, timeout_s=5, interval_s=0.02, what="the webhook")

    assert hook.fields()["status"] == "completed"
    assert served.status_word(number) == "pending"
    wait_until(lambda: served.status_word(number) == "completed", timeout_s=5, what="the lag")


def test_an_order_can_expire(served: Served, receiver: Receiver) -> None:
    served.controls.scenario(match={"amount": 1600}, expire_after_s=0.2)
    data = served.registered(amount=1600, webhook_url=receiver.url)
    number = data["order"]["order_number"]
    assert data["order"]["expires_at"] is not None

    [hook] = wait_until(receiver.all, timeout_s=5, what="the expiry webhook")

    assert hook.fields() == {"status": "expired", "order_number": number}
    assert served.status_word(number) == "expired"
    late = served.controls.decide(number, "pay")
    assert late["status"] == "expired"
    assert parse_qs(urlsplit(late["return_url"]).query)["status"] == ["expired"]
    assert served.status_word(number) == "expired"


def test_an_order_can_be_expired_now(served: Served) -> None:
    number = served.registered()["order"]["order_number"]

    expired = served.controls.expire(number)

    assert expired["api_status"] == "expired"
    assert served.status_word(number) == "expired"
    served.controls.decide(number, "pay")
    assert served.status_word(number) == "expired"


def test_an_injected_register_error_keeps_no_order(served: Served) -> None:
    served.controls.scenario(match={"amount": 1700}, register_error={"status": 500, "times": 1})

    first, body = served.register(amount=1700)
    second, _ = served.register(amount=1700)

    assert (first.status_code, first.json()["status"]) == (500, "APP_ERROR")
    assert served.status(body["order_number"]).status_code == 404
    assert second.status_code == 200


def test_a_late_register_answer_still_registered_the_order(served: Served) -> None:
    served.controls.scenario(match={"amount": 1800}, register_delay_s=0.4)

    started = time.monotonic()
    response, body = served.register(amount=1800)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.4
    assert served.status_word(body["order_number"]) == "pending"


def test_a_slow_page(served: Served) -> None:
    served.controls.scenario(match={"amount": 1900}, page_delay_s=0.3)
    url = served.registered(amount=1900)["redirect_url"]

    started = time.monotonic()
    assert served.http.get(url, timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_a_scenario_can_match_one_order_number(served: Served, receiver: Receiver) -> None:
    number = str(uuid.uuid4())
    served.controls.scenario(match={"order_number": number.upper()}, result="none")
    served.registered(order_number=number, webhook_url=receiver.url)
    other = served.registered(webhook_url=receiver.url)["order"]["order_number"]

    served.controls.decide(number, "pay")
    served.controls.decide(other, "pay")
    [hook] = wait_until(receiver.all, timeout_s=5, what="the other's webhook")
    settle()

    assert hook.fields()["order_number"] == other
    assert len(receiver.all()) == 1
    assert served.controls.order(number)["plan"]["source"].startswith("scenario:")


def test_the_resend_control_sends_the_webhook_again(served: Served, receiver: Receiver) -> None:
    served.controls.scenario(match={"amount": 2000}, result="none")
    number = served.registered(amount=2000, webhook_url=receiver.url)["order"]["order_number"]
    served.controls.decide(number, "pay")

    served.controls.resend(number)

    [hook] = wait_until(receiver.all, timeout_s=5, what="the resent webhook")
    assert hook.fields()["status"] == "completed"


@pytest.mark.parametrize(
    "document",
    [
        {"match": {"amount": 0}},
        {"match": {"phone": "37477123456"}},
        {"match": {"amount": 5}, "result": "thrice"},
        {"match": {"amount": 5}, "result": "once", "webhook": "none"},
        {"match": {"amount": 5}, "webhook_format": "xml"},
        {"match": {"amount": 5}, "status_lag_s": -1},
        {"match": {"amount": 5}, "register_error": {"status": 200}},
        {"match": {"amount": 5}, "surprise": True},
    ],
)
def test_unusable_scenarios_are_refused(served: Served, document: dict[str, Any]) -> None:
    response = served.http.post(f"{served.base}/_sim/scenarios", json=document, timeout=5)

    assert response.status_code == 400


def test_reset_forgets_orders_accounts_and_scenarios(served: Served) -> None:
    token = served.controls.new_account()["api_token"]
    served.controls.scenario(result="none")
    served.registered()

    served.controls.reset()

    assert served.controls.orders() == []
    assert len(served.controls.accounts()) == 1
    assert served.http.get(f"{served.base}/_sim/scenarios", timeout=5).json() == []
    assert served.register(token=token)[0].status_code == 401
    assert served.register()[0].status_code == 200  # the built-in account stays

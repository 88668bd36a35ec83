"""No phone number or secret in any log line of a full payment, in either process.

Requirement: "a test captures all log output of a full payment and finds no full
MSISDN, API key or passkey."

A dedicated ingress process and worker process run at DEBUG (the most talkative
level) against the Daraja simulator; every path that handles a phone or a secret
is driven over HTTP — success, failure, a duplicated callback, bad requests, a
wrong API key, a refused callback, a customer record keyed by phone — with the
phone written in several forms. Then both processes' whole log files are searched.
A second test also decodes the base64 found in the logs (a known bug: see its xfail).
The in-process ``worker`` fixture is deliberately not used: the worker is a process.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared.crypto import CredentialCipher
from shared.db.models import PaymentIntent
from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, ApiClient, MerchantAccount, make_merchant
from tests.support.env import free_port
from tests.support.processes import ManagedProcess, ingress_process, worker_process
from tests.support.refusals import refused_counts
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

PHONE = "254712345678"
PHONE_FORMS = ("0712 345 678", "+254712345678", "254712345678")
FAILING_PHONE = "254700000001"  # the simulator answers: insufficient funds
TWICE_CALLED_BACK_PHONE = "254700009998"  # the simulator sends its callback twice
MASKED_PHONE = "2547****5678"


@dataclass
class Stack:
    api: ApiClient
    ingress: ManagedProcess
    workers: ManagedProcess

    def stop(self) -> None:
        self.ingress.stop()
        self.workers.stop()

    def logs(self) -> dict[str, str]:
        return {"ingress": self.ingress.output(), "workers": self.workers.output()}

    def worker_started(self, actor: str) -> int:
        """How many ``actor`` messages a worker thread took up (dramatiq's DEBUG line)."""
        return self.workers.output().count(f"Received message {actor}(")


@pytest.fixture
def stack(db: Database, broker: Any, test_env: dict[str, str], log_dir: Path) -> Iterator[Stack]:
    """An ingress and a worker process for one test, at DEBUG, on a port of their own."""
    port = free_port()
    env = {
        **test_env,
        "MALIPO_INGRESS_PORT": str(port),
        "MALIPO_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "MALIPO_LOG_LEVEL": "DEBUG",
    }
    ingress = ingress_process(env, log_dir, name=f"log-secrets-ingress-{port}").start()
    workers = worker_process(env, log_dir, name=f"log-secrets-workers-{port}").start()
    stack = Stack(ApiClient(env["MALIPO_PUBLIC_BASE_URL"]), ingress, workers)
    try:
        ingress.wait_http(f"{env['MALIPO_PUBLIC_BASE_URL']}/readyz")
        yield stack
    finally:
        stack.stop()
        stack.api.http.close()


# --- driving payments ------------------------------------------------------------------------


def payment_body(phone: str, amount: int = 100) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "KES",
        "phone": phone,
        "reference": f"LOG-{uuid.uuid4().hex[:8]}",
        "description": f"for {phone}",
    }


def start_payment(api: ApiClient, merchant: MerchantAccount, phone: str) -> str:
    response = api.post(
        "/v1/payments", json=payment_body(phone), headers=merchant.headers(str(uuid.uuid4()))
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def final_view(api: ApiClient, merchant: MerchantAccount, payment_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        response = api.get(
            f"/v1/payments/{payment_id}",
            params={"wait": 5, "until": "final"},
            headers=merchant.headers(),
        )
        view: dict[str, Any] = response.json() if response.status_code == 200 else {}
        return view if view.get("status") not in (None, "created", "submitted") else None

    return wait_until(finished, timeout_s=40, what=f"payment {payment_id} to finish")


def gateway_ref(db: Database, payment_id: str) -> str:
    with db.transaction() as session:
        intent = session.get(PaymentIntent, uuid.UUID(payment_id))
        assert intent is not None
        assert intent.gateway_ref is not None
        return intent.gateway_ref


def refusal_recorded(db: Database, body: Any) -> bool:
    """The worker counted the refused callback for operators (by the hash of its body)."""
    raw = body.encode() if isinstance(body, str) else bytes(body or b"")
    return bool(refused_counts(db, body=raw))


def daraja_callback(phone: str) -> dict[str, Any]:
    items = [
        {"Name": "Amount", "Value": 1.0},
        {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
        {"Name": "PhoneNumber", "Value": int(phone)},
    ]
    return {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": "29115-34620561-1",
                "CheckoutRequestID": "ws_CO_191220191020363925",
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {"Item": items},
            }
        }
    }


# --- what must never be logged -----------------------------------------------------------------


def msisdn_pattern(msisdn: str) -> re.Pattern[str]:
    """A full Kenyan number in any form: 2547..., +254 7..., 07..., 7..., spaced or dashed."""
    subscriber = msisdn.removeprefix("254")
    digits = r"[\s-]*".join(subscriber)
    return re.compile(rf"(?<!\d)(?:\+?\s*254|0)?[\s-]*{digits}(?!\d)")


def secrets_of_the_run(settings: Settings, merchant: MerchantAccount) -> dict[str, str]:
    """Every secret a full payment handles, by name (each one long enough to be unambiguous)."""
    token = merchant.api_key
    _, _, key_secret = token.removeprefix("mlp_").partition("_")
    credentials = DARAJA_CREDENTIALS
    basic = f"{credentials['consumer_key']}:{credentials['consumer_secret']}"
    stk_password = base64.b64encode((credentials["shortcode"] + credentials["passkey"]).encode())
    found = {
        "API key": token,
        "API key secret part": key_secret,
        "Daraja passkey": credentials["passkey"],
        "Daraja consumer key": credentials["consumer_key"],
        "Daraja consumer secret": credentials["consumer_secret"],
        "Daraja Basic credentials": base64.b64encode(basic.encode()).decode(),
        # The STK Password is base64(shortcode + passkey + timestamp): its first 92
        # characters encode the first 69 bytes, which do not depend on the timestamp.
        "Daraja STK password": stk_password.decode()[:92],
        "callback secret": merchant.callback_secret or "",
        "MALIPO_SECRET_KEY": settings.secret_key.get_secret_value(),
        "MALIPO_CREDENTIALS_KEYS key": settings.credentials_keys.get_secret_value().split(":")[-1],
    }
    signing = settings.callback_signing_secret
    if signing is not None:
        found["MALIPO_CALLBACK_SIGNING_SECRET"] = signing.get_secret_value()
    for name, url in (
        ("database", settings.database_url.get_secret_value()),
        ("broker", settings.broker_url.get_secret_value()),
    ):
        parts = urlsplit(url)
        if parts.password:
            found[f"{name} user:password"] = f"{parts.username}:{parts.password}@"
            if len(parts.password) >= 8:
                found[f"{name} password"] = parts.password
    assert all(len(value) >= 12 for value in found.values()), "a secret too short to search for"
    return found


def where(needle: str | re.Pattern[str], logs: dict[str, str]) -> list[str]:
    """Each log line (process: excerpt) that contains ``needle``."""
    hits = []
    for process, text in logs.items():
        for line in text.splitlines():
            match = needle.search(line) if isinstance(needle, re.Pattern) else None
            if match or (isinstance(needle, str) and needle in line):
                hits.append(f"{process}: {line[:300]}")
    return hits


# --- the test ----------------------------------------------------------------------------------


def test_a_full_payment_logs_no_full_phone_number_api_key_or_gateway_secret(
    stack: Stack,
    sim: Simulator,
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
) -> None:
    # Given a merchant with Daraja sandbox credentials, and the processes at DEBUG
    merchant = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))
    api = stack.api
    assert merchant.callback_secret
    wrong_key = f"{merchant.api_key[:-6]}XXXXXX"  # the right prefix, a wrong secret
    wrong_secret = f"{merchant.callback_secret[:-4]}AAAA"

    # When payments run end to end: a success for each written form of the phone, ...
    succeeded = [start_payment(api, merchant, phone) for phone in PHONE_FORMS]
    # ... a failure, and a success whose callback the gateway delivers twice,
    failed = start_payment(api, merchant, FAILING_PHONE)
    twice = start_payment(api, merchant, TWICE_CALLED_BACK_PHONE)
    views = {
        payment_id: final_view(api, merchant, payment_id)
        for payment_id in [*succeeded, failed, twice]
    }
    twice_ref = gateway_ref(db, twice)
    wait_until(
        lambda: len([c for c in sim.callbacks() if twice_ref in str(c)]) >= 2,
        what="the second delivery of the duplicated callback",
    )
    # ... and requests that are refused while carrying the phone:
    refusals = [
        # a bad body (amount) with the phone in it,
        api.post(
            "/v1/payments",
            json={**payment_body("+254712345678"), "amount": "lots"},
            headers=merchant.headers(str(uuid.uuid4())),
        ),
        # a body that is not even JSON, with the phone in it,
        api.post(
            "/v1/payments",
            data=b'{"phone": "0712 345 678", "amount": ',
            headers={**merchant.headers(str(uuid.uuid4())), "Content-Type": "application/json"},
        ),
        # an unknown field that holds the phone,
        api.post(
            "/v1/payments",
            json={**payment_body("0712345678"), "msisdn": PHONE},
            headers=merchant.headers(str(uuid.uuid4())),
        ),
        # a wrong API key,
        api.post(
            "/v1/payments",
            json=payment_body(PHONE),
            headers={
                "Authorization": f"Bearer {wrong_key}",
                "Idempotency-Key": str(uuid.uuid4()),
            },
        ),
        # a callback to a wrong secret, with the phone in its body,
        api.post(
            f"/callbacks/mpesa/{wrong_secret}",
            json=daraja_callback(PHONE),
        ),
    ]
    # ... and a customer record whose key (in the URL path) is the phone.
    customer = stack.api.http.put(
        f"{api.base_url}/v1/customers/{PHONE}",
        json={"kyc_required": False},
        headers=merchant.headers(),
        timeout=40,
    )
    # Every callback (3 + 1 + 2 deliveries) is in the worker's hands before it stops
    # (a graceful stop finishes the messages it started), and the refusal is recorded.
    wait_until(lambda: stack.worker_started("apply_callback") >= 6, what="six callbacks")
    wait_until(lambda: refusal_recorded(db, refusals[-1].request.body), what="refusal recorded")
    stack.stop()
    logs = stack.logs()

    # Then the payments did what they should (so the logs describe a real run) ...
    assert [views[p]["status"] for p in succeeded] == ["succeeded"] * 3
    assert (views[failed]["status"], views[failed]["failure"]["code"]) == (
        "failed",
        "insufficient_funds",
    )
    assert views[twice]["status"] == "succeeded"
    assert [r.status_code for r in refusals] == [422, 400, 400, 401, 404]
    assert customer.status_code == 200
    # ... no log line of either process holds a full phone number, in any form ...
    for msisdn in (PHONE, FAILING_PHONE, TWICE_CALLED_BACK_PHONE):
        assert where(msisdn_pattern(msisdn), logs) == [], f"{msisdn} leaked"
    # ... nor any secret, not even the wrong ones callers presented ...
    secrets = {
        **secrets_of_the_run(settings, merchant),
        "wrong API key presented": wrong_key,
        "wrong callback secret presented": wrong_secret,
    }
    leaks = {name: where(value, logs) for name, value in secrets.items()}
    assert {name: lines for name, lines in leaks.items() if lines} == {}
    # ... while the phone was logged, masked: the search above had something to find.
    assert where(MASKED_PHONE, logs), "no masked phone in the logs: was anything logged?"


BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def base64_decoded(logs: dict[str, str]) -> dict[str, str]:
    """Each base64 run in the logs (at least 16 characters) decoded, by process."""
    decoded: dict[str, str] = {}
    for process, text in logs.items():
        for run in BASE64_RUN.findall(text):
            try:
                plain = base64.b64decode(run + "=" * (-len(run) % 4))
            except binascii.Error:
                continue
            decoded[process] = decoded.get(process, "") + "\n" + plain.decode("latin-1")
    return decoded


def test_no_log_line_holds_a_full_phone_number_even_base64_encoded(
    stack: Stack,
    sim: Simulator,
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
) -> None:
    # Given a merchant, and the processes at DEBUG
    merchant = make_merchant(db, settings, cipher, daraja=dict(DARAJA_CREDENTIALS))

    # When one payment succeeds through the gateway's callback (which carries the phone)
    payment_id = start_payment(stack.api, merchant, "0712345678")
    assert final_view(stack.api, merchant, payment_id)["status"] == "succeeded"
    wait_until(lambda: stack.worker_started("apply_callback") >= 1, what="the callback")
    stack.stop()

    # Then no base64 in any log decodes to the full phone number either
    assert where(msisdn_pattern(PHONE), base64_decoded(stack.logs())) == []

"""The SMS simulator speaks Africa's Talking's messaging wire format; one sandbox serves all."""

from __future__ import annotations

import os
import re
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import falcon.testing
import pytest
from click.testing import CliRunner

from sandbox import cli
from sandbox.app import Sandbox, create_sandbox
from sandbox.config import SimulatorConfig
from sandbox.sms import create_sms_simulator
from sandbox.smtp import SmtpSinkConfig
from tests.support.env import free_port

API_KEY = "malipo-sandbox-sms-key"
PHONE = "+254712345678"
OTHER_PHONE = "+254722000111"
AUTH_INVALID = "The supplied authentication is invalid"


@pytest.fixture
def client() -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_sms_simulator().app)


def send(
    client: falcon.testing.TestClient,
    *,
    api_key: str | None = API_KEY,
    **fields: str,
) -> falcon.testing.Result:
    form = {"username": "sandbox", "to": PHONE, "message": "Hello", **fields}
    headers = {"Accept": "application/json"}
    if api_key is not None:
        headers["apiKey"] = api_key
    return client.simulate_post(
        "/version1/messaging",
        body="&".join(f"{k}={v.replace('+', '%2B')}" for k, v in form.items() if v != "-"),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )


def control(client: falcon.testing.TestClient, method: str, path: str, **kwargs: Any) -> Any:
    result = client.simulate_request(method, f"/_sim/sms{path}", **kwargs)
    assert result.status_code < 300, result.text
    return result.json


# --- the messaging endpoint -----------------------------------------------------------------


def test_a_message_is_taken_and_answered_in_africas_talking_shape(
    client: falcon.testing.TestClient,
) -> None:
    result = send(client, message="Your payment did not go through", **{"from": "MALIPO"})

    assert result.status_code == 201
    data = result.json["SMSMessageData"]
    assert data["Message"] == "Sent to 1/1 Total Cost: KES 0.8000"
    [recipient] = data["Recipients"]
    assert recipient["statusCode"] == 101
    assert recipient["number"] == PHONE
    assert recipient["status"] == "Success"
    assert recipient["cost"] == "KES 0.8000"
    assert re.fullmatch(r"ATXid_[0-9a-f]{32}", recipient["messageId"])
    [message] = control(client, "GET", "/messages")
    assert message["messageId"] == recipient["messageId"]
    assert (message["to"], message["from"], message["username"]) == (PHONE, "MALIPO", "sandbox")
    assert message["message"] == "Your payment did not go through"


@pytest.mark.parametrize("api_key", [None, "wrong-key"])
def test_a_missing_or_wrong_api_key_is_refused_with_a_text_body(
    client: falcon.testing.TestClient, api_key: str | None
) -> None:
    result = send(client, api_key=api_key)

    assert result.status_code == 401
    assert result.text == AUTH_INVALID
    assert result.headers["content-type"].startswith("text/plain")
    assert control(client, "GET", "/messages") == []


def test_a_username_that_is_not_the_keys_account_is_refused(
    client: falcon.testing.TestClient,
) -> None:
    result = send(client, username="someone-else")

    assert (result.status_code, result.text) == (401, AUTH_INVALID)


@pytest.mark.parametrize("field", ["username", "to", "message"])
def test_a_missing_form_field_is_named(client: falcon.testing.TestClient, field: str) -> None:
    result = send(client, **{field: "-"})

    assert result.status_code == 400
    assert result.text == f"Request is missing required form field '{field}'"


def test_a_json_body_is_not_a_form(client: falcon.testing.TestClient) -> None:
    result = client.simulate_post(
        "/version1/messaging",
        json={"username": "sandbox", "to": PHONE, "message": "Hello"},
        headers={"apiKey": API_KEY},
    )

    assert result.status_code == 400


def test_each_recipient_gets_its_own_status(client: falcon.testing.TestClient) -> None:
    result = send(client, to=f"{PHONE},0712345678")

    data = result.json["SMSMessageData"]
    assert result.status_code == 201
    assert data["Message"] == "Sent to 1/2 Total Cost: KES 0.8000"
    refused = data["Recipients"][1]
    assert refused == {
        "statusCode": 403,
        "number": "0712345678",
        "status": "InvalidPhoneNumber",
        "cost": "0",
        "messageId": "None",
    }
    assert [m["to"] for m in control(client, "GET", "/messages")] == [PHONE]


def test_a_bad_sender_id_refuses_every_recipient(client: falcon.testing.TestClient) -> None:
    result = send(client, **{"from": "A-SENDER-ID-TOO-LONG"})

    [recipient] = result.json["SMSMessageData"]["Recipients"]
    assert (recipient["statusCode"], recipient["status"]) == (402, "InvalidSenderId")
    assert result.json["SMSMessageData"]["Message"] == "Sent to 0/1 Total Cost: 0"


@pytest.mark.parametrize(
    ("message", "cost"),
    [
        ("a" * 160, "KES 0.8000"),
        ("a" * 161, "KES 1.6000"),
        ("é" * 70, "KES 0.8000"),
        ("é" * 71, "KES 1.6000"),
    ],
)
def test_cost_counts_pages(client: falcon.testing.TestClient, message: str, cost: str) -> None:
    result = send(client, message=message)

    assert result.json["SMSMessageData"]["Recipients"][0]["cost"] == cost


# --- scripted failures ----------------------------------------------------------------------


def test_a_scripted_http_failure_answers_that_many_requests_then_sends(
    client: falcon.testing.TestClient,
) -> None:
    armed = control(client, "POST", "/failures", json={"http_status": 500, "times": 2})

    answers = [send(client) for _ in range(3)]

    assert armed["remaining"] == 2
    assert [a.status_code for a in answers] == [500, 500, 201]
    assert answers[0].text == "Internal Server Error"
    assert len(control(client, "GET", "/messages")) == 1
    assert [r["status"] for r in control(client, "GET", "/requests")] == [500, 500, 201]
    assert control(client, "GET", "/failures")[0]["remaining"] == 0


@pytest.mark.parametrize(
    ("status_code", "status"),
    [(403, "InvalidPhoneNumber"), (406, "UserInBlacklist"), (500, "InternalServerError")],
)
def test_a_scripted_status_code_hits_only_its_phone(
    client: falcon.testing.TestClient, status_code: int, status: str
) -> None:
    control(client, "POST", "/failures", json={"phone": PHONE, "status_code": status_code})

    result = send(client, to=f"{OTHER_PHONE},{PHONE}")
    again = send(client)

    recipients = result.json["SMSMessageData"]["Recipients"]
    assert [(r["statusCode"], r["status"]) for r in recipients] == [
        (101, "Success"),
        (status_code, status),
    ]
    assert again.json["SMSMessageData"]["Recipients"][0]["statusCode"] == 101


@pytest.mark.parametrize(
    "failure",
    [
        {},
        {"http_status": 500, "status_code": 403},
        {"http_status": 200},
        {"status_code": 999},
        {"status_code": 403, "times": 0},
        {"status_code": 403, "phone": ""},
        {"status_code": 403, "colour": "red"},
    ],
)
def test_bad_failures_are_refused(client: falcon.testing.TestClient, failure: Any) -> None:
    result = client.simulate_post("/_sim/sms/failures", json=failure)

    assert result.status_code == 400


def test_accounts_can_be_added_and_reset_forgets_everything(
    client: falcon.testing.TestClient,
) -> None:
    control(client, "POST", "/accounts", json={"username": "shop", "api_key": "shop-key"})
    assert send(client, api_key="shop-key", username="shop").status_code == 201
    control(client, "POST", "/failures", json={"http_status": 503})

    control(client, "POST", "/reset")

    assert send(client, api_key="shop-key", username="shop").status_code == 401
    assert control(client, "GET", "/messages") == []
    assert control(client, "GET", "/failures") == []
    assert [r["status"] for r in control(client, "GET", "/requests")] == [401]


def test_the_request_log_never_keeps_the_api_key(client: falcon.testing.TestClient) -> None:
    send(client)

    [request] = control(client, "GET", "/requests")
    assert API_KEY not in str(request)
    assert request["fields"] == {"username": "sandbox", "to": PHONE, "message": "Hello"}


def test_messages_can_be_listed_by_recipient(client: falcon.testing.TestClient) -> None:
    send(client, to=f"{PHONE},{OTHER_PHONE}")

    listed = control(client, "GET", "/messages", params={"to": OTHER_PHONE})

    assert [m["to"] for m in listed] == [OTHER_PHONE]


# --- one sandbox process serves every simulator ---------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    built = create_sandbox(SimulatorConfig(callback_delay_s=0.05), SmtpSinkConfig(port=free_port()))
    yield built
    built.close()


def test_the_sandbox_routes_sms_paths_to_the_sms_simulator(sandbox: Sandbox) -> None:
    client = falcon.testing.TestClient(sandbox)

    sent = send(client)

    assert sent.status_code == 201
    assert client.simulate_get("/_sim/health").json["status"] == "ok"
    assert client.simulate_get("/_sim/requests").json == []  # Daraja never saw the SMS
    assert len(client.simulate_get("/_sim/sms/messages").json) == 1


def test_the_smtp_sink_keeps_mails_and_can_refuse_them(sandbox: Sandbox) -> None:
    assert sandbox.smtp is not None
    port = sandbox.smtp.port
    client = falcon.testing.TestClient(sandbox)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "shop@malipo.test", "jane@example.com", "Hi"
    mail.set_content("Your payment was cancelled.")

    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        smtp.send_message(mail)
    client.simulate_post("/_sim/smtp/failures", json={"code": 451, "times": 1})
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp, pytest.raises(smtplib.SMTPDataError):
        smtp.send_message(mail)

    [received] = client.simulate_get("/_sim/smtp/messages", params={"to": "jane@example.com"}).json
    assert (received["subject"], received["rcpt_tos"]) == ("Hi", ["jane@example.com"])
    assert received["body"].strip() == "Your payment was cancelled."
    client.simulate_post("/_sim/smtp/reset")
    assert client.simulate_get("/_sim/smtp/messages").json == []


def test_without_an_smtp_port_there_is_no_sink() -> None:
    built = create_sandbox(SimulatorConfig(), SmtpSinkConfig.from_env({}))
    try:
        assert built.smtp is None
        assert (
            falcon.testing.TestClient(built).simulate_get("/_sim/smtp/messages").status_code == 404
        )
    finally:
        built.close()


@pytest.mark.parametrize("value", ["smtp", "0", "70000"])
def test_a_bad_smtp_port_names_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match="SANDBOX_SMTP_PORT"):
        SmtpSinkConfig.from_env({"SANDBOX_SMTP_PORT": value})


def test_the_cli_passes_the_smtp_port_to_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []
    monkeypatch.setattr(
        os, "execvp", lambda file, argv: seen.append(os.environ.get("SANDBOX_SMTP_PORT"))
    )

    result = CliRunner().invoke(cli.sandbox, ["--smtp-port", "8925"], env={"SANDBOX_SMTP_PORT": ""})

    assert result.exit_code == 0, result.output
    assert seen == ["8925"]

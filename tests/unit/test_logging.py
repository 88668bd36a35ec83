"""Logs never carry secrets or full phone numbers, from our loggers or third-party ones."""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.crypto import new_api_key
from shared.logging import REDACTED, configure_logging, redact_processor, scrub
from tests.unit.properties import PROPERTY

SECRET_NAMES = [
    "authorization",
    "password",
    "passkey",
    "secret",
    "api_key",
    "token",
    "access_token",
    "consumer_key",
    "consumer_secret",
    "callback_secret",
    "secret_key",
    "credentials",
    "credentials_keys",
    "database_url",
    "broker_url",
]
PHONE = "254708374149"
PHONE_DIGITS = "708374149"  # the nine significant digits: any form of the number has them
MASKED_PHONE = "2547****4149"

# Secret values of letters only, so neither phone masking nor anything else can alter them.
secret_values = st.text(alphabet=string.ascii_letters, min_size=12, max_size=40)


def case_variants(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.title(), name.capitalize()])


def nest(value: Any, path: list[tuple[str, Any]]) -> Any:
    """Wrap ``value`` in dicts/lists along ``path`` (outermost last)."""
    for kind, key in path:
        value = {key: value, "other": "kept"} if kind == "dict" else ["kept", value]
    return value


@settings(PROPERTY, max_examples=300)
@given(
    name=st.sampled_from(SECRET_NAMES).flatmap(case_variants),
    secret=secret_values,
    path=st.lists(
        st.tuples(st.sampled_from(["dict", "list"]), st.sampled_from(["event", "data", "h"])),
        max_size=5,
    ),
)
def test_secret_named_keys_are_dropped_at_any_depth(
    name: str, secret: str, path: list[tuple[str, Any]]
) -> None:
    # Given a log event with a secret-named key somewhere deep inside
    event = nest({name: secret, "plain": "visible"}, path)
    # When it is scrubbed
    scrubbed = scrub(event)
    # Then the secret's value is gone, the key and neighbouring values are kept
    assert secret not in repr(scrubbed)
    assert name in repr(scrubbed)
    assert "visible" in repr(scrubbed)


@pytest.mark.parametrize(
    "event",
    [
        {"headers": {"Authorization": "Basic Y2s6Y3M="}},
        {"body": {"Password": "MTc0Mzc5YmZi", "Timestamp": "20191219102115"}},
        {"creds": [{"consumer_secret": "cs-value"}, {"passkey": "pk-value"}]},
        {"API_KEY": "ak-value"},
        {"tuple": ({"token": "tok-value"},)},
    ],
)
def test_secret_keys_examples(event: dict[str, Any]) -> None:
    scrubbed = repr(scrub(event))
    for value in ("Y2s6Y3M=", "MTc0Mzc5YmZi", "cs-value", "pk-value", "ak-value", "tok-value"):
        assert value not in scrubbed
    if "body" in event:
        assert "20191219102115" in scrubbed  # a timestamp next to the password survives


@settings(PROPERTY, max_examples=200)
@given(
    token=st.text(alphabet=string.ascii_letters + "._~+/=-", min_size=16, max_size=60),
    bearer=st.sampled_from(["Bearer", "bearer", "BEARER"]),
)
def test_bearer_tokens_in_free_text_are_redacted(token: str, bearer: str) -> None:
    # Given a free-text line quoting an Authorization header
    text = f"calling daraja with Authorization: {bearer} {token} now"
    # When it is scrubbed
    scrubbed = scrub(text)
    # Then the token is gone and the rest of the line is kept
    assert token not in scrubbed
    assert scrubbed.startswith("calling daraja with Authorization:")
    assert scrubbed.endswith(" now")


@settings(PROPERTY, max_examples=200)
@given(
    prefix=st.text(alphabet="0123456789abcdef", min_size=12, max_size=12),
    secret=st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=8, max_size=50),
)
def test_api_keys_in_free_text_are_redacted(prefix: str, secret: str) -> None:
    # Given free text quoting one of our API keys (its secret may contain _ and -)
    token = f"mlp_{prefix}_{secret}"
    # When it is scrubbed
    scrubbed = scrub(f"rejected key {token}: unknown")
    # Then the key's secret part is gone (the words around it may happen to contain it)
    assert scrubbed.startswith("rejected key ")
    assert scrubbed.endswith(": unknown")
    assert secret not in scrubbed.removeprefix("rejected key ").removesuffix(": unknown")


def test_a_real_api_key_in_free_text_is_redacted() -> None:
    for _ in range(50):
        key = new_api_key()
        assert key.secret not in scrub(f"key={key.token}")


@pytest.mark.parametrize(
    "value",
    [PHONE, f"+{PHONE}", "0708374149", PHONE_DIGITS, f"paid by {PHONE} for INV-1"],
)
def test_phones_in_strings_are_masked(value: str) -> None:
    scrubbed = scrub({"event": value})
    assert PHONE_DIGITS not in scrubbed["event"]
    assert MASKED_PHONE in scrubbed["event"]


def test_phones_logged_as_ints_are_masked() -> None:
    # Given a phone logged as a number (as Daraja sends it in callbacks)
    scrubbed = scrub({"PhoneNumber": 254708374149, "nested": [708374149]})
    # Then it is masked too
    assert scrubbed["PhoneNumber"] == MASKED_PHONE
    assert scrubbed["nested"] == [MASKED_PHONE]


@pytest.mark.parametrize("value", [0, 42, 150_00, 25_000_000, 20191219102115, True, 1.5, None])
def test_other_numbers_are_left_alone(value: object) -> None:
    # Amounts, counts and 14-digit timestamps are not phones
    assert scrub({"n": value}) == {"n": value}


def test_redact_processor_scrubs_the_whole_event() -> None:
    event = {
        "event": f"push to {PHONE}",
        "phone": 254708374149,
        "authorization": "Bearer abc",
        "payment_id": "p-1",
    }
    result = redact_processor(None, "info", event)
    assert result == {
        "event": f"push to {MASKED_PHONE}",
        "phone": MASKED_PHONE,
        "authorization": result["authorization"],
        "payment_id": "p-1",
    }
    assert "abc" not in str(result["authorization"])


# --- end to end through configure_logging -----------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo configure_logging: root handlers and level, library levels, structlog config."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    library_levels = {name: logging.getLogger(name).level for name in ("pika", "urllib3")}
    structlog_config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, library_level in library_levels.items():
        logging.getLogger(name).setLevel(library_level)
    structlog.reset_defaults()
    structlog.configure(**structlog_config)


@pytest.mark.usefixtures("restore_logging")
def test_json_logs_from_structlog_and_stdlib_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    api_key = new_api_key()
    # Given logging configured for JSON output
    configure_logging("json")
    # When our code logs a phone and an API key through structlog
    structlog.stdlib.get_logger("malipo.test").info(
        "push sent",
        phone=PHONE,
        phone_int=254708374149,
        headers={"Authorization": f"Bearer {api_key.token}"},
        note=f"key {api_key.token} used for {PHONE}",
    )
    # and a library (dramatiq) logs them through the standard library, in the message,
    # in extra fields and with a traceback
    stdlib = logging.getLogger("dramatiq")
    stdlib.warning(
        "retrying message for %s with %s", "0708374149", api_key.token, extra={"api_key": "x"}
    )
    try:
        raise ValueError(f"bad phone {PHONE}")
    except ValueError:
        stdlib.exception("actor failed")
    # Then every line is JSON, none holds the phone or the key's secret, and the masks show
    output = capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert len(lines) == 3
    assert PHONE_DIGITS not in output
    assert api_key.secret not in output
    assert MASKED_PHONE in lines[0]["phone"]
    assert lines[0]["phone_int"] == MASKED_PHONE
    assert MASKED_PHONE in lines[1]["event"]
    assert lines[1]["logger"] == "dramatiq"
    assert lines[1]["api_key"] != "x"
    assert MASKED_PHONE in lines[2]["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_console_logs_are_masked_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("console")
    structlog.stdlib.get_logger("malipo.test").info("push sent", phone=PHONE)
    logging.getLogger("pika").warning("connection for %s", PHONE)
    output = capsys.readouterr().out
    assert "push sent" in output
    assert "connection for" in output
    assert PHONE_DIGITS not in output
    assert MASKED_PHONE in output


@pytest.mark.usefixtures("restore_logging")
def test_events_below_the_level_are_dropped_before_any_processor_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given logging at WARNING, and a count of the events the masking processor sees
    seen: list[str] = []
    configure_logging("json", "WARNING")
    processors = structlog.get_config()["processors"]
    masking = processors.index(redact_processor)

    def counting(logger: Any, method: str, event: Any) -> Any:
        seen.append(event["event"])
        return redact_processor(logger, method, event)

    processors[masking] = counting  # restore_logging puts the configuration back
    log = structlog.stdlib.get_logger("malipo.level-test")
    # When an info and a warning are logged
    log.info("request", phone=PHONE)
    log.warning("gateway slow", phone=PHONE)
    # Then only the warning was processed and written
    assert seen == ["gateway slow"]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [line["event"] for line in lines] == ["gateway slow"]


@pytest.mark.parametrize(
    "key", ["X-Api-Key", "api-key", "SecurityCredential", "Consumer_Secret", "PASSKEY"]
)
def test_secret_keys_are_recognised_whatever_their_spelling(key: str) -> None:
    assert scrub({key: "s3cr3t-value"}) == {key: REDACTED}


def test_secrets_quoted_in_free_text_are_redacted() -> None:
    # A stdlib %-formatted message can carry a dict's repr or a JSON fragment
    text = "retry {'passkey': 'pk-123', 'amount': 5} body {\"consumer_secret\": \"cs-9\"}"

    scrubbed = scrub({"event": text})["event"]

    assert "pk-123" not in scrubbed
    assert "cs-9" not in scrubbed
    assert "'amount': 5" in scrubbed


def test_bytes_are_decoded_and_masked() -> None:
    assert scrub({"body": f"paid by {PHONE}".encode()}) == {"body": f"paid by {MASKED_PHONE}"}


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("e164", "national", "written"),
    [
        ("221771234567", "771234567", "+221 77 123 45 67"),  # Senegal
        ("2250701234567", "0701234567", "+225 07 01 23 45 67"),  # Côte d'Ivoire
        ("37477123456", "77123456", "+374 77 123456"),  # Armenia
    ],
)
def test_log_lines_of_payments_abroad_hold_no_full_phone(
    capsys: pytest.CaptureFixture[str], e164: str, national: str, written: str
) -> None:
    # Given JSON logs, when a payment's phone is logged as text, as a number and as written
    configure_logging("json")
    structlog.stdlib.get_logger("malipo.test").info(
        "payment accepted", phone=e164, phone_int=int(e164), note=f"prompt to {written}"
    )
    logging.getLogger("dramatiq").warning("retrying push to %s", e164)
    # Then no line holds the number, in any of its forms
    output = capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert [line["event"].split(" ")[0] for line in lines] == ["payment", "retrying"]
    flat = output.replace(" ", "")
    assert e164 not in flat
    assert national not in flat
    assert (
        lines[0]["phone"] == lines[0]["phone_int"] == e164[:4] + "*" * (len(e164) - 8) + e164[-4:]
    )

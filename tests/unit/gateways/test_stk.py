"""STK push rules from the Daraja reference: Password, Timestamp, body fields, credentials."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.base import PaymentRequest
from shared.gateways.daraja.stk import (
    DarajaCredentials,
    nairobi_timestamp,
    stk_password,
    stk_push_body,
    stk_query_body,
)
from tests.unit.properties import PROPERTY

PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
EAT_OFFSET = timedelta(hours=3)  # Nairobi: UTC+3 all year, no DST

shortcodes = st.from_regex(r"[0-9]{5,7}", fullmatch=True)
passkeys = st.text(alphabet=PRINTABLE_ASCII, min_size=1, max_size=80)
timestamps = st.from_regex(r"[0-9]{14}", fullmatch=True)
fixed_offsets = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 2),
    max_value=datetime(2099, 12, 30),
    timezones=st.one_of(st.timezones(), fixed_offsets, st.just(UTC)),
)


def credentials(**overrides: Any) -> DarajaCredentials:
    fields: dict[str, Any] = {
        "consumer_key": "ck",
        "consumer_secret": "cs",
        "shortcode": "174379",
        "passkey": SANDBOX_PASSKEY,
        "mode": "paybill",
        "party_b": "174379",
    }
    fields.update(overrides)
    return DarajaCredentials(**fields)


def payment(
    *, minor: int = 100, reference: str = "INV-1", description: str | None = None
) -> PaymentRequest:
    return PaymentRequest(
        payment_id="p-1",
        attempt_ref="a-1",
        amount=Money(minor, "KES"),
        phone="254708374149",
        reference=reference,
        description=description,
        callback_url="https://pay.example.co.ke/callbacks/daraja/s3cr3t/a-1",
    )


# --- Password -------------------------------------------------------------------------------


@settings(PROPERTY, max_examples=300)
@given(shortcode=shortcodes, passkey=passkeys, timestamp=timestamps)
def test_password_is_base64_of_shortcode_passkey_timestamp(
    shortcode: str, passkey: str, timestamp: str
) -> None:
    # Given any shortcode, printable-ASCII passkey and timestamp
    # When the STK password is made
    password = stk_password(shortcode, passkey, timestamp)
    # Then it is strict base64 whose plain text is exactly the three concatenated
    decoded = base64.b64decode(password, validate=True)
    assert decoded == (shortcode + passkey + timestamp).encode("ascii")


def test_password_known_sandbox_value() -> None:
    # Given the public sandbox shortcode and passkey and a fixed timestamp
    password = stk_password("174379", SANDBOX_PASSKEY, "20191219102115")
    # Then the password decodes to the plain concatenation
    assert base64.b64decode(password).decode() == "174379" + SANDBOX_PASSKEY + "20191219102115"


# --- Timestamp ------------------------------------------------------------------------------


def expected_nairobi(moment: datetime) -> str:
    """UTC + 3 h, formatted YYYYMMDDHHmmss, computed without astimezone."""
    offset = moment.utcoffset()
    assert offset is not None
    wall = moment.replace(tzinfo=None) - offset + EAT_OFFSET
    return (
        f"{wall.year:04d}{wall.month:02d}{wall.day:02d}"
        f"{wall.hour:02d}{wall.minute:02d}{wall.second:02d}"
    )


@settings(PROPERTY, max_examples=300)
@given(moment=aware_datetimes)
def test_timestamp_is_utc_plus_three_hours(moment: datetime) -> None:
    # Given an aware datetime in any time zone
    # When the Daraja timestamp is made
    stamp = nairobi_timestamp(moment)
    # Then it is the same instant in UTC+3, written YYYYMMDDHHmmss
    assert stamp == expected_nairobi(moment)
    assert len(stamp) == 14
    assert stamp.isdigit()


def test_timestamp_examples() -> None:
    # The reference's TransactionDate 20191219102115 is 07:21:15 UTC
    assert nairobi_timestamp(datetime(2019, 12, 19, 7, 21, 15, tzinfo=UTC)) == "20191219102115"
    # Crossing midnight and the year boundary
    assert nairobi_timestamp(datetime(2025, 12, 31, 22, 0, tzinfo=UTC)) == "20260101010000"
    # Already Nairobi time: unchanged wall clock
    eat = timezone(timedelta(hours=3))
    assert nairobi_timestamp(datetime(2026, 3, 1, 9, 30, 5, tzinfo=eat)) == "20260301093005"


@settings(PROPERTY, max_examples=100)
@given(moment=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)))
def test_timestamp_refuses_naive_datetimes(moment: datetime) -> None:
    # Given a datetime with no time zone (its instant is unknown)
    # When a Daraja timestamp is asked for
    # Then it is refused rather than guessed
    with pytest.raises(ValueError, match="timezone"):
        nairobi_timestamp(moment)


def test_timestamp_defaults_to_now_in_nairobi() -> None:
    before = datetime.now(UTC)
    stamp = nairobi_timestamp()
    after = datetime.now(UTC)
    moment = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC) - EAT_OFFSET
    assert before.replace(microsecond=0) <= moment <= after


# --- The push body -------------------------------------------------------------------------


def test_paybill_body_pays_the_shortcode() -> None:
    # Given paybill credentials
    creds = credentials(shortcode="600123", party_b="600123", mode="paybill")
    # When a push body is built
    body = stk_push_body(creds, payment(minor=150_00), "20260101120000")
    # Then it is CustomerPayBillOnline to the shortcode itself
    assert body["TransactionType"] == "CustomerPayBillOnline"
    assert body["BusinessShortCode"] == "600123"
    assert body["PartyB"] == "600123"
    assert body["Amount"] == 150
    assert body["PartyA"] == body["PhoneNumber"] == "254708374149"
    assert body["CallBackURL"] == "https://pay.example.co.ke/callbacks/daraja/s3cr3t/a-1"
    assert body["Timestamp"] == "20260101120000"
    decoded = base64.b64decode(body["Password"]).decode()
    assert decoded == "600123" + SANDBOX_PASSKEY + "20260101120000"


def test_till_body_pays_the_till_from_the_store_number() -> None:
    # Given Buy Goods credentials: store number 600123, till 5123456
    creds = credentials(shortcode="600123", party_b="5123456", mode="till")
    # When a push body is built
    body = stk_push_body(creds, payment(), "20260101120000")
    # Then it is CustomerBuyGoodsOnline: the store number signs, the till receives
    assert body["TransactionType"] == "CustomerBuyGoodsOnline"
    assert body["BusinessShortCode"] == "600123"
    assert body["PartyB"] == "5123456"
    assert base64.b64decode(body["Password"]).decode().startswith("600123")


@settings(PROPERTY, max_examples=300)
@given(
    reference=st.text(min_size=1, max_size=64),
    description=st.one_of(st.none(), st.text(max_size=100)),
    mode=st.sampled_from(["paybill", "till"]),
)
def test_reference_and_description_fit_darajas_limits(
    reference: str, description: str | None, mode: str
) -> None:
    # Given any reference (1-64 characters) and any optional description
    party_b = "174379" if mode == "paybill" else "5123456"
    creds = credentials(mode=mode, party_b=party_b)
    # When a push body is built
    body = stk_push_body(creds, payment(reference=reference, description=description), "1" * 14)
    # Then AccountReference is at most 12 characters and is how the reference starts
    assert 1 <= len(body["AccountReference"]) <= 12
    assert reference.startswith(body["AccountReference"])
    # and TransactionDesc is at most 13 characters
    assert len(body["TransactionDesc"]) <= 13


def test_short_reference_and_description_are_sent_unchanged() -> None:
    body = stk_push_body(
        credentials(), payment(reference="INV-2026-01", description="Order 42"), "1" * 14
    )
    assert body["AccountReference"] == "INV-2026-01"
    assert body["TransactionDesc"] == "Order 42"


@settings(PROPERTY, max_examples=200)
@given(shillings=st.integers(1, 250_000))
def test_amount_is_whole_shillings_as_an_int(shillings: int) -> None:
    # Given a whole-shilling amount M-Pesa accepts
    body = stk_push_body(credentials(), payment(minor=shillings * 100), "1" * 14)
    # Then Amount is that many shillings, as a JSON integer (not a string, float or bool)
    assert body["Amount"] == shillings
    assert type(body["Amount"]) is int


@pytest.mark.parametrize(
    ("minor", "code"),
    [(150, "invalid_amount"), (1, "invalid_amount"), (0, "amount_out_of_range")],
)
def test_amounts_mpesa_cannot_take_stop_the_body(minor: int, code: str) -> None:
    with pytest.raises(MalipoError) as refused:
        stk_push_body(credentials(), payment(minor=minor), "1" * 14)
    assert refused.value.code == code


def test_query_body_is_signed_like_the_push() -> None:
    body = stk_query_body(credentials(), "ws_CO_021020261805069181954437", "20260101120000")
    assert body == {
        "BusinessShortCode": "174379",
        "Password": base64.b64encode(
            ("174379" + SANDBOX_PASSKEY + "20260101120000").encode()
        ).decode(),
        "Timestamp": "20260101120000",
        "CheckoutRequestID": "ws_CO_021020261805069181954437",
    }


# --- Credentials ----------------------------------------------------------------------------


@settings(PROPERTY, max_examples=100)
@given(shortcode=shortcodes, mode=st.sampled_from(["paybill", "till"]), till=shortcodes)
def test_five_to_seven_digit_shortcodes_are_accepted(shortcode: str, mode: str, till: str) -> None:
    creds = credentials(
        shortcode=shortcode, mode=mode, party_b=shortcode if mode == "paybill" else till
    )
    assert creds.shortcode == shortcode


@pytest.mark.parametrize(
    "shortcode",
    [
        "1234",
        "12345678",
        "17437a",
        "abcde",
        "",
        "174 379",
        " 174379",
        "174379\n",
        "-17437",
        "1.7437",
    ],
    ids=repr,
)
@pytest.mark.parametrize("field", ["shortcode", "party_b"])
def test_bad_shortcodes_are_refused(field: str, shortcode: str) -> None:
    # Given a shortcode or till that is not 5-7 digits
    # When credentials are made (as till, so party_b may differ from shortcode)
    fields = {"mode": "till", "shortcode": "174379", "party_b": "5123456", field: shortcode}
    # Then they are refused
    with pytest.raises(ValueError, match=field):
        credentials(**fields)


@pytest.mark.parametrize("shortcode", ["١٧٤٣٧٩", "１７４３７９"], ids=["arabic-indic", "fullwidth"])
def test_non_ascii_digit_shortcodes_are_refused(shortcode: str) -> None:
    with pytest.raises(ValueError, match="shortcode"):
        credentials(shortcode=shortcode, party_b=shortcode)


def test_paybill_must_pay_its_own_shortcode() -> None:
    # Given paybill credentials whose PartyB is another number
    # Then they are refused (for paybill, PartyB is the shortcode itself)
    with pytest.raises(ValueError, match="party_b"):
        credentials(mode="paybill", shortcode="174379", party_b="600000")


def test_till_may_pay_another_number() -> None:
    creds = credentials(mode="till", shortcode="174379", party_b="600000")
    assert creds.party_b == "600000"


@pytest.mark.parametrize("field", ["passkey", "consumer_key", "consumer_secret"])
def test_empty_secrets_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        credentials(**{field: ""})


@pytest.mark.parametrize("mode", ["", "PAYBILL", "buygoods", "c2b"])
def test_unknown_modes_are_refused(mode: str) -> None:
    with pytest.raises(ValueError, match="mode"):
        credentials(mode=mode, party_b="174379")


def test_stored_credentials_default_to_paybill_on_the_shortcode() -> None:
    stored = {
        "consumer_key": "ck",
        "consumer_secret": "cs",
        "shortcode": 174379,
        "passkey": "pk",
    }
    creds = DarajaCredentials.from_stored(stored)
    assert (creds.mode, creds.shortcode, creds.party_b) == ("paybill", "174379", "174379")

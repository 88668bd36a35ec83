"""Idram: the payment form, the precheck, the account proof, the checksum, the confirmation."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways import catalogue
from shared.gateways.base import (
    CallbackMalformed,
    Capability,
    CustomerDetails,
    InboundCallback,
    Outcome,
    PaymentRequest,
    Precheck,
    PrecheckReader,
    SignedCallbacks,
)
from shared.gateways.description import GatewaySettings, sha256_verifier
from shared.gateways.idram import DESCRIPTION
from shared.gateways.idram.callbacks import mask_text
from shared.gateways.idram.client import IdramAdapter
from shared.gateways.idram.credentials import IdramCredentials
from shared.gateways.idram.wire import CHECKSUM_FIELDS, checksum

STORED = dict(DESCRIPTION.simulator_credentials)
CREDENTIALS = IdramCredentials.from_stored(STORED)
VERIFIERS = DESCRIPTION.callback_verifiers(STORED)
BILL = "0b7f3c9e-6a52-4d2e-9a8f-6a1c2b3d4e5f"
# Hypothesis: field values as Idram could send them (printable, Armenian included, no blanks).
TEXT = st.text(
    alphabet=st.characters(categories=("L", "N", "P", "S"), max_codepoint=0x58F),
    min_size=1,
    max_size=30,
)


@pytest.fixture
def adapter() -> IdramAdapter:
    return IdramAdapter(GatewaySettings("https://idram.invalid/", 1, 1))


def payment(**changes: Any) -> PaymentRequest:
    fields: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "attempt_ref": BILL,
        "amount": Money(500000, "AMD"),
        "phone": "37491123456",
        "reference": "ORDER-42",
        "description": "Two coffees",
        "callback_url": "https://malipo.example/callbacks/idram/s3cret",
        "customer": CustomerDetails(email="anna@example.am"),
    }
    return PaymentRequest(**{**fields, **changes})


def posted(fields: dict[str, str], *, query: dict[str, str] | None = None) -> InboundCallback:
    return InboundCallback(
        method="POST",
        query_string=urlencode(query or {}),
        body=urlencode(fields).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
        remote_addr="203.0.113.7",
        path_secret="s3cret",
    )


def idram_checksum(fields: dict[str, str], secret_key: str) -> str:
    """The checksum as Idram's text defines it, written out independently of the adapter."""
    base = (
        f"{fields['EDP_REC_ACCOUNT']}:{fields['EDP_AMOUNT']}:{secret_key}:{fields['EDP_BILL_NO']}:"
        f"{fields['EDP_PAYER_ACCOUNT']}:{fields['EDP_TRANS_ID']}:{fields['EDP_TRANS_DATE']}"
    )
    return hashlib.md5(base.encode(), usedforsecurity=False).hexdigest().upper()


def confirmation(secret_key: str = CREDENTIALS.secret_key, **changes: str) -> dict[str, str]:
    fields = {
        "EDP_BILL_NO": BILL,
        "EDP_REC_ACCOUNT": CREDENTIALS.rec_account,
        "EDP_PAYER_ACCOUNT": "100012345",
        "EDP_AMOUNT": "5000",
        "EDP_TRANS_ID": "10000000123456",
        "EDP_TRANS_DATE": "02/01/2026",
        **changes,
    }
    fields["EDP_CHECKSUM"] = idram_checksum(fields, secret_key)
    return fields


def precheck_form(**changes: str) -> dict[str, str]:
    return {
        "EDP_PRECHECK": "YES",
        "EDP_BILL_NO": BILL,
        "EDP_REC_ACCOUNT": CREDENTIALS.rec_account,
        "EDP_AMOUNT": "5000",
        **changes,
    }


# -- the description ---------------------------------------------------------------------------


def test_the_description_is_a_hosted_gateway_whose_result_url_is_in_the_cabinet() -> None:
    assert catalogue.describe("idram") is DESCRIPTION
    assert catalogue.for_callback_segment("idram") is DESCRIPTION
    assert (DESCRIPTION.currencies, DESCRIPTION.phone_regions) == (("AMD",), ("AM",))
    assert DESCRIPTION.capabilities == {Capability.HOSTED, Capability.CALLBACKS}
    assert DESCRIPTION.default_flow is Capability.HOSTED
    assert DESCRIPTION.pay_page
    assert DESCRIPTION.result_url_in_cabinet
    assert not DESCRIPTION.confirm_before_credit  # nothing to confirm with: no status API
    assert DESCRIPTION.simulator_path == "/idram"
    assert set(DESCRIPTION.base_urls.values()) == {"https://banking.idram.am"}
    fields = {c.name: c for c in DESCRIPTION.credentials}
    assert list(fields) == ["rec_account", "secret_key", "language"]
    assert [c.name for c in DESCRIPTION.credentials if c.secret] == ["secret_key"]
    assert (fields["language"].required, fields["language"].default) == (False, "EN")
    assert fields["language"].choices == ("EN", "AM", "RU")
    assert DESCRIPTION.callback_authentication
    assert DESCRIPTION.source_of_truth


def test_the_adapter_reads_prechecks_and_signed_callbacks(adapter: IdramAdapter) -> None:
    assert isinstance(adapter, PrecheckReader)
    assert isinstance(adapter, SignedCallbacks)


def test_the_account_verifier_is_the_hash_of_the_idram_id() -> None:
    assert DESCRIPTION.callback_verifiers(STORED) == {"account": sha256_verifier("110000601")}
    assert DESCRIPTION.callback_verifiers({"rec_account": " 110000601 "}) == VERIFIERS
    assert DESCRIPTION.callback_verifiers({}) == {}


# -- credentials -------------------------------------------------------------------------------


def test_credentials_default_to_english_and_never_print_the_secret() -> None:
    credentials = IdramCredentials.from_stored({"rec_account": "110000601", "secret_key": "k"})

    assert credentials.language == "EN"
    assert IdramCredentials.from_stored({**STORED, "language": "am"}).language == "AM"
    assert CREDENTIALS.secret_key not in repr(CREDENTIALS)


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ({"secret_key": "k"}, "rec_account"),
        ({"rec_account": "110000601"}, "secret_key"),
        ({"rec_account": "1100 00601", "secret_key": "k"}, "rec_account"),
        ({"rec_account": "110000601", "secret_key": "k\n"}, None),  # stripped: fine
        ({"rec_account": "110000601", "secret_key": "k\x00k"}, "control"),
        ({"rec_account": "110000601", "secret_key": "k", "language": "FR"}, "language"),
    ],
)
def test_bad_credentials_are_refused(stored: dict[str, str], reason: str | None) -> None:
    if reason is None:
        IdramCredentials.from_stored(stored)
        return
    with pytest.raises(ValueError, match=reason):
        IdramCredentials.from_stored(stored)


# -- amounts and the form ----------------------------------------------------------------------


@given(drams=st.integers(min_value=1, max_value=10**9))
def test_whole_drams_go_on_the_form_as_whole_numbers(drams: int) -> None:
    adapter = IdramAdapter(GatewaySettings("https://idram.invalid", 1, 1))

    started = adapter.start_hosted(CREDENTIALS, payment(amount=Money(drams * 100, "AMD")))

    assert started.next_action is not None
    assert started.next_action.fields["EDP_AMOUNT"] == str(drams)


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (Money(500050, "AMD"), "invalid_amount"),
        (Money(0, "AMD"), "invalid_amount"),
        (Money(-100, "AMD"), "invalid_amount"),
        (Money(500000, "KES"), "invalid_currency"),
    ],
)
def test_amounts_idram_cannot_take_are_refused(
    adapter: IdramAdapter, amount: Money, code: str
) -> None:
    with pytest.raises(MalipoError) as refused:
        adapter.check_amount(amount)
    assert refused.value.code == code

    started = adapter.start_hosted(CREDENTIALS, payment(amount=amount))

    assert (started.accepted, started.failure_code) == (False, code)


def test_start_hosted_hands_the_browser_idrams_form(adapter: IdramAdapter) -> None:
    started = adapter.start_hosted(CREDENTIALS, payment())

    assert started.accepted
    assert started.gateway_ref == BILL
    assert started.next_action is not None
    assert started.next_action.to_json() == {
        "type": "form_post",
        "url": "https://idram.invalid/Payment/GetPayment",
        "fields": {
            "EDP_LANGUAGE": "EN",
            "EDP_REC_ACCOUNT": "110000601",
            "EDP_DESCRIPTION": "Two coffees",
            "EDP_AMOUNT": "5000",
            "EDP_BILL_NO": BILL,
            "EDP_EMAIL": "anna@example.am",
        },
    }


def test_the_form_falls_back_to_the_reference_and_leaves_out_an_unknown_email(
    adapter: IdramAdapter,
) -> None:
    credentials = IdramCredentials.from_stored({**STORED, "language": "RU"})

    started = adapter.start_hosted(
        credentials, payment(description=None, customer=CustomerDetails(), return_urls=None)
    )

    assert started.next_action is not None
    fields = started.next_action.fields
    assert (fields["EDP_DESCRIPTION"], fields["EDP_LANGUAGE"]) == ("ORDER-42", "RU")
    assert "EDP_EMAIL" not in fields


# -- the precheck ------------------------------------------------------------------------------


def test_a_precheck_is_read_as_a_question_about_the_bill(adapter: IdramAdapter) -> None:
    question = adapter.precheck(posted(precheck_form()))

    assert question == Precheck(gateway_ref=BILL, amount=Money(500000, "AMD"), account="110000601")


@pytest.mark.parametrize("amount", ["5000.00", "5000.0", " 5000 "])
def test_a_precheck_amount_may_carry_a_zero_fraction(adapter: IdramAdapter, amount: str) -> None:
    question = adapter.precheck(posted(precheck_form(EDP_AMOUNT=amount)))

    assert question is not None
    assert question.amount == Money(500000, "AMD")


def test_a_precheck_with_a_fraction_of_a_dram_is_read_exactly(adapter: IdramAdapter) -> None:
    question = adapter.precheck(posted(precheck_form(EDP_AMOUNT="5000.50")))

    assert question is not None
    assert question.amount == Money(500050, "AMD")  # malipo's bill check refuses it


def test_a_confirmation_is_not_a_precheck(adapter: IdramAdapter) -> None:
    assert adapter.precheck(posted(confirmation())) is None
    assert adapter.precheck(posted(precheck_form(EDP_PRECHECK="NO"))) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"EDP_BILL_NO": ""},
        {"EDP_REC_ACCOUNT": ""},
        {"EDP_AMOUNT": ""},
        {"EDP_AMOUNT": "lots"},
        {"EDP_AMOUNT": "0"},
        {"EDP_AMOUNT": "-5"},
        {"EDP_AMOUNT": "1e3"},
        {"EDP_BILL_NO": "x" * 101},
    ],
)
def test_a_malformed_precheck_is_refused_as_malformed(
    adapter: IdramAdapter, changes: dict[str, str]
) -> None:
    with pytest.raises(CallbackMalformed):
        adapter.precheck(posted(precheck_form(**changes)))


def test_the_precheck_answers_are_plain_ok_and_anything_else(adapter: IdramAdapter) -> None:
    yes, no = adapter.precheck_reply(True), adapter.precheck_reply(False)

    assert (yes.status, yes.body, yes.content_type.split(";")[0]) == (200, b"OK", "text/plain")
    assert (no.status, no.body) == (200, b"NO")


# -- the ingress's proof -----------------------------------------------------------------------


def test_a_callback_naming_the_merchants_account_is_let_in(adapter: IdramAdapter) -> None:
    assert adapter.authenticate_callback(VERIFIERS, posted(confirmation())) is None
    assert adapter.authenticate_callback(VERIFIERS, posted(precheck_form())) is None


@pytest.mark.parametrize(
    ("fields", "verifiers", "reason"),
    [
        (confirmation(EDP_REC_ACCOUNT="110000602"), VERIFIERS, "account_mismatch"),
        (precheck_form(EDP_REC_ACCOUNT="999"), VERIFIERS, "account_mismatch"),
        ({"EDP_BILL_NO": BILL}, VERIFIERS, "account_missing"),
        (confirmation(), {}, "account_mismatch"),  # a merchant without a verifier
    ],
)
def test_a_callback_for_another_account_is_refused(
    adapter: IdramAdapter, fields: dict[str, str], verifiers: dict[str, str], reason: str
) -> None:
    assert adapter.authenticate_callback(verifiers, posted(fields)) == reason


# -- the worker's proof: the checksum ----------------------------------------------------------


def test_the_checksum_is_idrams_md5_in_upper_case() -> None:
    fields = confirmation()

    assert checksum(fields, CREDENTIALS.secret_key) == fields["EDP_CHECKSUM"]
    assert fields["EDP_CHECKSUM"] == fields["EDP_CHECKSUM"].upper()


@pytest.mark.parametrize("case", [str.upper, str.lower])
def test_a_right_checksum_verifies_in_either_case(adapter: IdramAdapter, case: Any) -> None:
    fields = confirmation()
    fields["EDP_CHECKSUM"] = case(fields["EDP_CHECKSUM"])

    assert adapter.verify_callback(CREDENTIALS, posted(fields)) is None


@given(
    values=st.fixed_dictionaries({name: TEXT for name in CHECKSUM_FIELDS}),
    secret=TEXT,
    changed=st.sampled_from(CHECKSUM_FIELDS),
    replacement=TEXT,
)
def test_a_checksum_verifies_and_any_changed_field_does_not(
    values: dict[str, str], secret: str, changed: str, replacement: str
) -> None:
    adapter = IdramAdapter(GatewaySettings("https://idram.invalid", 1, 1))
    credentials = IdramCredentials("110000601", secret)
    signed = {**values, "EDP_REC_ACCOUNT": "110000601"}
    signed["EDP_CHECKSUM"] = checksum(signed, secret)
    assert signed["EDP_CHECKSUM"] == idram_checksum(signed, secret)

    assert adapter.verify_callback(credentials, posted(signed)) is None
    if replacement != signed[changed]:
        tampered = {**signed, changed: replacement}
        assert adapter.verify_callback(credentials, posted(tampered)) is not None


@given(secret=TEXT)
def test_another_secret_key_does_not_verify(secret: str) -> None:
    adapter = IdramAdapter(GatewaySettings("https://idram.invalid", 1, 1))
    credentials = IdramCredentials("110000601", secret)

    verdict = adapter.verify_callback(credentials, posted(confirmation()))

    assert verdict == (None if secret == CREDENTIALS.secret_key else "checksum_mismatch")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({**confirmation(), "EDP_CHECKSUM": ""}, "checksum_missing"),
        ({k: v for k, v in confirmation().items() if k != "EDP_CHECKSUM"}, "checksum_missing"),
        (
            {k: v for k, v in confirmation().items() if k != "EDP_TRANS_DATE"},
            "checksum_fields_missing",
        ),
        ({**confirmation(), "EDP_CHECKSUM": "é" * 32}, "checksum_mismatch"),
        (confirmation(EDP_REC_ACCOUNT="110000602"), "account_mismatch"),
    ],
)
def test_a_confirmation_that_does_not_verify_says_why(
    adapter: IdramAdapter, fields: dict[str, str], reason: str
) -> None:
    assert adapter.verify_callback(CREDENTIALS, posted(fields)) == reason


# -- the confirmation --------------------------------------------------------------------------


def test_a_confirmation_is_a_success_keyed_by_idrams_transaction(adapter: IdramAdapter) -> None:
    event = adapter.parse_callback(posted(confirmation()))

    assert event.event_key == "idram:10000000123456"
    assert (event.gateway_ref, event.secondary_ref) == (BILL, None)
    assert event.verdict.outcome is Outcome.SUCCEEDED
    assert event.verdict.result_code == "confirmed"
    assert event.verdict.amount == Money(500000, "AMD")
    assert event.verdict.receipt == "10000000123456"
    assert event.verdict.failure_code is None


def test_the_kept_body_has_no_checksum_and_only_the_payers_last_digits(
    adapter: IdramAdapter,
) -> None:
    event = adapter.parse_callback(posted(confirmation()))

    kept = json.loads(event.masked_body)
    assert "EDP_CHECKSUM" not in kept
    assert kept["EDP_PAYER_ACCOUNT"] == "*****2345"
    assert kept["EDP_REC_ACCOUNT"] == "110000601"  # an account id, not a phone: kept whole
    assert (kept["EDP_BILL_NO"], kept["EDP_TRANS_ID"]) == (BILL, "10000000123456")
    assert CREDENTIALS.secret_key not in event.masked_body
    assert "100012345" not in event.masked_body


def test_phone_numbers_in_fields_idram_does_not_document_are_masked(
    adapter: IdramAdapter,
) -> None:
    fields = {**confirmation(), "EDP_NOTE": "call +374 91 123456 or 091 123456"}

    kept = json.loads(adapter.parse_callback(posted(fields)).masked_body)

    assert "123456" not in kept["EDP_NOTE"].replace("3456", "")
    assert mask_text("091123456") == "*****3456"


def test_the_same_confirmation_twice_is_the_same_event(adapter: IdramAdapter) -> None:
    first = adapter.parse_callback(posted(confirmation()))
    again = adapter.parse_callback(posted(confirmation()))

    assert first == again


def test_fields_may_come_in_the_query_string(adapter: IdramAdapter) -> None:
    inbound = InboundCallback("POST", urlencode(confirmation()), b"", {}, None, "s3cret")

    assert adapter.parse_callback(inbound).gateway_ref == BILL
    assert adapter.verify_callback(CREDENTIALS, inbound) is None


def test_a_precheck_is_not_a_result(adapter: IdramAdapter) -> None:
    with pytest.raises(CallbackMalformed, match="a precheck is not a result"):
        adapter.parse_callback(posted(precheck_form()))


@pytest.mark.parametrize(
    "name",
    [*CHECKSUM_FIELDS, "EDP_CHECKSUM"],
)
def test_a_confirmation_without_a_field_is_malformed(adapter: IdramAdapter, name: str) -> None:
    fields = {k: v for k, v in confirmation().items() if k != name}

    with pytest.raises(CallbackMalformed, match=name):
        adapter.parse_callback(posted(fields))


@pytest.mark.parametrize("amount", ["", "free", "0", "NaN"])
def test_a_confirmation_without_an_amount_is_malformed(adapter: IdramAdapter, amount: str) -> None:
    with pytest.raises(CallbackMalformed, match="EDP_AMOUNT"):
        adapter.parse_callback(posted(confirmation(EDP_AMOUNT=amount)))


def test_idram_is_answered_plain_ok(adapter: IdramAdapter) -> None:
    reply = adapter.acknowledgement(posted(confirmation()))

    assert (reply.status, reply.body) == (200, b"OK")

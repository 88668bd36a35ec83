"""Kenyan MSISDN normalisation and masking, checked against the Daraja reference rules.

Reference: strip spaces, dashes and ``+``; ``07…``/``01…`` → ``254`` + last nine digits;
nine digits starting 7 or 1 → ``254`` prefix; ``254…`` stays; the result matches
``^254(7|1)\\d{8}$``; everything else is ``invalid_phone``, never a guess.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.errors import MalipoError
from shared.domain.phone import mask_msisdn, mask_phone_numbers, normalise_ke_msisdn
from tests.unit.properties import PROPERTY

CANONICAL = re.compile(r"^254[71]\d{8}$")
# The longest raw text the normaliser reads; longer input is refused outright.
MAX_RAW_LENGTH = 32

leads = st.sampled_from("71")
eight_digits = st.text(alphabet="0123456789", min_size=8, max_size=8)


def written_forms(lead: str, rest: str) -> list[str]:
    """Every unseparated way the reference says a subscriber's number may be written."""
    return ["0" + lead + rest, "+254" + lead + rest, "254" + lead + rest, lead + rest]


@st.composite
def written_numbers(draw: st.DrawFn, *, separators: bool) -> tuple[str, str]:
    """(a written form of a number, the canonical MSISDN the reference says it is)."""
    lead, rest = draw(leads), draw(eight_digits)
    text = draw(st.sampled_from(written_forms(lead, rest)))
    if separators:
        room = MAX_RAW_LENGTH - len(text)
        for _ in range(draw(st.integers(0, room))):
            position = draw(st.integers(0, len(text)))
            text = text[:position] + draw(st.sampled_from(" -")) + text[position:]
    return text, "254" + lead + rest


def normalise_or_code(raw: object) -> tuple[str | None, str | None]:
    """(the normalised number, None) or (None, the refusal's code)."""
    try:
        return normalise_ke_msisdn(raw), None
    except MalipoError as refused:
        return None, refused.code


def assert_invalid_phone(raw: object) -> None:
    with pytest.raises(MalipoError) as refused:
        normalise_ke_msisdn(raw)
    assert refused.value.code == "invalid_phone"


# --- normalisation ------------------------------------------------------------------------


@settings(PROPERTY, max_examples=300)
@given(lead=leads, rest=eight_digits)
def test_every_written_form_normalises_to_the_254_form(lead: str, rest: str) -> None:
    # Given a subscriber number written as 07…/01…, +254…, 254… or the bare nine digits
    expected = "254" + lead + rest
    for written in written_forms(lead, rest):
        # When it is normalised
        # Then it is 254 + the nine significant digits
        assert normalise_ke_msisdn(written) == expected, written


@settings(PROPERTY, max_examples=300)
@given(number=written_numbers(separators=True))
def test_spaces_and_dashes_anywhere_are_ignored(number: tuple[str, str]) -> None:
    # Given a written number with spaces and dashes inserted at arbitrary places
    written, expected = number
    # When it is normalised
    # Then the separators make no difference
    assert normalise_ke_msisdn(written) == expected


@settings(PROPERTY, max_examples=200)
@given(number=written_numbers(separators=True))
def test_normalisation_is_idempotent(number: tuple[str, str]) -> None:
    # Given a normalised number
    once = normalise_ke_msisdn(number[0])
    # When it is normalised again
    # Then it does not change
    assert normalise_ke_msisdn(once) == once


# Text that is mostly phone-like, so the "accepted" branch is exercised too.
phone_like_text = st.text(alphabet="0123456789 +-", max_size=20)


@settings(PROPERTY, max_examples=500)
@given(raw=st.one_of(st.text(), phone_like_text))
def test_arbitrary_text_is_refused_or_becomes_a_valid_msisdn(raw: str) -> None:
    # Given any text at all
    # When it is normalised
    result, code = normalise_or_code(raw)
    if result is None:
        # Then it is either refused with invalid_phone (and no other exception escapes) …
        assert code == "invalid_phone"
        return
    # … or the result is a canonical MSISDN
    assert CANONICAL.fullmatch(result)
    # and never a guess: its nine significant digits are the last nine digits written
    written_digits = "".join(c for c in raw if c in "0123456789")
    assert written_digits.endswith(result[3:])
    # and normalising it again changes nothing
    assert normalise_ke_msisdn(result) == result


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("0201234567", id="nairobi-landline"),
        pytest.param("020 123 4567", id="nairobi-landline-spaced"),
        pytest.param("+254201234567", id="landline-254"),
        pytest.param("0812345678", id="08-prefix"),
        pytest.param("254812345678", id="2548-prefix"),
        pytest.param("254012345678", id="2540-prefix"),
        pytest.param("071234567", id="nine-digits-leading-0"),
        pytest.param("07123456789", id="eleven-digits"),
        pytest.param("71234567", id="eight-digits"),
        pytest.param("25471234567", id="254-eleven"),
        pytest.param("2547123456789", id="254-thirteen"),
        pytest.param("0712345678 0712345678", id="two-numbers"),
        pytest.param("07l2345678", id="letter-l"),
        pytest.param("O712345678", id="letter-O"),
        pytest.param("0712345abc", id="letters"),
        pytest.param("0712.345.678", id="dots"),
        pytest.param("(0712) 345678", id="parentheses"),
        pytest.param("+255712345678", id="tanzania"),
        pytest.param("255712345678", id="tanzania-no-plus"),
        pytest.param("+256712345678", id="uganda"),
        pytest.param("++254712345678", id="double-plus"),
        pytest.param("254+712345678", id="plus-inside"),
        pytest.param("٠٧١٢٣٤٥٦٧٨", id="arabic-indic-digits"),
        pytest.param("０７１２３４５６７８", id="fullwidth-digits"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("+", id="plus-only"),
        pytest.param("-", id="dash-only"),
    ],
)
def test_non_mobile_text_is_refused(raw: str) -> None:
    # Given text that is not a Kenyan mobile number by the reference's rules
    # When it is normalised
    # Then it is refused with invalid_phone
    assert_invalid_phone(raw)


@pytest.mark.parametrize(
    "raw",
    [254712345678, 712345678, None, b"254712345678", 254712345678.0, ["254712345678"], True],
    ids=repr,
)
def test_non_strings_are_refused(raw: object) -> None:
    # Given a value that is not text (even one whose digits would be valid)
    # When it is normalised
    # Then it is refused with invalid_phone, not a TypeError
    assert_invalid_phone(raw)


# --- masking ----------------------------------------------------------------------------------


@settings(PROPERTY, max_examples=200)
@given(lead=leads, rest=eight_digits)
def test_mask_msisdn_keeps_only_the_first_and_last_four(lead: str, rest: str) -> None:
    # Given a canonical MSISDN
    msisdn = "254" + lead + rest
    # When it is masked
    masked = mask_msisdn(msisdn)
    # Then the first four and last four characters survive and the middle is hidden
    assert len(masked) == len(msisdn)
    assert masked[:4] == msisdn[:4]
    assert masked[-4:] == msisdn[-4:]
    assert set(masked[4:-4]) == {"*"}


def test_mask_msisdn_example() -> None:
    assert mask_msisdn("254708374149") == "2547****4149"


# Surrounding text: anything but digits (a digit next to a number makes it a longer number),
# never empty, so two numbers never run together into one longer digit string.
non_digit_text = st.text(
    alphabet=st.characters(exclude_categories=("Nd",)), min_size=1, max_size=20
)


@settings(PROPERTY, max_examples=300)
@given(
    numbers=st.lists(written_numbers(separators=False), min_size=1, max_size=4),
    fillers=st.lists(non_digit_text, min_size=5, max_size=5),
)
def test_no_full_msisdn_survives_masking_in_free_text(
    numbers: list[tuple[str, str]], fillers: list[str]
) -> None:
    # Given free text holding one or more numbers in any unseparated written form
    text = fillers[0]
    for (written, _), filler in zip(numbers, fillers[1:], strict=False):
        text += written + filler
    # When phone numbers in it are masked
    masked = mask_phone_numbers(text)
    # Then none of the numbers' nine significant digits can be read any more
    for _, msisdn in numbers:
        assert msisdn[3:] not in masked
        # and each shows in its masked canonical form
        assert mask_msisdn(msisdn) in masked


@pytest.mark.parametrize(
    "text",
    [
        '{"Name":"PhoneNumber","Value":254708374149}',
        "customer +254708374149 paid",
        "customer 0708374149 paid",
        "customer 708374149 paid",
        "phone=254708374149&x=1",
        "ref254708374149x",
    ],
)
def test_each_written_form_is_masked_in_context(text: str) -> None:
    # Given text quoting the sandbox test number in one written form
    # When it is masked
    masked = mask_phone_numbers(text)
    # Then the number is gone and its masked form is there
    assert "708374149" not in masked
    assert "2547****4149" in masked


@pytest.mark.parametrize(
    "text",
    [
        "TransactionDate 20191219102115",
        '{"Name":"TransactionDate","Value":20191219102115}',
        "CheckoutRequestID ws_CO_021020261805069181954437",
        "MerchantRequestID 29115-34620561-1",
        "masked already 254722000***",
        "unix time 1700000000",
        "receipt NLJ7RT61SV",
    ],
)
def test_identifiers_and_timestamps_are_left_intact(text: str) -> None:
    # Given text with long numeric ids, timestamps or an already-masked phone
    # When phone numbers in it are masked
    # Then nothing changes
    assert mask_phone_numbers(text) == text


@settings(PROPERTY, max_examples=200)
@given(digits=st.text(alphabet="0123456789", min_size=14, max_size=40))
def test_digit_runs_longer_than_any_msisdn_are_left_intact(digits: str) -> None:
    # Given a run of 14 or more digits (longer than any written MSISDN), e.g. an id
    text = f"ws_CO_{digits} at {digits}"
    # When phone numbers are masked
    # Then it is unchanged
    assert mask_phone_numbers(text) == text


@pytest.mark.parametrize(
    "text",
    ["call 0712 345 678 now", "call +254 712 345 678 now", "call 0712-345-678 now"],
)
def test_separated_written_forms_are_masked_too(text: str) -> None:
    # Given free text with a number written with spaces or dashes (a form the
    # normaliser accepts as that subscriber's number)
    assert normalise_ke_msisdn(text.split("call ")[1].removesuffix(" now")) == "254712345678"
    # When phone numbers are masked
    masked = mask_phone_numbers(text)
    # Then the full number cannot be read back by dropping the separators
    assert "712345678" not in re.sub(r"[ \-]", "", masked)

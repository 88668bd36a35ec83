"""Phones beyond Kenya: parsing per the gateway's countries, masking in every country's
format, and comparing with a phone a gateway masked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.errors import MalipoError
from shared.domain.phone import mask_phone_numbers, normalise_phone, phones_agree
from tests.unit.properties import PROPERTY

WEST_AFRICA = ("SN", "CI", "ML", "BF", "CM")


@pytest.mark.parametrize(
    ("raw", "regions", "expected"),
    [
        ("77 123 45 67", ("SN",), "221771234567"),
        ("+221 77 123 45 67", WEST_AFRICA, "221771234567"),
        ("221771234567", WEST_AFRICA, "221771234567"),
        ("07 01 23 45 67", ("CI", "SN"), "2250701234567"),
        ("+237 6 71 23 45 67", WEST_AFRICA, "237671234567"),
        ("077 123456", ("AM",), "37477123456"),
        ("+374 77 123456", ("AM",), "37477123456"),
        ("0712345678", ("KE",), "254712345678"),
    ],
)
def test_numbers_are_stored_as_e164_digits(
    raw: str, regions: tuple[str, ...], expected: str
) -> None:
    assert normalise_phone(raw, regions) == expected


@pytest.mark.parametrize(
    ("raw", "regions"),
    [
        ("+254712345678", ("SN",)),  # a Kenyan number where only Senegal's are taken
        ("33 123 45 67", ("SN",)),  # a Senegalese landline
        ("12345", WEST_AFRICA),
        ("", WEST_AFRICA),
        ("+221 77 123 45 6x", ("SN",)),
    ],
)
def test_other_numbers_are_invalid_phone(raw: str, regions: tuple[str, ...]) -> None:
    with pytest.raises(MalipoError) as refused:
        normalise_phone(raw, regions)
    assert refused.value.code == "invalid_phone"


@pytest.mark.parametrize(
    ("text", "full"),
    [
        ("paying 221771234567 now", "221771234567"),
        ("phone=+221 77 123 45 67", "771234567"),
        ('{"phone": "2250701234567"}', "2250701234567"),
        ("armenian 37477123456 payer", "37477123456"),
        ("+374 77 123456", "77123456"),
        ("cameroon 237671234567", "237671234567"),
    ],
)
def test_every_countrys_numbers_are_masked_in_free_text(text: str, full: str) -> None:
    masked = mask_phone_numbers(text)
    assert full not in masked.replace(" ", "")
    assert "****" in masked or "***" in masked


def test_ids_and_timestamps_beside_foreign_numbers_are_left_whole() -> None:
    text = "at 20261201102115 id 5b7b0449-31f9-5d12-bd31-d4c79876fec0 amount 22200"
    assert mask_phone_numbers(text) == text


@pytest.mark.parametrize(
    ("reported", "agrees"),
    [
        ("254722000123", True),
        ("254722000***", True),
        ("0722000***", True),
        ("2547******23", True),
        ("722000123", True),
        ("+254 722 000 123", True),
        ("***", True),  # nothing to compare: not a mismatch
        ("2547220001234567", True),  # longer than ours: cannot be compared
        ("254722000124", False),
        ("254722999***", False),
        ("0722999***", False),
        ("2547******78", False),
    ],
)
def test_a_masked_phone_is_compared_by_the_digits_both_sides_show(
    reported: str, agrees: bool
) -> None:
    assert phones_agree("254722000123", reported) is agrees


@PROPERTY
@given(
    st.text(alphabet="0123456789", min_size=9, max_size=9),
    st.sets(st.integers(min_value=0, max_value=11)),
)
def test_masking_our_own_number_never_disagrees(rest: str, hidden: set[int]) -> None:
    ours = "254" + rest
    shown = "".join("*" if i in hidden else c for i, c in enumerate(ours))
    assert phones_agree(ours, shown)
    assert phones_agree(ours, "0" + shown[3:])

"""Whole drams: the one amount rule every Armenian gateway applies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.amd import whole_drams


@given(st.integers(min_value=1, max_value=10**9))
def test_whole_drams_are_sent_as_drams(drams: int) -> None:
    assert whole_drams(Money(drams * 100, "AMD"), "Idram") == drams


@given(st.integers(min_value=1, max_value=10**11).filter(lambda luma: luma % 100))
def test_a_fraction_of_a_dram_is_refused(luma: int) -> None:
    with pytest.raises(MalipoError) as refused:
        whole_drams(Money(luma, "AMD"), "Telcell")
    assert refused.value.error.code == "invalid_amount"
    assert "Telcell takes whole drams" in str(refused.value)


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (Money(0, "AMD"), "invalid_amount"),
        (Money(500, "KES"), "invalid_currency"),
        (Money(1001 * 100, "AMD"), "amount_out_of_range"),
    ],
)
def test_other_refusals(amount: Money, code: str) -> None:
    with pytest.raises(MalipoError) as refused:
        whole_drams(amount, "FastShift", max_drams=1000)
    assert refused.value.error.code == code

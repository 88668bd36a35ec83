"""Money in minor units: exact parsing, formatting and M-Pesa's whole-shilling rule.

Expectations come from ISO 4217 (minor-unit exponents) and the Daraja reference
(Amount: whole shillings only, min 1, max 250,000 per transaction).
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.domain.errors import MalipoError
from shared.domain.money import EXPONENTS, Money, mpesa_whole_shillings
from tests.unit.properties import PROPERTY

# ISO 4217 minor-unit exponents, written out independently of the product's table.
ISO_4217_EXPONENTS = {"KES": 2, "TZS": 2, "AMD": 2, "UGX": 0, "XOF": 0, "XAF": 0, "GNF": 0}
# Amounts with up to 15 digits before the point are real amounts; beyond is hostile.
MAX_MAJOR = 10**15 - 1
# M-Pesa, from the reference: KES 1 to 250,000 per transaction, in minor units.
MPESA_MIN_MINOR, MPESA_MAX_MINOR = 1 * 100, 250_000 * 100

currencies = st.sampled_from(sorted(EXPONENTS))


def refusal_code(call: object, *args: object) -> str:
    with pytest.raises(MalipoError) as refused:
        call(*args)  # type: ignore[operator]
    return refused.value.code


def test_exponents_agree_with_iso_4217() -> None:
    # Given the currencies malipo settles in
    # Then each one's exponent is the ISO 4217 minor-unit exponent
    for currency, exponent in EXPONENTS.items():
        assert ISO_4217_EXPONENTS[currency] == exponent, currency


# --- formatting and the parse round trip ------------------------------------------------------


@st.composite
def amounts(draw: st.DrawFn, *, positive: bool = False) -> Money:
    currency = draw(currencies)
    limit = (MAX_MAJOR + 1) * 10 ** ISO_4217_EXPONENTS[currency] - 1
    return Money(draw(st.integers(1 if positive else -limit, limit)), currency)


@settings(PROPERTY, max_examples=500)
@given(money=amounts())
@example(money=Money(0, "KES"))
@example(money=Money(1, "KES"))
@example(money=Money(-5, "TZS"))
@example(money=Money(10**17 - 1, "KES"))
def test_parse_major_of_format_round_trips(money: Money) -> None:
    # Given any amount in any supported currency
    # When it is formatted in major units and parsed back
    # Then the same amount comes out
    assert Money.parse_major(money.format(), money.currency) == money


@settings(PROPERTY, max_examples=300)
@given(money=amounts(positive=True))
def test_format_writes_the_currencys_decimals(money: Money) -> None:
    # Given a positive amount
    exponent = ISO_4217_EXPONENTS[money.currency]
    whole, minor = divmod(money.amount_minor, 10**exponent)
    # When it is formatted
    # Then it is the whole units, and exactly `exponent` decimals when there are any
    expected = f"{whole}.{minor:0{exponent}d}" if exponent else str(whole)
    assert money.format() == expected


def test_format_examples() -> None:
    assert Money(1050, "KES").format() == "10.50"
    assert Money(5, "KES").format() == "0.05"
    assert Money(1500, "XOF").format() == "1500"


@settings(PROPERTY, max_examples=300)
@given(currency=currencies, whole=st.integers(-MAX_MAJOR, MAX_MAJOR))
def test_integers_parse_as_whole_major_units(currency: str, whole: int) -> None:
    # Given an integer number of major units
    # When it is parsed
    # Then it is that many major units, exactly
    expected = whole * 10 ** ISO_4217_EXPONENTS[currency]
    assert Money.parse_major(whole, currency) == Money(expected, currency)


@settings(PROPERTY, max_examples=300)
@given(data=st.data(), currency=currencies, whole=st.integers(0, MAX_MAJOR))
def test_decimal_strings_with_at_most_the_currencys_decimals_parse_exactly(
    data: st.DataObject, currency: str, whole: int
) -> None:
    # Given a decimal string with no more decimals than the currency has
    exponent = ISO_4217_EXPONENTS[currency]
    decimals = data.draw(st.text(alphabet="0123456789", max_size=exponent), label="decimals")
    text = f"{whole}.{decimals}" if decimals else str(whole)
    padding = data.draw(st.sampled_from(["", " ", "  "]), label="padding")
    # When it is parsed
    parsed = Money.parse_major(padding + text + padding, currency)
    # Then the amount is the whole units plus the decimals read as minor units
    expected = whole * 10**exponent + (int(decimals.ljust(exponent, "0")) if decimals else 0)
    assert parsed == Money(expected, currency)


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("1.00", "KES", 100),
        ("5.00", "KES", 500),
        ("10.5", "KES", 1050),
        ("0.01", "KES", 1),
        ("1.000", "KES", 100),  # trailing zeros add no precision
        ("250000", "KES", 25_000_000),
        (Decimal("10.50"), "KES", 1050),
        ("1500", "XOF", 1500),
        ("1500.0", "XOF", 1500),
        ("1E+3", "UGX", 1000),
    ],
)
def test_parse_major_examples(value: object, currency: str, minor: int) -> None:
    assert Money.parse_major(value, currency) == Money(minor, currency)


@settings(PROPERTY, max_examples=300)
@given(currency=currencies, data=st.data())
def test_floats_with_at_most_the_currencys_decimals_parse_exactly(
    currency: str, data: st.DataObject
) -> None:
    # Given a float written with no more decimals than the currency has (e.g. 1.0, 10.5)
    exponent = ISO_4217_EXPONENTS[currency]
    minor = data.draw(st.integers(0, 10**13), label="minor")
    value = minor / 10**exponent
    # When it is parsed
    # Then the minor units are exact, with no binary floating-point error
    assert Money.parse_major(value, currency) == Money(minor, currency)


def test_classic_float_noise_is_refused() -> None:
    # Given 0.1 + 0.2, which is 0.30000000000000004 as a float
    # When it is parsed as KES
    # Then it is refused rather than rounded to 0.30
    assert refusal_code(Money.parse_major, 0.1 + 0.2, "KES") == "invalid_amount"


@settings(PROPERTY, max_examples=300)
@given(
    currency=currencies,
    whole=st.integers(0, 10**6),
    extra=st.integers(1, 10),
    data=st.data(),
)
def test_more_decimals_than_the_currency_has_are_refused(
    currency: str, whole: int, extra: int, data: st.DataObject
) -> None:
    # Given a decimal string with 1-10 more decimals than the currency has,
    # the last of them not zero (so the value cannot be written in minor units)
    exponent = ISO_4217_EXPONENTS[currency]
    digits = data.draw(
        st.text(alphabet="0123456789", min_size=exponent + extra - 1, max_size=exponent + extra - 1)
    )
    last = data.draw(st.sampled_from("123456789"))
    text = f"{whole}.{digits}{last}"
    # When it is parsed
    # Then it is refused as an invalid amount
    assert refusal_code(Money.parse_major, text, currency) == "invalid_amount"


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        ("1.0000000000000000000000000001", "KES"),
        ("10.000000000000000000000000001", "KES"),
        ("1.00000000000000000000000000001", "XOF"),
        ("1e-999999999", "KES"),
    ],
)
def test_a_nonzero_decimal_beyond_28_digits_is_still_too_many_decimals(
    value: str, currency: str
) -> None:
    # Given an amount whose value has more decimals than the currency, far out
    # When it is parsed
    # Then it is refused (it must not be read as 1.00 / 10.00 / 1 / 0)
    assert refusal_code(Money.parse_major, value, currency) == "invalid_amount"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("NaN", id="nan-text"),
        pytest.param("sNaN", id="snan-text"),
        pytest.param("inf", id="inf-text"),
        pytest.param("-Infinity", id="minus-infinity-text"),
        pytest.param(math.nan, id="nan-float"),
        pytest.param(math.inf, id="inf-float"),
        pytest.param(-math.inf, id="minus-inf-float"),
        pytest.param(Decimal("NaN"), id="nan-decimal"),
        pytest.param(True, id="true"),
        pytest.param(False, id="false"),
        pytest.param(None, id="none"),
        pytest.param([], id="empty-list"),
        pytest.param([1], id="list"),
        pytest.param({"amount": 1}, id="dict"),
        pytest.param(b"1.00", id="bytes"),
        pytest.param("", id="empty"),
        pytest.param("abc", id="letters"),
        pytest.param("1,000.00", id="thousands-comma"),
        pytest.param("KES 10", id="with-currency"),
        pytest.param("1e999999", id="huge-exponent"),
        pytest.param("1E+9999999999", id="huger-exponent"),
        pytest.param(Decimal("1e999999"), id="huge-exponent-decimal"),
        pytest.param("9" * 17, id="seventeen-digits"),
        pytest.param(1e300, id="huge-float"),
        pytest.param(10**20, id="huge-int"),
    ],
)
def test_non_amounts_are_refused(value: object) -> None:
    # Given something that is not a sane amount
    # When it is parsed, in every currency
    # Then it is refused with invalid_amount
    for currency in EXPONENTS:
        assert refusal_code(Money.parse_major, value, currency) == "invalid_amount"


def test_an_absurdly_long_integer_is_refused_as_an_amount() -> None:
    # Given an integer with 5001 digits
    # When it is parsed
    # Then it is refused with invalid_amount (not a ValueError from int->str conversion)
    assert refusal_code(Money.parse_major, 10**5000, "KES") == "invalid_amount"


# --- API amounts (minor units) ----------------------------------------------------------------


@settings(PROPERTY, max_examples=200)
@given(currency=currencies, value=st.integers(1, 10**18))
def test_from_minor_takes_positive_integers_as_they_are(currency: str, value: int) -> None:
    money = Money.from_minor(value, currency)
    assert (money.amount_minor, money.currency) == (value, currency)


@settings(PROPERTY, max_examples=200)
@given(currency=currencies, value=st.integers(max_value=0))
def test_from_minor_refuses_zero_and_negative(currency: str, value: int) -> None:
    assert refusal_code(Money.from_minor, value, currency) == "invalid_amount"


@pytest.mark.parametrize(
    "value",
    [True, False, 100.0, 1.5, "100", "1.00", None, Decimal(100), [100]],
    ids=repr,
)
def test_from_minor_refuses_anything_but_an_int(value: object) -> None:
    # Given a value that is not a plain int (bools are ints in Python, and refused too)
    # When it is taken as an API amount
    # Then it is refused with invalid_amount
    assert refusal_code(Money.from_minor, value, "KES") == "invalid_amount"


@pytest.mark.parametrize("currency", ["USD", "kes", "", "KSH"])
def test_unknown_currencies_are_refused(currency: str) -> None:
    assert refusal_code(Money.from_minor, 100, currency) == "invalid_currency"
    assert refusal_code(Money, 100, currency) == "invalid_currency"


# --- M-Pesa whole shillings ------------------------------------------------------------------

mpesa_boundaries = st.sampled_from(
    [
        -100,
        0,
        1,
        50,
        99,
        100,
        101,
        150,
        200,
        MPESA_MAX_MINOR - 100,
        MPESA_MAX_MINOR - 1,
        MPESA_MAX_MINOR,
        MPESA_MAX_MINOR + 1,
        MPESA_MAX_MINOR + 100,
    ]
)


@settings(PROPERTY, max_examples=500)
@given(minor=st.one_of(mpesa_boundaries, st.integers(-(10**9), 10**9)))
def test_mpesa_takes_exactly_whole_shillings_from_1_to_250000(minor: int) -> None:
    # Given any KES amount in minor units
    money = Money(minor, "KES")
    whole = minor % 100 == 0
    in_range = MPESA_MIN_MINOR <= minor <= MPESA_MAX_MINOR
    # When it is converted for Daraja
    if whole and in_range:
        # Then a whole-shilling amount in range is the shilling count, as an int
        shillings = mpesa_whole_shillings(money)
        assert shillings * 100 == minor
        assert type(shillings) is int
    elif not whole:
        # Then cents are refused as an invalid amount
        assert refusal_code(mpesa_whole_shillings, money) == "invalid_amount"
    else:
        # Then whole shillings outside 1..250,000 are out of range
        assert refusal_code(mpesa_whole_shillings, money) == "amount_out_of_range"


@settings(PROPERTY, max_examples=100)
@given(
    currency=st.sampled_from(sorted(set(EXPONENTS) - {"KES"})),
    minor=st.integers(MPESA_MIN_MINOR // 100, MPESA_MAX_MINOR // 100).map(lambda n: n * 100),
)
def test_mpesa_refuses_other_currencies(currency: str, minor: int) -> None:
    # Given an amount M-Pesa would take if it were KES, in another currency
    # When it is converted for Daraja
    # Then it is refused with invalid_currency
    assert refusal_code(mpesa_whole_shillings, Money(minor, currency)) == "invalid_currency"

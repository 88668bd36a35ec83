"""Money as an integer count of minor units with its currency.

Floats never hold money here: API amounts are integers of minor units
(KES 10.50 is ``1050``), and amounts gateways send as decimals (``1.00``,
``"5.00"``) are read exactly through :class:`decimal.Decimal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from shared.domain.errors import AMOUNT_OUT_OF_RANGE, INVALID_AMOUNT, INVALID_CURRENCY, MalipoError

# ISO 4217 minor-unit exponents of the currencies malipo's gateways settle in.
EXPONENTS: dict[str, int] = {"KES": 2, "AMD": 2, "XOF": 0, "XAF": 0, "GNF": 0, "UGX": 0, "TZS": 2}
# No real payment has more than 15 digits before the point; more is hostile input.
MAX_DIGITS = 15


@dataclass(frozen=True, order=True)
class Money:
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if self.currency not in EXPONENTS:
            raise MalipoError(INVALID_CURRENCY, f"unsupported currency {self.currency!r}")
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise MalipoError(INVALID_AMOUNT)

    @property
    def exponent(self) -> int:
        return EXPONENTS[self.currency]

    def to_decimal(self) -> Decimal:
        """The amount in major units, exactly (``Money(1050, 'KES')`` → ``Decimal('10.50')``)."""
        return Decimal(self.amount_minor).scaleb(-self.exponent)

    def format(self) -> str:
        """Major units with the currency's decimals, e.g. ``'10.50'``."""
        return f"{self.to_decimal():.{self.exponent}f}"

    @classmethod
    def from_minor(cls, value: object, currency: str) -> Money:
        """An API amount: a positive integer of minor units (not a bool, float or string)."""
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise MalipoError(INVALID_AMOUNT)
        return cls(value, currency)

    @classmethod
    def parse_major(cls, value: object, currency: str) -> Money:
        """A gateway amount in major units (number or decimal string), read exactly.

        More decimals than the currency has, non-finite values and booleans are refused.
        """
        number = _exact_decimal(value)
        sign, digits, exponent = number.as_tuple()
        coefficient = int("".join(map(str, digits)))
        # Exact integer arithmetic: Decimal operations would round to the context's 28 digits.
        shift = int(exponent) + EXPONENTS.get(currency, 0)
        if shift >= 0:
            minor = coefficient * 10**shift
        elif coefficient == 0:
            minor = 0
        elif -shift > len(digits):  # a non-zero digit lies beyond the currency's decimals
            raise MalipoError(INVALID_AMOUNT, f"too many decimals for {currency}")
        else:
            minor, remainder = divmod(coefficient, 10**-shift)
            if remainder:
                raise MalipoError(INVALID_AMOUNT, f"too many decimals for {currency}")
        return cls(-minor if sign else minor, currency)


def _exact_decimal(value: object) -> Decimal:
    """A finite Decimal of at most MAX_DIGITS whole digits, read without rounding."""
    refusal = MalipoError(INVALID_AMOUNT, f"not an amount ({type(value).__name__})")
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise refusal
    if isinstance(value, int) and abs(value) >= 10**MAX_DIGITS:
        raise refusal  # before str(): a huge int is slow (or refused) to turn into text
    if isinstance(value, str) and "_" in value:
        raise refusal  # Python's digit grouping is not a decimal amount
    try:
        # repr() of a float is its shortest round-trip text, so 1.1 reads as 1.1.
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise refusal from None
    if not number.is_finite() or number.adjusted() >= MAX_DIGITS:
        raise refusal
    return number


MPESA_MIN_KES = 1
MPESA_MAX_KES = 250_000


def mpesa_whole_shillings(money: Money) -> int:
    """The whole-shilling amount Daraja takes, or a refusal.

    M-Pesa takes whole shillings only, from 1 to 250,000 per transaction.
    """
    if money.currency != "KES":
        raise MalipoError(INVALID_CURRENCY, "M-Pesa takes KES only")
    shillings, cents = divmod(money.amount_minor, 100)
    if cents:
        raise MalipoError(INVALID_AMOUNT, "M-Pesa takes whole shillings only (a multiple of 100)")
    if not MPESA_MIN_KES <= shillings <= MPESA_MAX_KES:
        raise MalipoError(
            AMOUNT_OUT_OF_RANGE, f"M-Pesa takes KES {MPESA_MIN_KES} to {MPESA_MAX_KES:,}"
        )
    return shillings

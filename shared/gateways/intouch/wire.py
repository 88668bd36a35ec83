"""Rules both InTouch APIs share: amounts in whole francs, phones in national form."""

from __future__ import annotations

import phonenumbers

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money

CURRENCIES = ("XOF", "XAF")
# Per-transaction bounds (unverified: InTouch publishes none). Mobile-money wallets in
# UEMOA and CEMAC cap a single payment around 2,000,000 francs; InTouch's own minimum
# is not documented, so any positive amount is offered and InTouch may still refuse it.
MIN_FRANCS = 1
MAX_FRANCS = 2_000_000


def whole_francs(amount: Money) -> int:
    """The amount InTouch takes: whole CFA francs (XOF and XAF have no minor unit)."""
    if amount.currency not in CURRENCIES:
        raise MalipoError(errors.INVALID_CURRENCY, "InTouch takes XOF or XAF only")
    if amount.exponent != 0:  # pragma: no cover - the money table says 0 for both
        raise MalipoError(errors.INVALID_AMOUNT, "CFA francs have no minor unit")
    if amount.amount_minor <= 0:
        raise MalipoError(errors.INVALID_AMOUNT, "the amount must be positive")
    if not MIN_FRANCS <= amount.amount_minor <= MAX_FRANCS:
        raise MalipoError(
            errors.AMOUNT_OUT_OF_RANGE, f"InTouch takes {MIN_FRANCS} to {MAX_FRANCS:,} francs"
        )
    return amount.amount_minor


def national_number(phone: str) -> str:
    """The number as a subscriber dials it at home: ``221771234567`` → ``771234567``.

    Why national: an InTouch agency and its TouchPay page belong to one country, the
    page asks the payer for their local number, and the integrators' samples pass
    ``clientPhone`` and GU's ``recipientNumber`` without the country code (unverified:
    no official sample shows either). Côte d'Ivoire's leading 0 is part of its
    ten-digit numbers and is kept. A number phonenumbers cannot read goes as given.
    """
    try:
        parsed = phonenumbers.parse("+" + phone.lstrip("+"))
    except phonenumbers.NumberParseException:
        return phone
    national = phonenumbers.national_significant_number(parsed)
    return national or phone

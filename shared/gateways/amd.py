"""Armenian drams as the Armenian gateways take them.

AMD is kept with ISO 4217's two decimals (luma), but no gateway of ours takes a
fraction of a dram: every one is sent whole drams (or, for ArCa, luma that are a
multiple of 100). One rule for all of them, so they refuse alike.
"""

from __future__ import annotations

from typing import Final

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money

CURRENCY: Final = "AMD"
LUMA_PER_DRAM: Final = 100


def whole_drams(amount: Money, gateway: str, max_drams: int | None = None) -> int:
    """The amount in whole drams, or the refusal ``gateway`` (its title) would give."""
    if amount.currency != CURRENCY:
        raise MalipoError(errors.INVALID_CURRENCY, f"{gateway} takes AMD only")
    if amount.amount_minor <= 0:
        raise MalipoError(errors.INVALID_AMOUNT, "the amount must be positive")
    drams, luma = divmod(amount.amount_minor, LUMA_PER_DRAM)
    if luma:
        raise MalipoError(errors.INVALID_AMOUNT, f"{gateway} takes whole drams (a multiple of 100)")
    if max_drams is not None and drams > max_drams:
        raise MalipoError(errors.AMOUNT_OUT_OF_RANGE, f"{gateway} takes at most {max_drams} drams")
    return drams

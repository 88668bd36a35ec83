"""What Ameriabank's vPOS 3.1 and ArCa's iPay share: BPC's order states and action codes.

Both banks' card pages run on BPC's payment engine (RBS), and both status APIs
number an order's state the same way (Ameria's document, table 2; BPC's
``orderStatus``)::

    0 registered, not paid     1 approved: the amount is held (two-stage payments)
    2 deposited (paid)         3 authorization cancelled (void / reversed)
    4 refunded                 5 authorization via the issuer's ACS (3-D Secure) under way
    6 declined

A decline carries the engine's action code: ArCa's ``actionCode`` as is
(``116``), Ameria's ``ResponseCode`` behind a ``"0"`` (``"0116"``, ``"0-2007"``:
Ameria's table 1). Those codes are the ISO 8583 (1993) action codes plus the
engine's own negative ones; :data:`ACTION_CODES` reads the few worth a catalogue
code, any other decline is ``gateway_rejected``.

Single- or two-stage is the merchant's set-up at the bank, not part of the wire:
the ``two_step`` credential says which. With ``"no"`` (the default), state 1 is
a payment; with ``"yes"``, it is a hold that only a deposit (``ConfirmPayment`` /
``deposit.do``, not implemented yet) would turn into money, so it stays pending.

What no document confirms (and is decided conservatively here): that state 1 on a
single-stage merchant is final (it is read as paid, as both banks' integrators
do); what each action code means beyond the engine's tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from shared.domain import errors
from shared.gateways.base import Outcome
from shared.gateways.description import CredentialField

TWO_STEP: Final = "two_step"
TWO_STEP_CHOICES: Final = ("yes", "no")


class OrderStatus(IntEnum):
    """An order's state in BPC's numbering (Ameria's ``OrderStatus``, ArCa's ``orderStatus``)."""

    STARTED = 0
    APPROVED = 1
    DEPOSITED = 2
    VOID = 3
    REFUNDED = 4
    AUTHENTICATING = 5
    DECLINED = 6


@dataclass(frozen=True)
class StateMeaning:
    """An order state in malipo's terms: the outcome, a catalogue failure code, and why."""

    outcome: Outcome
    failure_code: str | None
    # Short words for the verdict's result code ("deposited", "declined:116").
    label: str
    message: str = ""


def _failed(error: errors.ErrorCode, label: str, message: str) -> StateMeaning:
    return StateMeaning(Outcome.FAILED, error.code, label, message)


# Engine action codes worth their own catalogue code (others: gateway_rejected).
ACTION_CODES: Final[Mapping[int, tuple[Outcome, errors.ErrorCode, str]]] = {
    116: (Outcome.FAILED, errors.INSUFFICIENT_FUNDS, "not enough money on the card"),
    121: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the card's amount limit is exceeded"),
    123: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the card's transaction count limit is exceeded"),
    209: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the card's limitations are exceeded"),
    903: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the amount exceeds the issuer's limit"),
    -20010: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the issuer's limits block the amount"),
    -2002: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the merchant's limits block the amount"),
    # The customer did not enter the card in time (the page's session is 20 minutes).
    -2007: (Outcome.EXPIRED, errors.TRANSACTION_EXPIRED, "the payment page timed out"),
    1001: (Outcome.EXPIRED, errors.TRANSACTION_EXPIRED, "the card data was not entered in time"),
}


def action_code(value: object) -> int | None:
    """An engine action code as an integer (``116``, ``"116"``, ``"-2007"``); None if not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isdigit() and len(digits) <= 9:
            return int(text)
    return None


def decline_meaning(code: int | None) -> StateMeaning:
    """A declined order (state 6), by its action code when one is known."""
    listed = ACTION_CODES.get(code) if code is not None else None
    label = "declined" if code is None else f"declined:{code}"
    if listed is None:
        detail = "the bank declined the card" + ("" if code is None else f" (code {code})")
        return _failed(errors.GATEWAY_REJECTED, label, detail)
    outcome, error, message = listed
    return StateMeaning(outcome, error.code, label, message)


def state_meaning(status: int, *, two_step: bool, code: int | None = None) -> StateMeaning:
    """What an order state means; ``code`` is the decline's action code (state 6 only).

    A state this table does not know is pending: the payment window decides, and
    no unknown word ever moves money.
    """
    if status == OrderStatus.STARTED:
        return StateMeaning(Outcome.PENDING, None, "started", "registered, not paid yet")
    if status == OrderStatus.APPROVED:
        if two_step:
            return StateMeaning(
                Outcome.PENDING,
                None,
                "approved",
                "the amount is held, not deposited (deposit is not implemented yet)",
            )
        return StateMeaning(Outcome.SUCCEEDED, None, "approved", "approved (single-stage)")
    if status == OrderStatus.DEPOSITED:
        return StateMeaning(Outcome.SUCCEEDED, None, "deposited", "paid")
    if status == OrderStatus.VOID:
        return StateMeaning(
            Outcome.CANCELLED,
            errors.GATEWAY_REJECTED.code,
            "void",
            "the authorization was cancelled at the bank",
        )
    if status == OrderStatus.REFUNDED:
        # Paid first: the refund happened at the bank, outside malipo (refunds are out of scope).
        return StateMeaning(
            Outcome.SUCCEEDED, None, "refunded", "paid, then refunded at the bank (not by malipo)"
        )
    if status == OrderStatus.AUTHENTICATING:
        return StateMeaning(Outcome.PENDING, None, "authenticating", "3-D Secure under way")
    if status == OrderStatus.DECLINED:
        return decline_meaning(code)
    return StateMeaning(Outcome.PENDING, None, f"status:{status}", f"unknown order status {status}")


def order_status(value: object) -> int | None:
    """An order state as an integer (it arrives as a number or a digit string); None if not one."""
    code = action_code(value)
    return code if code is not None and 0 <= code < 100 else None


# -- the credential -----------------------------------------------------------------------------


def two_step_field(bank: str) -> CredentialField:
    """The optional ``two_step`` credential both banks' descriptions list."""
    return CredentialField(
        TWO_STEP,
        f"'yes' when {bank} set the merchant up for two-stage payments (hold, then deposit; "
        "deposit is not implemented, so a held payment stays pending)",
        required=False,
        choices=TWO_STEP_CHOICES,
        default="no",
    )


def two_step_of(stored: Mapping[str, Any]) -> bool:
    """The stored ``two_step`` as a flag; absent or empty is "no", anything else a ValueError."""
    value = stored.get(TWO_STEP)
    text = "no" if value in (None, "") else str(value).strip().lower()
    if text not in TWO_STEP_CHOICES:
        raise ValueError(f"two_step must be one of {TWO_STEP_CHOICES}")
    return text == "yes"

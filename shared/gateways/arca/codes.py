"""ArCa's (BPC's) ``errorCode`` values in malipo's terms.

``errorCode`` is about the *request*, never the payment: ``0`` (or absent)
means the call was processed; the payment's word is ``orderStatus`` and
``actionCode`` (``shared.gateways.bpc``). It arrives as a number or a string.

register.do: 1 order number already registered, 3 unknown currency, 4 a required
parameter missing, 5 a wrong parameter value *or* "Access denied" (a wrong
login shares the code: the message tells them apart), 7 system error.
getOrderStatusExtended.do: 5 access denied, 6 unknown order, 7 system error.
refund.do: 5 access denied (or a wrong value), 6 unknown order, 7 the order cannot be
refunded (its state, or an amount above what is left).
"""

from __future__ import annotations

from typing import Final

from shared.domain import errors
from shared.domain.errors import ErrorCode
from shared.gateways.bpc import action_code

NO_ERROR: Final = 0
ACCESS_DENIED: Final = 5
UNKNOWN_ORDER: Final = 6

REGISTER_REFUSALS: Final[dict[int, ErrorCode]] = {
    1: errors.GATEWAY_REJECTED,  # the orderNumber is registered already
    3: errors.INVALID_CURRENCY,
    4: errors.GATEWAY_REJECTED,  # a required parameter is missing
    5: errors.GATEWAY_REJECTED,  # a wrong parameter value (see LOGIN_WORDS)
    7: errors.GATEWAY_ERROR,  # system error
}
# Words of errorCode 5's messages that mean the API login was refused.
LOGIN_WORDS: Final = ("access denied", "password", "login", "user", "auth")


# refund.do's errorCode 7 is the engine's "system error" *and* its refusal of a wrong
# order state or amount (BPC's documents use it for both): a refusal here, because the
# engine answers it before it moves money (unverified); no code at all is unknown.
SYSTEM_ERROR: Final = 7


def refund_refusal(code: int | None, message: str) -> ErrorCode:
    """The catalogue code of a refund.do refusal (a non-zero errorCode)."""
    if code == ACCESS_DENIED and any(word in message.lower() for word in LOGIN_WORDS):
        return errors.GATEWAY_CONFIGURATION
    return errors.TRANSFER_REFUSED


def error_code(value: object) -> int | None:
    """``errorCode`` as an integer: 0 when absent or empty, None when unreadable."""
    if value is None or value == "":
        return NO_ERROR
    return action_code(value)


def register_refusal(code: int | None, message: str) -> ErrorCode:
    """The catalogue code of a register.do refusal (a non-zero errorCode)."""
    if code == ACCESS_DENIED and any(word in message.lower() for word in LOGIN_WORDS):
        return errors.GATEWAY_CONFIGURATION
    return REGISTER_REFUSALS.get(code, errors.GATEWAY_REJECTED) if code else errors.GATEWAY_ERROR

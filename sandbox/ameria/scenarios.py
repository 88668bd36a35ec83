"""Scenarios of the Ameria simulator: what happens to orders of a given amount.

``POST /_sim/scenarios`` with ``{"match": {"amount": <drams, as InitPayment's
Amount>}, ...}`` and any of:

- ``page_delay_s``: the payment page takes this long to show;
- ``status_lag_s``: after the customer decides, GetPaymentDetails keeps saying
  OrderStatus 0 for this long;
- ``init_error``: ``{"status": 500, "times": 1}``: InitPayment answers that HTTP
  status (and registers nothing) this many times;
- ``decline_code``: the ResponseCode of a declined order (default ``"0100"``,
  "Decline. Card declined"; e.g. ``"0116"`` not enough money);
- ``forged_return``: the browser's return claims ``resposneCode=00`` even for a
  decline (what anyone can type into a URL);
- ``two_step``: the vPOS is two-stage: a paid order stays approved (OrderStatus 1).
- ``refund_decline``: RefundPayment refuses the order's refunds with this
  ResponseCode (e.g. ``"0-2001"``) and gives nothing back;
- ``refund_delay_s``: RefundPayment answers this late *after* refunding (a lost answer).

The newest scenario matching an order's amount wins; an order keeps the scenario
it was registered under.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from sandbox.vpos import AmountScenarios, InitError, flag, init_error, seconds

DEFAULT_DECLINE_CODE: Final = "0100"
_KEYS: Final = frozenset(
    {
        "match",
        "page_delay_s",
        "status_lag_s",
        "init_error",
        "decline_code",
        "forged_return",
        "two_step",
        "refund_decline",
        "refund_delay_s",
    }
)


class ScenarioError(ValueError):
    """A scenario document the simulator cannot use."""


@dataclass
class Scenario:
    id: str
    match_amount: Decimal | None = None
    page_delay_s: float = 0.0
    status_lag_s: float = 0.0
    init_error: InitError | None = None
    decline_code: str = DEFAULT_DECLINE_CODE
    forged_return: bool = False
    two_step: bool = False
    refund_decline: str | None = None
    refund_delay_s: float = 0.0

    def to_json(self) -> dict[str, object]:
        error = self.init_error
        return {
            "id": self.id,
            "match": {"amount": _number(self.match_amount)} if self.match_amount else {},
            "page_delay_s": self.page_delay_s,
            "status_lag_s": self.status_lag_s,
            "init_error": {"status": error.status, "times": error.remaining} if error else None,
            "decline_code": self.decline_code,
            "forged_return": self.forged_return,
            "two_step": self.two_step,
            "refund_decline": self.refund_decline,
            "refund_delay_s": self.refund_delay_s,
        }


DEFAULT: Final = Scenario(id="default")


class ScenarioBook(AmountScenarios[Scenario]):
    """Thread-safe list of scenarios; counts injected errors down atomically."""

    def __init__(self) -> None:
        super().__init__(parse_scenario, DEFAULT)


def parse_scenario(document: object, scenario_id: str) -> Scenario:
    if not isinstance(document, dict):
        raise ScenarioError("a scenario must be a JSON object")
    unknown = set(document) - _KEYS
    if unknown:
        raise ScenarioError(f"unknown scenario keys: {sorted(unknown)}")
    decline_code = document.get("decline_code", DEFAULT_DECLINE_CODE)
    if not isinstance(decline_code, str) or not decline_code.strip() or len(decline_code) > 10:
        raise ScenarioError('decline_code must be a ResponseCode such as "0116"')
    return Scenario(
        id=scenario_id,
        match_amount=_parse_match(document.get("match")),
        page_delay_s=seconds(document, "page_delay_s", ScenarioError),
        status_lag_s=seconds(document, "status_lag_s", ScenarioError),
        init_error=init_error(document.get("init_error"), ScenarioError),
        decline_code=decline_code.strip(),
        forged_return=flag(document, "forged_return", ScenarioError),
        two_step=flag(document, "two_step", ScenarioError),
        refund_decline=_refund_decline(document.get("refund_decline")),
        refund_delay_s=seconds(document, "refund_delay_s", ScenarioError),
    )


def _refund_decline(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 10 or value == "00":
        raise ScenarioError('refund_decline must be a ResponseCode other than "00"')
    return value.strip()


def _parse_match(match: object) -> Decimal:
    usage = 'match must be {"amount": <drams>}'
    if not isinstance(match, dict) or set(match) != {"amount"}:
        raise ScenarioError(usage)
    amount = amount_of(match["amount"])
    if amount is None or amount <= 0:
        raise ScenarioError("match.amount must be a positive number of drams")
    return amount


def amount_of(value: object) -> Decimal | None:
    """A wire amount as a Decimal (a number, or its text); None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        return None
    return number.normalize() if number.is_finite() else None


def _number(value: Decimal | None) -> object:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)

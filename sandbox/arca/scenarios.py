"""Scenarios of the ArCa simulator: what happens to orders of a given amount.

``POST /_sim/scenarios`` with ``{"match": {"amount": <luma, as register.do's
amount: 5000 drams is 500000>}, ...}`` and any of:

- ``page_delay_s``: the payment page takes this long to show;
- ``status_lag_s``: after the customer decides, getOrderStatusExtended.do keeps
  saying orderStatus 0 for this long;
- ``init_error``: ``{"status": 500, "times": 1}``: register.do answers that HTTP
  status (and registers nothing) this many times;
- ``decline_code``: the ``actionCode`` of a declined order (default ``100``, "do
  not honour"; e.g. ``116`` not enough money, ``-2007`` the page timed out);
- ``forged_return``: a declined customer is sent to ``returnUrl`` (the success
  URL) instead of ``failUrl``, as anyone could type it;
- ``two_step``: the merchant is two-stage: a paid order stays approved (orderStatus 1).
- ``refund_decline``: refund.do refuses the order's refunds with this errorCode
  (e.g. ``7``) and gives nothing back;
- ``refund_delay_s``: refund.do answers this late *after* refunding (a lost answer).

The newest scenario matching an order's amount wins; an order keeps the scenario
it was registered under.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sandbox.vpos import AmountScenarios, InitError, flag, init_error, seconds

DEFAULT_DECLINE_CODE: Final = 100
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
    match_amount: int | None = None
    page_delay_s: float = 0.0
    status_lag_s: float = 0.0
    init_error: InitError | None = None
    decline_code: int = DEFAULT_DECLINE_CODE
    forged_return: bool = False
    two_step: bool = False
    refund_decline: int | None = None
    refund_delay_s: float = 0.0

    def to_json(self) -> dict[str, object]:
        error = self.init_error
        return {
            "id": self.id,
            "match": {"amount": self.match_amount} if self.match_amount else {},
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
    if isinstance(decline_code, bool) or not isinstance(decline_code, int) or decline_code == 0:
        raise ScenarioError("decline_code must be a non-zero actionCode such as 116")
    return Scenario(
        id=scenario_id,
        match_amount=_parse_match(document.get("match")),
        page_delay_s=seconds(document, "page_delay_s", ScenarioError),
        status_lag_s=seconds(document, "status_lag_s", ScenarioError),
        init_error=init_error(document.get("init_error"), ScenarioError),
        decline_code=decline_code,
        forged_return=flag(document, "forged_return", ScenarioError),
        two_step=flag(document, "two_step", ScenarioError),
        refund_decline=_refund_decline(document.get("refund_decline")),
        refund_delay_s=seconds(document, "refund_delay_s", ScenarioError),
    )


def _refund_decline(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value == 0:
        raise ScenarioError("refund_decline must be a non-zero errorCode such as 7")
    return value


def _parse_match(match: object) -> int:
    if not isinstance(match, dict) or set(match) != {"amount"}:
        raise ScenarioError('match must be {"amount": <luma>}')
    amount = match["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise ScenarioError("match.amount must be a whole number of luma >= 1")
    return amount

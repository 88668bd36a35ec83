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

The newest scenario matching an order's amount wins; an order keeps the scenario
it was registered under.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Final

from sandbox.kit import ScenarioList

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
    }
)


class ScenarioError(ValueError):
    """A scenario document the simulator cannot use."""


@dataclass
class InitError:
    status: int
    remaining: int


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
        }


DEFAULT: Final = Scenario(id="default")


@dataclass(frozen=True)
class Decision:
    scenario: Scenario  # a copy: later changes to the book do not reach registered orders
    init_error: int | None  # an HTTP status to answer InitPayment with instead


class ScenarioBook(ScenarioList[Scenario]):
    """Thread-safe list of scenarios; counts injected errors down atomically."""

    def __init__(self) -> None:
        super().__init__(parse_scenario)

    def decide(self, amount: Decimal | None) -> Decision:
        """The scenario for an InitPayment of ``amount``; consumes one injected error."""
        with self._lock:
            scenario = next(
                (
                    s
                    for s in reversed(self._scenarios)
                    if amount is not None and s.match_amount == amount
                ),
                DEFAULT,
            )
            error = scenario.init_error
            if error is not None and error.remaining > 0:
                error.remaining -= 1
                return Decision(replace(scenario), error.status)
            return Decision(replace(scenario), None)


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
        page_delay_s=_seconds(document, "page_delay_s"),
        status_lag_s=_seconds(document, "status_lag_s"),
        init_error=_parse_init_error(document.get("init_error")),
        decline_code=decline_code.strip(),
        forged_return=_flag(document, "forged_return"),
        two_step=_flag(document, "two_step"),
    )


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


def _seconds(document: dict[str, object], name: str) -> float:
    value = document.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{name} must be a number of seconds")
    if not 0 <= value <= 600:
        raise ScenarioError(f"{name} must be between 0 and 600")
    return float(value)


def _flag(document: dict[str, object], name: str) -> bool:
    value = document.get(name, False)
    if not isinstance(value, bool):
        raise ScenarioError(f"{name} must be true or false")
    return value


def _parse_init_error(value: object) -> InitError | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"status", "times"}:
        raise ScenarioError('init_error must be {"status": 500, "times": 1}')
    status, times = value.get("status", 500), value.get("times", 1)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ScenarioError("init_error.status must be an HTTP error status (400-599)")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ScenarioError("init_error.times must be an integer >= 1")
    return InitError(status, times)

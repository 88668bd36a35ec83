"""How Telcell behaves for an invoice: caller-registered scenarios, else as documented.

A scenario is ``{"match": {"amount": 5000} | {"issuer_id": "<reference>"}, ...}``
(``issuer_id`` decoded, or base64 as the link sent it) with:

* ``"result"``: ``"once"`` (default), ``"twice"`` (the same result, same
  ``payment_id``, sent again) or ``"none"`` (no result at all);
* ``"wrong_checksum": true``: the result's ``checksum`` is not the right one;
* ``"page_delay_s"``: how long the page takes to show;
* ``"result_delay_s"``: seconds from the decision to the result (default: the
  sandbox's callback delay).

The newest scenario naming the invoice's issuer_id wins, else the newest matching
its price (whole drams, as the link sent it), else the default behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from sandbox.hosted import HostedOrder
from sandbox.kit import ReferenceFirst, finite_decimal, optional_seconds, reference_or_amount

ResultMode = Literal["once", "twice", "none"]
RESULT_MODES: Final[tuple[ResultMode, ...]] = ("once", "twice", "none")
_KEYS: Final = frozenset({"match", "result", "wrong_checksum", "page_delay_s", "result_delay_s"})


class ScenarioError(ValueError):
    """A scenario document the simulator cannot use; the message says why."""


@dataclass(frozen=True)
class Scenario:
    id: str
    match_amount: Decimal | None = None
    match_issuer_id: str | None = None
    result: ResultMode = "once"
    wrong_checksum: bool = False
    page_delay_s: float = 0.0
    result_delay_s: float | None = None

    def matches(self, order: HostedOrder) -> bool:
        if self.match_issuer_id is not None:
            return self.match_issuer_id in (order.extra["merchant_ref"], order.extra["issuer_id"])
        return self.match_amount is not None and finite_decimal(order.amount) == self.match_amount

    def to_json(self) -> dict[str, object]:
        match: dict[str, object] = (
            {"issuer_id": self.match_issuer_id}
            if self.match_issuer_id is not None
            else {"amount": str(self.match_amount)}
        )
        return {
            "id": self.id,
            "match": match,
            "result": self.result,
            "wrong_checksum": self.wrong_checksum,
            "page_delay_s": self.page_delay_s,
            "result_delay_s": self.result_delay_s,
        }


DEFAULT: Final = Scenario("default")


class ScenarioBook(ReferenceFirst[Scenario]):
    """Thread-safe registry of scenarios: by issuer_id first, then by price."""

    def __init__(self) -> None:
        super().__init__(parse_scenario, DEFAULT, lambda s: s.match_issuer_id is not None)


def parse_scenario(document: object, scenario_id: str) -> Scenario:
    """A scenario from its JSON document; ``ScenarioError`` says what is wrong."""
    if not isinstance(document, dict):
        raise ScenarioError("a scenario must be a JSON object")
    unknown = set(document) - _KEYS
    if unknown:
        raise ScenarioError(f"unknown scenario keys: {sorted(unknown)}")
    amount, issuer_id = reference_or_amount(
        document.get("match"), "issuer_id", "reference", ScenarioError
    )
    result = document.get("result", "once")
    if result not in RESULT_MODES:
        raise ScenarioError(f"result must be one of {list(RESULT_MODES)}")
    wrong_checksum = document.get("wrong_checksum", False)
    if not isinstance(wrong_checksum, bool):
        raise ScenarioError("wrong_checksum must be true or false")
    return Scenario(
        id=scenario_id,
        match_amount=amount,
        match_issuer_id=issuer_id,
        result=result,
        wrong_checksum=wrong_checksum,
        page_delay_s=_seconds(document.get("page_delay_s"), "page_delay_s") or 0.0,
        result_delay_s=_seconds(document.get("result_delay_s"), "result_delay_s"),
    )


def _seconds(value: object, name: str) -> float | None:
    return optional_seconds(value, name, ScenarioError)

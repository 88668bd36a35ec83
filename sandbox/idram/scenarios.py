"""How Idram behaves for an order: caller-registered scenarios, else as documented.

A scenario is ``{"match": {"amount": 5000} | {"bill_no": "<EDP_BILL_NO>"}, ...}`` with:

* ``"result"``: ``"once"`` (default), ``"twice"`` (the confirmation sent again with
  the same ``EDP_TRANS_ID``) or ``"none"`` (no confirmation after a good precheck);
* ``"wrong_checksum": true``: the confirmation's ``EDP_CHECKSUM`` is not the right one;
* ``"precheck_amount"``: ``true`` (one dram more than the order) or an amount: the
  precheck asks about that ``EDP_AMOUNT`` instead of the order's;
* ``"page_delay_s"``: how long the page takes to show;
* ``"result_delay_s"``: seconds from the payment to the confirmation (default: the
  sandbox's callback delay).

The newest scenario naming the order's bill wins, else the newest matching its amount
(whole drams, as the form sent it), else the default behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from sandbox.hosted import HostedOrder
from sandbox.kit import (
    ReferenceFirst,
    finite_decimal,
    optional_seconds,
    positive_amount,
    reference_or_amount,
)

ResultMode = Literal["once", "twice", "none"]
RESULT_MODES: Final[tuple[ResultMode, ...]] = ("once", "twice", "none")
_KEYS: Final = frozenset(
    {"match", "result", "wrong_checksum", "precheck_amount", "page_delay_s", "result_delay_s"}
)


class ScenarioError(ValueError):
    """A scenario document the simulator cannot use; the message says why."""


@dataclass(frozen=True)
class Scenario:
    id: str
    match_amount: Decimal | None = None
    match_bill_no: str | None = None
    result: ResultMode = "once"
    wrong_checksum: bool = False
    # True: one dram more than the order; a text: that amount.
    precheck_amount: bool | str = False
    page_delay_s: float = 0.0
    result_delay_s: float | None = None

    def matches(self, order: HostedOrder) -> bool:
        if self.match_bill_no is not None:
            return bool(order.extra.get("merchant_ref") == self.match_bill_no)
        return self.match_amount is not None and finite_decimal(order.amount) == self.match_amount

    def to_json(self) -> dict[str, object]:
        match: dict[str, object] = (
            {"bill_no": self.match_bill_no}
            if self.match_bill_no is not None
            else {"amount": str(self.match_amount)}
        )
        return {
            "id": self.id,
            "match": match,
            "result": self.result,
            "wrong_checksum": self.wrong_checksum,
            "precheck_amount": self.precheck_amount,
            "page_delay_s": self.page_delay_s,
            "result_delay_s": self.result_delay_s,
        }

    def precheck_amount_for(self, order: HostedOrder) -> str:
        """The ``EDP_AMOUNT`` the precheck sends."""
        amount = finite_decimal(order.amount)
        if self.precheck_amount is True and amount is not None:
            return str(amount + 1)
        if isinstance(self.precheck_amount, str):
            return self.precheck_amount
        return order.amount


DEFAULT: Final = Scenario("default")


class ScenarioBook(ReferenceFirst[Scenario]):
    """Thread-safe registry of scenarios: by bill number first, then by amount."""

    def __init__(self) -> None:
        super().__init__(parse_scenario, DEFAULT, lambda s: s.match_bill_no is not None)


def parse_scenario(document: object, scenario_id: str) -> Scenario:
    """A scenario from its JSON document; ``ScenarioError`` says what is wrong."""
    if not isinstance(document, dict):
        raise ScenarioError("a scenario must be a JSON object")
    unknown = set(document) - _KEYS
    if unknown:
        raise ScenarioError(f"unknown scenario keys: {sorted(unknown)}")
    amount, bill_no = reference_or_amount(
        document.get("match"), "bill_no", "EDP_BILL_NO", ScenarioError
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
        match_bill_no=bill_no,
        result=result,
        wrong_checksum=wrong_checksum,
        precheck_amount=_parse_precheck_amount(document.get("precheck_amount", False)),
        page_delay_s=_seconds(document.get("page_delay_s"), "page_delay_s") or 0.0,
        result_delay_s=_seconds(document.get("result_delay_s"), "result_delay_s"),
    )


def _parse_precheck_amount(value: object) -> bool | str:
    if isinstance(value, bool):
        return value
    amount = positive_amount(value)
    if amount is None:
        raise ScenarioError("precheck_amount must be true or an amount in drams > 0")
    return str(value).strip()


def _seconds(value: object, name: str) -> float | None:
    return optional_seconds(value, name, ScenarioError)

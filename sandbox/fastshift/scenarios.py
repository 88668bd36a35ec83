"""What happens to an order, and the caller-registered scenarios that decide it.

A scenario is matched when an order is registered, and the order keeps what it
got (later scenarios never change it). Resolution (``ScenarioBook.decide``):

1. the newest scenario whose ``match.order_number`` is the order's,
2. else the newest whose ``match.amount`` is the amount (whole drams),
3. else the newest without a ``match`` (any order),
4. else the defaults: one JSON webhook after ``SANDBOX_CALLBACK_DELAY_S``, no lag,
   no expiry (an undecided order stays pending).

Document (``POST /_sim/scenarios``)::

    {"match": {"amount": 5000} | {"order_number": "<guid>"},   # optional
     "result": "once" | "twice" | "none",        # webhooks on a decision ("webhook" too)
     "webhook_delay_s": 0.2, "webhook_format": "json" | "form",
     "page_delay_s": 0, "status_lag_s": 0,       # status says pending N s after the decision
     "expire_after_s": 60,                        # the order expires if undecided
     "register_error": {"status": 500, "times": 1},
     "register_delay_s": 0}                       # answer register late (the order IS kept)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Final, Literal

from sandbox.kit import ScenarioList

ResultMode = Literal["once", "twice", "none"]
WebhookFormat = Literal["json", "form"]
RESULT_MODES: Final[tuple[ResultMode, ...]] = ("once", "twice", "none")
WEBHOOK_FORMATS: Final[tuple[WebhookFormat, ...]] = ("json", "form")
_SECONDS: Final = (
    "webhook_delay_s",
    "page_delay_s",
    "status_lag_s",
    "expire_after_s",
    "register_delay_s",
)
_KEYS: Final = frozenset(
    {"match", "result", "webhook", "webhook_format", "register_error", *_SECONDS}
)
# Nobody waits longer than this for a page or an answer in a test.
MAX_DELAY_S: Final = 120.0


class ScenarioError(ValueError):
    """A scenario document the simulator cannot use; the message says why."""


@dataclass(frozen=True)
class OrderPlan:
    """What an order gets: its webhooks, timings and expiry."""

    result: ResultMode
    webhook_delay_s: float
    webhook_format: WebhookFormat
    page_delay_s: float
    status_lag_s: float
    expire_after_s: float | None
    register_delay_s: float
    source: str

    def to_json(self) -> dict[str, object]:
        return {
            "result": self.result,
            "webhook_delay_s": self.webhook_delay_s,
            "webhook_format": self.webhook_format,
            "page_delay_s": self.page_delay_s,
            "status_lag_s": self.status_lag_s,
            "expire_after_s": self.expire_after_s,
            "register_delay_s": self.register_delay_s,
            "source": self.source,
        }


@dataclass
class RegisterError:
    """An HTTP error for the next ``remaining`` matching registers (mutated under the lock)."""

    status: int
    remaining: int


@dataclass
class Scenario:
    id: str
    match_amount: int | None
    match_order_number: str | None
    result: ResultMode | None
    webhook_format: WebhookFormat | None
    seconds: dict[str, float]
    register_error: RegisterError | None

    def to_json(self) -> dict[str, object]:
        match: dict[str, object] = {}
        if self.match_amount is not None:
            match["amount"] = self.match_amount
        if self.match_order_number is not None:
            match["order_number"] = self.match_order_number
        error = self.register_error
        return {
            "id": self.id,
            "match": match,
            "result": self.result,
            "webhook_format": self.webhook_format,
            **{name: self.seconds.get(name) for name in _SECONDS},
            "register_error": (
                {"status": error.status, "times": error.remaining} if error else None
            ),
        }

    def matches_any(self) -> bool:
        return self.match_amount is None and self.match_order_number is None


@dataclass(frozen=True)
class Decision:
    plan: OrderPlan
    register_error: int | None  # an HTTP status to answer the register with instead


class ScenarioBook(ScenarioList[Scenario]):
    """Thread-safe registry of scenarios; consumes injected register errors atomically."""

    def __init__(self, default_webhook_delay_s: float) -> None:
        super().__init__(parse_scenario)
        self._default = OrderPlan(
            result="once",
            webhook_delay_s=default_webhook_delay_s,
            webhook_format="json",
            page_delay_s=0.0,
            status_lag_s=0.0,
            expire_after_s=None,
            register_delay_s=0.0,
            source="default",
        )

    def decide(self, order_number: str, amount: int) -> Decision:
        """The plan for a new order; a register error is counted when it is given."""
        with self._lock:
            scenario = self._winner(order_number.lower(), amount)
            if scenario is None:
                return Decision(self._default, None)
            error = None
            if scenario.register_error is not None and scenario.register_error.remaining > 0:
                scenario.register_error.remaining -= 1
                error = scenario.register_error.status
            seconds = scenario.seconds
            plan = replace(
                self._default,
                result=scenario.result or self._default.result,
                webhook_format=scenario.webhook_format or self._default.webhook_format,
                webhook_delay_s=seconds.get("webhook_delay_s", self._default.webhook_delay_s),
                page_delay_s=seconds.get("page_delay_s", 0.0),
                status_lag_s=seconds.get("status_lag_s", 0.0),
                expire_after_s=seconds.get("expire_after_s"),
                register_delay_s=seconds.get("register_delay_s", 0.0),
                source=f"scenario:{scenario.id}",
            )
            return Decision(plan, error)

    def _winner(self, order_number: str, amount: int) -> Scenario | None:
        newest_first = list(reversed(self._scenarios))
        for scenario in newest_first:
            if scenario.match_order_number == order_number:
                return scenario
        for scenario in newest_first:
            if scenario.match_amount == amount and scenario.match_order_number is None:
                return scenario
        return next((s for s in newest_first if s.matches_any()), None)


def parse_scenario(document: object, scenario_id: str) -> Scenario:
    """A scenario from its JSON document; ``ScenarioError`` says what is wrong."""
    if not isinstance(document, dict):
        raise ScenarioError("a scenario must be a JSON object")
    unknown = set(document) - _KEYS
    if unknown:
        raise ScenarioError(f"unknown scenario keys: {sorted(unknown)}")
    if "result" in document and "webhook" in document:
        raise ScenarioError("give 'result' or its alias 'webhook', not both")
    amount, order_number = _parse_match(document.get("match"))
    result = document.get("result", document.get("webhook"))
    if result is not None and result not in RESULT_MODES:
        raise ScenarioError(f"result must be one of {list(RESULT_MODES)}")
    webhook_format = document.get("webhook_format")
    if webhook_format is not None and webhook_format not in WEBHOOK_FORMATS:
        raise ScenarioError(f"webhook_format must be one of {list(WEBHOOK_FORMATS)}")
    seconds = {
        name: _seconds(name, document[name]) for name in _SECONDS if document.get(name) is not None
    }
    return Scenario(
        id=scenario_id,
        match_amount=amount,
        match_order_number=order_number,
        result=result,
        webhook_format=webhook_format,
        seconds=seconds,
        register_error=_parse_register_error(document.get("register_error")),
    )


def _parse_match(match: object) -> tuple[int | None, str | None]:
    usage = 'match must be {"amount": 5000} or {"order_number": "<guid>"}'
    if match is None or match == {}:
        return None, None
    if not isinstance(match, dict) or len(match) != 1:
        raise ScenarioError(usage)
    if "amount" in match:
        amount = match["amount"]
        if isinstance(amount, float) and amount.is_integer():
            amount = int(amount)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ScenarioError("match.amount must be a whole number of drams >= 1")
        return amount, None
    if "order_number" in match:
        order_number = match["order_number"]
        if not isinstance(order_number, str) or not order_number.strip():
            raise ScenarioError("match.order_number must be text")
        return None, order_number.strip().lower()
    raise ScenarioError(usage)


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{name} must be a number of seconds")
    if not 0 <= value <= MAX_DELAY_S:
        raise ScenarioError(f"{name} must be between 0 and {MAX_DELAY_S:g}")
    return float(value)


def _parse_register_error(value: object) -> RegisterError | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"status", "times"}:
        raise ScenarioError('register_error must be {"status": 500, "times": 1}')
    status, times = value.get("status", 500), value.get("times", 1)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ScenarioError("register_error.status must be an HTTP error status (400-599)")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ScenarioError("register_error.times must be an integer >= 1")
    return RegisterError(status, times)

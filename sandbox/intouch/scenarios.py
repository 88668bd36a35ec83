"""Which outcome a payment gets, and the caller-registered scenarios that decide it.

Resolution order (``ScenarioBook.decide``), for a GU push (``recipientNumber``)
and a TouchPay checkout (``clientPhone``) alike:

1. the newest registered scenario whose ``match.phone`` is the payer's number,
2. else the newest one whose ``match.amount`` is the amount,
3. else a built-in phone rule (``BUILTIN_PHONE_RULES``),
4. else success with one callback after the configured delay.

Phones are compared in international form: a national number is read in the
agency's country (``221`` for the built-in agency), so ``770000001``,
``+221770000001`` and ``00221770000001`` are the same number.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

Status = Literal["success", "failed", "pending"]
CallbackMode = Literal["once", "twice", "none"]
STATUSES: Final[tuple[Status, ...]] = ("success", "failed", "pending")
CALLBACK_MODES: Final[tuple[CallbackMode, ...]] = ("once", "twice", "none")

BUILTIN_PHONE_RULES: Final[Mapping[str, tuple[Status, CallbackMode]]] = {
    "221770000001": ("failed", "once"),
    "221770000002": ("success", "none"),
    "221770000003": ("success", "twice"),
    "221770000004": ("pending", "none"),
    "221770000005": ("failed", "none"),
}
_KEYS: Final = frozenset({"match", "outcome", "callback", "callback_delay_s", "push_error"})


class ScenarioError(ValueError):
    """A scenario document the simulator cannot use; the message says why."""


def international(phone: str, country_code: str) -> str:
    """Digits with the country code: ``+221 77 000 00 01``, ``770000001`` → ``221770000001``."""
    digits = "".join(c for c in phone if c.isdigit())
    if phone.strip().startswith("00"):
        digits = digits[2:]
    if digits.startswith(country_code) and len(digits) > len(country_code) + 7:
        return digits
    return country_code + digits if digits else ""


@dataclass(frozen=True)
class Outcome:
    status: Status
    callback: CallbackMode
    callback_delay_s: float
    source: str


@dataclass
class PushError:
    """An HTTP error to give the next ``remaining`` matching pushes (mutated under the lock)."""

    status: int
    remaining: int


@dataclass
class Scenario:
    id: str
    match_phone: str | None
    match_amount: int | None
    status: Status
    callback: CallbackMode
    callback_delay_s: float | None
    push_error: PushError | None

    def to_json(self) -> dict[str, object]:
        match: dict[str, object] = (
            {"phone": self.match_phone}
            if self.match_phone is not None
            else {"amount": self.match_amount}
        )
        error = self.push_error
        return {
            "id": self.id,
            "match": match,
            "outcome": self.status,
            "callback": self.callback,
            "callback_delay_s": self.callback_delay_s,
            "push_error": {"status": error.status, "times": error.remaining} if error else None,
        }


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    push_error: int | None  # an HTTP status to answer the push with instead


class ScenarioBook:
    """Thread-safe registry of scenarios; consumes injected push errors atomically."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scenarios: list[Scenario] = []
        self._ids = itertools.count(1)

    def add(self, document: object) -> Scenario:
        with self._lock:
            scenario = parse_scenario(document, f"sc_{next(self._ids)}")
            self._scenarios.append(scenario)
            return scenario

    def snapshot(self) -> list[dict[str, object]]:
        with self._lock:
            return [s.to_json() for s in self._scenarios]

    def clear(self) -> None:
        with self._lock:
            self._scenarios.clear()

    def decide(
        self, phone: str, amount: int, country_code: str, default_delay_s: float, *, push: bool
    ) -> Decision:
        """The outcome for a payment; a push error is only given (and counted) to pushes."""
        number = international(phone, country_code) if phone else ""
        with self._lock:
            scenario = self._winner(number, amount, country_code)
            if scenario is None:
                status, callback = BUILTIN_PHONE_RULES.get(number, ("success", "once"))
                source = f"builtin:{number}" if number in BUILTIN_PHONE_RULES else "default"
                return Decision(Outcome(status, callback, default_delay_s, source), None)
            error = None
            if push and scenario.push_error is not None and scenario.push_error.remaining > 0:
                scenario.push_error.remaining -= 1
                error = scenario.push_error.status
            delay = (
                default_delay_s if scenario.callback_delay_s is None else scenario.callback_delay_s
            )
            outcome = Outcome(scenario.status, scenario.callback, delay, f"scenario:{scenario.id}")
            return Decision(outcome, error)

    def _winner(self, number: str, amount: int, country_code: str) -> Scenario | None:
        newest_first = list(reversed(self._scenarios))
        for scenario in newest_first:
            if (
                number
                and scenario.match_phone is not None
                and international(scenario.match_phone, country_code) == number
            ):
                return scenario
        for scenario in newest_first:
            if scenario.match_amount == amount:
                return scenario
        return None


def parse_scenario(document: object, scenario_id: str) -> Scenario:
    """A scenario from its JSON document; ``ScenarioError`` says what is wrong."""
    if not isinstance(document, dict):
        raise ScenarioError("a scenario must be a JSON object")
    unknown = set(document) - _KEYS
    if unknown:
        raise ScenarioError(f"unknown scenario keys: {sorted(unknown)}")
    phone, amount = _parse_match(document.get("match"))
    status = document.get("outcome", "success")
    if status not in STATUSES:
        raise ScenarioError(f"outcome must be one of {list(STATUSES)}")
    callback = document.get("callback", "once")
    if callback not in CALLBACK_MODES:
        raise ScenarioError(f"callback must be one of {list(CALLBACK_MODES)}")
    return Scenario(
        id=scenario_id,
        match_phone=phone,
        match_amount=amount,
        status=status,
        callback=callback,
        callback_delay_s=_optional_seconds(document.get("callback_delay_s")),
        push_error=_parse_push_error(document.get("push_error")),
    )


def _parse_match(match: object) -> tuple[str | None, int | None]:
    usage = 'match must be {"phone": "221770000001"} or {"amount": 1500}'
    if not isinstance(match, dict) or len(match) != 1:
        raise ScenarioError(usage)
    if "phone" in match:
        phone = match["phone"]
        if isinstance(phone, int) and not isinstance(phone, bool):
            phone = str(phone)
        if not isinstance(phone, str) or not any(c.isdigit() for c in phone):
            raise ScenarioError("match.phone must be a phone number")
        return phone, None
    if "amount" in match:
        amount = match["amount"]
        if isinstance(amount, float) and amount.is_integer():
            amount = int(amount)
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
            raise ScenarioError("match.amount must be a whole number >= 1")
        return None, amount
    raise ScenarioError(usage)


def _optional_seconds(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError("callback_delay_s must be a number")
    if value < 0:
        raise ScenarioError("callback_delay_s must be >= 0")
    return float(value)


def _parse_push_error(value: object) -> PushError | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"status", "times"}:
        raise ScenarioError('push_error must be {"status": 500, "times": 1}')
    status, times = value.get("status", 500), value.get("times", 1)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ScenarioError("push_error.status must be an HTTP error status (400-599)")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ScenarioError("push_error.times must be an integer >= 1")
    return PushError(status, times)

"""Which outcome a push gets, and the caller-registered scenarios that decide it.

Resolution order for a push (``ScenarioBook.decide_push``):

1. the newest registered scenario whose ``match.phone`` equals the PhoneNumber,
2. else the newest one whose ``match.amount`` equals the Amount,
3. else a built-in phone rule (``BUILTIN_PHONE_RULES``),
4. else success (ResultCode 0) with one callback after the configured delay.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from sandbox.daraja.results import ResultCode, describe, normalize

CallbackMode = Literal["once", "twice", "none"]
CALLBACK_MODES: Final[tuple[CallbackMode, ...]] = ("once", "twice", "none")

# Phone number → (ResultCode, callback mode). 254708374149 is Safaricom's own
# sandbox test MSISDN, which never answers the prompt.
BUILTIN_PHONE_RULES: Final[Mapping[str, tuple[ResultCode, CallbackMode]]] = {
    "254708374149": (1037, "once"),
    "254700001032": (1032, "once"),
    "254700001037": (1037, "once"),
    "254700000001": (1, "once"),
    "254700002001": (2001, "once"),
    "254700001019": (1019, "once"),
    "254700000017": (17, "once"),
    "254700009999": (0, "none"),
    "254700009998": (0, "twice"),
    "254700009997": (1032, "none"),
}

_SCENARIO_KEYS: Final = frozenset(
    {
        "match",
        "result_code",
        "callback",
        "callback_delay_s",
        "push_error",
        "push_delay_s",
        "query_error",
        "amount_in_callback",
    }
)
_ERROR_KEYS: Final = frozenset({"status", "errorCode", "errorMessage", "times"})


class ScenarioError(ValueError):
    """A scenario document the simulator cannot use; the message says why."""


@dataclass(frozen=True)
class Outcome:
    """The decided result of one push and how its callback is delivered."""

    result_code: ResultCode
    result_desc: str
    callback: CallbackMode
    callback_delay_s: float
    amount_in_callback: float | None
    source: str

    @property
    def succeeded(self) -> bool:
        return self.result_code == 0


@dataclass(frozen=True)
class ErrorReply:
    """A Daraja error envelope to answer with instead of processing."""

    status: int
    error_code: str
    error_message: str


@dataclass
class InjectedError:
    """An error to give the next ``remaining`` matching requests (mutated under the book's lock)."""

    reply: ErrorReply
    remaining: int

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.reply.status,
            "errorCode": self.reply.error_code,
            "errorMessage": self.reply.error_message,
            "times": self.remaining,
        }


@dataclass
class Scenario:
    """One registered rule; exactly one of ``match_phone`` / ``match_amount`` is set."""

    id: str
    match_phone: str | None
    match_amount: int | None
    result_code: ResultCode
    callback: CallbackMode
    callback_delay_s: float | None
    push_error: InjectedError | None
    push_delay_s: float
    query_error: InjectedError | None
    amount_in_callback: float | None

    def to_json(self) -> dict[str, object]:
        match: dict[str, object] = (
            {"phone": self.match_phone}
            if self.match_phone is not None
            else {"amount": self.match_amount}
        )
        return {
            "id": self.id,
            "match": match,
            "result_code": self.result_code,
            "callback": self.callback,
            "callback_delay_s": self.callback_delay_s,
            "push_error": self.push_error.to_json() if self.push_error else None,
            "push_delay_s": self.push_delay_s,
            "query_error": self.query_error.to_json() if self.query_error else None,
            "amount_in_callback": self.amount_in_callback,
        }


@dataclass(frozen=True)
class PushDecision:
    """What to do with a valid push: answer ``error``, or create a transaction with ``outcome``."""

    outcome: Outcome
    error: ErrorReply | None
    push_delay_s: float


def builtin_outcome(phone: str, default_delay_s: float) -> Outcome:
    """Steps 3 and 4 of the resolution order: a built-in phone rule, else success."""
    code, callback = BUILTIN_PHONE_RULES.get(phone, (0, "once"))
    source = f"builtin:{phone}" if phone in BUILTIN_PHONE_RULES else "default"
    return Outcome(code, describe(code), callback, default_delay_s, None, source)


def scenario_outcome(scenario: Scenario, default_delay_s: float) -> Outcome:
    """The outcome a registered scenario prescribes."""
    delay = default_delay_s if scenario.callback_delay_s is None else scenario.callback_delay_s
    return Outcome(
        scenario.result_code,
        describe(scenario.result_code),
        scenario.callback,
        delay,
        scenario.amount_in_callback,
        f"scenario:{scenario.id}",
    )


class ScenarioBook:
    """Thread-safe registry of scenarios; consumes their injected errors atomically."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scenarios: list[Scenario] = []
        self._ids = itertools.count(1)

    def add(self, document: object) -> Scenario:
        """Parse and register a scenario document; raise ``ScenarioError`` if unusable."""
        with self._lock:
            scenario = parse_scenario(document, f"sc_{next(self._ids)}")
            self._scenarios.append(scenario)
            return scenario

    def snapshot(self) -> list[dict[str, object]]:
        """Every scenario as JSON, oldest first, with the remaining error counts."""
        with self._lock:
            return [scenario.to_json() for scenario in self._scenarios]

    def clear(self) -> None:
        with self._lock:
            self._scenarios.clear()

    def decide_push(self, phone: str, amount: int, default_delay_s: float) -> PushDecision:
        """Resolve a valid push; a returned error has already been counted."""
        with self._lock:
            scenario = self._winner(phone, amount)
            if scenario is None:
                return PushDecision(builtin_outcome(phone, default_delay_s), None, 0.0)
            error = _consume(scenario.push_error)
            outcome = scenario_outcome(scenario, default_delay_s)
            return PushDecision(outcome, error, scenario.push_delay_s)

    def query_error(self, phone: str, amount: int) -> ErrorReply | None:
        """The injected error for a query about a transaction with this phone/amount, if any.

        Scenarios are matched when the query arrives, so a ``query_error`` can be
        registered after the push it concerns.
        """
        with self._lock:
            scenario = self._winner(phone, amount)
            return None if scenario is None else _consume(scenario.query_error)

    def _winner(self, phone: str, amount: int) -> Scenario | None:
        newest_first = list(reversed(self._scenarios))
        for scenario in newest_first:
            if scenario.match_phone == phone:
                return scenario
        for scenario in newest_first:
            if scenario.match_amount == amount:
                return scenario
        return None


def _consume(injected: InjectedError | None) -> ErrorReply | None:
    if injected is None or injected.remaining <= 0:
        return None
    injected.remaining -= 1
    return injected.reply


def parse_scenario(document: object, scenario_id: str) -> Scenario:
    """Turn a scenario JSON document into a ``Scenario``; raise ``ScenarioError`` if invalid."""
    if not isinstance(document, dict):
        raise ScenarioError("a scenario must be a JSON object")
    unknown = set(document) - _SCENARIO_KEYS
    if unknown:
        raise ScenarioError(f"unknown scenario keys: {sorted(unknown)}")
    phone, amount = _parse_match(document.get("match"))
    return Scenario(
        id=scenario_id,
        match_phone=phone,
        match_amount=amount,
        result_code=_parse_result_code(document.get("result_code", 0)),
        callback=_parse_callback(document.get("callback", "once")),
        callback_delay_s=_optional_seconds(document, "callback_delay_s"),
        push_error=_parse_error(document.get("push_error"), "push_error"),
        push_delay_s=_optional_seconds(document, "push_delay_s") or 0.0,
        query_error=_parse_error(document.get("query_error"), "query_error"),
        amount_in_callback=_optional_number(document, "amount_in_callback"),
    )


def _parse_match(match: object) -> tuple[str | None, int | None]:
    if not isinstance(match, dict) or len(match) != 1:
        raise ScenarioError('match must be {"phone": "2547..."} or {"amount": 123}')
    if "phone" in match:
        phone = match["phone"]
        if isinstance(phone, int) and not isinstance(phone, bool):
            phone = str(phone)
        if not isinstance(phone, str) or not phone.isdigit():
            raise ScenarioError("match.phone must be a string of digits")
        return phone, None
    if "amount" in match:
        amount = match["amount"]
        if isinstance(amount, float) and amount.is_integer():
            amount = int(amount)
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
            raise ScenarioError("match.amount must be a whole number >= 1")
        return None, amount
    raise ScenarioError('match must be {"phone": "2547..."} or {"amount": 123}')


def _parse_result_code(code: object) -> ResultCode:
    if isinstance(code, bool) or not isinstance(code, int | str):
        raise ScenarioError("result_code must be an integer or a string")
    if isinstance(code, str) and not code.strip():
        raise ScenarioError("result_code must not be empty")
    return normalize(code)


def _parse_callback(callback: object) -> CallbackMode:
    if callback not in CALLBACK_MODES:
        raise ScenarioError(f"callback must be one of {list(CALLBACK_MODES)}")
    return callback


def _optional_number(document: Mapping[str, object], key: str) -> float | None:
    value = document.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{key} must be a number")
    return float(value)


def _optional_seconds(document: Mapping[str, object], key: str) -> float | None:
    value = _optional_number(document, key)
    if value is not None and value < 0:
        raise ScenarioError(f"{key} must be >= 0")
    return value


def _parse_error(value: object, key: str) -> InjectedError | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ScenarioError(f"{key} must be an object")
    unknown = set(value) - _ERROR_KEYS
    if unknown:
        raise ScenarioError(f"unknown {key} keys: {sorted(unknown)}")
    status = value.get("status", 500)
    code = value.get("errorCode")
    message = value.get("errorMessage")
    times = value.get("times", 1)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ScenarioError(f"{key}.status must be an HTTP error status (400-599)")
    if not isinstance(code, str) or not code or not isinstance(message, str) or not message:
        raise ScenarioError(f"{key} needs non-empty errorCode and errorMessage strings")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ScenarioError(f"{key}.times must be an integer >= 1")
    return InjectedError(ErrorReply(status, code, message), times)

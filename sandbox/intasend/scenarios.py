"""Which outcome an STK push gets: registered scenarios, built-in phones, the default.

Resolution order (``ScenarioBook.decide``):

1. the newest registered scenario whose ``match.phone`` equals ``phone_number``,
2. else the newest one whose ``match.amount`` equals the amount (as a decimal),
3. else a built-in phone rule (:data:`BUILTIN_PHONES`),
4. else COMPLETE, with a webhook on each state change.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

OutcomeKind = Literal["complete", "fail", "pending"]
WebhookMode = Literal["once", "twice", "none", "processing_after_complete"]
AmountStyle = Literal["strings", "numbers"]
ErrorBody = Literal["detail", "errors", "html"]
OUTCOMES: Final[tuple[OutcomeKind, ...]] = ("complete", "fail", "pending")
WEBHOOK_MODES: Final[tuple[WebhookMode, ...]] = (
    "once",
    "twice",
    "none",
    "processing_after_complete",
)
AMOUNT_STYLES: Final[tuple[AmountStyle, ...]] = ("strings", "numbers")
ERROR_BODIES: Final[tuple[ErrorBody, ...]] = ("detail", "errors", "html")

# M-Pesa ResultDescs IntaSend passes on as failed_reason, by failed_code.
FAILED_REASONS: Final = {
    "1": "The balance is insufficient for the transaction",
    "1019": "Transaction has expired",
    "1032": "Request cancelled by user",
    "1037": "DS timeout user cannot be reached",
    "2001": "The initiator information is invalid.",
}
DEFAULT_FAILED_REASON: Final = "The payment failed"


@dataclass(frozen=True)
class Outcome:
    """How an invoice ends and which webhooks tell it."""

    kind: OutcomeKind = "complete"
    failed_code: str | None = None
    failed_reason: str | None = None
    webhook: WebhookMode = "once"
    amount_style: AmountStyle = "strings"
    delay_s: float | None = None  # overrides the config's callback_delay_s
    source: str = "default"

    def to_json(self) -> dict[str, object]:
        return {
            "outcome": self.kind,
            "failed_code": self.failed_code,
            "failed_reason": self.failed_reason,
            "webhook": self.webhook,
            "amount_style": self.amount_style,
            "delay_s": self.delay_s,
            "source": self.source,
        }


def _fails(code: str, webhook: WebhookMode = "once") -> Outcome:
    return Outcome("fail", code, FAILED_REASONS[code], webhook, source="builtin")


BUILTIN_PHONES: Final[Mapping[str, Outcome]] = {
    "254700001032": _fails("1032"),
    "254700000001": _fails("1"),
    "254700002001": _fails("2001"),
    "254700001037": _fails("1037"),
    "254700001019": _fails("1019"),
    "254700009999": Outcome(webhook="none", source="builtin"),
    "254700009998": Outcome(webhook="twice", source="builtin"),
    "254700009997": Outcome(webhook="processing_after_complete", source="builtin"),
    "254700009996": Outcome(kind="pending", source="builtin"),
    "254700009995": Outcome(amount_style="numbers", source="builtin"),
}


@dataclass(frozen=True)
class ErrorReply:
    """An error to answer a push with instead of processing it."""

    status: int
    body: ErrorBody
    detail: str


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    error: ErrorReply | None = None
    push_delay_s: float = 0.0


class ScenarioError(ValueError):
    """A scenario document the simulator cannot use; the message says why."""


@dataclass
class Scenario:
    id: int
    phone: str | None
    amount: Decimal | None
    outcome: Outcome
    push_error: ErrorReply | None
    push_error_times: int
    push_delay_s: float
    document: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            **self.document,
            "push_error_left": self.push_error_times if self.push_error else 0,
        }


_KEYS: Final = frozenset(
    {
        "match",
        "outcome",
        "failed_code",
        "failed_reason",
        "webhook",
        "push_error",
        "push_delay_s",
        "amount_style",
        "delay_s",
    }
)


def _choice(doc: Mapping[str, object], key: str, choices: tuple[str, ...], default: str) -> str:
    value = doc.get(key, default)
    if value not in choices:
        raise ScenarioError(f"{key} must be one of {list(choices)}")
    return str(value)


def _seconds(doc: Mapping[str, object], key: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"{key} must be a number of seconds")
    if not math.isfinite(value) or not 0 <= value <= 300:
        raise ScenarioError(f"{key} must be from 0 to 300 seconds")
    return float(value)


def decimal_amount(value: object) -> Decimal | None:
    """A number or decimal string as a finite Decimal, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _match(doc: Mapping[str, object]) -> tuple[str | None, Decimal | None]:
    match = doc.get("match")
    if not isinstance(match, dict) or len(match) != 1 or not {"phone", "amount"} & set(match):
        raise ScenarioError('match must be {"phone": "2547…"} or {"amount": 100}')
    if "phone" in match:
        phone = match["phone"]
        if not isinstance(phone, str) or not phone.isdigit():
            raise ScenarioError("match.phone must be a string of digits")
        return phone, None
    amount = decimal_amount(match["amount"])
    if amount is None:
        raise ScenarioError("match.amount must be a number or a decimal string")
    return None, amount


def _push_error(doc: Mapping[str, object]) -> tuple[ErrorReply | None, int]:
    spec = doc.get("push_error")
    if spec is None:
        return None, 0
    if not isinstance(spec, dict) or not set(spec) <= {"status", "times", "body", "detail"}:
        raise ScenarioError("push_error must be {status, times?, body?, detail?}")
    status, times = spec.get("status"), spec.get("times", 1)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ScenarioError("push_error.status must be an HTTP error status (400-599)")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ScenarioError("push_error.times must be a positive integer")
    default_body = "html" if status >= 500 and status != 503 else "detail"
    if status in (400, 422):
        default_body = "errors"
    body = _choice(spec, "body", ERROR_BODIES, default_body)
    detail = spec.get("detail", f"Simulated error {status}")
    if not isinstance(detail, str):
        raise ScenarioError("push_error.detail must be a string")
    return ErrorReply(status, body, detail), times  # type: ignore[arg-type]


def parse_scenario(doc: Mapping[str, object], scenario_id: int) -> Scenario:
    unknown = set(doc) - _KEYS
    if unknown:
        raise ScenarioError(f"unknown keys {sorted(unknown)}")
    phone, amount = _match(doc)
    kind = _choice(doc, "outcome", OUTCOMES, "complete")
    failed_code = doc.get("failed_code")
    if failed_code is not None and not isinstance(failed_code, (str, int)):
        raise ScenarioError("failed_code must be a string or an integer")
    code = str(failed_code) if failed_code is not None else None
    reason = doc.get("failed_reason")
    if reason is not None and not isinstance(reason, str):
        raise ScenarioError("failed_reason must be a string")
    if kind == "fail" and reason is None:
        reason = FAILED_REASONS.get(code or "", DEFAULT_FAILED_REASON)
    outcome = Outcome(
        kind=kind,  # type: ignore[arg-type]
        failed_code=code if kind == "fail" else None,
        failed_reason=reason if kind == "fail" else None,
        webhook=_choice(doc, "webhook", WEBHOOK_MODES, "once"),  # type: ignore[arg-type]
        amount_style=_choice(doc, "amount_style", AMOUNT_STYLES, "strings"),  # type: ignore[arg-type]
        delay_s=_seconds(doc, "delay_s"),
        source=f"scenario:{scenario_id}",
    )
    error, times = _push_error(doc)
    return Scenario(
        id=scenario_id,
        phone=phone,
        amount=amount,
        outcome=outcome,
        push_error=error,
        push_error_times=times,
        push_delay_s=_seconds(doc, "push_delay_s") or 0.0,
        document=dict(doc),
    )


class ScenarioBook:
    """Registered scenarios, newest first in matching; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._scenarios: list[Scenario] = []

    def add(self, doc: Mapping[str, object]) -> Scenario:
        with self._lock:
            scenario = parse_scenario(doc, next(self._ids))
            self._scenarios.append(scenario)
            return scenario

    def clear(self) -> None:
        with self._lock:
            self._scenarios.clear()

    def snapshot(self) -> list[dict[str, object]]:
        with self._lock:
            return [s.to_json() for s in self._scenarios]

    def decide(self, phone: str, amount: Decimal) -> Decision:
        """The outcome of a push; an injected error is used up by this call."""
        with self._lock:
            scenario = self._find(phone, amount)
            if scenario is None:
                return Decision(BUILTIN_PHONES.get(phone, Outcome()))
            error = None
            if scenario.push_error is not None and scenario.push_error_times > 0:
                scenario.push_error_times -= 1
                error = scenario.push_error
            return Decision(scenario.outcome, error, scenario.push_delay_s)

    def _find(self, phone: str, amount: Decimal) -> Scenario | None:
        newest_first = list(reversed(self._scenarios))
        for scenario in newest_first:
            if scenario.phone == phone:
                return scenario
        for scenario in newest_first:
            if scenario.amount is not None and scenario.amount == amount:
                return scenario
        return None

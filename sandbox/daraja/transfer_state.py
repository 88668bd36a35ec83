"""Money out in the simulator: the record of every transfer made, and its scenarios.

A transfer (Reversal or B2C) is recorded under its OriginatorConversationID the
moment it is accepted; a second request with the same id is refused and never
moves money again. ``made`` counts how many times the money moved (0 when the
result is a failure, never more than 1): the witness tests read at
``GET /_sim/transfers``.

Transfer scenarios (``/_sim/transfers/scenarios``), newest first, matched by
``party`` (the B2C recipient, the reversed payment's payer) before ``amount``:

``{"match": {"party": "2547…"} | {"amount": 100}, "result_code": 0 | 2040 | "R000001",
"result": "once" | "twice" | "none" | "timeout", "result_delay_s": 1.5,
"ack_error": {"status": 500, "errorCode": "500.003.02", "errorMessage": "…", "times": 1},
"ack_delay_s": 3}``

``timeout`` posts a queue-timeout notice to QueueTimeOutURL instead of a result, and the
transfer is not made (a status query does not find it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from sandbox.daraja import ids
from sandbox.daraja.results import ResultCode, describe
from sandbox.daraja.scenarios import (
    ErrorReply,
    InjectedError,
    ScenarioError,
    _consume,
    _optional_seconds,
    _parse_error,
    _parse_result_code,
)
from sandbox.kit import ScenarioList

Clock = Callable[[], float]
TransferKind = Literal["reversal", "b2c"]
ResultMode = Literal["once", "twice", "none", "timeout"]
RESULT_MODES: Final[tuple[ResultMode, ...]] = ("once", "twice", "none", "timeout")

WRONG_CREDENTIAL: Final = 2001
ALREADY_REVERSED: Final = "R000001"
UNKNOWN_ORIGINAL: Final = "R000002"
TRANSFER_DESCRIPTIONS: Final[dict[ResultCode, str]] = {
    0: "The service request is processed successfully.",
    2040: "Credit Party customer type (Unregistered or Registered Customer) can't be "
    "supported by the service.",
    ALREADY_REVERSED: "The transaction has already been reversed.",
    UNKNOWN_ORIGINAL: "The OriginalTransactionID is invalid.",
}

_SCENARIO_KEYS: Final = frozenset(
    {"match", "result_code", "result", "result_delay_s", "ack_error", "ack_delay_s"}
)


def describe_transfer(code: ResultCode) -> str:
    return TRANSFER_DESCRIPTIONS.get(code) or describe(code)


@dataclass(frozen=True)
class TransferOutcome:
    """The decided result of one transfer and how it is delivered."""

    result_code: ResultCode
    result_desc: str
    result: ResultMode
    delay_s: float
    source: str

    @property
    def succeeded(self) -> bool:
        return self.result_code == 0 and self.result != "timeout"


@dataclass
class TransferScenario:
    id: str
    match_party: str | None
    match_amount: int | None
    result_code: ResultCode
    result: ResultMode
    result_delay_s: float | None
    ack_error: InjectedError | None
    ack_delay_s: float

    def to_json(self) -> dict[str, object]:
        match: dict[str, object] = (
            {"party": self.match_party}
            if self.match_party is not None
            else {"amount": self.match_amount}
        )
        return {
            "id": self.id,
            "match": match,
            "result_code": self.result_code,
            "result": self.result,
            "result_delay_s": self.result_delay_s,
            "ack_error": self.ack_error.to_json() if self.ack_error else None,
            "ack_delay_s": self.ack_delay_s,
        }

    def outcome(self, default_delay_s: float) -> TransferOutcome:
        delay = default_delay_s if self.result_delay_s is None else self.result_delay_s
        code = self.result_code
        return TransferOutcome(
            code, describe_transfer(code), self.result, delay, f"scenario:{self.id}"
        )


def parse_transfer_scenario(document: object, scenario_id: str) -> TransferScenario:
    if not isinstance(document, dict):
        raise ScenarioError("a scenario must be a JSON object")
    unknown = set(document) - _SCENARIO_KEYS
    if unknown:
        raise ScenarioError(f"unknown scenario keys: {sorted(unknown)}")
    match = document.get("match")
    usage = 'match must be {"party": "2547..."} or {"amount": 100}'
    if not isinstance(match, dict) or len(match) != 1:
        raise ScenarioError(usage)
    party, amount = match.get("party"), match.get("amount")
    if "party" in match:
        if isinstance(party, int) and not isinstance(party, bool):
            party = str(party)
        if not isinstance(party, str) or not party.isdigit():
            raise ScenarioError("match.party must be a string of digits")
    elif "amount" in match:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ScenarioError("match.amount must be a whole number >= 1")
    else:
        raise ScenarioError(usage)
    result = document.get("result", "once")
    if result not in RESULT_MODES:
        raise ScenarioError(f"result must be one of {list(RESULT_MODES)}")
    return TransferScenario(
        id=scenario_id,
        match_party=party if "party" in match else None,
        match_amount=amount if "amount" in match else None,
        result_code=_parse_result_code(document.get("result_code", 0)),
        result=result,
        result_delay_s=_optional_seconds(document, "result_delay_s"),
        ack_error=_parse_error(document.get("ack_error"), "ack_error"),
        ack_delay_s=_optional_seconds(document, "ack_delay_s") or 0.0,
    )


@dataclass(frozen=True)
class TransferDecision:
    """What to do with a valid transfer: answer ``error``, or make it with ``outcome``."""

    outcome: TransferOutcome
    error: ErrorReply | None
    ack_delay_s: float


class TransferScenarios(ScenarioList[TransferScenario]):
    def __init__(self) -> None:
        super().__init__(parse_transfer_scenario)

    def decide(self, party: str, amount: int, default_delay_s: float) -> TransferDecision:
        """The newest scenario for ``party``, else for ``amount``, else success once."""
        with self._lock:
            newest_first = list(reversed(self._scenarios))
            chosen = next((s for s in newest_first if s.match_party == party), None) or next(
                (s for s in newest_first if s.match_amount == amount), None
            )
            if chosen is None:
                success = TransferOutcome(
                    0, describe_transfer(0), "once", default_delay_s, "default"
                )
                return TransferDecision(success, None, 0.0)
            error = _consume(chosen.ack_error)
            return TransferDecision(chosen.outcome(default_delay_s), error, chosen.ack_delay_s)


@dataclass(frozen=True)
class Transfer:
    """One accepted Reversal or B2C request and what came of it."""

    kind: TransferKind
    originator_conversation_id: str
    conversation_id: str
    shortcode: str
    amount: int
    party: str
    original_transaction_id: str | None
    result_url: str
    timeout_url: str
    outcome: TransferOutcome
    receipt: str | None
    due_at: float
    created_at: str

    @property
    def made(self) -> int:
        """How many times the money moved: once for a success, never for a failure."""
        return 1 if self.outcome.succeeded else 0

    def is_due(self, now: float) -> bool:
        return now >= self.due_at

    @property
    def created_at_digits(self) -> str:
        """``YYYYMMDDHHmmss`` of ``created_at`` (Daraja's InitiatedTime)."""
        return "".join(c for c in self.created_at[:19] if c.isdigit())

    def to_json(self, now: float, deliveries: list[dict[str, object]]) -> dict[str, object]:
        """The witness: what was asked, what came of it, and every result POST attempt."""
        return {
            "kind": self.kind,
            "originator_conversation_id": self.originator_conversation_id,
            "conversation_id": self.conversation_id,
            "shortcode": self.shortcode,
            "amount": self.amount,
            "party": self.party,
            "original_transaction_id": self.original_transaction_id,
            "receipt": self.receipt,
            "result_code": self.outcome.result_code,
            "result": self.outcome.result,
            "outcome_source": self.outcome.source,
            "status": "completed" if self.is_due(now) else "pending",
            "made": self.made,
            "created_at": self.created_at,
            "deliveries": deliveries,
        }


@dataclass
class TransferBook:
    """Every transfer by OriginatorConversationID, and how much of each receipt was reversed."""

    clock: Clock
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _transfers: dict[str, Transfer] = field(default_factory=dict)
    # payment receipt -> whole shillings reversed so far (partial reversals add up to it)
    _reversed: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        with self._lock:
            self._transfers.clear()
            self._reversed.clear()

    def now(self) -> float:
        return self.clock()

    def taken(self, originator_conversation_id: str) -> bool:
        with self._lock:
            return originator_conversation_id in self._transfers

    def make(
        self,
        kind: TransferKind,
        originator_conversation_id: str,
        shortcode: str,
        amount: int,
        party: str,
        original_transaction_id: str | None,
        urls: tuple[str, str],
        outcome: TransferOutcome,
        reversible: int | None = None,
    ) -> Transfer | None:
        """Record a transfer; None (nothing made) when its OriginatorConversationID is taken.

        Reversals of one receipt may be partial; one that would take more than
        ``reversible`` (the payment's amount) in all becomes an ``R000001`` failure here,
        under the lock, so racing reversals cannot move more than was paid.
        """
        with self._lock:
            if originator_conversation_id in self._transfers:
                return None
            if original_transaction_id is not None and outcome.succeeded:
                before = self._reversed.get(original_transaction_id, 0)
                if reversible is not None and before + amount > reversible:
                    outcome = TransferOutcome(
                        ALREADY_REVERSED,
                        describe_transfer(ALREADY_REVERSED),
                        outcome.result,
                        outcome.delay_s,
                        "already-reversed",
                    )
                else:
                    self._reversed[original_transaction_id] = before + amount
            transfer = Transfer(
                kind=kind,
                originator_conversation_id=originator_conversation_id,
                conversation_id=ids.conversation_id(),
                shortcode=shortcode,
                amount=amount,
                party=party,
                original_transaction_id=original_transaction_id,
                result_url=urls[0],
                timeout_url=urls[1],
                outcome=outcome,
                receipt=ids.receipt_number() if outcome.succeeded else None,
                due_at=self.clock() + outcome.delay_s,
                created_at=ids.nairobi_now().isoformat(timespec="seconds"),
            )
            self._transfers[originator_conversation_id] = transfer
            return transfer

    def find(self, originator_conversation_id: str | None, receipt: str | None) -> Transfer | None:
        """A transfer by our OriginatorConversationID, else by its own receipt."""
        with self._lock:
            if originator_conversation_id and originator_conversation_id in self._transfers:
                return self._transfers[originator_conversation_id]
            if receipt:
                return next((t for t in self._transfers.values() if t.receipt == receipt), None)
            return None

    def all(self) -> list[Transfer]:
        with self._lock:
            return list(self._transfers.values())

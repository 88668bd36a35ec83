"""Pieces of the register-then-redirect simulators (Ameria vPOS, ArCa iPay).

What a scenario holds, what its amount is (drams or luma) and what a decline's
code looks like stay in each gateway's package; these are the parts both read
and choose the same way:

* :class:`InitError` and :func:`init_error`, an injected error answered to the
  register call a number of times;
* :func:`seconds` and :func:`flag`, a scenario's delays and switches;
* :class:`AmountScenarios`, the newest scenario matching an amount, its injected
  error counted down atomically, as a :class:`Decision`;
* :class:`ApiRequest`, one request to the API or the page, as recorded;
* :class:`RefundBook`, the rule both banks refund by and the witness of every
  refund made (:class:`RefundRecord`, ``GET /_sim/transfers``: :class:`TransfersResource`),
  and :func:`refund_left`, what is left.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar

import falcon

from sandbox.hosted import HostedOrder
from sandbox.kit import Records, ScenarioList, utc_now_iso
from sandbox.web import Scenario

# BPC's order states a refund reads (both banks number them so).
DEPOSITED: Final = 2
REFUNDED: Final = 4

# -- scenarios ------------------------------------------------------------------------------------


@dataclass
class InitError:
    status: int
    remaining: int


def init_error(value: object, error: type[Exception]) -> InitError | None:
    """``{"status": 500, "times": 1}`` (both optional) or ``None``; ``error`` says what is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"status", "times"}:
        raise error('init_error must be {"status": 500, "times": 1}')
    status, times = value.get("status", 500), value.get("times", 1)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise error("init_error.status must be an HTTP error status (400-599)")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise error("init_error.times must be an integer >= 1")
    return InitError(status, times)


def seconds(document: dict[str, object], name: str, error: type[Exception]) -> float:
    """``document[name]``, 0 to 600 seconds (0 when absent)."""
    value = document.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise error(f"{name} must be a number of seconds")
    if not 0 <= value <= 600:
        raise error(f"{name} must be between 0 and 600")
    return float(value)


def flag(document: dict[str, object], name: str, error: type[Exception]) -> bool:
    """``document[name]``, true or false (false when absent)."""
    value = document.get(name, False)
    if not isinstance(value, bool):
        raise error(f"{name} must be true or false")
    return value


class AmountScenario(Scenario, Protocol):
    @property
    def match_amount(self) -> object: ...

    @property
    def init_error(self) -> InitError | None: ...


if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    class _Shape(AmountScenario, DataclassInstance, Protocol): ...

    AS = TypeVar("AS", bound=_Shape)
else:
    AS = TypeVar("AS")


@dataclass(frozen=True)
class Decision(Generic[AS]):
    scenario: AS  # a copy: later changes to the book do not reach registered orders
    init_error: int | None  # an HTTP status to answer the register call with instead


class AmountScenarios(ScenarioList[AS]):
    """Thread-safe list of scenarios, chosen by amount; counts injected errors down atomically."""

    def __init__(self, parse: Callable[[object, str], AS], default: AS) -> None:
        super().__init__(parse)
        self._default = default

    def decide(self, amount: object) -> Decision[AS]:
        """The scenario for a register call of ``amount``; consumes one injected error."""
        with self._lock:
            scenario = next(
                (
                    s
                    for s in reversed(self._scenarios)
                    if amount is not None and s.match_amount == amount
                ),
                self._default,
            )
            error = scenario.init_error
            if error is not None and error.remaining > 0:
                error.remaining -= 1
                return Decision(replace(scenario), error.status)
            return Decision(replace(scenario), None)


# -- records --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequest:
    """One request to the API or the page, as received, passwords redacted."""

    method: str
    path: str
    kind: str
    query: dict[str, str]
    body: object
    status: int
    response: object
    time: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class RefundRecord:
    """One refund the bank made (money given back once: ``times_moved`` is always 1).

    The banks take no id of ours for a refund, so a refund is known by the order's
    reference (``merchant_ref``: the attempt malipo sent) and the bank's order id; a
    re-sent refund would show as a second record for the same order.
    """

    refund_id: str
    order_id: str
    merchant_ref: str
    amount: str  # major units, as the order's amount
    party: str  # the masked card the money went back to
    time: str
    kind: str = "refund"
    times_moved: int = 1

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def refund_left(paid: Decimal, refunded: Decimal) -> Decimal:
    """What of a paid order can still be given back."""
    return max(paid - refunded, Decimal(0))


class RefundRefusal(Enum):
    NOT_DEPOSITED = "not_deposited"  # not paid, or the status call does not show it yet
    DECLINED = "declined"  # the order's scenario declines its refunds
    AMOUNT = "amount"  # not an amount the bank takes, or more than is left


class RefundBook:
    """The refunds a bank made (the witness) and the rule both banks give money back by.

    Amounts are the bank's own (drams or luma); the caller keeps the order's refunded
    total and calls :meth:`take` under its state's lock.
    """

    def __init__(self) -> None:
        self._records = Records[RefundRecord]()

    def clear(self) -> None:
        self._records.clear()

    def select(self, keep: Callable[[RefundRecord], bool]) -> list[RefundRecord]:
        return self._records.select(keep)

    def take(
        self,
        order: HostedOrder,
        now: float,
        amount: Decimal,
        paid: Decimal,
        refunded: Decimal,
        witnessed: tuple[str, str],
        takes: bool = True,
    ) -> RefundRefusal | None:
        """Give ``amount`` of ``order`` back (None), or why not.

        Only a deposited order (as the status call shows it now) is refunded, up to what
        is left of ``paid`` after ``refunded``; it turns refunded (state 4)
        once nothing is left. ``takes``: the amount is one the bank takes at all;
        ``witnessed``: the witness's (amount in major units, masked card).
        """
        extra = order.extra
        visible_at = extra["visible_at"]
        if (visible_at is not None and now < visible_at) or int(extra["order_status"]) not in (
            DEPOSITED,
            REFUNDED,
        ):
            return RefundRefusal.NOT_DEPOSITED
        if extra["refund_decline"]:
            return RefundRefusal.DECLINED
        if not takes or not 0 < amount <= refund_left(paid, refunded):
            return RefundRefusal.AMOUNT
        if refunded + amount >= paid:
            extra["order_status"] = REFUNDED
        self._records.add(
            RefundRecord(
                refund_id=str(uuid.uuid4()),
                order_id=order.order_id,
                merchant_ref=str(extra["merchant_ref"]),
                amount=witnessed[0],
                party=witnessed[1],
                time=utc_now_iso(),
            )
        )
        return None


class _Listed(Protocol):
    def to_json(self) -> dict[str, object]: ...


class TransfersResource:
    """``GET /_sim/transfers?order=<order id or reference>``: ``{"transfers": [...]}``, oldest
    first: every refund the bank made."""

    def __init__(self, refunds: Callable[[str | None], Iterable[_Listed]]) -> None:
        self._refunds = refunds

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"transfers": [r.to_json() for r in self._refunds(req.get_param("order"))]}

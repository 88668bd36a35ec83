"""Pieces of the register-then-redirect simulators (Ameria vPOS, ArCa iPay).

What a scenario holds, what its amount is (drams or luma) and what a decline's
code looks like stay in each gateway's package; these are the parts both read
and choose the same way:

* :class:`InitError` and :func:`init_error`, an injected error answered to the
  register call a number of times;
* :func:`seconds` and :func:`flag`, a scenario's delays and switches;
* :class:`AmountScenarios`, the newest scenario matching an amount, its injected
  error counted down atomically, as a :class:`Decision`;
* :class:`ApiRequest`, one request to the API or the page, as recorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from sandbox.kit import ScenarioList
from sandbox.web import Scenario

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

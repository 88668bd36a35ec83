"""The order states and action codes Ameria's vPOS and ArCa's iPay share (shared.gateways.bpc)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain import errors
from shared.gateways import bpc
from shared.gateways.base import Outcome

CATALOGUE = {e.code for e in errors.catalogue()}


@pytest.mark.parametrize(
    ("status", "two_step", "outcome", "failure_code"),
    [
        (0, False, Outcome.PENDING, None),
        (0, True, Outcome.PENDING, None),
        (1, False, Outcome.SUCCEEDED, None),  # single-stage: approved is paid
        (1, True, Outcome.PENDING, None),  # two-stage: a hold, deposit not implemented
        (2, False, Outcome.SUCCEEDED, None),
        (2, True, Outcome.SUCCEEDED, None),
        (3, False, Outcome.CANCELLED, "gateway_rejected"),
        (4, False, Outcome.SUCCEEDED, None),  # paid, then refunded at the bank
        (5, False, Outcome.PENDING, None),  # 3-D Secure under way
        (6, False, Outcome.FAILED, "gateway_rejected"),
        (7, False, Outcome.PENDING, None),  # unknown: pending, never money
        (-1, True, Outcome.PENDING, None),
    ],
)
def test_the_state_table(
    status: int, two_step: bool, outcome: Outcome, failure_code: str | None
) -> None:
    meaning = bpc.state_meaning(status, two_step=two_step)

    assert (meaning.outcome, meaning.failure_code) == (outcome, failure_code)


def test_refunded_and_held_orders_say_why() -> None:
    assert "refunded" in bpc.state_meaning(4, two_step=False).message
    assert "not implemented" in bpc.state_meaning(1, two_step=True).message


@pytest.mark.parametrize(
    ("code", "outcome", "failure_code"),
    [
        (116, Outcome.FAILED, "insufficient_funds"),
        (121, Outcome.FAILED, "limit_exceeded"),
        (123, Outcome.FAILED, "limit_exceeded"),
        (-20010, Outcome.FAILED, "limit_exceeded"),
        (-2007, Outcome.EXPIRED, "transaction_expired"),
        (1001, Outcome.EXPIRED, "transaction_expired"),
        (100, Outcome.FAILED, "gateway_rejected"),
        (-2006, Outcome.FAILED, "gateway_rejected"),
        (None, Outcome.FAILED, "gateway_rejected"),
    ],
)
def test_declines_by_action_code(code: int | None, outcome: Outcome, failure_code: str) -> None:
    meaning = bpc.state_meaning(6, two_step=False, code=code)

    assert (meaning.outcome, meaning.failure_code) == (outcome, failure_code)
    assert meaning.label == ("declined" if code is None else f"declined:{code}")


@given(
    status=st.integers(min_value=-(10**6), max_value=10**6),
    two_step=st.booleans(),
    code=st.none() | st.integers(min_value=-(10**7), max_value=10**7),
)
def test_every_state_has_a_meaning_and_only_paid_states_succeed(
    status: int, two_step: bool, code: int | None
) -> None:
    meaning = bpc.state_meaning(status, two_step=two_step, code=code)

    paid = {bpc.OrderStatus.DEPOSITED, bpc.OrderStatus.REFUNDED} | (
        set() if two_step else {bpc.OrderStatus.APPROVED}
    )
    assert (meaning.outcome is Outcome.SUCCEEDED) == (status in paid)
    if meaning.outcome in (Outcome.FAILED, Outcome.EXPIRED):
        assert status == bpc.OrderStatus.DECLINED
    if meaning.outcome is Outcome.CANCELLED:
        assert status == bpc.OrderStatus.VOID
    if status not in set(bpc.OrderStatus):
        assert meaning.outcome is Outcome.PENDING
    if meaning.outcome in (Outcome.SUCCEEDED, Outcome.PENDING):
        assert meaning.failure_code is None
    else:
        assert meaning.failure_code in CATALOGUE
    assert 0 < len(meaning.label) <= 40


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (116, 116),
        ("116", 116),
        (" -2007 ", -2007),
        ("0", 0),
        (True, None),
        ("1e3", None),
        ("0-2007", None),
        ("", None),
        (None, None),
        (1.0, None),
        ("9" * 10, None),
    ],
)
def test_action_codes_are_read_as_integers(value: object, expected: int | None) -> None:
    assert bpc.action_code(value) == expected


def test_order_states_are_small_integers() -> None:
    assert [bpc.order_status(v) for v in (2, "6", "0", 100, -1, "x", None)] == [
        2,
        6,
        0,
        None,
        None,
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({}, False),
        ({"two_step": ""}, False),
        ({"two_step": "no"}, False),
        ({"two_step": "yes"}, True),
    ],
)
def test_two_step_credential(stored: dict[str, str], expected: bool) -> None:
    assert bpc.two_step_of(stored) is expected


def test_a_two_step_value_outside_its_choices_is_refused() -> None:
    with pytest.raises(ValueError, match="two_step"):
        bpc.two_step_of({"two_step": "maybe"})


def test_the_two_step_field_is_optional_with_its_choices() -> None:
    field = bpc.two_step_field("Bank")

    assert (field.name, field.required, field.choices, field.default) == (
        "two_step",
        False,
        ("yes", "no"),
        "no",
    )

"""The payment state machine: forward only, final words stick, late successes are honoured.

The model written here is the documented one: ``created → submitted → final``
(succeeded | failed | cancelled | expired); a success after *expired* is a late
success; a success after failed/cancelled contradicts the gateway (conflict).
"""

from __future__ import annotations

from itertools import pairwise, product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.states import Decision, PaymentStatus, Verdict, decide
from tests.unit.properties import PROPERTY

S = PaymentStatus
FINALS = {S.SUCCEEDED, S.FAILED, S.CANCELLED, S.EXPIRED}
# Position along created → submitted → final.
RANK = {S.CREATED: 0, S.SUBMITTED: 1, **dict.fromkeys(FINALS, 2)}
ALL_PAIRS = list(product(S, S))
statuses = st.sampled_from(list(S))


def pair_id(pair: tuple[PaymentStatus, PaymentStatus]) -> str:
    return f"{pair[0]}->{pair[1]}"


def test_the_final_states_are_the_four_outcomes() -> None:
    assert {status for status in S if status.is_final} == FINALS
    assert len(S) == 6


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=map(pair_id, ALL_PAIRS))
def test_every_decision_names_the_requested_target(
    current: PaymentStatus, target: PaymentStatus
) -> None:
    decision = decide(current, target)
    assert isinstance(decision, Decision)
    assert decision.target == target
    assert decision.moves == (decision.verdict in (Verdict.APPLY, Verdict.LATE_SUCCESS))


def test_a_final_state_never_moves_back_to_a_non_final_one() -> None:
    for current, target in ALL_PAIRS:
        # Given a payment in a final state and word that it is created or submitted
        if current in FINALS and target not in FINALS:
            # Then nothing moves
            assert not decide(current, target).moves, pair_id((current, target))


def test_a_final_state_only_ever_moves_to_another_final_as_a_late_success() -> None:
    for current, target in ALL_PAIRS:
        if current in FINALS and target in FINALS and current != target:
            decision = decide(current, target)
            if (current, target) == (S.EXPIRED, S.SUCCEEDED):
                # the customer paid after we gave up: honoured, flagged for review
                assert decision.verdict == Verdict.LATE_SUCCESS
                assert decision.moves
            else:
                assert not decision.moves, pair_id((current, target))


@pytest.mark.parametrize("current", [S.FAILED, S.CANCELLED])
def test_success_after_failure_or_cancellation_is_a_conflict(current: PaymentStatus) -> None:
    # Given the gateway already said the payment failed or was cancelled
    # When it later says the payment succeeded
    decision = decide(current, S.SUCCEEDED)
    # Then that contradiction is flagged and not applied
    assert decision.verdict == Verdict.CONFLICT
    assert not decision.moves


@pytest.mark.parametrize("status", list(S))
def test_the_same_state_again_is_same(status: PaymentStatus) -> None:
    decision = decide(status, status)
    assert decision.verdict == Verdict.SAME
    assert not decision.moves


def test_late_failures_never_overwrite_a_success() -> None:
    for target in S:
        if target != S.SUCCEEDED:
            assert not decide(S.SUCCEEDED, target).moves, target


def test_moves_go_only_forward_along_created_submitted_final() -> None:
    for current, target in ALL_PAIRS:
        decision = decide(current, target)
        if decision.moves and (current, target) != (S.EXPIRED, S.SUCCEEDED):
            assert RANK[target] > RANK[current], pair_id((current, target))


def test_every_forward_step_from_a_pending_state_is_applied() -> None:
    for current, target in ALL_PAIRS:
        if current not in FINALS and RANK[target] > RANK[current]:
            assert decide(current, target).verdict == Verdict.APPLY, pair_id((current, target))


def test_word_that_a_submitted_payment_is_created_is_stale() -> None:
    decision = decide(S.SUBMITTED, S.CREATED)
    assert decision.verdict == Verdict.STALE
    assert not decision.moves


@settings(PROPERTY, max_examples=500)
@given(targets=st.lists(statuses, max_size=20))
def test_any_sequence_of_words_ends_consistently(targets: list[PaymentStatus]) -> None:
    # Given a new payment and any sequence of words about it, in any order
    state = S.CREATED
    history = [state]
    # When each word is decided and applied only when the decision moves
    for target in targets:
        decision = decide(state, target)
        if decision.moves:
            state = decision.target
        history.append(state)
    # Then the state never went backwards along created → submitted → final
    assert all(RANK[a] <= RANK[b] for a, b in pairwise(history))
    # and once succeeded it stayed succeeded
    if S.SUCCEEDED in history:
        assert history[history.index(S.SUCCEEDED) :] == [S.SUCCEEDED] * (
            len(history) - history.index(S.SUCCEEDED)
        )
    # and once final it stayed final, changing only by a late success after expiry
    for a, b in pairwise(history):
        if a in FINALS:
            assert b == a or (a, b) == (S.EXPIRED, S.SUCCEEDED)
    # and it ends final exactly when some final word arrived; otherwise pending
    if any(t in FINALS for t in targets):
        assert state in FINALS
    elif S.SUBMITTED in targets:
        assert state == S.SUBMITTED
    else:
        assert state == S.CREATED


def run(start: PaymentStatus, targets: list[PaymentStatus]) -> PaymentStatus:
    state = start
    for target in targets:
        decision = decide(state, target)
        if decision.moves:
            state = decision.target
    return state


@settings(PROPERTY, max_examples=300)
@given(targets=st.lists(statuses, max_size=20))
def test_redelivering_every_word_changes_nothing(targets: list[PaymentStatus]) -> None:
    # Given a payment that received some sequence of words
    state = run(S.CREATED, targets)
    # When the gateway delivers the whole sequence again (duplicates, replays)
    # Then the payment is where it was
    assert run(state, targets) == state


# --- words about an earlier cycle's push (after a customer's retry) -------------------------


@PROPERTY
@given(current=statuses, target=statuses)
def test_an_earlier_cycles_failure_never_moves_the_payment(
    current: PaymentStatus, target: PaymentStatus
) -> None:
    # Given the customer retried, and word comes about the push before the retry
    decision = decide(current, target, earlier_cycle=True)
    # Then only a success of that push can move the payment
    if target != S.SUCCEEDED:
        assert not decision.moves
        assert decision.verdict == Verdict.STALE


@PROPERTY
@given(current=statuses)
def test_an_earlier_cycles_success_is_never_lost(current: PaymentStatus) -> None:
    # Given the customer paid the push of an earlier cycle
    decision = decide(current, S.SUCCEEDED, earlier_cycle=True)
    # Then the payment ends succeeded: it moves there, or is there already
    assert decision.moves or current == S.SUCCEEDED
    assert decision.verdict != Verdict.CONFLICT
    # And a move over a final word of the new push is flagged for review
    if current in FINALS and decision.moves:
        assert decision.verdict == Verdict.LATE_SUCCESS
    if current not in FINALS:
        assert decision.verdict == Verdict.APPLY

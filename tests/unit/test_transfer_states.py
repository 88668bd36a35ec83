"""The refund and payout state machine: forward only, and never sent twice by its rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.states import (
    FINAL_TRANSFER_STATES,
    OPEN_TRANSFER_STATES,
    TransferStatus,
    transfer_may_move,
)
from tests.unit.properties import PROPERTY

STATES = st.sampled_from(list(TransferStatus))


@settings(PROPERTY)
@given(current=st.sampled_from(sorted(FINAL_TRANSFER_STATES)), target=STATES)
def test_a_final_transfer_never_moves(current: TransferStatus, target: TransferStatus) -> None:
    assert not transfer_may_move(current, target)


@settings(PROPERTY)
@given(path=st.lists(STATES, min_size=1, max_size=12))
def test_every_allowed_walk_sends_only_from_pending(path: list[TransferStatus]) -> None:
    # Walk the machine along whatever moves it allows: ``sending`` (a call to the
    # gateway) is only ever entered from ``pending``, and ``pending`` again only from
    # where the gateway certainly did not act (``sending`` refused by the transport,
    # ``unknown`` answered "no such transfer") or from a decision (approval).
    current = TransferStatus.PENDING
    for target in path:
        if not transfer_may_move(current, target):
            continue
        if target == TransferStatus.SENDING:
            assert current == TransferStatus.PENDING
        if target == TransferStatus.PENDING:
            assert current in (
                TransferStatus.SENDING,
                TransferStatus.UNKNOWN,
                TransferStatus.AWAITING_APPROVAL,
            )
        current = target


def test_what_may_have_reached_the_gateway_is_never_sent_again_directly() -> None:
    for current in (TransferStatus.SUBMITTED, TransferStatus.REQUIRES_ACTION):
        assert not transfer_may_move(current, TransferStatus.PENDING)
        assert not transfer_may_move(current, TransferStatus.SENDING)
    assert not transfer_may_move(TransferStatus.UNKNOWN, TransferStatus.SENDING)


def test_a_payout_waiting_for_approval_is_sent_or_rejected_only() -> None:
    allowed = {s for s in TransferStatus if transfer_may_move(TransferStatus.AWAITING_APPROVAL, s)}
    assert allowed == {TransferStatus.PENDING, TransferStatus.REJECTED}


def test_open_states_are_the_ones_the_sweep_looks_after() -> None:
    assert OPEN_TRANSFER_STATES.isdisjoint(FINAL_TRANSFER_STATES)
    assert TransferStatus.REQUIRES_ACTION not in OPEN_TRANSFER_STATES
    assert TransferStatus.AWAITING_APPROVAL not in OPEN_TRANSFER_STATES

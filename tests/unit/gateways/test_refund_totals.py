"""The synchronous banks' refund lookup (Ameria, ArCa): made when the refunded total covers it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.domain.money import Money
from shared.gateways import bpc
from shared.gateways.transfers import TransferKind, TransferRequest, TransferState
from tests.unit.properties import PROPERTY


def request(amount: int, refunded_before: int | None) -> TransferRequest:
    return TransferRequest(
        kind=TransferKind.REFUND,
        transfer_id="3b7e4c8a-0d51-4f6e-9a2b-7c1d3e5f9a01",
        request_ref="0f" * 16,
        amount=Money(amount, "AMD"),
        phone="37477123456",
        reason="refund",
        result_url="https://malipo.example/r",
        timeout_url="https://malipo.example/t",
        payment_gateway_ref="order-1",
        payment_amount=Money(1_000_000, "AMD"),
        payment_refunded=None if refunded_before is None else Money(refunded_before, "AMD"),
    )


def test_a_total_that_covers_earlier_refunds_and_this_one_means_made() -> None:
    verdict = bpc.refund_by_total(Money(300_000, "AMD"), request(200_000, 100_000))

    assert verdict.state is TransferState.SUCCEEDED
    assert verdict.amount == Money(200_000, "AMD")


def test_a_total_of_only_earlier_refunds_means_never_made() -> None:
    assert bpc.refund_by_total(Money(100_000, "AMD"), request(200_000, 100_000)).state is (
        TransferState.NOT_FOUND
    )
    assert bpc.refund_by_total(None, request(200_000, None)).state is TransferState.NOT_FOUND


@given(
    before=st.integers(0, 10**9),
    amount=st.integers(1, 10**9),
    total=st.integers(0, 3 * 10**9),
)
@PROPERTY
def test_made_exactly_when_the_total_reaches_before_plus_amount(
    before: int, amount: int, total: int
) -> None:
    verdict = bpc.refund_by_total(Money(total, "AMD"), request(amount, before))

    made = verdict.state is TransferState.SUCCEEDED
    assert made == (total >= before + amount)
    assert verdict.state in (TransferState.SUCCEEDED, TransferState.NOT_FOUND)

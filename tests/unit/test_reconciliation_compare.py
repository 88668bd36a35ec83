"""The comparison's rules as properties: a faithful list matches everything, and each kind
of discrepancy injected into it is found with its kind, once, and nothing else."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.money import Money
from shared.gateways.base import GatewayTransaction, Outcome
from shared.reconciliation.compare import (
    AMOUNT_MISMATCH,
    DUPLICATE_RECEIPT,
    MATCHED,
    MISSING_AT_GATEWAY,
    MISSING_HERE,
    PENDING_VERIFICATION,
    STATUS_MISMATCH,
    OurPayment,
    compare,
)

START = datetime(2026, 12, 1, tzinfo=UTC)
END = START + timedelta(days=1)
MERCHANT = uuid.UUID(int=7)
INJECTIONS = (
    "dropped",
    "amount_changed",
    "repeated",
    "unpaid_here",
    "pending_here",
    "failed_there",
)


def ledger(count: int, seed: int) -> tuple[list[OurPayment], list[GatewayTransaction]]:
    """``count`` paid payments and the gateway's faithful list of them."""
    rng = random.Random(seed)
    ours, theirs = [], []
    for n in range(count):
        amount = rng.randint(1, 5000) * 100
        payment = OurPayment(
            id=uuid.UUID(int=seed * 100_000 + n + 1),
            merchant_id=MERCHANT,
            status="succeeded",
            amount_minor=amount,
            currency="KES",
            receipt=f"R{seed:03d}{n:06d}",
            gateway_refs=frozenset({f"ws_CO_{seed}_{n}"}),
            account_ref=f"ORD{n}",
        )
        ours.append(payment)
        theirs.append(
            GatewayTransaction(
                receipt=payment.receipt,
                gateway_ref=None,
                account_ref=payment.account_ref,
                amount=Money(amount, "KES"),
                outcome=Outcome.SUCCEEDED,
                completed_at=START + timedelta(minutes=n),
            )
        )
    return ours, theirs


def kinds(findings: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {finding.key: finding.kind for finding in findings}


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(0, 999))
def test_a_faithful_list_matches_every_payment_whatever_the_order(count: int, seed: int) -> None:
    ours, theirs = ledger(count, seed)
    random.Random(seed).shuffle(theirs)
    found = compare(ours, theirs, (START, END))
    assert kinds(found) == {f"payment:{p.id}": MATCHED for p in ours}
    assert compare(list(reversed(ours)), list(reversed(theirs)), (START, END)) == found


@settings(max_examples=80, deadline=None)
@given(
    st.integers(8, 60),
    st.integers(0, 999),
    st.lists(st.sampled_from(INJECTIONS), min_size=1, max_size=6, unique=True),
)
def test_each_injected_discrepancy_is_found_with_its_kind_and_nothing_else(
    count: int, seed: int, injected: list[str]
) -> None:
    ours, theirs = ledger(count, seed)
    expected = {f"payment:{p.id}": MATCHED for p in ours}
    dropped: set[int] = set()
    for n, injection in enumerate(injected):
        payment, row = ours[n], theirs[n]
        key = f"payment:{payment.id}"
        if injection == "dropped":
            dropped.add(n)
            expected[key] = MISSING_AT_GATEWAY
        elif injection == "amount_changed":
            theirs[n] = replace(row, amount=Money(row.amount.amount_minor + 100, "KES"))
            expected[key] = AMOUNT_MISMATCH
        elif injection == "repeated":
            theirs.append(row)
            expected[f"receipt:{row.receipt}"] = DUPLICATE_RECEIPT
        elif injection == "unpaid_here":
            # Our callback and query were lost: expired here, paid there (no receipt here).
            ours[n] = replace(payment, status="expired", receipt=None)
            expected[key] = STATUS_MISMATCH
        elif injection == "pending_here":
            ours[n] = replace(payment, status="submitted", receipt=None)
            theirs[n] = replace(row, receipt=None, account_ref=None, raw={"gone": n})
            theirs[n] = replace(theirs[n], outcome=Outcome.FAILED)
            expected[key] = PENDING_VERIFICATION
        elif injection == "failed_there":
            theirs[n] = replace(row, outcome=Outcome.FAILED)
            expected[key] = STATUS_MISMATCH
    only_there = GatewayTransaction(
        receipt="RONLYTHERE1",
        gateway_ref=None,
        account_ref="NOBODY",
        amount=Money(700, "KES"),
        outcome=Outcome.SUCCEEDED,
        completed_at=START + timedelta(hours=3),
    )
    theirs = [row for n, row in enumerate(theirs) if n not in dropped] + [only_there]
    expected["gateway:receipt:RONLYTHERE1"] = MISSING_HERE

    found = compare(ours, theirs, (START, END))

    assert kinds(found) == expected
    credited = {f.key for f in found if f.credit}
    assert credited == {
        f"payment:{ours[n].id}" for n, i in enumerate(injected) if i == "unpaid_here"
    }


def test_one_receipt_credited_to_two_payments_is_a_duplicate_not_two_matches() -> None:
    ours, theirs = ledger(3, 1)
    ours[1] = replace(ours[1], receipt=ours[0].receipt)
    found = kinds(compare(ours, theirs, (START, END)))
    assert found[f"receipt:{ours[0].receipt}"] == DUPLICATE_RECEIPT
    assert f"payment:{ours[0].id}" not in found
    assert f"payment:{ours[1].id}" not in found
    assert found[f"payment:{ours[2].id}"] == MATCHED
    # The second payment's own receipt is listed with nobody of ours: money we never booked.
    assert found[f"gateway:receipt:{theirs[1].receipt}"] == MISSING_HERE


def test_a_listed_row_outside_the_window_that_matches_nothing_is_left_to_its_window() -> None:
    ours, theirs = ledger(2, 2)
    late = replace(theirs[0], receipt="RNEXTDAY01", completed_at=END + timedelta(minutes=5))
    found = kinds(compare(ours, [*theirs, late], (START, END)))
    assert "gateway:receipt:RNEXTDAY01" not in found
    assert set(found.values()) == {MATCHED}


def test_an_ambiguous_account_reference_credits_nothing_and_shows_both_sides() -> None:
    ours, theirs = ledger(2, 3)
    # Both expired here without receipts; the customer saw the same reference twice, and
    # the gateway lists two payments of the same amount under it: no guessing with money.
    amount = Money(ours[0].amount_minor, "KES")
    ours = [replace(p, status="expired", receipt=None, account_ref="SAME") for p in ours]
    ours[1] = replace(ours[1], amount_minor=amount.amount_minor)
    theirs = [replace(r, account_ref="SAME", amount=amount) for r in theirs]
    found = compare(ours, theirs, (START, END))
    assert not [f for f in found if f.credit]
    assert kinds(found) == {
        f"payment:{ours[0].id}": MATCHED,
        f"payment:{ours[1].id}": MATCHED,
        f"gateway:receipt:{theirs[0].receipt}": MISSING_HERE,
        f"gateway:receipt:{theirs[1].receipt}": MISSING_HERE,
    }

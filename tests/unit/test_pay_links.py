"""Pay page links: a token opens its own payment until it expires, and nothing else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.paypage import PayLinks, issue_token, token_valid

KEY = "sandbox-test-secret-key-0123456789abcdef"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ids = st.uuids()


@given(ids, st.integers(min_value=1, max_value=10**7))
def test_a_token_opens_its_payment_until_it_expires(payment_id: uuid.UUID, ttl_s: int) -> None:
    token = issue_token(KEY, payment_id, NOW + timedelta(seconds=ttl_s))
    assert token_valid(KEY, payment_id, token, NOW)
    assert not token_valid(KEY, payment_id, token, NOW + timedelta(seconds=ttl_s))


@given(ids, ids)
def test_a_token_opens_no_other_payment(payment_id: uuid.UUID, other: uuid.UUID) -> None:
    token = issue_token(KEY, payment_id, NOW + timedelta(hours=1))
    assert token_valid(KEY, other, token, NOW) == (other == payment_id)


@given(ids, st.integers(min_value=0, max_value=60), st.characters(codec="ascii"))
def test_any_changed_character_breaks_the_token(
    payment_id: uuid.UUID, position: int, replacement: str
) -> None:
    token = issue_token(KEY, payment_id, NOW + timedelta(hours=1))
    index = position % len(token)
    changed = token[:index] + replacement + token[index + 1 :]
    assert token_valid(KEY, payment_id, changed, NOW) == (changed == token)


def test_another_deployment_s_key_does_not_verify() -> None:
    payment_id = uuid.uuid4()
    token = issue_token(KEY, payment_id, NOW + timedelta(hours=1))
    assert not token_valid(KEY + "-other", payment_id, token, NOW)


@given(st.text(max_size=80))
def test_garbage_is_refused_without_error(garbage: str) -> None:
    assert not token_valid(KEY, uuid.uuid4(), garbage, NOW)


@given(
    st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.integers(min_value=0, max_value=3599),
)
def test_a_retry_within_the_hour_gets_the_same_link(accepted: datetime, later_s: int) -> None:
    links = PayLinks(KEY, "https://pay.example.am", ttl_s=3600)
    payment_id = uuid.UUID(int=7)
    hour = accepted.replace(minute=0, second=0, microsecond=0)
    retried = hour + timedelta(seconds=later_s)
    assert links.pay_url(payment_id, accepted) == links.pay_url(payment_id, retried)


def test_the_same_cycle_always_gets_the_same_link() -> None:
    links = PayLinks(KEY, "https://pay.example.am", ttl_s=3600)
    payment_id, accepted = uuid.uuid4(), NOW - timedelta(minutes=5)
    assert links.pay_url(payment_id, accepted) == links.pay_url(payment_id, accepted)
    assert links.pay_url(payment_id, accepted).startswith(
        f"https://pay.example.am/pay/{payment_id}?t="
    )
    token = links.token(payment_id, accepted)
    assert links.valid(payment_id, token, NOW)
    assert links.valid(payment_id, token, accepted + timedelta(seconds=3599))
    assert not links.valid(payment_id, token, accepted + timedelta(seconds=2 * 3600))
    assert not links.valid(payment_id, None, NOW)

"""The refused-callback limiter, tally and policy cache: cheap, bounded, fair to the known."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingress.policy_book import Changes, PolicyBook
from ingress.policy_cache import StaleWhileUnavailableCache
from ingress.refusals import OVERFLOW_SOURCE, RefusalLimiter, RefusalReporter, RefusalTally
from shared.domain.errors import TransientError
from shared.messages import BrokerUnavailable
from tests.unit.properties import PROPERTY


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


sources = st.sampled_from(["198.51.100.1", "198.51.100.2", "203.0.113.7", "2001:db8::1"])


@PROPERTY
@given(
    per_source=st.integers(1, 50),
    global_=st.integers(1, 200),
    steps=st.lists(st.tuples(sources, st.floats(0, 5)), max_size=300),
)
def test_no_source_is_allowed_more_refusals_than_its_budget_and_refill(
    per_source: int, global_: int, steps: list[tuple[str, float]]
) -> None:
    clock = Clock()
    limiter = RefusalLimiter(per_source, global_, clock=clock)
    start = clock.now
    spent: dict[str, int] = {}
    total = 0
    for source, wait in steps:
        clock.now += wait
        if limiter.check(source).allowed:
            limiter.spend(source)
            spent[source] = spent.get(source, 0) + 1
            total += 1
    elapsed_min = (clock.now - start) / 60
    # A bucket starts full and refills at its rate: never more than that got through.
    for count in spent.values():
        assert count <= per_source + per_source * elapsed_min + 1
    assert total <= global_ + global_ * elapsed_min + 1


def test_a_source_out_of_budget_is_told_when_to_come_back_and_others_are_not_held() -> None:
    clock = Clock()
    limiter = RefusalLimiter(per_source_per_min=3, global_per_min=100, clock=clock)
    for _ in range(3):
        assert limiter.check("198.51.100.1").allowed
        limiter.spend("198.51.100.1")
    refused = limiter.check("198.51.100.1")
    assert not refused.allowed
    assert refused.retry_after_s == 20  # one token per 20 s
    assert limiter.check("203.0.113.7").allowed
    clock.now += 20
    assert limiter.check("198.51.100.1").allowed


def test_the_global_budget_holds_every_source_once_spent() -> None:
    clock = Clock()
    limiter = RefusalLimiter(per_source_per_min=100, global_per_min=5, clock=clock)
    for i in range(5):
        limiter.spend(f"198.51.100.{i}")
    assert not limiter.check("203.0.113.99").allowed


def test_many_sources_are_forgotten_oldest_first_within_the_bound() -> None:
    limiter = RefusalLimiter(1, 1_000_000, max_sources=100)
    for i in range(10_000):
        limiter.spend(f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}")
    assert len(limiter._sources) == 100


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RefusalLimiter(0, 10)


refusal_events = st.lists(
    st.tuples(
        st.sampled_from(["daraja", "intasend"]),
        st.sampled_from(["unknown_secret", "ip_not_allowed", "rate_limited"]),
        st.integers(0, 40).map(lambda n: f"198.51.100.{n}"),
        st.integers(0, 179),  # seconds into a three-minute span
    ),
    max_size=400,
)


@PROPERTY
@given(events=refusal_events, max_buckets=st.integers(1, 30))
def test_the_tally_counts_every_refusal_once_in_at_most_its_buckets(
    events: list[tuple[str, str, str, int]], max_buckets: int
) -> None:
    tally = RefusalTally(max_buckets=max_buckets)
    start = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    for gateway, reason, source, second in events:
        tally.add(
            gateway=gateway, reason=reason, source=source, at=start + timedelta(seconds=second)
        )
    buckets = tally.take()
    assert sum(b["count"] for b in buckets) == len(events)
    # Past the bound, new sources fold into "*" (one per minute, gateway, reason at most).
    named = [b for b in buckets if b["source"] != OVERFLOW_SOURCE]
    assert len(named) <= max_buckets
    assert len(buckets) <= max_buckets + 3 * 2 * 3
    assert all(b["first_at"] <= b["last_at"] for b in buckets)
    assert tally.take() == []


def test_counts_a_report_could_not_deliver_are_sent_with_the_next_one() -> None:
    tally = RefusalTally()
    sent: list[list[dict[str, object]]] = []
    broker_up = False

    def publish(buckets: list[dict[str, object]]) -> None:
        if not broker_up:
            raise BrokerUnavailable("down")
        sent.append(buckets)

    reporter = RefusalReporter(tally, publish, interval_s=60)
    at = datetime(2026, 12, 2, 5, 0, 1, tzinfo=UTC)
    tally.add(gateway="daraja", reason="unknown_secret", source="198.51.100.1", at=at)
    assert reporter.report() == 0
    tally.add(gateway="daraja", reason="unknown_secret", source="198.51.100.1", at=at)
    broker_up = True
    assert reporter.report() == 1
    [[bucket]] = sent
    assert bucket["count"] == 2


class Loads:
    def __init__(self) -> None:
        self.calls = 0
        self.down = False

    def value(self, value: str | None) -> str | None:
        self.calls += 1
        if self.down:
            raise TransientError("database unavailable")
        return value


def test_a_flood_of_unknown_secrets_never_evicts_a_known_policy() -> None:
    cache: StaleWhileUnavailableCache[str] = StaleWhileUnavailableCache(
        ttl_s=0, max_entries=10, max_missing=10
    )
    db = Loads()
    assert cache.get("merchant", lambda: db.value("policy")) == "policy"
    for i in range(1_000):
        assert cache.get(f"junk-{i}", lambda: db.value(None)) is None
    # Then the database goes away: the known merchant's policy is still served.
    db.down = True
    assert cache.known("merchant")
    assert cache.get("merchant", lambda: db.value("policy")) == "policy"
    with pytest.raises(TransientError):
        cache.get("never-seen", lambda: db.value("policy"))


def test_a_policy_no_longer_found_is_forgotten_at_once() -> None:
    cache: StaleWhileUnavailableCache[str] = StaleWhileUnavailableCache(ttl_s=0)
    cache.get("merchant", lambda: "policy")
    assert cache.get("merchant", lambda: None) is None
    assert not cache.known("merchant")


def test_fresh_answers_found_or_not_cost_no_load() -> None:
    cache: StaleWhileUnavailableCache[str] = StaleWhileUnavailableCache(ttl_s=60)
    db = Loads()
    for _ in range(5):
        cache.get("merchant", lambda: db.value("policy"))
        cache.get("junk", lambda: db.value(None))
    assert db.calls == 2


@dataclass
class Row:
    id: uuid.UUID
    gateway: str
    callback_secret_hash: str
    enabled: bool = True
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Credentials:
    """The gateway_credentials table as the book's load sees it."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Row] = {}
        self.down = False
        self.loads: list[datetime | None] = []

    def add(self, secret_hash: str, gateway: str = "daraja") -> Row:
        row = Row(uuid.uuid4(), gateway, secret_hash)
        self.rows[row.id] = row
        return row

    def change(self, row: Row, **values: object) -> None:
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = datetime.now(UTC)

    def load(self, since: datetime | None, limit: int) -> Changes[str]:
        self.loads.append(since)
        if self.down:
            raise TransientError("database unavailable")
        rows = [
            r for r in self.rows.values() if (r.enabled if since is None else r.updated_at > since)
        ][:limit]
        return Changes(
            [(r, f"policy:{r.callback_secret_hash}") for r in rows],
            datetime.now(UTC),
            len(rows) < limit,
        )


def book_over(table: Credentials, clock: Clock, **options: Any) -> PolicyBook[str]:
    return PolicyBook(table.load, refresh_s=1.0, clock=clock, **options)


def test_the_book_knows_every_enabled_merchant_and_refuses_the_rest_from_memory() -> None:
    table, clock = Credentials(), Clock()
    table.add("a"), table.add("b")
    book = book_over(table, clock)
    book.refresh_if_due()
    assert book.complete
    assert book.get(("daraja", "a")) == "policy:a"
    for i in range(1_000):  # made-up secrets: no load, however many
        assert book.get(("daraja", f"junk{i}")) is None
        book.refresh_if_due()
    assert len(table.loads) == 1


def test_changes_reach_the_book_within_one_refresh_and_an_outage_keeps_it() -> None:
    table, clock = Credentials(), Clock()
    kept, rotated = table.add("kept"), table.add("old")
    book = book_over(table, clock)
    book.refresh_if_due()
    table.add("new")
    table.change(rotated, callback_secret_hash="rotated")
    table.change(kept, enabled=False)
    book.refresh_if_due()  # within refresh_s: not asked yet
    assert book.get(("daraja", "new")) is None
    clock.now += 1
    book.refresh_if_due()
    assert table.loads[-1] is not None  # only what changed was asked for
    assert book.get(("daraja", "new")) == "policy:new"
    assert book.get(("daraja", "rotated")) == "policy:rotated"
    assert book.get(("daraja", "old")) is None  # the rotated-out secret stops at once
    assert book.get(("daraja", "kept")) is None  # disabled
    table.down = True
    clock.now += 1
    book.refresh_if_due()
    assert book.get(("daraja", "new")) == "policy:new"


def test_a_book_too_big_is_incomplete_so_misses_are_looked_up() -> None:
    table, clock = Credentials(), Clock()
    for i in range(5):
        table.add(f"s{i}")
    book = book_over(table, clock, max_entries=3)
    book.refresh_if_due()
    assert not book.complete


@PROPERTY
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["add", "disable", "enable", "rotate", "tick"]), st.integers(0, 9)
        ),
        max_size=60,
    )
)
def test_after_a_refresh_the_book_is_exactly_the_enabled_credentials(
    steps: list[tuple[str, int]],
) -> None:
    table, clock = Credentials(), Clock()
    book = book_over(table, clock)
    book.refresh_if_due()
    for action, n in steps:
        rows = list(table.rows.values())
        if action == "add" or not rows:
            table.add(uuid.uuid4().hex)
        elif action == "disable":
            table.change(rows[n % len(rows)], enabled=False)
        elif action == "enable":
            table.change(rows[n % len(rows)], enabled=True)
        elif action == "rotate":
            table.change(rows[n % len(rows)], callback_secret_hash=uuid.uuid4().hex)
        else:
            clock.now += 1
            book.refresh_if_due()
    clock.now += 1
    book.refresh_if_due()
    enabled = {("daraja", r.callback_secret_hash) for r in table.rows.values() if r.enabled}
    assert {k for k in enabled if book.knows(k)} == enabled
    assert book.stats()["known"] == len(enabled)


def test_a_book_of_exactly_its_size_stays_complete_through_refreshes() -> None:
    table, clock = Credentials(), Clock()
    for i in range(3):
        table.add(f"s{i}")
    book = book_over(table, clock, max_entries=3)
    book.refresh_if_due()
    clock.now += 1
    book.refresh_if_due()
    assert book.lookup(("daraja", "s0")) == ("policy:s0", True)
    assert book.lookup(("daraja", "junk")) == (None, True)


def test_an_outage_is_tried_again_a_beat_after_the_failed_try_ended() -> None:
    table, clock = Credentials(), Clock()
    book = book_over(table, clock)
    book.refresh_if_due()
    table.down = True
    clock.now += 1

    def slow_failure(since: datetime | None, limit: int) -> Changes[str]:
        clock.now += 5  # a connect timeout
        return table.load(since, limit)

    book._load = slow_failure
    book.refresh_if_due()
    tries = len(table.loads)
    book.refresh_if_due()  # right after the slow failure: not again yet
    assert len(table.loads) == tries

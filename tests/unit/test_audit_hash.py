"""The audit chain's hashing and checking, without a database."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.audit import (
    GENESIS,
    GENESIS_HASH,
    AuditEntry,
    ChainHead,
    ProblemKind,
    SealedRow,
    canonical_entry,
    chain_hash,
    head_of,
    link,
    walk,
)
from tests.unit.properties import PROPERTY

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.integers(min_value=1, max_value=2**63 - 1),
    "seq": st.integers(min_value=1, max_value=2**63 - 1),
    "at": st.datetimes(timezones=st.just(UTC)),
    "actor": st.text(max_size=100),
    "action": st.text(max_size=64),
    "subject_type": st.text(max_size=32),
    "subject_id": st.text(max_size=64),
    "detail": st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    "request_id": st.none() | st.text(max_size=64),
}
entries = st.builds(AuditEntry, **FIELDS)
hashes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)

ENTRY = AuditEntry(
    id=7,
    seq=3,
    at=datetime(2026, 11, 22, 7, 3, 23, 761165, tzinfo=UTC),
    actor="worker",
    action="payment.succeeded",
    subject_type="payment",
    subject_id="c0ffee",
    detail={"z": "ü", "a": [1, 2.5]},
    request_id=None,
)


def chain_of(count: int) -> list[SealedRow]:
    rows, head = [], GENESIS
    for n in range(1, count + 1):
        row = link(head, dataclasses.replace(ENTRY, id=100 + n, seq=n))
        rows.append(row)
        head = head_of(row)
    return rows


# --- the encoding ----------------------------------------------------------------------------


def test_the_canonical_encoding_is_the_documented_one() -> None:
    assert (
        canonical_entry(ENTRY)
        == (
            '{"action":"payment.succeeded","actor":"worker","at":"2026-11-22T07:03:23.761165+00:00",'
            '"detail":{"a":[1,2.5],"z":"ü"},"id":7,"request_id":null,"seq":3,'
            '"subject_id":"c0ffee","subject_type":"payment"}'
        ).encode()
    )


def test_the_hash_is_sha256_of_prev_hash_then_the_encoding_and_stays_pinned() -> None:
    expected = hashlib.sha256(GENESIS_HASH.encode() + canonical_entry(ENTRY)).hexdigest()

    assert chain_hash(GENESIS_HASH, ENTRY) == expected
    assert expected == "6ec8c877d48890477707b0e91c1d4a6bf7e9631de30a596d6af0653b24c040a0"


@PROPERTY
@given(entries, hashes)
def test_hashing_is_deterministic(entry: AuditEntry, prev_hash: str) -> None:
    again = dataclasses.replace(entry, detail=dict(reversed(list(entry.detail.items()))))
    assert chain_hash(prev_hash, entry) == chain_hash(prev_hash, again)
    assert len(chain_hash(prev_hash, entry)) == 64


@PROPERTY
@given(entries, st.sampled_from(sorted(FIELDS)), st.data())
def test_any_change_to_any_field_changes_the_hash(
    entry: AuditEntry, name: str, data: st.DataObject
) -> None:
    value = data.draw(FIELDS[name].filter(lambda v: v != getattr(entry, name)), label=name)
    edited = dataclasses.replace(entry, **{name: value})
    assert chain_hash(GENESIS_HASH, edited) != chain_hash(GENESIS_HASH, entry)


@PROPERTY
@given(entries, hashes, hashes)
def test_the_hash_depends_on_the_previous_hash(entry: AuditEntry, one: str, other: str) -> None:
    assert (chain_hash(one, entry) == chain_hash(other, entry)) == (one == other)


def test_the_same_instant_in_another_zone_hashes_the_same() -> None:
    nairobi = ENTRY.at.astimezone(timezone(timedelta(hours=3)))
    assert chain_hash(GENESIS_HASH, dataclasses.replace(ENTRY, at=nairobi)) == chain_hash(
        GENESIS_HASH, ENTRY
    )


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_entry(dataclasses.replace(ENTRY, at=datetime(2026, 1, 1)))


# --- chaining --------------------------------------------------------------------------------


def test_each_hash_links_to_the_previous_one() -> None:
    rows = chain_of(5)

    assert rows[0].prev_hash == GENESIS_HASH
    for previous, row in itertools.pairwise(rows):
        assert row.prev_hash == previous.hash
        assert row.hash == chain_hash(previous.hash or "", row.entry)


def test_a_seq_that_does_not_follow_the_head_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot follow"):
        link(ChainHead(seq=4, hash=GENESIS_HASH), dataclasses.replace(ENTRY, seq=6))


def test_an_untouched_chain_is_intact() -> None:
    rows = chain_of(5)

    report = walk(rows, head_of(rows[-1]), unsealed=2)

    assert report.intact
    assert (report.sealed, report.unsealed, report.problems) == (5, 2, ())


def test_an_empty_chain_without_head_is_intact() -> None:
    assert walk([], None, unsealed=0).intact


# --- what the walk reports -------------------------------------------------------------------


def kinds(rows: list[SealedRow], head: ChainHead | None) -> list[tuple[ProblemKind, int | None]]:
    return [(p.kind, p.record_id or p.seq) for p in walk(rows, head, unsealed=0).problems]


def test_an_edited_row_is_reported_with_its_id() -> None:
    rows = chain_of(5)
    head = head_of(rows[-1])
    rows[2] = dataclasses.replace(rows[2], entry=dataclasses.replace(rows[2].entry, actor="eve"))

    assert kinds(rows, head) == [(ProblemKind.EDITED, 103)]


def test_an_edited_row_whose_hash_was_recomputed_is_still_caught() -> None:
    rows = chain_of(5)
    head = head_of(rows[-1])
    rows[2] = link(head_of(rows[1]), dataclasses.replace(rows[2].entry, actor="eve"))

    assert kinds(rows, head) == [(ProblemKind.EDITED, 103)]


def test_a_deleted_middle_row_is_reported_as_missing_seq() -> None:
    rows = chain_of(5)
    head = head_of(rows[-1])
    del rows[2]

    assert kinds(rows, head) == [(ProblemKind.DELETED, 3)]


def test_a_deleted_tail_is_reported_by_the_head() -> None:
    rows = chain_of(5)
    head = head_of(rows[-1])
    del rows[-1]

    assert kinds(rows, head) == [(ProblemKind.HEAD_MISMATCH, 5)]


def test_a_missing_head_and_an_edited_head_are_reported() -> None:
    rows = chain_of(3)

    assert kinds(rows, None) == [(ProblemKind.HEAD_MISMATCH, None)]
    assert kinds(rows, ChainHead(3, GENESIS_HASH)) == [(ProblemKind.HEAD_MISMATCH, 3)]
    assert kinds(rows, ChainHead(2, rows[1].hash or "")) == [(ProblemKind.HEAD_MISMATCH, 2)]


def test_every_problem_is_reported_not_only_the_first() -> None:
    rows = chain_of(8)
    head = head_of(rows[-1])
    rows[1] = dataclasses.replace(rows[1], entry=dataclasses.replace(rows[1].entry, detail={}))
    del rows[4]
    del rows[-1]

    assert kinds(rows, head) == [
        (ProblemKind.EDITED, 102),
        (ProblemKind.DELETED, 5),
        (ProblemKind.HEAD_MISMATCH, 8),
    ]

"""``GET /ops/analytics`` over real HTTP to the ingress process, against seeded payments.

Payments of two merchants on two gateways (KES and USD) are written straight to
PostgreSQL in June 2021, a window no other test uses; every figure the endpoint
answers is recomputed here in Python from what was seeded, and the query plan is
checked to read the window through an index.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from shared.analytics import ROW_FIELDS, analytics_statement
from shared.crypto import CredentialCipher
from shared.db.models import PaymentIntent
from shared.db.session import Database
from shared.merchants import issue_api_key
from shared.settings import Settings
from tests.conftest import ApiClient, make_merchant

pytestmark = pytest.mark.usefixtures("ingress_server")

START = datetime(2021, 6, 1, tzinfo=UTC)
END = datetime(2021, 6, 4, tzinfo=UTC)
WINDOW = {"from": "2021-06-01T00:00:00Z", "to": "2021-06-04T00:00:00+00:00"}
FINAL = ("succeeded", "failed", "cancelled", "expired")
UNSUCCESSFUL = ("failed", "cancelled", "expired")
# Distinct first letters: the same order bytewise and in any collation.
CODES = (
    "declined",
    "insufficient_funds",
    "timeout",
    "wrong_pin",
    "limit_exceeded",
    "cancelled_by_user",
    "expired_prompt",
)
LANES = (("daraja", "KES"), ("intasend", "KES"), ("intasend", "USD"))


@dataclass(frozen=True)
class Seeded:
    merchant_id: uuid.UUID
    gateway: str
    currency: str
    status: str
    amount_minor: int
    fee_minor: int | None
    refunded_minor: int
    failure_code: str | None
    accepted_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class World:
    payments: list[Seeded]
    merchants: tuple[uuid.UUID, uuid.UUID]
    operator_key: str
    merchant_keys: tuple[str, str]


def _key(db: Database, settings: Settings, merchant_id: uuid.UUID | None, *scopes: str) -> str:
    with db.transaction() as session:
        pepper = settings.secret_key.get_secret_value().encode()
        return issue_api_key(session, pepper, merchant_id, scopes)


def _payments(merchant_ids: tuple[uuid.UUID, uuid.UUID]) -> list[Seeded]:
    rng = random.Random(20210601)
    moments = [START + timedelta(microseconds=rng.randrange(3 * 86400 * 10**6)) for _ in range(420)]
    # The window's edges: its first instant is in, its end and just before its start are out.
    moments += [START, END, START - timedelta(microseconds=1), END - timedelta(microseconds=1)]
    moments += [START + timedelta(hours=h) for h in (1, 2, 25, 49)]  # on bucket boundaries
    payments = []
    for i, accepted_at in enumerate(moments):
        gateway, currency = LANES[i % len(LANES)]
        status = rng.choices(
            ("succeeded", "failed", "cancelled", "expired", "submitted", "created"),
            weights=(50, 20, 8, 8, 6, 3),
        )[0]
        amount = rng.randrange(100, 500_000)
        finished = None
        if status in FINAL and rng.random() > 0.03:  # a few final ones without a finish time
            finished = accepted_at + timedelta(microseconds=rng.randrange(200_000, 90 * 10**6))
        code = None
        if status in UNSUCCESSFUL and rng.random() > 0.1:
            code = rng.choices(CODES, weights=(9, 7, 6, 5, 4, 2, 1))[0]
        succeeded = status == "succeeded"
        payments.append(
            Seeded(
                merchant_id=merchant_ids[1 if i % 5 == 0 else 0],
                gateway=gateway,
                currency=currency,
                status=status,
                amount_minor=amount,
                fee_minor=(
                    None if not succeeded or rng.random() < 0.2 else rng.randrange(0, amount // 20)
                ),
                refunded_minor=rng.choice((0, 0, 0, amount, amount // 3)) if succeeded else 0,
                failure_code=code,
                accepted_at=accepted_at,
                finished_at=finished,
            )
        )
    return payments


@pytest.fixture(scope="module")
def world(db: Database, settings: Settings, cipher: CredentialCipher) -> World:
    merchants = (
        make_merchant(db, settings, cipher).id,
        make_merchant(db, settings, cipher).id,
    )
    payments = _payments(merchants)
    with db.transaction() as session:
        for i, p in enumerate(payments):
            session.add(
                PaymentIntent(
                    id=uuid.uuid4(),
                    merchant_id=p.merchant_id,
                    idempotency_key=f"analytics-{i}",
                    request_hash="seed",
                    gateway=p.gateway,
                    amount_minor=p.amount_minor,
                    currency=p.currency,
                    phone=f"2547{i:08d}",
                    reference=f"analytics-{i}",
                    status=p.status,
                    fee_minor=p.fee_minor,
                    refund_reserved_minor=p.refunded_minor,
                    refunded_minor=p.refunded_minor,
                    failure_code=p.failure_code,
                    accepted_at=p.accepted_at,
                    finished_at=p.finished_at,
                )
            )
    with db.transaction() as session:
        in_window = session.scalar(
            select(func.count())
            .select_from(PaymentIntent)
            .where(PaymentIntent.accepted_at >= START - timedelta(days=1))
            .where(PaymentIntent.accepted_at < END + timedelta(days=1))
        )
    assert in_window == len(payments)  # nothing else of the suite lives in this window
    return World(
        payments=payments,
        merchants=merchants,
        operator_key=_key(db, settings, None, "ops:read"),
        merchant_keys=(
            _key(db, settings, merchants[0], "ops:read"),
            _key(db, settings, merchants[1], "ops:read"),
        ),
    )


# The independent recomputation: plain Python over what was seeded.


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's ``percentile_cont``: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def figures(payments: list[Seeded]) -> dict[str, Any]:
    by_status: dict[str, list[Seeded]] = defaultdict(list)
    for p in payments:
        by_status[p.status].append(p)
    final = [p for p in payments if p.status in FINAL]
    pending = [p for p in payments if p.status not in FINAL]
    succeeded = by_status["succeeded"]
    gross = sum(p.amount_minor for p in succeeded)
    fees = sum(p.fee_minor or 0 for p in succeeded)
    elapsed = [
        ((p.finished_at - p.accepted_at) // timedelta(microseconds=1)) / 1000
        for p in final
        if p.finished_at is not None
    ]
    codes = Counter(p.failure_code for p in payments if p.status in UNSUCCESSFUL and p.failure_code)
    top = sorted(codes.items(), key=lambda item: (-item[1], item[0]))[:5]
    result: dict[str, Any] = {"count": len(payments)}
    for status in FINAL:
        result[f"{status}_count"] = len(by_status[status])
        result[f"{status}_minor"] = sum(p.amount_minor for p in by_status[status])
    result |= {
        "pending_count": len(pending),
        "pending_minor": sum(p.amount_minor for p in pending),
        "success_rate": len(succeeded) / len(final) if final else None,
        "gross_minor": gross,
        "fees_minor": fees,
        "net_minor": gross - fees,
        "refunds_minor": sum(p.refunded_minor for p in payments),
        "processing_p50_ms": percentile_cont(elapsed, 0.5),
        "processing_p95_ms": percentile_cont(elapsed, 0.95),
        "top_failures": [{"code": code, "count": n} for code, n in top],
    }
    return result


def bucket_of(moment: datetime, bucket: str, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    hour = local.hour if bucket == "hour" else 0
    return datetime(local.year, local.month, local.day, hour, tzinfo=zone)


def expected(
    payments: Iterable[Seeded],
    *,
    start: datetime = START,
    end: datetime = END,
    bucket: str = "day",
    tz: str = "UTC",
    gateway: str | None = None,
    merchant_id: uuid.UUID | None = None,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    zone = ZoneInfo(tz)
    chosen = [
        p
        for p in payments
        if start <= p.accepted_at < end
        and gateway in (None, p.gateway)
        and merchant_id in (None, p.merchant_id)
    ]
    groups: dict[tuple[datetime, str, str], list[Seeded]] = defaultdict(list)
    currencies: dict[str, list[Seeded]] = defaultdict(list)
    for p in chosen:
        groups[(bucket_of(p.accepted_at, bucket, zone), p.gateway, p.currency)].append(p)
        currencies[p.currency].append(p)
    rows = [
        {"bucket": at.isoformat(), "gateway": g, "currency": c, **figures(group)}
        for (at, g, c), group in sorted(groups.items())
    ]
    totals = {c: {"currency": c, **figures(group)} for c, group in sorted(currencies.items())}
    return rows, totals


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Equal figure by figure; floats to within rounding (the same arithmetic, done twice)."""
    assert list(got) == list(want)
    for name, value in want.items():
        if isinstance(value, float):
            assert got[name] == pytest.approx(value, rel=1e-12), name
        else:
            assert got[name] == value, name


def assert_rows(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [(r["bucket"], r["gateway"], r["currency"]) for r in got] == [
        (r["bucket"], r["gateway"], r["currency"]) for r in want
    ]
    for got_row, want_row in zip(got, want, strict=True):
        assert_same(got_row, want_row)


def bearer(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def analytics(
    api: ApiClient, key: str, path: str = "/ops/analytics", **params: str
) -> requests.Response:
    return api.get(path, params={**WINDOW, **params}, headers=bearer(key))


# The figures.


def test_an_operator_sees_every_figure_of_every_merchant_by_day(
    api: ApiClient, world: World
) -> None:
    response = analytics(api, world.operator_key)

    assert response.status_code == 200, response.text
    body = response.json()
    rows, totals = expected(world.payments)
    assert body["from"] == "2021-06-01T00:00:00+00:00"
    assert body["to"] == "2021-06-04T00:00:00+00:00"
    assert (body["bucket"], body["tz"], body["merchant"]) == ("day", "UTC", None)
    assert len(rows) == 3 * len(LANES)  # three days, three (gateway, currency) lanes
    assert_rows(body["rows"], rows)
    assert list(body["totals"]) == ["KES", "USD"]
    for currency, want in totals.items():
        assert_same(body["totals"][currency], want)
    # The seed reaches what the figures are about.
    assert all(row["top_failures"] for row in body["rows"])
    assert any(len(row["top_failures"]) == 5 for row in body["rows"])
    assert sum(t["count"] for t in body["totals"].values()) == len(world.payments) - 2


def test_hour_buckets_for_one_gateway_and_one_merchant(api: ApiClient, world: World) -> None:
    merchant_id = world.merchants[0]
    response = analytics(
        api, world.operator_key, bucket="hour", gateway="intasend", merchant=str(merchant_id)
    )

    assert response.status_code == 200, response.text
    body = response.json()
    rows, totals = expected(
        world.payments, bucket="hour", gateway="intasend", merchant_id=merchant_id
    )
    assert len(rows) > 48
    assert {row["gateway"] for row in body["rows"]} == {"intasend"}
    assert body["merchant"] == str(merchant_id)
    assert_rows(body["rows"], rows)
    assert body["totals"].keys() == totals.keys()
    for currency, want in totals.items():
        assert_same(body["totals"][currency], want)


def test_days_in_a_time_zone_start_at_its_midnight(api: ApiClient, world: World) -> None:
    window = {"from": "2021-06-01", "to": "2021-06-04"}  # dates: midnight in tz
    response = api.get(
        "/ops/analytics",
        params={**window, "tz": "Africa/Nairobi", "gateway": "daraja"},
        headers=bearer(world.operator_key),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    zone = ZoneInfo("Africa/Nairobi")
    start, end = datetime(2021, 6, 1, tzinfo=zone), datetime(2021, 6, 4, tzinfo=zone)
    rows, totals = expected(
        world.payments, start=start, end=end, tz="Africa/Nairobi", gateway="daraja"
    )
    assert body["from"] == "2021-06-01T00:00:00+03:00"
    assert [row["bucket"] for row in body["rows"]] == [
        "2021-06-01T00:00:00+03:00",
        "2021-06-02T00:00:00+03:00",
        "2021-06-03T00:00:00+03:00",
    ]
    assert_rows(body["rows"], rows)
    assert_same(body["totals"]["KES"], totals["KES"])


# The CSV export.


def parse_csv(content: str) -> list[dict[str, Any]]:
    rows = []
    for record in csv.DictReader(io.StringIO(content)):
        row: dict[str, Any] = {}
        for name in ROW_FIELDS:
            cell = record[name]
            if name in ("bucket", "gateway", "currency"):
                row[name] = cell
            elif name == "top_failures":
                pairs = [part.rsplit(":", 1) for part in cell.split(";") if part]
                row[name] = [{"code": code, "count": int(n)} for code, n in pairs]
            elif name == "success_rate" or name.startswith("processing_"):
                row[name] = float(cell) if cell else None
            else:
                row[name] = int(cell)
        rows.append(row)
    return rows


@pytest.mark.parametrize("how", ["accept", "path"])
def test_the_csv_export_parses_back_to_the_same_figures(
    api: ApiClient, world: World, how: str
) -> None:
    params = {**WINDOW, "bucket": "hour"}
    if how == "accept":
        response = api.get(
            "/ops/analytics", params=params, headers=bearer(world.operator_key, Accept="text/csv")
        )
    else:
        response = api.get("/ops/analytics.csv", params=params, headers=bearer(world.operator_key))

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0] == ",".join(ROW_FIELDS)
    rows, _ = expected(world.payments, bucket="hour")
    parsed = parse_csv(response.text)
    assert_rows(parsed, rows)
    # Nulls are empty cells, and a percentile or a rate keeps every digit it had in JSON.
    as_json = analytics(api, world.operator_key, bucket="hour").json()["rows"]
    assert parsed == as_json


# Who sees what.


def test_a_merchant_key_sees_its_own_merchant_only(api: ApiClient, world: World) -> None:
    mine, theirs = world.merchants
    own = analytics(api, world.merchant_keys[0])
    named = analytics(api, world.merchant_keys[0], merchant=str(mine))
    other = analytics(api, world.merchant_keys[0], merchant=str(theirs))
    as_csv = analytics(api, world.merchant_keys[1], path="/ops/analytics.csv")

    assert own.status_code == 200, own.text
    rows, totals = expected(world.payments, merchant_id=mine)
    assert own.json()["merchant"] == str(mine)
    assert_rows(own.json()["rows"], rows)
    for currency, want in totals.items():
        assert_same(own.json()["totals"][currency], want)
    assert named.json() == own.json()
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "forbidden"
    assert other.json()["error"]["param"] == "merchant"
    assert_rows(parse_csv(as_csv.text), expected(world.payments, merchant_id=theirs)[0])


def test_a_key_without_ops_read_is_refused(
    api: ApiClient, world: World, db: Database, settings: Settings
) -> None:
    payments_key = _key(db, settings, world.merchants[0], "payments:read")

    assert analytics(api, payments_key).status_code == 403
    assert api.get("/ops/analytics", params=WINDOW).status_code == 401
    assert api.get("/ops/analytics.csv", params=WINDOW).status_code == 401


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"from": "2021-06-04T00:00:00Z", "to": "2021-06-01T00:00:00Z"}, "to"),
        ({"from": "2021-06-01T00:00:00Z", "to": "2021-06-01T00:00:00Z"}, "to"),
        ({"from": "2020-01-01T00:00:00Z", "to": "2021-01-02T00:00:00Z"}, "to"),
        ({"bucket": "week"}, "bucket"),
        ({"bucket": "DAY"}, "bucket"),
        ({"gateway": "paypal"}, "gateway"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2021-13-01"}, "from"),
        ({"from": "2021-06-01T00:00:00"}, "from"),  # no zone
        ({"to": "2021-06-04T00:00:00+25:00"}, "to"),
        ({"to": "2021-06-04T00:00:00Z\x00"}, "to"),
        ({"from": ""}, "from"),
        ({"merchant": "not-a-uuid"}, "merchant"),
        ({"tz": "Mars/Olympus_Mons"}, "tz"),
        ({"tz": "Africa/Nairobi\x00"}, "tz"),
    ],
)
def test_bad_parameters_are_refused_with_a_code_never_a_500(
    api: ApiClient, world: World, params: dict[str, str], param: str
) -> None:
    for path in ("/ops/analytics", "/ops/analytics.csv"):
        response = api.get(path, params={**WINDOW, **params}, headers=bearer(world.operator_key))

        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_request", param)


def test_a_missing_window_is_refused(api: ApiClient, world: World) -> None:
    response = api.get("/ops/analytics", headers=bearer(world.operator_key))

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "from"


@pytest.mark.parametrize(
    "params",
    [
        {"from": "0001-01-01T00:00:00+05:00", "to": "0001-12-31T00:00:00Z"},
        {"from": "9999-01-01", "to": "9999-12-31", "tz": "America/Los_Angeles"},
        {"from": "2020-01-01T00:00:00Z", "to": "2021-01-01T00:00:00Z"},  # 366 days
    ],
)
def test_far_or_full_windows_answer_without_error(
    api: ApiClient, world: World, params: dict[str, str]
) -> None:
    response = api.get("/ops/analytics", params=params, headers=bearer(world.operator_key))

    assert response.status_code == 200, response.text
    assert response.json()["rows"] == []
    assert response.json()["totals"] == {}


# Anything at all in the parameters: a refusal or an answer, never a 5xx.

PARAM_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["2021-06-01", "2021-06-01T00:00:00Z", "0001-01-01", "9999-12-31", "Z"]),
    st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
    st.sampled_from(
        ["hour", "day", "daraja", "intasend", "UTC", "Asia/Kolkata", str(uuid.uuid4())]
    ),
)


@hypothesis_settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    params=st.dictionaries(
        st.sampled_from(["from", "to", "bucket", "tz", "gateway", "merchant"]), PARAM_VALUES
    ),
    csv_path=st.booleans(),
)
def test_any_parameters_get_an_answer_or_a_catalogued_refusal(
    api: ApiClient, world: World, params: dict[str, str], csv_path: bool
) -> None:
    path = "/ops/analytics.csv" if csv_path else "/ops/analytics"
    response = api.get(path, params={**WINDOW, **params}, headers=bearer(world.operator_key))

    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "invalid_request"


# The plan.


def _plan_nodes(plan: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("scoped", [False, True])
def test_the_day_query_reads_the_window_through_an_index(
    db: Database, world: World, scoped: bool
) -> None:
    merchant_id = world.merchants[0]
    statement = analytics_statement(
        start=datetime(2016, 3, 1, tzinfo=UTC),
        end=datetime(2016, 3, 8, tzinfo=UTC),
        bucket="day",
        merchant_id=merchant_id if scoped else None,
    )
    with db.engine.connect() as conn:
        transaction = conn.begin()
        try:
            # Ten years of payments, fresh statistics; all rolled back afterwards.
            conn.execute(
                text(
                    "INSERT INTO payment_intents (id, merchant_id, idempotency_key, request_hash,"
                    " gateway, amount_minor, currency, phone, reference, status, accepted_at,"
                    " finished_at)"
                    " SELECT gen_random_uuid(),"
                    " CASE WHEN n % 4 = 0 THEN CAST(:mine AS uuid) ELSE CAST(:theirs AS uuid) END,"
                    " 'plan-' || n, 'seed', CASE WHEN n % 2 = 0 THEN 'daraja' ELSE 'intasend' END,"
                    " 100 + n % 1000, 'KES', '254700000000', 'plan-' || n, 'failed',"
                    " timestamptz '2012-01-01' + n * interval '53 minutes',"
                    " timestamptz '2012-01-01' + n * interval '53 minutes' + interval '4 seconds'"
                    " FROM generate_series(1, 100000) AS n"
                ),
                {"mine": merchant_id, "theirs": world.merchants[1]},
            )
            conn.execute(text("ANALYZE payment_intents"))
            compiled = statement.compile(
                dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
            )
            explained = conn.exec_driver_sql(
                f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params
            ).scalar_one()
        finally:
            transaction.rollback()

    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    reads = [node for node in _plan_nodes(plan) if node.get("Relation Name") == "payment_intents"]
    indexes = {node.get("Index Name") for node in _plan_nodes(plan)}
    assert reads, plan
    assert not [node for node in reads if "Seq Scan" in node["Node Type"]], plan
    assert indexes & {"ix_payment_intents_accepted_at", "ix_payment_intents_merchant_accepted"}

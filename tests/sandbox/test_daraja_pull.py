"""The Daraja simulator's own records: Pull Transactions, the portal statement, discrepancies."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import falcon.testing
import pytest

from sandbox.daraja import ids
from sandbox.daraja.statement import STATEMENT_COLUMNS
from shared.gateways.base import Outcome
from shared.reconciliation.statement import parse_statement
from tests.sandbox.helpers import SHORTCODE, Daraja, FakeClock, SimFactory, password

QUERY = "/pulltransactions/v1/query"
REGISTER = "/pulltransactions/v1/register"
DISCREPANCIES = "/statement/discrepancies"
ROW_KEYS = {
    "transactionId",
    "trxDate",
    "msisdn",
    "sender",
    "transactiontype",
    "billreference",
    "amount",
    "organizationname",
}
CANCELLED = "254700001032"
LAYOUT = "%Y-%m-%d %H:%M:%S"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def daraja(make_sim: SimFactory, clock: FakeClock) -> Daraja:
    return Daraja(make_sim(clock=clock))


def text(moment: datetime) -> str:
    return moment.astimezone(ids.NAIROBI).strftime(LAYOUT)


def hour_around_now() -> tuple[datetime, datetime]:
    now = ids.nairobi_now()
    return now - timedelta(hours=1), now + timedelta(hours=1)


def pull(
    daraja: Daraja,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    **overrides: Any,
) -> falcon.testing.Result:
    around = hour_around_now()
    start, end = start or around[0], end or around[1]
    body = {
        "ShortCode": SHORTCODE,
        "StartDate": start if isinstance(start, str) else text(start),
        "EndDate": end if isinstance(end, str) else text(end),
        "OffSetValue": "0",
        **overrides,
    }
    return daraja.post(QUERY, body)


def rows(daraja: Daraja, **overrides: Any) -> list[dict[str, Any]]:
    answer = pull(daraja, **overrides)
    assert answer.status_code == 200, answer.json
    [page] = answer.json["Response"]
    assert isinstance(page, list)
    return page


def paid(daraja: Daraja, clock: FakeClock, **overrides: Any) -> str:
    """An accepted push whose outcome is due; its CheckoutRequestID."""
    checkout_id = daraja.accepted(**overrides)
    clock.advance(1)
    return checkout_id


def receipt_of(daraja: Daraja, checkout_id: str) -> str:
    transaction = daraja.sim.state.transaction(checkout_id)
    assert transaction is not None
    assert transaction.receipt is not None
    return transaction.receipt


def recorded(daraja: Daraja, kind: str) -> list[dict[str, Any]]:
    answer = daraja.client.simulate_get("/_sim/requests", params={"kind": kind})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json
    return found


def inject(daraja: Daraja, **body: Any) -> falcon.testing.Result:
    return daraja.control("POST", DISCREPANCIES, body)


def statement(daraja: Daraja, variant: str | None = None) -> list[dict[str, str]]:
    start, end = hour_around_now()
    params = {"shortcode": SHORTCODE, "from": start.isoformat(), "to": end.isoformat()}
    answer = daraja.client.simulate_get(
        "/_sim/statement.csv", params={**params, **({"variant": variant} if variant else {})}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.text)))


# -- Pull Transactions -----------------------------------------------------------------------


def test_pull_lists_the_shortcode_s_successful_payments_once_they_are_done(
    daraja: Daraja, clock: FakeClock
) -> None:
    daraja.scenario({"match": {"phone": "254711000222"}, "callback_delay_s": 600})
    daraja.control("POST", "/shortcodes", {"shortcode": 600000, "passkey": "pk"})
    first = daraja.accepted(Amount=1500, AccountReference="INV-001")
    daraja.accepted(PhoneNumber=CANCELLED, PartyA=CANCELLED)
    daraja.accepted(PhoneNumber="254711000222", PartyA="254711000222")  # not done for 10 min
    daraja.accepted(BusinessShortCode="600000", PartyB="600000", Password=password("600000", "pk"))
    assert rows(daraja) == []  # nothing is done before its outcome is due
    clock.advance(1)
    second = paid(daraja, clock, AccountReference="INV-002")

    answer = pull(daraja)

    assert answer.status_code == 200
    assert set(answer.json) == {"ResponseRefID", "ResponseCode", "ResponseMessage", "Response"}
    assert (answer.json["ResponseCode"], answer.json["ResponseMessage"]) == ("1000", "Success")
    [listed] = answer.json["Response"]
    assert sorted(row["transactionId"] for row in listed) == sorted(
        [receipt_of(daraja, first), receipt_of(daraja, second)]
    )
    assert listed == sorted(listed, key=lambda r: (r["trxDate"], r["transactionId"]))
    row, later = sorted(listed, key=lambda r: r["transactionId"] != receipt_of(daraja, first))
    assert set(row) == ROW_KEYS
    transaction = daraja.sim.state.transaction(first)
    assert transaction is not None
    completed = datetime.strptime(str(transaction.transaction_date), "%Y%m%d%H%M%S")
    assert row["trxDate"] == completed.strftime(LAYOUT)
    assert (row["msisdn"], row["billreference"], row["amount"]) == ("2547******78", "INV-001", 1500)
    assert row["transactiontype"] == "CustomerPayBillOnline"
    assert later["billreference"] == "INV-002"
    assert [(r["path"], r["status"]) for r in recorded(daraja, "pull")] == [(QUERY, 200)] * 2


def test_the_window_holds_its_start_and_its_end(daraja: Daraja, clock: FakeClock) -> None:
    receipt = receipt_of(daraja, paid(daraja, clock))
    [row] = rows(daraja)
    at = row["trxDate"]
    moment = datetime.strptime(at, LAYOUT).replace(tzinfo=ids.NAIROBI)
    second = timedelta(seconds=1)

    assert [r["transactionId"] for r in rows(daraja, StartDate=at, EndDate=at)] == [receipt]
    assert rows(daraja, StartDate=text(moment + second), EndDate=text(moment + 2 * second)) == []
    assert rows(daraja, StartDate=text(moment - 2 * second), EndDate=text(moment - second)) == []


def test_a_window_of_48_hours_is_answered_and_a_longer_one_refused(daraja: Daraja) -> None:
    end = ids.nairobi_now()

    assert pull(daraja, end - timedelta(hours=48), end).status_code == 200
    refused = pull(daraja, end - timedelta(hours=48, seconds=1), end)

    assert refused.status_code == 400
    assert set(refused.json) == {"requestId", "errorCode", "errorMessage"}
    assert refused.json["errorCode"] == "400.002.02"
    assert "48 hours" in refused.json["errorMessage"]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"StartDate": "yesterday"}, "StartDate"),
        ({"EndDate": "2026-13-01 00:00:00"}, "EndDate"),
        ({"OffSetValue": "x"}, "OffSetValue"),
        ({"OffSetValue": "-1"}, "OffSetValue"),
        ({"ShortCode": "999999"}, "ShortCode"),
        ({"StartDate": "2026-01-02 00:00:00", "EndDate": "2026-01-01 00:00:00"}, "before"),
    ],
)
def test_a_query_daraja_could_not_read_is_a_400_envelope(
    daraja: Daraja, overrides: dict[str, str], words: str
) -> None:
    answer = pull(daraja, **overrides)

    assert answer.status_code == 400
    assert answer.json["errorCode"] == "400.002.02"
    assert words in answer.json["errorMessage"]


def test_pull_wants_a_token_and_json_like_every_daraja_call(daraja: Daraja) -> None:
    body = {"ShortCode": SHORTCODE, "StartDate": "2026-01-01 00:00:00", "EndDate": "2026-01-01"}

    no_token = daraja.client.simulate_post(QUERY, json=body)
    wrong_token = daraja.post(QUERY, body, token="not-a-token")
    as_text = daraja.post(QUERY, "ShortCode=174379", **{"Content-Type": "text/plain"})

    assert (no_token.status_code, no_token.json["errorCode"]) == (404, "404.001.03")
    assert (wrong_token.status_code, wrong_token.json["errorCode"]) == (404, "404.001.03")
    assert (as_text.status_code, as_text.json["errorCode"]) == (400, "400.002.02")


def test_pages_are_1000_rows_from_the_offset(daraja: Daraja) -> None:
    made = [
        inject(
            daraja,
            kind="gateway_only",
            shortcode=SHORTCODE,
            amount=n + 1,
            phone="254712000111",
            account_reference=f"R{n}",
        ).json["transactionId"]
        for n in range(1_001)
    ]

    first = rows(daraja)
    second = rows(daraja, OffSetValue="1000")
    beyond = rows(daraja, OffSetValue="1001")

    assert (len(first), len(second), beyond) == (1_000, 1, [])
    assert sorted(r["transactionId"] for r in first + second) == sorted(made)
    assert rows(daraja, OffSetValue="999")[0] == first[-1]


def test_register_answers_success(daraja: Daraja) -> None:
    body = {
        "ShortCode": SHORTCODE,
        "RequestType": "Pull",
        "NominatedNumber": "254712345678",
        "CallBackURL": "https://example.com/pull",
    }

    answer = daraja.post(REGISTER, body)

    assert answer.status_code == 200
    assert (answer.json["ResponseStatus"], answer.json["ShortCode"]) == ("1000", SHORTCODE)
    assert answer.json["ResponseRefID"]
    assert daraja.client.simulate_post(REGISTER, json=body).status_code == 404  # no token
    assert [r["status"] for r in recorded(daraja, "pullregister")] == [200, 404]


# -- discrepancies ---------------------------------------------------------------------------


def test_amount_changed_shows_in_the_lists_only(daraja: Daraja, clock: FakeClock) -> None:
    checkout_id = paid(daraja, clock, Amount=100)

    answer = inject(daraja, kind="amount_changed", checkout_request_id=checkout_id, amount=90)

    assert answer.status_code == 201
    assert answer.json == {
        "kind": "amount_changed",
        "checkout_request_id": checkout_id,
        "amount": 90,
    }
    [row] = rows(daraja)
    assert row["amount"] == 90
    [line] = statement(daraja)
    assert line["Paid In"] == "90.00"
    assert daraja.control("GET", f"/transactions/{checkout_id}").json["Amount"] == 100


def test_receipt_repeated_shows_the_row_twice(daraja: Daraja, clock: FakeClock) -> None:
    checkout_id = paid(daraja, clock)
    other = paid(daraja, clock)

    inject(daraja, kind="receipt_repeated", checkout_request_id=checkout_id)

    listed = rows(daraja)
    assert sorted(r["transactionId"] for r in listed) == sorted(
        [receipt_of(daraja, checkout_id)] * 2 + [receipt_of(daraja, other)]
    )
    twice = [r for r in listed if r["transactionId"] == receipt_of(daraja, checkout_id)]
    assert twice[0] == twice[1]
    assert [line["Receipt No."] for line in statement(daraja)] == [
        r["transactionId"] for r in listed
    ]


def test_dropped_leaves_the_payment_out_of_the_lists(daraja: Daraja, clock: FakeClock) -> None:
    kept, dropped = paid(daraja, clock), paid(daraja, clock)

    inject(daraja, kind="dropped", checkout_request_id=dropped)

    assert [r["transactionId"] for r in rows(daraja)] == [receipt_of(daraja, kept)]
    assert [line["Receipt No."] for line in statement(daraja)] == [receipt_of(daraja, kept)]
    assert daraja.query(dropped).json["ResultCode"] == "0"  # the status API still knows it


def test_gateway_only_is_a_payment_only_the_lists_show(daraja: Daraja, clock: FakeClock) -> None:
    ours = paid(daraja, clock)
    before = ids.nairobi_now().replace(microsecond=0)

    answer = inject(
        daraja,
        kind="gateway_only",
        shortcode=SHORTCODE,
        amount=250,
        phone="254712000111",
        account_reference="WALK-IN",
    )

    assert answer.status_code == 201
    made = answer.json
    assert set(made) >= ROW_KEYS
    assert (made["amount"], made["msisdn"], made["billreference"]) == (
        250,
        "2547******11",
        "WALK-IN",
    )
    assert made["transactionId"] != receipt_of(daraja, ours)
    assert len(made["transactionId"]) == 10
    completed = datetime.strptime(made["trxDate"], LAYOUT).replace(tzinfo=ids.NAIROBI)
    assert before <= completed <= ids.nairobi_now()
    listed = {r["transactionId"]: r for r in rows(daraja)}
    assert set(listed) == {receipt_of(daraja, ours), made["transactionId"]}
    assert set(listed[made["transactionId"]]) == ROW_KEYS
    assert len(daraja.control("GET", "/transactions").json) == 1  # no checkout request
    daraja.control("POST", "/shortcodes", {"shortcode": 600000, "passkey": "pk"})
    assert rows(daraja, ShortCode="600000") == []  # the shortcode's list, no other's


def test_clearing_or_resetting_forgets_every_discrepancy(daraja: Daraja, clock: FakeClock) -> None:
    checkout_id = paid(daraja, clock)
    baseline = rows(daraja)
    inject(daraja, kind="amount_changed", checkout_request_id=checkout_id, amount=1)
    inject(daraja, kind="receipt_repeated", checkout_request_id=checkout_id)
    only = dict(shortcode=SHORTCODE, amount=5, phone="254712000111", account_reference="X")
    inject(daraja, kind="gateway_only", **only)
    assert [d["kind"] for d in daraja.control("GET", DISCREPANCIES).json] == [
        "amount_changed",
        "receipt_repeated",
        "gateway_only",
    ]

    assert daraja.control("DELETE", DISCREPANCIES).status_code == 204

    assert rows(daraja) == baseline
    inject(daraja, kind="dropped", checkout_request_id=checkout_id)
    assert rows(daraja) == []
    assert daraja.control("POST", "/reset").status_code in (200, 204)
    assert daraja.control("GET", DISCREPANCIES).json == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "vanished", "checkout_request_id": "{known}"}, 400),
        ({"kind": "dropped"}, 404),
        ({"kind": "dropped", "checkout_request_id": "ws_CO_000"}, 404),
        ({"kind": "amount_changed", "checkout_request_id": "{known}"}, 400),
        ({"kind": "amount_changed", "checkout_request_id": "{known}", "amount": 1.5}, 400),
        ({"kind": "amount_changed", "checkout_request_id": "{known}", "amount": True}, 400),
        ({"kind": "gateway_only", "shortcode": SHORTCODE, "amount": 0, "phone": "2547"}, 400),
        ({"kind": "gateway_only", "shortcode": SHORTCODE, "amount": 1, "phone": "07x"}, 400),
        ({"kind": "gateway_only", "shortcode": "999999", "amount": 1, "phone": "2547"}, 400),
    ],
)
def test_a_discrepancy_the_simulator_cannot_make_is_refused(
    daraja: Daraja, clock: FakeClock, body: dict[str, Any], status: int
) -> None:
    known = paid(daraja, clock)
    filled = {k: (known if v == "{known}" else v) for k, v in body.items()}

    assert inject(daraja, **filled).status_code == status
    assert daraja.control("GET", DISCREPANCIES).json == []


# -- the organisation portal statement -------------------------------------------------------


def test_the_statement_has_the_portal_s_columns_and_one_line_a_payment(
    daraja: Daraja, clock: FakeClock
) -> None:
    checkout_id = paid(daraja, clock, Amount=1500, AccountReference="INV-001")
    daraja.accepted(PhoneNumber=CANCELLED, PartyA=CANCELLED)
    clock.advance(1)
    start, end = hour_around_now()
    raw = daraja.client.simulate_get(
        "/_sim/statement.csv",
        params={"shortcode": SHORTCODE, "from": start.isoformat(), "to": end.isoformat()},
    ).text

    assert next(csv.reader(io.StringIO(raw))) == list(STATEMENT_COLUMNS)
    [line] = statement(daraja)
    [row] = rows(daraja)
    assert line["Receipt No."] == receipt_of(daraja, checkout_id)
    assert (line["Completion Time"], line["Paid In"], line["Transaction Status"]) == (
        row["trxDate"],
        "1,500.00",
        "Completed",
    )
    assert (line["Other Party Info"], line["A/C No."], line["Withdrawn"]) == (
        "2547******78 - JOHN DOE",
        "INV-001",
        "",
    )
    initiated = datetime.strptime(line["Initiation Time"], LAYOUT)
    assert initiated <= datetime.strptime(line["Completion Time"], LAYOUT)


def test_the_short_variant_uses_other_headers_and_no_thousands_separator(
    daraja: Daraja, clock: FakeClock
) -> None:
    checkout_id = paid(daraja, clock, Amount=1500)

    [line] = statement(daraja, variant="short")

    assert {"Receipt No", "Date", "Paid In", "Account No."} <= set(line)
    assert not {"Receipt No.", "Completion Time", "A/C No."} & set(line)
    assert (line["Receipt No"], line["Paid In"]) == (receipt_of(daraja, checkout_id), "1500.00")


@pytest.mark.parametrize("variant", [None, "short"])
def test_both_statements_read_back_as_the_pull_list(
    daraja: Daraja, clock: FakeClock, variant: str | None
) -> None:
    paid(daraja, clock, Amount=1500, AccountReference="INV-001")
    repeated = paid(daraja, clock, Amount=20)
    inject(daraja, kind="receipt_repeated", checkout_request_id=repeated)
    inject(
        daraja,
        kind="gateway_only",
        shortcode=SHORTCODE,
        amount=250_000,
        phone="254712000111",
        account_reference="WALK-IN",
    )
    start, end = hour_around_now()
    params = {"shortcode": SHORTCODE, "from": start.isoformat(), "to": end.isoformat()}
    raw = daraja.client.simulate_get(
        "/_sim/statement.csv", params={**params, **({"variant": variant} if variant else {})}
    ).text

    parsed = parse_statement(raw)

    assert [
        (t.receipt, t.amount.amount_minor, t.completed_at, t.account_ref, t.phone) for t in parsed
    ] == [
        (
            r["transactionId"],
            r["amount"] * 100,
            datetime.strptime(r["trxDate"], LAYOUT).replace(tzinfo=ids.NAIROBI),
            r["billreference"],
            r["msisdn"],
        )
        for r in rows(daraja)
    ]
    assert {t.outcome for t in parsed} == {Outcome.SUCCEEDED}


def test_the_statement_window_is_read_in_nairobi_unless_it_says_otherwise(
    daraja: Daraja, clock: FakeClock
) -> None:
    paid(daraja, clock)
    [row] = rows(daraja)
    moment = datetime.strptime(row["trxDate"], LAYOUT)
    utc = (moment - timedelta(hours=3)).isoformat() + "+00:00"

    def lines(start: str, end: str) -> int:
        params = {"shortcode": SHORTCODE, "from": start, "to": end}
        answer = daraja.client.simulate_get("/_sim/statement.csv", params=params)
        assert answer.status_code == 200, answer.text
        return len(list(csv.DictReader(io.StringIO(answer.text))))

    assert lines(moment.isoformat(), moment.isoformat()) == 1
    assert lines(utc, utc) == 1
    assert lines((moment - timedelta(hours=3)).isoformat(), utc.replace("+00:00", "")) == 0
    bad = daraja.client.simulate_get(
        "/_sim/statement.csv", params={"shortcode": SHORTCODE, "from": "soon", "to": "later"}
    )
    assert bad.status_code == 400

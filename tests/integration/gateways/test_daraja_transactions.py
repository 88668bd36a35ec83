"""The Daraja adapter's Pull Transactions over real HTTP: against the sandbox's simulator
(pushes made through the adapter, then each discrepancy the list can show), and against
a stub for the answers the simulator does not give (errors, odd shapes, a deaf offset)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.domain.money import Money
from shared.gateways.base import (
    Capability,
    GatewayTransaction,
    GatewayUnavailable,
    Outcome,
    PaymentRequest,
    TransactionList,
)
from shared.gateways.daraja import DESCRIPTION
from shared.gateways.daraja.client import DarajaAdapter
from shared.gateways.daraja.pull import NAIROBI
from shared.gateways.daraja.stk import DarajaCredentials
from shared.gateways.description import GatewaySettings
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS
from tests.support.page_stub import Page, PageStub, StubRequest, serving
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

PHONE = "254712345678"
CANCELLED = "254700001032"
WAIT_S = 5.0
LAYOUT = "%Y-%m-%d %H:%M:%S"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def adapter(settings: Settings, sim: Simulator) -> DarajaAdapter:
    base_url = settings.gateway_settings("daraja").base_url
    return DarajaAdapter(GatewaySettings(base_url, connect_timeout_s=2, read_timeout_s=2))


@pytest.fixture
def credentials() -> DarajaCredentials:
    return DarajaCredentials.from_stored({**DARAJA_CREDENTIALS})


def request(phone: str = PHONE, amount_minor: int = 10_000) -> PaymentRequest:
    return PaymentRequest(
        payment_id=str(uuid.uuid4()),
        attempt_ref=str(uuid.uuid4()),
        amount=Money(amount_minor, "KES"),
        phone=phone,
        reference="ORDER-2026-000123",
        description=None,
        callback_url="http://127.0.0.1:9/callbacks/daraja/secret/attempt",
    )


def collect(
    adapter: DarajaAdapter,
    credentials: DarajaCredentials,
    phone: str = PHONE,
    amount_minor: int = 10_000,
) -> str:
    """A push through the adapter, waited until the STK query gives its outcome."""
    checkout_id = adapter.push(credentials, request(phone, amount_minor)).gateway_ref
    assert checkout_id is not None
    wait_until(
        lambda: adapter.query_status(credentials, checkout_id).verdict.outcome != Outcome.PENDING,
        timeout_s=WAIT_S,
        interval_s=0.05,
        what=f"{checkout_id} to finish",
    )
    return checkout_id


def window(minutes: float = 5) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(minutes=minutes), now + timedelta(minutes=minutes)


def listed(
    adapter: DarajaAdapter,
    credentials: DarajaCredentials,
    span: tuple[datetime, datetime] | None = None,
) -> list[GatewayTransaction]:
    return list(adapter.list_transactions(credentials, *(span or window())))


def receipts(transactions: list[GatewayTransaction]) -> list[str]:
    return sorted(t.receipt or "" for t in transactions)


def simulated(sim: Simulator, checkout_id: str) -> dict[str, Any]:
    [transaction] = [t for t in sim.transactions() if t["CheckoutRequestID"] == checkout_id]
    return transaction


def receipt_of(sim: Simulator, checkout_id: str) -> str:
    receipt = simulated(sim, checkout_id)["MpesaReceiptNumber"]
    assert isinstance(receipt, str)
    return receipt


# -- against the simulator -------------------------------------------------------------------


def test_the_description_lists_the_capability_the_adapter_has(adapter: DarajaAdapter) -> None:
    assert Capability.TRANSACTIONS in DESCRIPTION.capabilities
    assert isinstance(adapter, TransactionList)


def test_payments_pushed_through_the_adapter_are_listed_with_their_receipts(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    paid = collect(adapter, credentials)
    other = collect(adapter, credentials, amount_minor=2_500)
    collect(adapter, credentials, phone=CANCELLED)  # no money, not listed

    span = window()  # once: the request's dates are checked against it below
    found = {t.receipt: t for t in listed(adapter, credentials, span)}

    assert set(found) == {receipt_of(sim, paid), receipt_of(sim, other)}
    done = found[receipt_of(sim, paid)]
    completed = datetime.strptime(
        str(simulated(sim, paid)["TransactionDate"]), "%Y%m%d%H%M%S"
    ).replace(tzinfo=NAIROBI)
    assert done == GatewayTransaction(
        receipt=receipt_of(sim, paid),
        gateway_ref=None,
        account_ref="ORDER-2026-0",  # what the prompt showed: the first 12 characters
        amount=Money(10_000, "KES"),
        outcome=Outcome.SUCCEEDED,
        completed_at=completed,
        phone="2547******78",
        raw=done.raw,
    )
    assert done.completed_at.utcoffset() == timedelta(hours=3)
    assert done.raw["transactionId"] == done.receipt
    assert found[receipt_of(sim, other)].amount == Money(2_500, "KES")
    [asked] = sim.requests(kind="pull")
    assert asked["body"]["ShortCode"] == credentials.shortcode
    assert asked["body"]["OffSetValue"] == "0"
    start, end = span
    assert (asked["body"]["StartDate"], asked["body"]["EndDate"]) == (
        start.astimezone(NAIROBI).strftime(LAYOUT),  # Nairobi wall time, no offset
        end.astimezone(NAIROBI).strftime(LAYOUT),
    )


def test_the_window_holds_its_start_but_not_its_end(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    collect(adapter, credentials)
    [row] = listed(adapter, credentials)
    moment, second = row.completed_at, timedelta(seconds=1)

    assert list(adapter.list_transactions(credentials, moment, moment + second)) == [row]
    assert list(adapter.list_transactions(credentials, moment - second, moment)) == []
    in_utc = moment.astimezone(UTC)
    assert list(adapter.list_transactions(credentials, in_utc, in_utc + second)) == [row]
    asked = sim.requests(kind="pull")[-1]["body"]
    assert asked["StartDate"] == moment.strftime(LAYOUT)  # sent in Nairobi time
    with pytest.raises(ValueError, match="timezone-aware"):
        list(adapter.list_transactions(credentials, datetime(2026, 1, 1), datetime(2026, 1, 2)))


def test_a_long_window_is_asked_48_hours_at_a_time(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    checkout_id = collect(adapter, credentials)
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    start = end - timedelta(days=5)

    found = list(adapter.list_transactions(credentials, start, end))

    assert [t.receipt for t in found] == [receipt_of(sim, checkout_id)]
    pieces = [
        tuple(
            datetime.strptime(r["body"][key], LAYOUT).replace(tzinfo=NAIROBI)
            for key in ("StartDate", "EndDate")
        )
        for r in sim.requests(kind="pull")
    ]
    assert [p[1] - p[0] for p in pieces] == [timedelta(hours=48)] * 2 + [timedelta(hours=24)]
    assert (pieces[0][0], pieces[-1][1]) == (start, end)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert all(r["status"] == 200 for r in sim.requests(kind="pull"))


def test_amount_changed_is_listed_with_the_gateway_s_amount(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    checkout_id = collect(adapter, credentials)

    sim.inject_discrepancy(kind="amount_changed", checkout_request_id=checkout_id, amount=90)

    [row] = listed(adapter, credentials)
    assert (row.receipt, row.amount, row.outcome) == (
        receipt_of(sim, checkout_id),
        Money(9_000, "KES"),
        Outcome.SUCCEEDED,
    )
    assert simulated(sim, checkout_id)["Amount"] == 100  # what the push and callback said


def test_receipt_repeated_is_listed_twice(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    checkout_id = collect(adapter, credentials)

    sim.inject_discrepancy(kind="receipt_repeated", checkout_request_id=checkout_id)

    first, second = listed(adapter, credentials)
    assert first == second
    assert first.receipt == receipt_of(sim, checkout_id)


def test_dropped_is_not_listed_though_the_query_still_knows_it(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    kept = collect(adapter, credentials)
    dropped = collect(adapter, credentials)

    sim.inject_discrepancy(kind="dropped", checkout_request_id=dropped)

    assert [t.receipt for t in listed(adapter, credentials)] == [receipt_of(sim, kept)]
    assert adapter.query_status(credentials, dropped).verdict.outcome == Outcome.SUCCEEDED


def test_gateway_only_is_listed_and_goes_when_cleared(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    ours = collect(adapter, credentials)

    made = sim.inject_discrepancy(
        kind="gateway_only",
        shortcode=credentials.shortcode,
        amount=250,
        phone="254712000111",
        account_reference="WALK-IN",
    )

    found = {t.receipt: t for t in listed(adapter, credentials)}
    assert set(found) == {receipt_of(sim, ours), made["transactionId"]}
    extra = found[made["transactionId"]]
    assert (extra.account_ref, extra.amount, extra.outcome, extra.phone) == (
        "WALK-IN",
        Money(25_000, "KES"),
        Outcome.SUCCEEDED,
        "2547******11",
    )
    assert extra.completed_at == datetime.strptime(made["trxDate"], LAYOUT).replace(tzinfo=NAIROBI)
    assert len(sim.transactions()) == 1  # no push, no checkout request

    sim.clear_discrepancies()

    assert [t.receipt for t in listed(adapter, credentials)] == [receipt_of(sim, ours)]


def test_every_page_of_1000_rows_is_read(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    ours = collect(adapter, credentials)
    made = [
        sim.inject_discrepancy(
            kind="gateway_only",
            shortcode=credentials.shortcode,
            amount=n + 1,
            phone="254712000111",
            account_reference=f"R{n}",
        )["transactionId"]
        for n in range(1_000)
    ]

    found = listed(adapter, credentials)

    assert receipts(found) == sorted([receipt_of(sim, ours), *made])
    assert [r["body"]["OffSetValue"] for r in sim.requests(kind="pull")] == ["0", "1000"]


def test_wrong_app_credentials_or_nothing_listening_are_unavailable(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    wrong = DarajaCredentials.from_stored({**DARAJA_CREDENTIALS, "consumer_secret": "nope"})
    with pytest.raises(GatewayUnavailable, match="authenticate"):
        listed(adapter, wrong)
    unknown = DarajaCredentials.from_stored({**DARAJA_CREDENTIALS, "shortcode": "999999"})
    with pytest.raises(GatewayUnavailable, match="400"):
        listed(adapter, unknown)
    closed = DarajaAdapter(GatewaySettings("http://127.0.0.1:1", 1, 1))
    with pytest.raises(GatewayUnavailable):
        listed(closed, credentials)


# -- against a stub (answers the simulator does not give) ------------------------------------


def pull_route(stub: PageStub, request: StubRequest) -> Page:
    """The token on GET; one page per pull, by how many pulls came."""
    if request.method == "GET":
        return 200, {"access_token": "stub-token", "expires_in": "3599"}, JSON
    stub.asked.append(json.loads(request.body))
    status, body, headers = stub.page(len(stub.asked))
    return status, body, {**JSON, **headers}


@pytest.fixture
def stub() -> Iterator[PageStub]:
    with serving(pull_route, WAIT_S) as server:
        yield server


@pytest.fixture
def stubbed(stub: PageStub) -> DarajaAdapter:
    return DarajaAdapter(GatewaySettings(f"http://127.0.0.1:{stub.server_port}", 2, 2))


START = datetime(2026, 12, 1, 8, 0, tzinfo=NAIROBI)


def row(receipt: str, **fields: Any) -> dict[str, Any]:
    return {
        "transactionId": receipt,
        "trxDate": "2026-12-01 10:00:00",
        "msisdn": "2547******78",
        "sender": "JOHN DOE",
        "transactiontype": "CustomerPayBillOnline",
        "billreference": "ORDER-1",
        "amount": 100,
        "organizationname": "Shop",
        **fields,
    }


def page(rows: list[dict[str, Any]]) -> tuple[int, Any, dict[str, str]]:
    body = {"ResponseRefID": "x", "ResponseCode": "1000", "ResponseMessage": "Success"}
    return 200, {**body, "Response": [rows]}, {}


def stub_list(adapter: DarajaAdapter, credentials: DarajaCredentials) -> list[GatewayTransaction]:
    return list(adapter.list_transactions(credentials, START, START + timedelta(hours=12)))


def test_times_and_amounts_are_read_in_every_shape_seen(
    stub: PageStub, stubbed: DarajaAdapter, credentials: DarajaCredentials
) -> None:
    stub.pages = [
        page(
            [
                row("PLAIN"),
                row("OFFSET", trxDate="2026-12-01T07:00:00+00:00", amount="1,500.00"),
                row("DIGITS", trxDate="20261201100015", amount="99.50"),
                row("FLOAT", amount=12.5),
                row("LATE", trxDate="2026-12-01 20:00:00"),  # at the window's end: out
            ]
        )
    ]

    found = {t.receipt: t for t in stub_list(stubbed, credentials)}

    assert {r: (t.completed_at, t.amount.amount_minor) for r, t in found.items()} == {
        "PLAIN": (datetime(2026, 12, 1, 10, 0, tzinfo=NAIROBI), 10_000),
        "OFFSET": (datetime(2026, 12, 1, 10, 0, tzinfo=NAIROBI), 150_000),
        "DIGITS": (datetime(2026, 12, 1, 10, 0, 15, tzinfo=NAIROBI), 9_950),
        "FLOAT": (datetime(2026, 12, 1, 10, 0, tzinfo=NAIROBI), 1_250),
    }
    assert found["OFFSET"].completed_at.utcoffset() == timedelta(0)
    assert stub.asked == [
        {
            "ShortCode": credentials.shortcode,
            "StartDate": "2026-12-01 08:00:00",
            "EndDate": "2026-12-01 20:00:00",
            "OffSetValue": "0",
        }
    ]


def test_pages_are_asked_by_offset_until_one_is_short(
    stub: PageStub, stubbed: DarajaAdapter, credentials: DarajaCredentials
) -> None:
    full = [row(f"A{n:05}") for n in range(1_000)]
    stub.pages = [page(full), page([row(f"B{n:05}") for n in range(1_000)]), page([row("C")])]

    found = stub_list(stubbed, credentials)

    assert len(found) == 2_001
    assert [asked["OffSetValue"] for asked in stub.asked] == ["0", "1000", "2000"]


def test_a_gateway_deaf_to_the_offset_is_unavailable_not_read_forever(
    stub: PageStub, stubbed: DarajaAdapter, credentials: DarajaCredentials
) -> None:
    stub.pages = [page([row(f"A{n:05}") for n in range(1_000)])]

    with pytest.raises(GatewayUnavailable, match="same page"):
        stub_list(stubbed, credentials)

    assert len(stub.asked) == 2


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ((500, {"errorCode": "500.003.02", "errorMessage": "Spike Arrest"}, {}), "500.003.02"),
        ((503, {"errorCode": "500.003.02", "errorMessage": "busy"}, {"Retry-After": "7"}), "503"),
        ((502, "<h1>Bad Gateway</h1>", {"Content-Type": "text/html"}), "502"),
        ((400, {"errorCode": "400.002.02", "errorMessage": "Invalid ShortCode"}, {}), "400"),
        ((200, {"ResponseCode": "1001", "ResponseMessage": "Not registered"}, {}), "1001"),
        (page([row("X", amount="ten")]), "amount"),
        (page([row("X", trxDate="soon")]), "time"),
        (page([row("", amount=1)]), "transactionId"),
    ],
)
def test_an_answer_that_is_not_a_readable_list_is_unavailable(
    stub: PageStub,
    stubbed: DarajaAdapter,
    credentials: DarajaCredentials,
    answer: tuple[int, Any, dict[str, str]],
    words: str,
) -> None:
    stub.pages = [answer]

    with pytest.raises(GatewayUnavailable, match=words) as raised:
        stub_list(stubbed, credentials)

    if answer[0] == 503:
        assert raised.value.retry_after_s == 7.0


def test_a_page_that_fails_gives_nothing_of_the_list(
    stub: PageStub, stubbed: DarajaAdapter, credentials: DarajaCredentials
) -> None:
    stub.pages = [
        page([row(f"A{n:05}") for n in range(1_000)]),
        (500, {"errorCode": "500.003.1001", "errorMessage": "Internal Server Error"}, {}),
    ]
    given: list[GatewayTransaction] = []

    with pytest.raises(GatewayUnavailable):
        given.extend(stubbed.list_transactions(credentials, START, START + timedelta(hours=12)))

    assert given == []


def test_an_empty_answer_is_an_empty_list(
    stub: PageStub, stubbed: DarajaAdapter, credentials: DarajaCredentials
) -> None:
    stub.pages = [page([]), (200, {"ResponseCode": "1000", "Response": []}, {})]

    assert stub_list(stubbed, credentials) == []
    assert stub_list(stubbed, credentials) == []
    assert list(stubbed.list_transactions(credentials, START, START)) == []
    assert len(stub.asked) == 2  # an empty window asks nothing

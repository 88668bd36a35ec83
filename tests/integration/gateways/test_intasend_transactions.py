"""The IntaSend adapter's transaction list over real HTTP: against the sandbox's simulator
(collections made through the adapter, then each discrepancy the list can show), and
against a stub for the answers the simulator does not give (errors, lists that move)."""

from __future__ import annotations

import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from sandbox.app import create_sandbox
from sandbox.config import SimulatorConfig
from shared.domain.money import Money
from shared.gateways.base import (
    Capability,
    GatewayTransaction,
    GatewayUnavailable,
    Outcome,
    PaymentRequest,
    TransactionList,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.intasend import DESCRIPTION
from shared.gateways.intasend.client import IntaSendAdapter
from shared.gateways.intasend.transformers import IntaSendCredentials
from tests.support.intasend_sim import IntaSendSimulator
from tests.support.page_stub import Page, PageStub, StubRequest, serving

DELAY_S = 0.3
WAIT_S = 5.0
PAGE_SIZE = 3
PHONE = "254712345678"


class _ThreadingWsgiServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SANDBOX_INTASEND_LIST_PAGE_SIZE", str(PAGE_SIZE))
        sandbox = create_sandbox(SimulatorConfig(callback_delay_s=DELAY_S))
    server = make_server(
        "127.0.0.1", 0, sandbox, server_class=_ThreadingWsgiServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/intasend"
    server.shutdown()
    server.server_close()
    sandbox.close()
    thread.join(WAIT_S)


@pytest.fixture
def sim(sandbox_url: str) -> IntaSendSimulator:
    control = IntaSendSimulator(sandbox_url)
    control.reset()
    return control


@pytest.fixture
def adapter(sandbox_url: str) -> IntaSendAdapter:
    return IntaSendAdapter(GatewaySettings(f"{sandbox_url}/api/v1", 2, 2))


@pytest.fixture
def credentials() -> IntaSendCredentials:
    return IntaSendCredentials.from_stored(
        {**DESCRIPTION.simulator_credentials, "callback_secret": "s" * 43}
    )


def request(phone: str = PHONE, amount_minor: int = 10_000) -> PaymentRequest:
    return PaymentRequest(
        payment_id=str(uuid.uuid4()),
        attempt_ref=str(uuid.uuid4()),
        amount=Money(amount_minor, "KES"),
        phone=phone,
        reference="ORDER-2026-000123",
        description=None,
        callback_url="http://127.0.0.1:9/callbacks/intasend/secret",
    )


def collect(
    adapter: IntaSendAdapter,
    credentials: IntaSendCredentials,
    phone: str = PHONE,
    amount_minor: int = 10_000,
) -> tuple[PaymentRequest, str]:
    """A push through the adapter, waited until the status query says it is final."""
    payment = request(phone, amount_minor)
    ref = adapter.push(credentials, payment).gateway_ref
    assert ref is not None
    deadline = time.monotonic() + WAIT_S
    while adapter.query_status(credentials, ref).verdict.outcome == Outcome.PENDING:
        assert time.monotonic() < deadline, f"{ref} never finished"
        time.sleep(0.05)
    return payment, ref


def window(minutes: float = 5) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(minutes=minutes), now + timedelta(minutes=minutes)


def listed(adapter: IntaSendAdapter, credentials: IntaSendCredentials) -> list[GatewayTransaction]:
    return list(adapter.list_transactions(credentials, *window()))


def by_ref(transactions: list[GatewayTransaction]) -> dict[str | None, GatewayTransaction]:
    return {t.gateway_ref: t for t in transactions}


# -- against the simulator -------------------------------------------------------------------


def test_the_description_lists_the_capability_the_adapter_has(adapter: IntaSendAdapter) -> None:
    assert Capability.TRANSACTIONS in DESCRIPTION.capabilities
    assert isinstance(adapter, TransactionList)


def test_collections_made_through_the_adapter_are_listed_once_final(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: IntaSendSimulator
) -> None:
    paid, paid_ref = collect(adapter, credentials)
    lost, lost_ref = collect(adapter, credentials, phone="254700001032")
    numbers, numbers_ref = collect(adapter, credentials, phone="254700009995", amount_minor=2_500)
    pending = adapter.push(credentials, request(phone="254700009996")).gateway_ref  # never ends

    found = listed(adapter, credentials)

    assert [t.gateway_ref for t in found] == [paid_ref, lost_ref, numbers_ref]
    assert pending not in by_ref(found)
    done = by_ref(found)[paid_ref]
    invoice = sim.invoice(paid_ref)["invoice"]
    assert done == GatewayTransaction(
        receipt=invoice["mpesa_reference"],
        gateway_ref=paid_ref,
        account_ref=paid.attempt_ref,
        amount=Money(10_000, "KES"),
        outcome=Outcome.SUCCEEDED,
        completed_at=datetime.fromisoformat(invoice["updated_at"]),
        phone=PHONE,
        raw=done.raw,
    )
    assert len(done.receipt or "") == 10
    assert done.completed_at.tzinfo is not None
    assert done.raw["invoice_id"] == paid_ref
    failed = by_ref(found)[lost_ref]
    assert (failed.outcome, failed.receipt, failed.account_ref) == (
        Outcome.FAILED,
        None,
        lost.attempt_ref,
    )
    assert failed.raw["failed_code"] == "1032"
    assert by_ref(found)[numbers_ref].amount == Money(2_500, "KES")  # a JSON number
    assert by_ref(found)[numbers_ref].account_ref == numbers.attempt_ref


def test_only_the_window_s_transactions_are_listed(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: IntaSendSimulator
) -> None:
    collect(adapter, credentials)
    [row] = listed(adapter, credentials)
    moment = row.completed_at
    second = timedelta(seconds=1)

    assert list(adapter.list_transactions(credentials, moment, moment + second)) == [row]
    assert list(adapter.list_transactions(credentials, moment - second, moment)) == []
    nairobi = moment.astimezone(timezone(timedelta(hours=3)))
    assert list(adapter.list_transactions(credentials, nairobi, nairobi + second)) == [row]
    [asked] = sim.requests(kind="transactions")[-1:]
    assert asked["path"] == "/api/v1/transactions/"
    assert asked["headers"]["authorization"] == "Bearer <redacted>"
    with pytest.raises(ValueError, match="timezone-aware"):
        list(adapter.list_transactions(credentials, datetime(2026, 1, 1), datetime(2026, 1, 2)))


def test_amount_changed_is_listed_with_the_gateway_s_amount(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: IntaSendSimulator
) -> None:
    _, ref = collect(adapter, credentials)

    sim.inject_discrepancy(kind="amount_changed", invoice_id=ref, amount="90.50")

    [row] = listed(adapter, credentials)
    assert (row.gateway_ref, row.amount, row.outcome) == (
        ref,
        Money(9_050, "KES"),
        Outcome.SUCCEEDED,
    )
    assert adapter.query_status(credentials, ref).verdict.amount == Money(10_000, "KES")


def test_receipt_repeated_is_listed_twice(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: IntaSendSimulator
) -> None:
    _, ref = collect(adapter, credentials)

    sim.inject_discrepancy(kind="receipt_repeated", invoice_id=ref)

    first, second = listed(adapter, credentials)
    assert first == second
    assert (first.gateway_ref, first.receipt) == (
        ref,
        sim.invoice(ref)["invoice"]["mpesa_reference"],
    )


def test_dropped_is_not_listed(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: IntaSendSimulator
) -> None:
    _, kept = collect(adapter, credentials)
    _, dropped = collect(adapter, credentials)

    sim.inject_discrepancy(kind="dropped", invoice_id=dropped)

    assert [t.gateway_ref for t in listed(adapter, credentials)] == [kept]
    assert adapter.query_status(credentials, dropped).verdict.outcome == Outcome.SUCCEEDED


def test_failed_is_listed_failed_and_the_status_query_agrees(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: IntaSendSimulator
) -> None:
    payment, ref = collect(adapter, credentials)
    assert adapter.query_status(credentials, ref).verdict.outcome == Outcome.SUCCEEDED

    sim.inject_discrepancy(kind="failed", invoice_id=ref)

    [row] = listed(adapter, credentials)
    assert (row.gateway_ref, row.account_ref, row.outcome, row.receipt) == (
        ref,
        payment.attempt_ref,
        Outcome.FAILED,
        None,
    )
    assert adapter.query_status(credentials, ref).verdict.outcome == Outcome.FAILED


def test_gateway_only_is_listed_with_the_gateway_s_references(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: IntaSendSimulator
) -> None:
    _, ours = collect(adapter, credentials)

    made = sim.inject_discrepancy(
        kind="gateway_only",
        public_key=credentials.publishable_key,
        amount="250",
        phone="254712000111",
        api_ref="walk-in-42",
    )

    found = by_ref(listed(adapter, credentials))
    assert set(found) == {ours, made["invoice_id"]}
    extra = found[made["invoice_id"]]
    assert (extra.receipt, extra.account_ref, extra.amount, extra.outcome, extra.phone) == (
        made["mpesa_reference"],
        "walk-in-42",
        Money(25_000, "KES"),
        Outcome.SUCCEEDED,
        "254712000111",
    )
    assert sim.pushes("254712000111") == []

    sim.clear_discrepancies()

    assert [t.gateway_ref for t in listed(adapter, credentials)] == [ours]


def test_every_page_is_read(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: IntaSendSimulator
) -> None:
    made = [collect(adapter, credentials)[1] for _ in range(PAGE_SIZE * 2 + 1)]
    sim.inject_discrepancy(kind="receipt_repeated", invoice_id=made[PAGE_SIZE - 1])  # spans pages

    found = [t.gateway_ref for t in listed(adapter, credentials)]

    assert found == [*made[:PAGE_SIZE], made[PAGE_SIZE - 1], *made[PAGE_SIZE:]]
    assert len(sim.requests("transactions")) == 3  # 8 rows, 3 a page


def test_wrong_keys_or_nothing_listening_are_unavailable(
    adapter: IntaSendAdapter, credentials: IntaSendCredentials, sim: IntaSendSimulator
) -> None:
    wrong = IntaSendCredentials.from_stored(
        {**DESCRIPTION.simulator_credentials, "secret_key": "ISSecretKey_test_wrong"}
    )
    with pytest.raises(GatewayUnavailable, match="401"):
        listed(adapter, wrong)
    closed = IntaSendAdapter(GatewaySettings("http://127.0.0.1:1/api/v1", 1, 1))
    with pytest.raises(GatewayUnavailable):
        listed(closed, credentials)


# -- against a stub (answers the simulator does not give) ------------------------------------


def list_route(stub: PageStub, request: StubRequest) -> Page:
    """The page ``?page=`` names."""
    stub.asked.append(request.query)
    return stub.page(int(request.query.get("page", ["1"])[0]))


@pytest.fixture
def stub() -> Iterator[PageStub]:
    with serving(list_route, WAIT_S) as server:
        yield server


@pytest.fixture
def stubbed(stub: PageStub) -> IntaSendAdapter:
    return IntaSendAdapter(GatewaySettings(f"http://127.0.0.1:{stub.server_port}/api/v1", 2, 2))


def row(invoice_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "invoice_id": invoice_id,
        "state": "COMPLETE",
        "value": "100.00",
        "currency": "KES",
        "account": "2547****5678",
        "api_ref": "attempt",
        "mpesa_reference": "QAB1CD2EF3",
        "updated_at": datetime.now(UTC).isoformat(),
        **fields,
    }


def page(rows: list[dict[str, Any]], count: int, more: bool) -> tuple[int, Any, dict[str, str]]:
    next_url = "https://elsewhere.example/api/v1/transactions/?page=9" if more else None
    return 200, {"count": count, "next": next_url, "previous": None, "results": rows}, {}


def test_pages_are_asked_by_number_at_the_base_url_whatever_next_says(
    stub: PageStub, stubbed: IntaSendAdapter, credentials: IntaSendCredentials
) -> None:
    stub.pages = [page([row("A")], 3, True), page([row("B", value=7)], 3, True)]
    stub.pages.append(page([row("C", state="PROCESSING", mpesa_reference=None)], 3, False))
    start, end = window()

    found = list(stubbed.list_transactions(credentials, start, end))

    assert [(t.gateway_ref, t.amount) for t in found] == [
        ("A", Money(10_000, "KES")),
        ("B", Money(700, "KES")),
    ]
    assert [q["page"] for q in stub.asked] == [["1"], ["2"], ["3"]]
    assert stub.asked[0]["start_date"] == [start.isoformat()]
    assert stub.asked[0]["end_date"] == [end.isoformat()]
    assert found[0].phone == "2547****5678"


def test_rows_outside_the_window_are_left_out(
    stub: PageStub, stubbed: IntaSendAdapter, credentials: IntaSendCredentials
) -> None:
    start, end = window()
    late = row("LATE", updated_at=end.isoformat())
    naive_in_nairobi = row(
        "NAIVE", updated_at=(start + timedelta(hours=3, seconds=1)).replace(tzinfo=None).isoformat()
    )
    stub.pages = [page([row("IN"), late, naive_in_nairobi], 3, False)]

    found = list(stubbed.list_transactions(credentials, start, end))

    assert [t.gateway_ref for t in found] == ["IN", "NAIVE"]
    assert found[1].completed_at == start + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ((503, {"detail": "busy"}, {"Retry-After": "7"}), "503"),
        ((429, {"detail": "slow down"}, {}), "429"),
        ((500, "<h1>Server Error</h1>", {"Content-Type": "text/html"}), "500"),
        ((200, {"detail": "no list"}, {}), "unreadable"),
        ((200, {"count": 1, "next": None, "results": [row("X", state="LOST")]}, {}), "state"),
        ((200, {"count": 1, "next": None, "results": [row("X", value="ten")]}, {}), "amount"),
        ((200, {"count": 1, "next": None, "results": [row("X", updated_at="soon")]}, {}), "time"),
    ],
)
def test_an_answer_that_is_not_a_readable_list_is_unavailable(
    stub: PageStub,
    stubbed: IntaSendAdapter,
    credentials: IntaSendCredentials,
    answer: tuple[int, Any, dict[str, str]],
    words: str,
) -> None:
    stub.pages = [answer]

    with pytest.raises(GatewayUnavailable, match=words) as raised:
        listed(stubbed, credentials)

    if answer[0] == 503:
        assert raised.value.retry_after_s == 7.0


def test_a_page_that_fails_gives_nothing_of_the_list(
    stub: PageStub, stubbed: IntaSendAdapter, credentials: IntaSendCredentials
) -> None:
    stub.pages = [page([row("A")], 2, True), (503, {"detail": "busy"}, {})]
    given: list[GatewayTransaction] = []

    with pytest.raises(GatewayUnavailable):
        given.extend(stubbed.list_transactions(credentials, *window()))

    assert given == []


@pytest.mark.parametrize(
    "pages",
    [
        [page([row("A")], 2, True), page([row("B")], 3, False)],  # the count moved
        [page([row("A")], 2, False)],  # a row short of the count
    ],
)
def test_a_list_that_moves_while_it_is_read_is_unavailable(
    stub: PageStub,
    stubbed: IntaSendAdapter,
    credentials: IntaSendCredentials,
    pages: list[tuple[int, Any, dict[str, str]]],
) -> None:
    stub.pages = pages

    with pytest.raises(GatewayUnavailable, match="transaction list"):
        listed(stubbed, credentials)

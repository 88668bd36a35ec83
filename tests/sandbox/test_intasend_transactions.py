"""The IntaSend simulator's transaction list (``GET transactions/``) and its discrepancies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import falcon.testing
import pytest

from sandbox.config import SimulatorConfig
from sandbox.intasend import IntaSendSimulator, create_simulator, mount
from sandbox.intasend.accounts import BUILTIN_PUBLISHABLE_KEY, BUILTIN_SECRET_KEY
from sandbox.intasend.invoices import ROW_FIELDS
from sandbox.intasend.settings import IntaSendSimSettings
from tests.sandbox.helpers import FakeClock

PUSH = "/api/v1/payment/mpesa-stk-push/"
STATUS = "/api/v1/payment/status/"
TRANSACTIONS = "/api/v1/transactions/"
DISCREPANCIES = "/_sim/statement/discrepancies"
AUTH = {
    "Authorization": f"Bearer {BUILTIN_SECRET_KEY}",
    "INTASEND_PUBLIC_API_KEY": BUILTIN_PUBLISHABLE_KEY,
}
DELAY_S = 10.0  # of the fake clock: an invoice is final once it moved past this


class Sim:
    """A simulator on a fake clock and a client for its app (paths without /intasend)."""

    def __init__(self, sim: IntaSendSimulator, clock: FakeClock) -> None:
        self.sim = sim
        self.clock = clock
        self.client = falcon.testing.TestClient(sim.app)

    def push(self, phone: str = "254712345678", amount: str = "100.00", **fields: Any) -> str:
        body = {"currency": "KES", "method": "M-PESA", "amount": amount, "phone_number": phone}
        answer = self.client.simulate_post(PUSH, json={**body, **fields}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        invoice_id: str = answer.json["invoice"]["invoice_id"]
        return invoice_id

    def settle(self) -> None:
        """Move the clock past every invoice's due time."""
        self.clock.advance(DELAY_S + 1)

    def status(self, invoice_id: str) -> dict[str, Any]:
        body = {"invoice_id": invoice_id, "public_key": BUILTIN_PUBLISHABLE_KEY}
        answer = self.client.simulate_post(STATUS, json=body)
        assert answer.status_code == 200, answer.text
        invoice: dict[str, Any] = answer.json["invoice"]
        return invoice

    def page(
        self, headers: dict[str, str] | None = None, /, **params: str | int
    ) -> falcon.testing.Result:
        return self.client.simulate_get(
            TRANSACTIONS,
            query_string=urlencode({k: str(v) for k, v in params.items()}),
            headers=AUTH if headers is None else headers,
        )

    def rows(self, **params: str | int) -> list[dict[str, Any]]:
        answer = self.page(**params)
        assert answer.status_code == 200, answer.text
        assert answer.json["next"] is None
        rows: list[dict[str, Any]] = answer.json["results"]
        return rows

    def inject(self, **body: Any) -> falcon.testing.Result:
        return self.client.simulate_post(DISCREPANCIES, json=body)


SimMaker = Callable[..., Sim]


@pytest.fixture
def make_sim() -> Iterator[SimMaker]:
    built: list[IntaSendSimulator] = []

    def make(**settings: Any) -> Sim:
        clock = FakeClock()
        sim = create_simulator(
            SimulatorConfig(callback_delay_s=DELAY_S), IntaSendSimSettings(**settings), clock=clock
        )
        built.append(sim)
        return Sim(sim, clock)

    yield make
    for sim in built:
        sim.close()


@pytest.fixture
def sim(make_sim: SimMaker) -> Sim:
    return make_sim()


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["invoice_id"] for row in rows]


# -- the list --------------------------------------------------------------------------------


def test_the_list_shows_the_account_s_final_invoices_oldest_first(sim: Sim) -> None:
    first = sim.push(api_ref="attempt-1")
    sim.clock.advance(1)
    failed = sim.push(phone="254700001032")
    never = sim.push(phone="254700009996")  # stays PROCESSING
    sim.settle()
    sim.push()  # still PENDING

    rows = sim.rows()

    assert ids(rows) == [first, failed]
    assert all(tuple(row) == ROW_FIELDS for row in rows)
    assert never not in ids(rows)
    done, lost = rows
    assert (done["state"], done["value"], done["currency"]) == ("COMPLETE", "100.00", "KES")
    assert (done["api_ref"], done["account"]) == ("attempt-1", "254712345678")
    assert done["mpesa_reference"] == sim.status(first)["mpesa_reference"]
    assert len(done["mpesa_reference"]) == 10
    assert done["updated_at"] == sim.status(first)["updated_at"]
    assert (lost["state"], lost["failed_code"], lost["mpesa_reference"]) == ("FAILED", "1032", None)


def test_the_window_takes_updated_at_from_start_up_to_end(sim: Sim) -> None:
    invoice_id = sim.push()
    sim.settle()
    updated_at = datetime.fromisoformat(sim.status(invoice_id)["updated_at"])
    second = timedelta(seconds=1)

    assert ids(sim.rows(start_date=updated_at.isoformat())) == [invoice_id]
    assert ids(sim.rows(end_date=(updated_at + second).isoformat())) == [invoice_id]
    assert sim.rows(end_date=updated_at.isoformat()) == []
    assert sim.rows(start_date=(updated_at + second).isoformat()) == []
    in_utc = updated_at.astimezone(UTC)
    assert ids(sim.rows(start_date=(in_utc - second).isoformat())) == [invoice_id]
    # Without an offset, UTC's wall time is read as Nairobi's: three hours earlier.
    assert sim.rows(end_date=(in_utc + second).replace(tzinfo=None).isoformat()) == []


def test_a_date_without_an_offset_is_nairobi_s_and_a_bad_one_is_400(sim: Sim) -> None:
    invoice_id = sim.push()
    sim.settle()
    updated_at = datetime.fromisoformat(sim.status(invoice_id)["updated_at"])
    naive = (updated_at - timedelta(seconds=1)).replace(tzinfo=None)

    assert ids(sim.rows(start_date=naive.isoformat())) == [invoice_id]
    answer = sim.page(start_date="yesterday", end_date="2026-13-01")
    assert answer.status_code == 400
    assert {e["attr"] for e in answer.json["errors"]} == {"start_date", "end_date"}


def test_the_list_is_of_the_bearer_s_account_only(sim: Sim) -> None:
    sim.push()
    sim.settle()
    other = sim.client.simulate_post("/_sim/accounts", json={}).json
    theirs = {
        "Authorization": f"Bearer {other['secret_key']}",
        "INTASEND_PUBLIC_API_KEY": other["publishable_key"],
    }

    assert sim.page(theirs).json["results"] == []
    assert sim.page({}).status_code == 401
    assert sim.page({"Authorization": "Bearer ISSecretKey_test_x"}).status_code == 401


def test_pages_follow_the_settings_size_with_absolute_links(make_sim: SimMaker) -> None:
    sim = make_sim(list_page_size=2)
    made = []
    for _ in range(5):
        made.append(sim.push())
        sim.clock.advance(0.01)
    sim.settle()
    window = {"start_date": "2020-01-01T00:00:00+00:00", "end_date": "2099-01-01T00:00:00+00:00"}

    first = sim.page(**window).json
    assert (first["count"], first["previous"], ids(first["results"])) == (5, None, made[:2])
    link = urlsplit(first["next"])
    assert (link.scheme, link.path) == ("http", TRANSACTIONS)
    assert parse_qs(link.query) == {key: [value] for key, value in {**window, "page": "2"}.items()}
    second = sim.page(**window, page=2).json
    assert ids(second["results"]) == made[2:4]
    assert parse_qs(urlsplit(second["previous"]).query) == {k: [v] for k, v in window.items()}
    last = sim.page(**window, page=3).json
    assert (ids(last["results"]), last["next"]) == (made[4:], None)
    assert "page=2" in last["previous"]
    for beyond in (4, 0, "x"):
        answer = sim.page(**window, page=beyond)
        assert (answer.status_code, answer.json) == (404, {"detail": "Invalid page."})


def test_an_empty_list_is_one_empty_page(sim: Sim) -> None:
    answer = sim.page().json
    assert answer == {"count": 0, "next": None, "previous": None, "results": []}


def test_the_mounted_list_links_under_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_INTASEND_LIST_PAGE_SIZE", "1")
    mounted = mount(SimulatorConfig(callback_delay_s=0))
    try:
        client = falcon.testing.TestClient(mounted)
        for _ in range(2):
            body = {"amount": "10", "phone_number": "254712345678"}
            client.simulate_post(f"/intasend{PUSH}", json=body, headers=AUTH)
        answer = client.simulate_get(f"/intasend{TRANSACTIONS}", headers=AUTH).json
        assert urlsplit(answer["next"]).path == f"/intasend{TRANSACTIONS}"
    finally:
        mounted.close()


def test_the_page_size_comes_from_the_environment() -> None:
    settings = IntaSendSimSettings.from_env({"SANDBOX_INTASEND_LIST_PAGE_SIZE": "3"})
    assert settings.list_page_size == 3
    assert IntaSendSimSettings.from_env({}).list_page_size == 100
    with pytest.raises(ValueError, match="LIST_PAGE_SIZE"):
        IntaSendSimSettings.from_env({"SANDBOX_INTASEND_LIST_PAGE_SIZE": "many"})
    with pytest.raises(ValueError, match="list_page_size"):
        IntaSendSimSettings(list_page_size=0)


def test_the_list_is_recorded_as_transactions(sim: Sim) -> None:
    sim.page()
    [record] = sim.client.simulate_get("/_sim/requests", params={"kind": "transactions"}).json
    assert (record["method"], record["path"], record["status"]) == ("GET", TRANSACTIONS, 200)


# -- discrepancies ---------------------------------------------------------------------------


def test_amount_changed_shows_another_value_in_the_list_only(sim: Sim) -> None:
    invoice_id = sim.push()
    sim.settle()

    answer = sim.inject(kind="amount_changed", invoice_id=invoice_id, amount="90")

    assert answer.status_code == 201
    assert answer.json == {"kind": "amount_changed", "invoice_id": invoice_id, "amount": "90.00"}
    [row] = sim.rows()
    assert (row["value"], row["charges"], row["net_amount"]) == ("90.00", "3.50", "86.50")
    assert sim.status(invoice_id)["value"] == "100.00"


def test_receipt_repeated_shows_the_invoice_twice(make_sim: SimMaker) -> None:
    sim = make_sim(list_page_size=1)
    invoice_id = sim.push()
    sim.settle()

    sim.inject(kind="receipt_repeated", invoice_id=invoice_id)

    first, second = sim.page().json, sim.page(page=2).json
    assert (first["count"], second["next"]) == (2, None)
    assert first["results"] == second["results"]
    assert ids(first["results"]) == [invoice_id]


def test_dropped_leaves_the_invoice_out_of_the_list(sim: Sim) -> None:
    kept, dropped = sim.push(), sim.push()
    sim.settle()

    sim.inject(kind="dropped", invoice_id=dropped)

    assert ids(sim.rows()) == [kept]
    assert sim.status(dropped)["state"] == "COMPLETE"


def test_failed_says_failed_in_the_list_and_the_status_api(sim: Sim) -> None:
    invoice_id = sim.push()
    sim.settle()
    assert sim.status(invoice_id)["state"] == "COMPLETE"

    answer = sim.inject(kind="failed", invoice_id=invoice_id, failed_code="1")

    assert answer.json["kind"] == "failed"
    status = sim.status(invoice_id)
    assert (status["state"], status["failed_code"], status["mpesa_reference"]) == (
        "FAILED",
        "1",
        None,
    )
    assert status["failed_reason"] == "The payment failed"
    [row] = sim.rows()
    assert (row["state"], row["failed_code"], row["mpesa_reference"]) == ("FAILED", "1", None)


def test_failed_finishes_an_invoice_that_never_would(sim: Sim) -> None:
    invoice_id = sim.push(phone="254700009996")
    sim.settle()
    sim.inject(kind="failed", invoice_id=invoice_id)
    assert sim.status(invoice_id)["state"] == "FAILED"
    assert ids(sim.rows()) == [invoice_id]


def test_gateway_only_makes_a_complete_invoice_nothing_announced(sim: Sim) -> None:
    mine = sim.push()
    sim.settle()

    answer = sim.inject(
        kind="gateway_only",
        public_key=BUILTIN_PUBLISHABLE_KEY,
        amount=250,
        phone="254712000111",
        api_ref="walk-in",
    )

    assert answer.status_code == 201
    row = answer.json
    assert tuple(row) == ROW_FIELDS
    assert (row["state"], row["value"], row["account"], row["api_ref"]) == (
        "COMPLETE",
        "250.00",
        "254712000111",
        "walk-in",
    )
    assert row["invoice_id"] != mine
    assert len(row["mpesa_reference"]) == 10
    assert sim.rows() == [sim.rows()[0], row]
    assert sim.status(row["invoice_id"])["state"] == "COMPLETE"
    assert sim.client.simulate_get("/_sim/deliveries").json == []  # no webhook at all


def test_clearing_forgets_every_discrepancy_and_the_gateway_only_invoices(sim: Sim) -> None:
    invoice_id = sim.push()
    sim.settle()
    baseline = sim.rows()
    for kind in ("amount_changed", "receipt_repeated", "failed"):
        sim.inject(kind=kind, invoice_id=invoice_id, **({"amount": 5} if kind[0] == "a" else {}))
    made = sim.inject(
        kind="gateway_only", public_key=BUILTIN_PUBLISHABLE_KEY, amount="10", phone="254712000111"
    ).json
    assert [d["kind"] for d in sim.client.simulate_get(DISCREPANCIES).json] == [
        "amount_changed",
        "receipt_repeated",
        "failed",
        "gateway_only",
    ]

    assert sim.client.simulate_delete(DISCREPANCIES).status_code == 200

    assert sim.rows() == baseline
    assert sim.status(invoice_id)["state"] == "COMPLETE"
    assert sim.client.simulate_get(f"/_sim/invoices/{made['invoice_id']}").status_code == 404
    sim.inject(kind="dropped", invoice_id=invoice_id)
    assert sim.client.simulate_post("/_sim/reset").status_code == 200
    assert sim.client.simulate_get(DISCREPANCIES).json == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "vanished", "invoice_id": "X"}, 400),
        ({"kind": "dropped"}, 400),
        ({"kind": "dropped", "invoice_id": "NOPE"}, 404),
        ({"kind": "dropped", "invoice_id": "{known}", "amount": 1}, 400),
        ({"kind": "amount_changed", "invoice_id": "{known}"}, 400),
        ({"kind": "amount_changed", "invoice_id": "{known}", "amount": "1.001"}, 400),
        (
            {
                "kind": "gateway_only",
                "public_key": "ISPubKey_test_x",
                "amount": 1,
                "phone": "254712000111",
            },
            404,
        ),
        (
            {
                "kind": "gateway_only",
                "public_key": BUILTIN_PUBLISHABLE_KEY,
                "amount": 1,
                "phone": "07",
            },
            400,
        ),
    ],
)
def test_a_discrepancy_the_simulator_cannot_make_is_refused(
    sim: Sim, body: dict[str, Any], status: int
) -> None:
    known = sim.push()
    filled = {k: (known if v == "{known}" else v) for k, v in body.items()}
    assert sim.inject(**filled).status_code == status
    assert sim.client.simulate_get(DISCREPANCIES).json == []

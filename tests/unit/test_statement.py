"""The organisation portal statement reads by column name, whatever variant an export uses."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.gateways.base import Outcome
from shared.gateways.daraja.pull import NAIROBI
from shared.reconciliation.statement import StatementInvalid, parse_statement

VARIANTS = {
    "receipt": ["Receipt No.", "Receipt No", "Receipt", "Transaction ID", "RECEIPT NO."],
    "completed": ["Completion Time", "Date", " completion time "],
    "paid_in": ["Paid In", "paid in"],
    "status": ["Transaction Status", "Status"],
    "account": ["A/C No.", "Account No."],
}
OTHERS = ["Initiation Time", "Details", "Withdrawn", "Balance", "Reason Type"]

lines = st.lists(
    st.tuples(
        st.from_regex(r"[A-Z][A-Z0-9]{9}", fullmatch=True),
        st.integers(1, 250_000_00),
        st.integers(0, 86_400 * 30),
        st.sampled_from(["Completed", "Failed", "Cancelled"]),
        st.from_regex(r"[A-Z0-9-]{1,12}", fullmatch=True),
    ),
    min_size=0,
    max_size=30,
    unique_by=lambda line: line[0],
)


def write(header: dict[str, str], rows: list[dict[str, str]], bom: bool, others: list[str]) -> str:
    out = io.StringIO()
    names = [*header.values(), *others]
    writer = csv.writer(out)
    writer.writerow(names)
    for row in rows:
        writer.writerow([row.get(field, "") for field in header] + ["x"] * len(others))
    return ("\ufeff" if bom else "") + out.getvalue()


@settings(max_examples=100, deadline=None)
@given(
    lines,
    st.fixed_dictionaries({field: st.sampled_from(names) for field, names in VARIANTS.items()}),
    st.booleans(),
    st.booleans(),
    st.permutations(OTHERS),
)
def test_any_header_variant_reads_back_the_same_receipts_amounts_and_times(
    written: list[tuple[str, int, int, str, str]],
    header: dict[str, str],
    thousands: bool,
    bom: bool,
    others: list[str],
) -> None:
    start = datetime(2026, 12, 1, tzinfo=NAIROBI)
    rows = []
    for receipt, minor, offset_s, status, account in written:
        amount = minor / 100
        rows.append(
            {
                "receipt": receipt,
                "completed": (start + timedelta(seconds=offset_s)).strftime("%Y-%m-%d %H:%M:%S"),
                "paid_in": f"{amount:,.2f}" if thousands else f"{amount:.2f}",
                "status": status,
                "account": account,
            }
        )
    parsed = parse_statement(write(header, rows, bom, list(others)))
    assert [(t.receipt, t.amount.amount_minor, t.account_ref) for t in parsed] == [
        (receipt, minor, account) for receipt, minor, _, _, account in written
    ]
    assert [t.completed_at for t in parsed] == [
        start + timedelta(seconds=offset_s) for _, _, offset_s, _, _ in written
    ]
    assert [t.outcome for t in parsed] == [
        Outcome.SUCCEEDED if status == "Completed" else Outcome.FAILED
        for _, _, _, status, _ in written
    ]


def test_withdrawals_without_paid_in_are_not_collections() -> None:
    text = (
        "Receipt No.,Completion Time,Paid In,Withdrawn,Other Party Info\n"
        'RAB1234567,2026-12-01 10:00:00,"1,500.00",,2547******78 - JOHN DOE\n'
        "RAB1234568,2026-12-01 11:00:00,,200.00,Charges\n"
    )
    [paid] = parse_statement(text)
    assert (paid.receipt, paid.amount.amount_minor, paid.phone) == (
        "RAB1234567",
        150_000,
        "2547******78",
    )


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("Completion Time,Paid In,Details", "Receipt No."),
        ("Receipt No.,Completion Time,Withdrawn", "Paid In"),
        ("", "empty"),
    ],
)
def test_a_file_without_a_receipt_or_an_amount_column_is_refused_by_name(
    header: str, missing: str
) -> None:
    with pytest.raises(StatementInvalid) as refused:
        parse_statement(header + ("\nA,B,C\n" if header else ""))
    assert missing in str(refused.value)
    if header:
        assert header.split(",")[0] in str(refused.value)  # the columns it does have


def test_an_unreadable_amount_names_its_line() -> None:
    with pytest.raises(StatementInvalid, match="line 3"):
        parse_statement(
            "Receipt No.,Completion Time,Paid In\n"
            "RAB1,2026-12-01 10:00:00,10.00\n"
            "RAB2,2026-12-01 10:00:00,ten\n"
        )


def test_cells_are_trimmed_and_a_time_with_an_offset_keeps_it() -> None:
    text = (
        " receipt no. , COMPLETION TIME ,Transaction Status, Paid In ,Other Party Info,A/C No.\r\n"
        ' RAB1234567 , 2026-12-01T07:00:00+00:00 , Completed ," 1,500.00 ",'
        "2547******78 - JOHN DOE, INV-1 \r\n"
        "RAB1234568,20261201100000,Failed,10,,\r\n"
    )

    done, failed = parse_statement(text)

    assert (done.receipt, done.amount.amount_minor, done.account_ref) == (
        "RAB1234567",
        150_000,
        "INV-1",
    )
    assert done.completed_at == datetime(2026, 12, 1, 10, 0, tzinfo=NAIROBI)
    assert done.completed_at.utcoffset() == timedelta(0)
    assert (failed.outcome, failed.phone, failed.account_ref) == (Outcome.FAILED, None, None)
    assert failed.completed_at == datetime(2026, 12, 1, 10, 0, tzinfo=NAIROBI)

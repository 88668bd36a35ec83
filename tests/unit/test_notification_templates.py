"""Customer notice wording: placeholders, amounts, built-in texts, refusals at ``template set``."""

from __future__ import annotations

import string

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from shared.commands.templates import template
from shared.domain.money import Money
from shared.notify.base import mask_email, mask_emails, mask_recipient
from shared.notify.templates import (
    BUILT_IN,
    DEFAULT_FAILURE_PHRASE,
    EVENTS,
    PLACEHOLDERS,
    SMS_LENGTH,
    NoticeFacts,
    NoticeTemplate,
    TemplateInvalid,
    check_template,
    one_line,
    render,
    validate_template,
)
from tests.unit.properties import PROPERTY

EVERY_PLACEHOLDER = "|".join(f"${name}" for name in PLACEHOLDERS)


def facts(**changes: object) -> NoticeFacts:
    values: dict[str, object] = {
        "amount": Money(1500, "KES"),
        "reference": "ORDER-1042",
        "merchant": "Mama Mboga Shop",
        "status": "failed",
        "failure_code": "insufficient_funds",
        "description": "Shoes",
        "payment_id": "6f1c2a4e-0000-4000-8000-000000000001",
    }
    values.update(changes)
    return NoticeFacts(**values)  # type: ignore[arg-type]


def test_every_placeholder_is_filled_in() -> None:
    rendered = render(NoticeTemplate("sms", "failed", EVERY_PLACEHOLDER), facts())

    assert rendered.body.split("|") == [
        "15.00",
        "KES",
        "ORDER-1042",
        "Mama Mboga Shop",
        "failed",
        "your balance was too low",
        "Shoes",
        "6f1c2a4e-0000-4000-8000-000000000001",
    ]
    assert rendered.subject is None


@pytest.mark.parametrize(
    ("money", "shown"),
    [
        (Money(1500, "KES"), "KES 15.00"),
        (Money(1, "KES"), "KES 0.01"),
        (Money(25_000_000, "KES"), "KES 250000.00"),
        (Money(150, "UGX"), "UGX 150"),
    ],
)
def test_amounts_are_formatted_from_minor_units(money: Money, shown: str) -> None:
    rendered = render(NoticeTemplate("sms", "failed", "$currency $amount"), facts(amount=money))

    assert rendered.body == shown


def test_the_built_in_sms_says_what_happened_in_customer_terms() -> None:
    failed = render(BUILT_IN[("sms", "failed")], facts())
    cancelled = render(BUILT_IN[("sms", "cancelled")], facts(status="cancelled"))

    assert failed.body == (
        "Your payment of KES 15.00 to Mama Mboga Shop for ORDER-1042 did not go through: "
        "your balance was too low. No money was taken."
    )
    assert cancelled.body == (
        "Your payment of KES 15.00 to Mama Mboga Shop for ORDER-1042 was cancelled. "
        "No money was taken."
    )


@pytest.mark.parametrize("event", EVENTS)
def test_built_in_sms_fit_one_page_for_usual_names(event: str) -> None:
    notice = facts(status=event, failure_code="transaction_expired", reference="INV-2026-0001")

    assert len(render(BUILT_IN[("sms", event)], notice).body) <= SMS_LENGTH


@pytest.mark.parametrize("event", EVENTS)
def test_built_in_emails_have_a_subject(event: str) -> None:
    rendered = render(BUILT_IN[("email", event)], facts(status=event))

    assert rendered.subject is not None
    assert "Mama Mboga Shop" in rendered.subject
    assert "ORDER-1042" in rendered.body


def test_an_email_template_without_subject_gets_the_built_in_one() -> None:
    rendered = render(NoticeTemplate("email", "cancelled", "Cancelled: $reference"), facts())

    assert rendered.subject == "Your payment to Mama Mboga Shop was cancelled"


def test_an_unknown_failure_code_gets_a_plain_phrase() -> None:
    rendered = render(NoticeTemplate("sms", "failed", "$failure"), facts(failure_code="new_code"))

    assert rendered.body == DEFAULT_FAILURE_PHRASE


def test_an_unknown_placeholder_in_a_stored_row_is_left_as_written() -> None:
    rendered = render(NoticeTemplate("sms", "failed", "Hi $name, $amount"), facts())

    assert rendered.body == "Hi $name, 15.00"


@pytest.mark.parametrize("text", ["$amount", "${amount}!", "Costs $$5", "no placeholders"])
def test_known_placeholders_pass_the_check(text: str) -> None:
    check_template(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Hello $name", r"unknown placeholder\(s\) \$name"),
        ("$amounts due", r"\$amounts"),
        ("Pay 5$", "write \\$\\$"),
        ("Pay $ 5", "write \\$\\$"),
    ],
)
def test_unknown_or_broken_placeholders_are_refused(text: str, reason: str) -> None:
    with pytest.raises(TemplateInvalid, match=reason):
        check_template(text)


def test_an_sms_has_no_subject() -> None:
    with pytest.raises(TemplateInvalid, match="no subject"):
        validate_template("sms", "failed", body="$amount", subject="Hi")


def test_template_set_refuses_an_unknown_placeholder_before_storing_anything() -> None:
    result = CliRunner().invoke(
        template,
        ["set", "--channel", "sms", "--event", "failed", "--body", "Dear $customer, $amount"],
    )

    assert result.exit_code == 2
    assert "unknown placeholder(s) $customer" in result.output


def test_template_set_refuses_an_unknown_placeholder_in_the_subject() -> None:
    args = ["set", "--channel", "email", "--event", "expired", "--body", "$amount"]

    result = CliRunner().invoke(template, [*args, "--subject", "About $order"])

    assert result.exit_code == 2
    assert "$order" in result.output


def test_template_set_knows_the_channels_and_events() -> None:
    result = CliRunner().invoke(
        template, ["set", "--channel", "fax", "--event", "failed", "--body", "$amount"]
    )

    assert result.exit_code == 2


def test_one_line_flattens_control_characters() -> None:
    assert one_line("Shop\r\nSubject: x\t\x00\u200b  end ") == "Shop Subject: x end"


@PROPERTY
@given(reference=st.text(), merchant=st.text(), description=st.none() | st.text())
def test_rendering_never_raises_and_values_stay_on_one_line(
    reference: str, merchant: str, description: str | None
) -> None:
    notice = facts(reference=reference, merchant=merchant, description=description)

    for (channel, _), built_in in BUILT_IN.items():
        rendered = render(built_in, notice)
        assert rendered.body
        if channel == "email":
            assert rendered.subject is not None
            assert rendered.subject == one_line(rendered.subject)
        else:
            assert "\n" not in rendered.body


@PROPERTY
@given(text=st.text(alphabet=st.sampled_from("$ab{}_ 1")))
def test_a_template_that_passes_the_check_renders_completely(text: str) -> None:
    try:
        check_template(text)
    except TemplateInvalid:
        return
    body = render(NoticeTemplate("sms", "failed", text), facts()).body

    assert body == string.Template(text).substitute(facts().values()).strip()


def test_recipients_are_masked_for_logs() -> None:
    assert mask_recipient("sms", "254712345678") == "2547****5678"
    assert mask_recipient("sms", "+254712345678") == "2547****5678"
    assert mask_recipient("email", "jane.doe@example.com") == "j***@example.com"
    assert mask_email("not-an-address") == "***"
    assert mask_emails("550 <jane.doe@example.com>: no such user") == (
        "550 <j***@example.com>: no such user"
    )

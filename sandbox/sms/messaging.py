"""``POST /version1/messaging``: Africa's Talking's send-SMS endpoint, as the simulator answers it.

Checks, in order (the first failure answers):

1. ``apiKey`` header missing or unknown → 401, text "The supplied authentication is invalid".
2. Form fields (``application/x-www-form-urlencoded``): ``username`` missing → 400;
   a ``username`` other than the apiKey's account → 401 as above; ``to`` or
   ``message`` missing or blank → 400, text "Request is missing required form field '<f>'".
3. A scripted whole-request failure (``http_status``) matching a recipient → that
   status, with its reason phrase as text; nothing is sent.
4. Per recipient (``to`` is comma-separated), HTTP 201 in every case:
   ``from`` not 1-11 letters, digits or spaces → 402 InvalidSenderId; a number not
   written ``+<7-15 digits>`` → 403 InvalidPhoneNumber; a scripted ``status_code``
   → that code; otherwise 101 Success with ``messageId`` ``ATXid_<32 hex>``.

Cost: KES 0.8000 per page; a page is 160 characters (153 per part when longer), or
70 (67) when the text is not plain ASCII, as for UCS-2 messages.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Final
from urllib.parse import parse_qsl

import falcon

from sandbox.sms.state import (
    STATUS_NAMES,
    TAKEN_CODES,
    MessagingRequest,
    SentMessage,
    SmsState,
    utc_now_iso,
)

AUTH_INVALID: Final = "The supplied authentication is invalid"
PAGE_COST: Final = Decimal("0.8000")
_NUMBER = re.compile(r"\+[1-9]\d{6,14}")
_SENDER_ID = re.compile(r"[A-Za-z0-9 ]{1,11}")
FORM_TYPE: Final = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Answer:
    status: int
    media: dict[str, object] | None = None
    text: str | None = None


@dataclass(frozen=True)
class Recipient:
    number: str
    status_code: int
    cost: Decimal
    message_id: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "statusCode": self.status_code,
            "number": self.number,
            "status": STATUS_NAMES[self.status_code],
            "cost": _cost(self.cost),
            "messageId": self.message_id or "None",
        }


class MessagingResource:
    def __init__(self, state: SmsState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = _form(req)
        answer = self._answer(req.get_header("apiKey"), form)
        resp.status = answer.status
        if answer.media is not None:
            resp.media = answer.media
        else:
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = answer.text
        self._state.record_request(
            MessagingRequest(
                fields=form,
                status=answer.status,
                response=answer.media if answer.media is not None else answer.text,
                received_at=utc_now_iso(),
            )
        )

    def _answer(self, api_key: str | None, form: dict[str, str]) -> Answer:
        account = self._state.username_for(api_key)
        if account is None:
            return Answer(401, text=AUTH_INVALID)
        for name in ("username", "to", "message"):
            if not form.get(name, "").strip():
                return Answer(400, text=f"Request is missing required form field '{name}'")
            if name == "username" and form[name] != account:
                return Answer(401, text=AUTH_INVALID)
        numbers = [n.strip() for n in form["to"].split(",") if n.strip()]
        failure = self._state.take_http_failure(numbers)
        if failure is not None:
            return Answer(failure, text=falcon.code_to_http_status(failure)[4:])
        recipients = [self._send(account, form, number) for number in numbers]
        return Answer(201, media=_message_data(recipients))

    def _send(self, account: str, form: dict[str, str], number: str) -> Recipient:
        sender = form.get("from") or None
        code = _refusal(sender, number) or self._state.take_status_failure(number) or 101
        if code not in TAKEN_CODES:
            return Recipient(number, code, Decimal(0), None)
        message = SentMessage(
            message_id=f"ATXid_{uuid.uuid4().hex}",
            username=account,
            sender=sender,
            to=number,
            message=form["message"],
            status_code=code,
            status=STATUS_NAMES[code],
            cost=_cost(page_count(form["message"]) * PAGE_COST),
            received_at=utc_now_iso(),
        )
        self._state.record_message(message)
        return Recipient(number, code, page_count(form["message"]) * PAGE_COST, message.message_id)


def _form(req: falcon.Request) -> dict[str, str]:
    """The form fields (the last of repeated ones); empty unless the body is a form."""
    raw = req.bounded_stream.read()
    if (req.content_type or "").split(";")[0].strip().lower() != FORM_TYPE:
        return {}
    try:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return {}


def _refusal(sender: str | None, number: str) -> int | None:
    if sender is not None and not _SENDER_ID.fullmatch(sender):
        return 402
    if not _NUMBER.fullmatch(number):
        return 403
    return None


def page_count(message: str) -> int:
    """SMS pages the text takes: GSM-7 (plain ASCII here) 160/153, else UCS-2 70/67."""
    single, part = (160, 153) if message.isascii() else (70, 67)
    return 1 if len(message) <= single else math.ceil(len(message) / part)


def _cost(amount: Decimal) -> str:
    return f"KES {amount:.4f}" if amount else "0"


def _message_data(recipients: list[Recipient]) -> dict[str, object]:
    sent = [r for r in recipients if r.status_code in TAKEN_CODES]
    total = sum((r.cost for r in sent), Decimal(0))
    summary = f"Sent to {len(sent)}/{len(recipients)} Total Cost: {_cost(total)}"
    return {
        "SMSMessageData": {
            "Message": summary,
            "Recipients": [r.to_json() for r in recipients],
        }
    }

"""The ArCa simulator's memory: its merchant logins, orders and the requests it saw.

An order is a :class:`~sandbox.hosted.HostedOrder` whose ``order_id`` is the
engine's ``orderId``; ``extra`` holds its own fields: ``merchant_ref`` (our
reference: the ``orderNumber``), ``username`` (the merchant's login),
``amount_minor``, ``return_url``, ``fail_url``, ``order_status`` and
``action_code`` (what getOrderStatusExtended.do says once visible),
``visible_at`` (the status lag's end) and the scenario's settings.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlencode

from sandbox.arca.scenarios import Scenario
from sandbox.hosted import HostedOrder
from sandbox.kit import Records
from sandbox.vpos import ApiRequest, RefundBook, RefundRecord, RefundRefusal, refund_left

Clock = Callable[[], float]

# orderStatus values (BPC's numbering).
REGISTERED: Final = 0
APPROVED: Final = 1
DEPOSITED: Final = 2
REFUNDED: Final = 4
DECLINED: Final = 6
ORDER_STATUSES: Final = frozenset(range(7))
PAYMENT_STATES: Final = {
    0: "CREATED",
    1: "APPROVED",
    2: "DEPOSITED",
    3: "REVERSED",
    4: "REFUNDED",
    5: "AUTHENTICATING",
    6: "DECLINED",
}
ACTION_DESCRIPTIONS: Final = {
    0: "Request processed successfully",
    100: "Do not honour",
    116: "Not enough money",
    -2007: "Payment time limit exceeded",
}
PAGE_PATH: Final = "/payment/merchants/ipay/payment.html"
# refund.do's refusal of a wrong state or amount (BPC's errorCode 7).
REFUND_REFUSED: Final = 7


@dataclass(frozen=True)
class Merchant:
    """One merchant's API login (shaped like ArCa's ``<merchant>_api``, not ArCa's)."""

    username: str
    password: str
    terminal_id: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


BUILTIN_MERCHANT: Final = Merchant(
    username="sandbox_ipay_api", password="ipaySandb0x", terminal_id="SANDBOX01"
)


class DuplicateOrder(Exception):
    """The merchant registered this orderNumber already."""


class ArcaState:
    """Merchants, orders and records; every public method takes the lock.

    It is also the page's :class:`~sandbox.hosted.HostedCheckout`.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._merchants = {BUILTIN_MERCHANT.username: BUILTIN_MERCHANT}
        self._orders: dict[str, HostedOrder] = {}
        self._requests = Records[ApiRequest]()
        self._refunds = RefundBook()

    def now(self) -> float:
        return self._clock()

    def reset(self) -> None:
        """Forget every order, request and added merchant (the built-in one stays)."""
        with self._lock:
            self._merchants = {BUILTIN_MERCHANT.username: BUILTIN_MERCHANT}
            self._orders.clear()
            self._requests.clear()
            self._refunds.clear()

    def merchant(self, username: object) -> Merchant | None:
        with self._lock:
            return self._merchants.get(username) if isinstance(username, str) else None

    def add_merchant(self, username: str | None, password: str | None) -> Merchant:
        """A merchant of its own (missing values generated in ArCa's shapes)."""
        merchant = Merchant(
            username=username or f"test{secrets.token_hex(4)}_api",
            password=password or secrets.token_urlsafe(12),
            terminal_id=f"T{secrets.randbelow(10**7):07d}",
        )
        with self._lock:
            if merchant.username in self._merchants:
                raise ValueError("that userName is taken")
            self._merchants[merchant.username] = merchant
        return merchant

    def merchants(self) -> list[Merchant]:
        with self._lock:
            return list(self._merchants.values())

    # -- orders ------------------------------------------------------------------------------

    def register(
        self,
        merchant: Merchant,
        *,
        order_number: str,
        amount_minor: int,
        description: str,
        return_url: str,
        fail_url: str | None,
        scenario: Scenario,
    ) -> HostedOrder:
        with self._lock:
            for order in self._orders.values():
                mine = order.extra["username"] == merchant.username
                if mine and order.extra["merchant_ref"] == order_number:
                    raise DuplicateOrder(order_number)
            order_id = str(uuid.uuid4())
            order = HostedOrder(
                order_id=order_id,
                amount=f"{amount_minor / 100:.2f}",
                currency="AMD",
                description=description,
                success_url=with_query(return_url, {"orderId": order_id}),
                fail_url=with_query(fail_url or return_url, {"orderId": order_id}),
                extra={
                    "merchant_ref": order_number,
                    "username": merchant.username,
                    "amount_minor": amount_minor,
                    "return_url": return_url,
                    "fail_url": fail_url,
                    "order_status": REGISTERED,
                    "action_code": 0,
                    "visible_at": None,
                    "scenario": scenario.id,
                    "page_delay_s": scenario.page_delay_s,
                    "status_lag_s": scenario.status_lag_s,
                    "decline_code": scenario.decline_code,
                    "forged_return": scenario.forged_return,
                    "two_step": scenario.two_step,
                    "refund_decline": scenario.refund_decline,
                    "refund_delay_s": scenario.refund_delay_s,
                    "refunded_minor": 0,
                    "registered_at_ms": int(time.time() * 1000),
                    "auth_ref_num": "",
                    "approval_code": "",
                },
            )
            self._orders[order_id] = order
            return order

    def order(self, order_id: str) -> HostedOrder | None:
        """An order by its orderId, or by our reference (orderNumber, with or without dashes)."""
        with self._lock:
            found = self._orders.get(order_id.lower())
            if found is not None:
                return found
            compact = order_id.replace("-", "")
            return next(
                (
                    o
                    for o in self._orders.values()
                    if o.extra["merchant_ref"] in (order_id, compact)
                ),
                None,
            )

    def orders(self) -> list[HostedOrder]:
        with self._lock:
            return list(self._orders.values())

    def visible(self, order: HostedOrder) -> tuple[int, int]:
        """(orderStatus, actionCode) as the status call says them now (the lag honoured)."""
        with self._lock:
            visible_at = order.extra["visible_at"]
            if visible_at is not None and self._clock() < visible_at:
                return REGISTERED, 0
            return int(order.extra["order_status"]), int(order.extra["action_code"])

    def set_status(self, order: HostedOrder, order_status: int, action_code: int) -> None:
        """The engine's side changes (a reversal, a refund at the bank): visible at once."""
        with self._lock:
            order.extra["order_status"] = order_status
            order.extra["action_code"] = action_code
            order.extra["visible_at"] = None
            if order_status == REFUNDED:  # refunded in full at the bank, outside malipo
                order.extra["refunded_minor"] = order.extra["amount_minor"]

    def refund(self, order: HostedOrder, amount_minor: int) -> tuple[int, str]:
        """Give ``amount_minor`` luma of a paid order back: (errorCode, message), 0 when done
        (the rule: :meth:`sandbox.vpos.RefundBook.take`)."""
        with self._lock:
            extra = order.extra
            paid, refunded = int(extra["amount_minor"]), int(extra["refunded_minor"])
            refusal = self._refunds.take(
                order,
                self._clock(),
                Decimal(amount_minor),
                Decimal(paid),
                Decimal(refunded),
                (f"{amount_minor / 100:.2f}", "555555**4444"),
            )
            if refusal is RefundRefusal.NOT_DEPOSITED:
                return REFUND_REFUSED, "Refund is impossible: the order is not deposited"
            if refusal is RefundRefusal.DECLINED:
                return int(extra["refund_decline"]), "Refund declined"
            if refusal is RefundRefusal.AMOUNT:
                left = int(refund_left(Decimal(paid), Decimal(refunded)))
                return REFUND_REFUSED, f"Refund amount exceeds the amount left ({left})"
            extra["refunded_minor"] = refunded + amount_minor
            return 0, "Success"

    def refunds(self, key: str | None = None) -> list[RefundRecord]:
        """The refunds made, oldest first (of one order: its orderId or orderNumber)."""
        return self._refunds.select(
            lambda r: (
                key is None or key.lower() == r.order_id or key.replace("-", "") == r.merchant_ref
            )
        )

    # -- the page (HostedCheckout) ---------------------------------------------------------------

    def page_delay_s(self, order: HostedOrder) -> float:
        return float(order.extra["page_delay_s"])

    def decide(self, order: HostedOrder, paid: bool) -> None:
        """The card was charged or declined; the browser goes to returnUrl or failUrl."""
        with self._lock:
            extra = order.extra
            if paid:
                extra["order_status"] = APPROVED if extra["two_step"] else DEPOSITED
                extra["action_code"] = 0
                extra["auth_ref_num"] = f"{secrets.randbelow(10**12):012d}"
                extra["approval_code"] = f"{secrets.randbelow(10**6):06d}"
            else:
                extra["order_status"] = DECLINED
                extra["action_code"] = extra["decline_code"]
                if extra["forged_return"]:
                    order.fail_url = order.success_url
            extra["visible_at"] = self._clock() + float(extra["status_lag_s"])

    # -- records -----------------------------------------------------------------------------

    def record(self, record: ApiRequest) -> None:
        self._requests.add(record)

    def requests(self, kind: str | None = None) -> list[ApiRequest]:
        return self._requests.select(lambda r: kind is None or r.kind == kind)


def with_query(url: str, params: dict[str, str]) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode(params)}"


def status_document(
    order: HostedOrder, merchant: Merchant, order_status: int, action_code: int
) -> dict[str, Any]:
    """getOrderStatusExtended.do's answer for an order (BPC's fields, the usual subset)."""
    extra = order.extra
    amount = int(extra["amount_minor"])
    held = order_status in (APPROVED, DEPOSITED, REFUNDED)
    card_seen = order_status not in (REGISTERED,)
    return {
        "errorCode": "0",
        "errorMessage": "Success",
        "orderNumber": extra["merchant_ref"],
        "orderStatus": order_status,
        "actionCode": action_code,
        "actionCodeDescription": ACTION_DESCRIPTIONS.get(action_code, "Declined"),
        "amount": amount,
        "currency": "051",
        "date": extra["registered_at_ms"],
        "orderDescription": order.description,
        "ip": "127.0.0.1",
        "terminalId": merchant.terminal_id,
        "authRefNum": extra["auth_ref_num"] if held else "",
        "merchantOrderParams": [],
        "attributes": [{"name": "mdOrder", "value": order.order_id}],
        "cardAuthInfo": {
            "pan": "555555**4444" if card_seen else "",
            "expiration": "203012" if card_seen else "",
            "cardholderName": "SANDBOX CARDHOLDER" if card_seen else "",
            "approvalCode": extra["approval_code"] if held else "",
        },
        "paymentAmountInfo": {
            "paymentState": PAYMENT_STATES.get(order_status, "UNKNOWN"),
            "approvedAmount": amount if held else 0,
            "depositedAmount": amount if order_status in (DEPOSITED, REFUNDED) else 0,
            "refundedAmount": int(extra["refunded_minor"]) if held else 0,
        },
    }

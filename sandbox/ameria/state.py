"""The Ameria simulator's memory: its merchant accounts, orders and the requests it saw.

An order is a :class:`~sandbox.hosted.HostedOrder` whose ``order_id`` is the
PaymentID; ``extra`` holds the vPOS's own fields: ``merchant_ref`` (our
reference: the Opaque when sent, else the OrderID), ``order_number`` (the
OrderID), ``client_id``, ``back_url``, ``opaque``, ``order_status`` and
``response_code`` (what GetPaymentDetails says once visible), ``visible_at``
(the status lag's end) and the scenario's settings.
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

from sandbox.ameria.scenarios import Scenario
from sandbox.hosted import HostedOrder
from sandbox.kit import Records, utc_now_iso
from sandbox.vpos import ApiRequest, RefundBook, RefundRecord, RefundRefusal, refund_left

Clock = Callable[[], float]

# OrderStatus values (Ameria's table 2).
STARTED: Final = 0
APPROVED: Final = 1
DEPOSITED: Final = 2
REFUNDED: Final = 4
DECLINED: Final = 6
PAYMENT_STATES: Final = {
    0: "payment_started",
    1: "payment_approved",
    2: "payment_deposited",
    3: "payment_void",
    4: "payment_refunded",
    5: "payment_autoauthorized",
    6: "payment_declined",
}
APPROVED_CODE: Final = "00"
NO_PAYMENT_YET: Final = "0-100"  # table 1: "no_payments_yet"
# RefundPayment's refusals (the simulator's choice: the document lists none for refunds).
REFUND_SUM_ERROR: Final = "50"  # more than is left of the order (table 1: "Payment sum error")


@dataclass(frozen=True)
class Account:
    """One vPOS merchant: its ClientID and API login (shaped like Ameria's, not Ameria's)."""

    client_id: str
    username: str
    password: str
    merchant_id: str
    terminal_id: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


BUILTIN_ACCOUNT: Final = Account(
    client_id="sandbox-ameria-client",
    username="7e20a51c93",
    password="sndBx4q",
    merchant_id="SANDBOX-MERCHANT-01",
    terminal_id="SANDBOX-TERMINAL-01",
)


class DuplicateOrder(Exception):
    """The merchant registered this OrderID already."""


class AmeriaState:
    """Accounts, orders and records; every public method takes the lock.

    It is also the page's :class:`~sandbox.hosted.HostedCheckout`.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._accounts = {BUILTIN_ACCOUNT.client_id: BUILTIN_ACCOUNT}
        self._orders: dict[str, HostedOrder] = {}
        self._requests = Records[ApiRequest]()
        self._refunds = RefundBook()

    def now(self) -> float:
        return self._clock()

    def reset(self) -> None:
        """Forget every order, request and added account (the built-in one stays)."""
        with self._lock:
            self._accounts = {BUILTIN_ACCOUNT.client_id: BUILTIN_ACCOUNT}
            self._orders.clear()
            self._requests.clear()
            self._refunds.clear()

    # -- accounts ----------------------------------------------------------------------------

    def add_account(
        self, client_id: str | None, username: str | None, password: str | None
    ) -> Account:
        """A merchant of its own (missing values generated in Ameria's shapes)."""
        account = Account(
            client_id=client_id or str(uuid.uuid4()).upper(),
            username=username or secrets.token_hex(5),
            password=password or secrets.token_urlsafe(6),
            merchant_id=f"SANDBOX-{secrets.token_hex(4).upper()}",
            terminal_id=f"SANDBOX-{secrets.token_hex(4).upper()}",
        )
        with self._lock:
            taken = any(a.username == account.username for a in self._accounts.values())
            if account.client_id in self._accounts or taken:
                raise ValueError("that ClientID or Username is taken")
            self._accounts[account.client_id] = account
        return account

    def accounts(self) -> list[Account]:
        with self._lock:
            return list(self._accounts.values())

    def account(self, client_id: object) -> Account | None:
        with self._lock:
            return self._accounts.get(client_id) if isinstance(client_id, str) else None

    def account_of_login(self, username: object) -> Account | None:
        with self._lock:
            return next((a for a in self._accounts.values() if a.username == username), None)

    # -- orders ------------------------------------------------------------------------------

    def register(
        self,
        account: Account,
        *,
        order_number: int,
        amount: Decimal,
        description: str,
        back_url: str | None,
        opaque: str | None,
        scenario: Scenario,
    ) -> HostedOrder:
        with self._lock:
            for order in self._orders.values():
                same_client = order.extra["client_id"] == account.client_id
                if same_client and order.extra["order_number"] == order_number:
                    raise DuplicateOrder(order_number)
            payment_id = str(uuid.uuid4()).upper()
            order = HostedOrder(
                order_id=payment_id,
                amount=_drams_text(amount),
                currency="AMD",
                description=description,
                success_url=back_url,
                fail_url=back_url,
                extra={
                    "merchant_ref": opaque or str(order_number),
                    "order_number": order_number,
                    "client_id": account.client_id,
                    "amount": _drams_text(amount),
                    "back_url": back_url,
                    "opaque": opaque or "",
                    "order_status": STARTED,
                    "response_code": NO_PAYMENT_YET,
                    "visible_at": None,
                    "scenario": scenario.id,
                    "page_delay_s": scenario.page_delay_s,
                    "status_lag_s": scenario.status_lag_s,
                    "decline_code": scenario.decline_code,
                    "forged_return": scenario.forged_return,
                    "two_step": scenario.two_step,
                    "refund_decline": scenario.refund_decline,
                    "refund_delay_s": scenario.refund_delay_s,
                    "refunded": "0",
                    "registered_at": utc_now_iso(),
                    "rrn": "",
                    "approval_code": "",
                },
            )
            self._orders[payment_id] = order
            return order

    def order(self, order_id: str) -> HostedOrder | None:
        """An order by its PaymentID (any case), our reference (Opaque) or its OrderID."""
        with self._lock:
            found = self._orders.get(order_id.upper())
            if found is not None:
                return found
            return next(
                (
                    o
                    for o in self._orders.values()
                    if order_id in (o.extra["merchant_ref"], str(o.extra["order_number"]))
                ),
                None,
            )

    def orders(self) -> list[HostedOrder]:
        with self._lock:
            return list(self._orders.values())

    def details(self, order: HostedOrder) -> tuple[int, str]:
        """(OrderStatus, ResponseCode) as GetPaymentDetails says them now (the lag honoured)."""
        with self._lock:
            visible_at = order.extra["visible_at"]
            if visible_at is not None and self._clock() < visible_at:
                return STARTED, NO_PAYMENT_YET
            return int(order.extra["order_status"]), str(order.extra["response_code"])

    def set_status(self, order: HostedOrder, order_status: int, response_code: str) -> None:
        """The bank's side changes (a void, a refund at the bank): visible at once."""
        with self._lock:
            order.extra["order_status"] = order_status
            order.extra["response_code"] = response_code
            order.extra["visible_at"] = None
            if order_status == REFUNDED:  # refunded in full at the bank, outside malipo
                order.extra["refunded"] = order.extra["amount"]

    def refund(self, order: HostedOrder, amount: Decimal) -> tuple[str, str]:
        """Give ``amount`` drams of a paid order back: (ResponseCode, message), "00" when done
        (the rule: :meth:`sandbox.vpos.RefundBook.take`; whole drams only)."""
        with self._lock:
            extra = order.extra
            paid, refunded = Decimal(extra["amount"]), Decimal(extra["refunded"])
            refusal = self._refunds.take(
                order,
                self._clock(),
                amount,
                paid,
                refunded,
                (_drams_text(amount), "5555****4444"),
                takes=amount == amount.to_integral_value(),
            )
            if refusal is RefundRefusal.NOT_DEPOSITED:
                return NO_PAYMENT_YET, "The payment is not deposited: nothing to refund"
            if refusal is RefundRefusal.DECLINED:
                return str(extra["refund_decline"]), "Refund declined"
            if refusal is RefundRefusal.AMOUNT:
                left = _drams_text(refund_left(paid, refunded))
                return REFUND_SUM_ERROR, f"Payment sum error: {left} can be refunded"
            extra["refunded"] = _drams_text(refunded + amount)
            return APPROVED_CODE, "OK"

    def refunds(self, key: str | None = None) -> list[RefundRecord]:
        """The refunds made, oldest first (of one order: its PaymentID or reference)."""
        return self._refunds.select(
            lambda r: key is None or key.upper() == r.order_id or key == r.merchant_ref
        )

    # -- the page (HostedCheckout) ---------------------------------------------------------------

    def page_delay_s(self, order: HostedOrder) -> float:
        return float(order.extra["page_delay_s"])

    def decide(self, order: HostedOrder, paid: bool) -> None:
        """The card was charged or declined; the browser goes to BackURL with the result."""
        with self._lock:
            extra = order.extra
            if paid:
                extra["order_status"] = APPROVED if extra["two_step"] else DEPOSITED
                extra["response_code"] = APPROVED_CODE
                extra["rrn"] = f"{secrets.randbelow(10**12):012d}"
                extra["approval_code"] = f"{secrets.randbelow(10**6):06d}"
            else:
                extra["order_status"] = DECLINED
                extra["response_code"] = extra["decline_code"]
            extra["visible_at"] = self._clock() + float(extra["status_lag_s"])
            extra["decided_at"] = utc_now_iso()
            claimed = APPROVED_CODE if paid or extra["forged_return"] else extra["decline_code"]
            back_url = extra["back_url"]
            if back_url:
                order.success_url = order.fail_url = with_query(
                    back_url,
                    {
                        "orderID": str(extra["order_number"]),
                        "resposneCode": claimed,  # sic: Ameria's spelling
                        "paymentID": order.order_id,
                        "opaque": extra["opaque"],
                    },
                )

    # -- records -----------------------------------------------------------------------------

    def record(self, record: ApiRequest) -> None:
        self._requests.add(record)

    def requests(self, kind: str | None = None) -> list[ApiRequest]:
        return self._requests.select(lambda r: kind is None or r.kind == kind)


def with_query(url: str, params: dict[str, str]) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode(params)}"


def _drams_text(amount: Decimal) -> str:
    return f"{amount:f}" if amount != amount.to_integral_value() else str(int(amount))


def details_document(
    order: HostedOrder, account: Account, order_status: int, response_code: str
) -> dict[str, Any]:
    """GetPaymentDetails' answer for an order, as the document's sample lists its fields."""
    extra = order.extra
    amount = float(Decimal(extra["amount"]))
    paid = order_status in (APPROVED, DEPOSITED, REFUNDED)
    return {
        "Amount": amount,
        "ApprovedAmount": amount if paid else 0.0,
        "ApprovalCode": extra["approval_code"] if paid else "",
        "CardNumber": "5555****4444" if order_status != STARTED else "",
        "ClientName": "SANDBOX CARDHOLDER" if order_status != STARTED else "",
        "ClientEmail": "",
        "Currency": "051",
        "DateTime": extra.get("decided_at") or extra["registered_at"],
        "DepositedAmount": amount if order_status in (DEPOSITED, REFUNDED) else 0.0,
        "Description": order.description,
        "MDOrderID": order.order_id.lower(),
        "MerchantId": account.merchant_id,
        "TerminalId": account.terminal_id,
        "OrderID": extra["order_number"],
        "PaymentState": PAYMENT_STATES.get(order_status, "unknown"),
        "PaymentType": 5,
        "PrimaryRC": response_code,
        "ResponseCode": response_code,
        "ExpDate": "12/30" if order_status != STARTED else "",
        "ProcessingIP": "127.0.0.1",
        "OrderStatus": order_status,
        "CardHolderID": "",
        "BindingID": "",
        "RefundedAmount": float(Decimal(extra["refunded"])) if paid else 0.0,
        "Opaque": extra["opaque"],
        "TrxnDescription": order.description,
        "rrn": extra["rrn"] if paid else "",
        "ActionCode": response_code[1:] if len(response_code) > 2 else "0",
        "ExchangeRate": 1.0,
    }

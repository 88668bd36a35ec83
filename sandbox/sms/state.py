"""In-memory, lock-protected store of the SMS simulator: accounts, messages, requests, failures.

Every public method takes the lock, so resources can share one ``SmsState``
across gunicorn threads. Records handed out are immutable.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Final

BUILTIN_ACCOUNTS: Final = {"sandbox": "malipo-sandbox-sms-key"}
# Africa's Talking's per-recipient status codes and the status each is reported with.
STATUS_NAMES: Final = {
    100: "Success",
    101: "Success",
    102: "Success",
    401: "RiskHold",
    402: "InvalidSenderId",
    403: "InvalidPhoneNumber",
    404: "UnsupportedNumberType",
    405: "InsufficientBalance",
    406: "UserInBlacklist",
    407: "CouldNotRoute",
    500: "InternalServerError",
    501: "GatewayError",
    502: "RejectedByGateway",
}
TAKEN_CODES: Final = frozenset({100, 101, 102})


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class SentMessage:
    """One recipient's message, taken for delivery (status 100-102)."""

    message_id: str
    username: str
    sender: str | None
    to: str
    message: str
    status_code: int
    status: str
    cost: str
    received_at: str

    def to_json(self) -> dict[str, object]:
        return {
            "messageId": self.message_id,
            "username": self.username,
            "from": self.sender,
            "to": self.to,
            "message": self.message,
            "statusCode": self.status_code,
            "status": self.status,
            "cost": self.cost,
            "received_at": self.received_at,
        }


@dataclass(frozen=True)
class MessagingRequest:
    """One call to the messaging endpoint, as answered (the apiKey is never kept)."""

    fields: dict[str, str]
    status: int
    response: object
    received_at: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class ScriptedFailure:
    """The next ``remaining`` matching requests (``http_status``) or recipients fail."""

    id: int
    phone: str | None
    http_status: int | None
    status_code: int | None
    remaining: int

    def matches(self, phone: str) -> bool:
        return self.remaining > 0 and self.phone in (None, phone)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class SmsState:
    """Accounts (username → apiKey), messages taken, requests answered, armed failures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, str] = dict(BUILTIN_ACCOUNTS)
        self._messages: list[SentMessage] = []
        self._requests: list[MessagingRequest] = []
        self._failures: list[ScriptedFailure] = []
        self._ids = itertools.count(1)

    def username_for(self, api_key: str | None) -> str | None:
        """The account an ``apiKey`` belongs to, or None."""
        with self._lock:
            return next((u for u, k in self._accounts.items() if k == api_key), None)

    def add_account(self, username: str, api_key: str) -> None:
        with self._lock:
            self._accounts[username] = api_key

    def add_failure(
        self, phone: str | None, http_status: int | None, status_code: int | None, times: int
    ) -> ScriptedFailure:
        with self._lock:
            failure = ScriptedFailure(next(self._ids), phone, http_status, status_code, times)
            self._failures.append(failure)
            return replace(failure)

    def failures(self) -> list[ScriptedFailure]:
        with self._lock:
            return [replace(f) for f in self._failures]

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def take_http_failure(self, recipients: list[str]) -> int | None:
        """Consume the oldest armed whole-request failure matching any recipient."""
        return self._take(lambda f: f.http_status, recipients)

    def take_status_failure(self, recipient: str) -> int | None:
        """Consume the oldest armed per-recipient failure for this recipient."""
        return self._take(lambda f: f.status_code, [recipient])

    def _take(
        self, code_of: Callable[[ScriptedFailure], int | None], phones: list[str]
    ) -> int | None:
        with self._lock:
            for failure in self._failures:
                code = code_of(failure)
                if code is not None and any(failure.matches(phone) for phone in phones):
                    failure.remaining -= 1
                    return code
        return None

    def record_message(self, message: SentMessage) -> None:
        with self._lock:
            self._messages.append(message)

    def messages(self, to: str | None = None) -> list[SentMessage]:
        with self._lock:
            return [m for m in self._messages if to is None or m.to == to]

    def record_request(self, request: MessagingRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def requests(self) -> list[MessagingRequest]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget messages, requests, failures and added accounts."""
        with self._lock:
            self._accounts = dict(BUILTIN_ACCOUNTS)
            self._messages.clear()
            self._requests.clear()
            self._failures.clear()

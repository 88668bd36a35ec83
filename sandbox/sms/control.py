"""The SMS simulator's control API under ``/_sim/sms`` (JSON): inspect and script.

Bad input answers 400 with falcon's JSON error document (``title``, ``description``).
"""

from __future__ import annotations

import json
from typing import Final

import falcon

from sandbox.sms.state import STATUS_NAMES, SmsState

FAILURE_KEYS: Final = frozenset({"phone", "http_status", "status_code", "times"})


def _json_object(req: falcon.Request) -> dict[str, object]:
    try:
        body = json.loads(req.bounded_stream.read() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise falcon.HTTPBadRequest(title="Invalid JSON", description="body is not JSON") from None
    if not isinstance(body, dict):
        raise falcon.HTTPBadRequest(title="Invalid JSON", description="expected a JSON object")
    return body


def _bad(description: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="Invalid field", description=description)


class MessagesResource:
    """``GET /_sim/sms/messages?to=+2547…``: messages taken for delivery, oldest first."""

    def __init__(self, state: SmsState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [m.to_json() for m in self._state.messages(req.get_param("to"))]


class RequestsResource:
    """``GET /_sim/sms/requests``: every messaging call with its form, status and answer."""

    def __init__(self, state: SmsState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [r.to_json() for r in self._state.requests()]


class FailuresResource:
    """``POST`` (arm), ``GET`` (list) and ``DELETE`` (clear) ``/_sim/sms/failures``."""

    def __init__(self, state: SmsState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _json_object(req)
        unknown = sorted(set(body) - FAILURE_KEYS)
        if unknown:
            raise _bad(f"unknown keys {unknown}")
        phone, times = body.get("phone"), body.get("times", 1)
        if phone is not None and (not isinstance(phone, str) or not phone):
            raise _bad("phone must be a number as the client sends it, e.g. +254712345678")
        if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= 1000:
            raise _bad("times must be an integer from 1 to 1000")
        http_status, status_code = _failure_codes(body)
        failure = self._state.add_failure(phone, http_status, status_code, times)
        resp.status = 201
        resp.media = failure.to_json()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [f.to_json() for f in self._state.failures()]

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._state.clear_failures()
        resp.media = {"cleared": True}


def _failure_codes(body: dict[str, object]) -> tuple[int | None, int | None]:
    """Exactly one of ``http_status`` (400-599) or a per-recipient ``status_code``."""
    http_status, status_code = body.get("http_status"), body.get("status_code")
    if (http_status is None) == (status_code is None):
        raise _bad("give exactly one of http_status or status_code")
    if http_status is not None:
        if not isinstance(http_status, int) or not 400 <= http_status <= 599:
            raise _bad("http_status must be an integer from 400 to 599")
        return http_status, None
    if not isinstance(status_code, int) or status_code not in STATUS_NAMES:
        raise _bad(f"status_code must be one of {sorted(STATUS_NAMES)}")
    return None, status_code


class AccountsResource:
    """``POST /_sim/sms/accounts`` ``{username, api_key}``: register or replace an account."""

    def __init__(self, state: SmsState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _json_object(req)
        username, api_key = body.get("username"), body.get("api_key")
        if not isinstance(username, str) or not username:
            raise _bad("username must be a non-empty string")
        if not isinstance(api_key, str) or not api_key:
            raise _bad("api_key must be a non-empty string")
        self._state.add_account(username, api_key)
        resp.status = 201
        resp.media = {"username": username}


class ResetResource:
    """``POST /_sim/sms/reset``: forget everything but the built-in account."""

    def __init__(self, state: SmsState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._state.reset()
        resp.media = {"reset": True}

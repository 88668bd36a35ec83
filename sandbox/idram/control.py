"""The Idram simulator's own ``/_sim`` controls: the cabinet, orders, what health reports.

The records, reset and health resources are ``sandbox/kit.py``'s; the cabinet and
orders resources ``sandbox/cabinet.py``'s, with Idram's fields and words.

Bad input is answered 400 with falcon's JSON error document, unknown ids 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.cabinet import CabinetResource, OrdersResource, bad, secret_change, url_changes
from sandbox.idram.state import BUILTIN_ACCOUNT, IdramState
from sandbox.kit import CABINET_URLS

if TYPE_CHECKING:
    from sandbox.idram.app import IdramCheckout
    from sandbox.idram.results import ResultSender


def cabinet(state: IdramState) -> CabinetResource:
    """``POST /_sim/cabinet {EDP_REC_ACCOUNT, secret_key?, result_url?, success_url?, fail_url?}``.

    What Idram's staff type into a merchant's cabinet: a new account needs its
    ``secret_key``; an existing one changes only the fields given (a URL may be
    null to remove it). ``GET`` lists the accounts, secrets redacted.
    """
    return CabinetResource(
        state.accounts,
        cabinet_changes,
        key="rec_account",
        secret="secret_key",
        noun="account",
        listed="accounts",
    )


def cabinet_changes(document: dict[str, object]) -> dict[str, Any]:
    unknown = sorted(set(document) - {"EDP_REC_ACCOUNT", "secret_key", *CABINET_URLS})
    if unknown:
        raise bad(f"unknown cabinet fields: {', '.join(unknown)}")
    # Without an account, the cabinet is the built-in one's (what `make run` fills in).
    rec_account = document.get("EDP_REC_ACCOUNT", BUILTIN_ACCOUNT.rec_account)
    if isinstance(rec_account, int) and not isinstance(rec_account, bool):
        rec_account = str(rec_account)
    if not isinstance(rec_account, str) or not rec_account.strip():
        raise bad("EDP_REC_ACCOUNT is required")
    return {
        "rec_account": rec_account.strip(),
        **secret_change(document, "secret_key"),
        **url_changes(document),
    }


def orders(state: IdramState, checkout: IdramCheckout) -> OrdersResource:
    """``GET /_sim/orders``, ``GET /_sim/orders/{id or bill}``, ``POST …/{id}/resend``
    (the confirmation again, same EDP_TRANS_ID, as an Idram operator could send it)."""
    return OrdersResource(state.orders, checkout, "order", ("not paid", "the order has no payment"))


def health(state: IdramState, sender: ResultSender) -> dict[str, object]:
    """What ``GET /_sim/health`` reports besides ``"status": "ok"``."""
    return {
        "gateway": "idram",
        "accounts": len(state.accounts.all()),
        "orders": len(state.orders.shown_all()),
        "pending_results": sender.pending(),
    }

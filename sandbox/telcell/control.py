"""The Telcell simulator's own ``/_sim`` controls: the cabinet, invoices, what health reports.

The records, reset and health resources are ``sandbox/kit.py``'s; the cabinet and
orders resources ``sandbox/cabinet.py``'s, with Telcell's fields and words.

Bad input is answered 400 with falcon's JSON error document, unknown ids 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.cabinet import CabinetResource, OrdersResource, bad, secret_change, url_changes
from sandbox.kit import CABINET_URLS
from sandbox.telcell.state import BUILTIN_SHOP, TelcellState

if TYPE_CHECKING:
    from sandbox.telcell.app import TelcellCheckout
    from sandbox.telcell.results import ResultSender


def cabinet(state: TelcellState) -> CabinetResource:
    """``POST /_sim/cabinet {issuer, shop_key?, result_url?, success_url?, fail_url?}``.

    What Telcell sets in a shop's cabinet: a new shop needs its ``shop_key``; an
    existing one changes only the fields given (a URL may be null to remove it).
    ``GET`` lists the shops, keys redacted.
    """
    return CabinetResource(
        state.shops, cabinet_changes, key="issuer", secret="shop_key", noun="shop", listed="shops"
    )


def cabinet_changes(document: dict[str, object]) -> dict[str, Any]:
    unknown = sorted(set(document) - {"issuer", "shop_key", *CABINET_URLS})
    if unknown:
        raise bad(f"unknown cabinet fields: {', '.join(unknown)}")
    # Without an issuer, the cabinet is the built-in shop's (what `make run` fills in).
    issuer = document.get("issuer", BUILTIN_SHOP.issuer)
    if not isinstance(issuer, str) or not issuer.strip():
        raise bad("issuer is required")
    return {
        "issuer": issuer.strip(),
        **secret_change(document, "shop_key"),
        **url_changes(document),
    }


def orders(state: TelcellState, checkout: TelcellCheckout) -> OrdersResource:
    """``GET /_sim/orders``, ``GET /_sim/orders/{invoice or issuer_id}``, ``POST …/resend``
    (the result again, same payment_id, as a Telcell operator could send it)."""
    return OrdersResource(state.orders, checkout, "invoice", ("open", "the invoice is still open"))


def health(state: TelcellState, sender: ResultSender) -> dict[str, object]:
    """What ``GET /_sim/health`` reports besides ``"status": "ok"``."""
    return {
        "gateway": "telcell",
        "shops": len(state.shops.all()),
        "orders": len(state.orders.shown_all()),
        "pending_results": sender.pending(),
    }

"""TouchPay, InTouch's hosted flow: the parameters its browser SDK takes.

No server-to-server call starts a TouchPay payment: the merchant's page loads
InTouch's script and calls ``sendPaymentInfos(order_number, agency_code,
secure_code, domain_name, url_redirection_success, url_redirection_failed,
amount, city, email, clientFirstName, clientLastName, clientPhone)``. The first
seven are required; the secure code only works from the agency's registered
domain, which is why handing it to the browser is how TouchPay is meant to be
used rather than a leak. malipo's part is to hand the front end exactly these
values, the customer's names, e-mail and phone included, for reconciliation.
"""

from __future__ import annotations

from typing import Any

from shared.gateways.base import PaymentRequest, ReturnUrls
from shared.gateways.intouch.credentials import InTouchCredentials
from shared.gateways.intouch.wire import national_number, whole_francs

# The script that defines sendPaymentInfos (unverified: InTouch hands it out with the
# agency's set-up). The adapter takes another one (InTouchAdapter(sdk_url=...)).
SDK_URL = "https://touchpay.gutouch.net/touchpayv2/script/touchpaynr/prod_touchpay-0.0.1.js"

# sendPaymentInfos's arguments, in its order; the first seven are required.
SDK_PARAMETERS = (
    "order_number",
    "agency_code",
    "secure_code",
    "domain_name",
    "url_redirection_success",
    "url_redirection_failed",
    "amount",
    "city",
    "email",
    "clientFirstName",
    "clientLastName",
    "clientPhone",
)
REQUIRED_SDK_PARAMETERS = SDK_PARAMETERS[:7]


def sdk_parameters(
    credentials: InTouchCredentials, request: PaymentRequest, return_urls: ReturnUrls
) -> dict[str, Any]:
    """``sendPaymentInfos``'s twelve arguments by name; optional ones are "" when unknown.

    The order number is the attempt's reference: unique per attempt, it comes back
    as ``command_number`` in the callback and is check_status's
    ``partner_transaction_id``.
    """
    customer = request.customer
    parameters: dict[str, Any] = {
        "order_number": request.attempt_ref,
        "agency_code": credentials.agency_code,
        "secure_code": credentials.secure_code,
        "domain_name": credentials.domain_name,
        "url_redirection_success": return_urls.success,
        "url_redirection_failed": return_urls.failure,
        "amount": whole_francs(request.amount),
        "city": customer.city or "",
        "email": customer.email or "",
        "clientFirstName": customer.first_name or "",
        "clientLastName": customer.last_name or "",
        "clientPhone": national_number(request.phone) if request.phone else "",
    }
    assert tuple(parameters) == SDK_PARAMETERS  # the SDK's names, in its order
    return parameters

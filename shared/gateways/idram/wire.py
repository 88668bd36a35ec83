"""Idram's wire: the payment form, amounts in whole drams, and the confirmation checksum.

From Idram's merchant interface description (and integrators' code that follows it):

* the customer's browser posts a form to ``https://banking.idram.am/Payment/GetPayment``:
  ``EDP_LANGUAGE`` (EN, AM, RU), ``EDP_REC_ACCOUNT`` (the merchant's Idram ID),
  ``EDP_DESCRIPTION``, ``EDP_AMOUNT`` (greater than zero, a dot before any
  fraction), ``EDP_BILL_NO`` (the merchant's bill id) and ``EDP_EMAIL`` (optional);
* Idram then posts two forms to the RESULT_URL typed into the merchant's cabinet: a
  precheck (``EDP_PRECHECK=YES, EDP_BILL_NO, EDP_REC_ACCOUNT, EDP_AMOUNT``), answered
  with the plain text ``OK`` when the bill may be paid, and after the payment the
  confirmation (``EDP_BILL_NO, EDP_REC_ACCOUNT, EDP_PAYER_ACCOUNT, EDP_AMOUNT,
  EDP_TRANS_ID, EDP_TRANS_DATE, EDP_CHECKSUM``), answered ``OK`` too;
* ``EDP_CHECKSUM`` is the MD5 hex digest of ``EDP_REC_ACCOUNT:EDP_AMOUNT:SECRET_KEY:
  EDP_BILL_NO:EDP_PAYER_ACCOUNT:EDP_TRANS_ID:EDP_TRANS_DATE``; Idram writes it in
  upper case and it is compared case-insensitively.

Unverified: whether Idram echoes ``EDP_AMOUNT`` exactly as the form sent it ("5000")
or reformatted ("5000.00"). Neither matters here: the checksum is computed over the
text received, and the amount is read as a decimal either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from shared.domain.money import Money
from shared.gateways import amd
from shared.gateways.base import PaymentRequest

PAYMENT_PATH = "/Payment/GetPayment"
LANGUAGES = ("EN", "AM", "RU")
PRECHECK_FLAG = "EDP_PRECHECK"
CHECKSUM = "EDP_CHECKSUM"
# The confirmation's fields in the order the checksum joins them (the secret key goes third).
CHECKSUM_FIELDS = (
    "EDP_REC_ACCOUNT",
    "EDP_AMOUNT",
    "EDP_BILL_NO",
    "EDP_PAYER_ACCOUNT",
    "EDP_TRANS_ID",
    "EDP_TRANS_DATE",
)
PRECHECK_FIELDS = ("EDP_BILL_NO", "EDP_REC_ACCOUNT", "EDP_AMOUNT")


def whole_drams(amount: Money) -> int:
    """The amount Idram's form takes: whole drams."""
    return amd.whole_drams(amount, "Idram")


def checksum_base(fields: Mapping[str, str], secret_key: str) -> str:
    """The text Idram hashes: the six confirmation fields with the secret key third."""
    values = [fields[name] for name in CHECKSUM_FIELDS]
    return ":".join([values[0], values[1], secret_key, *values[2:]])


def checksum(fields: Mapping[str, str], secret_key: str) -> str:
    """``EDP_CHECKSUM`` of a confirmation, upper-case hex as Idram sends it."""
    digest = hashlib.md5(checksum_base(fields, secret_key).encode(), usedforsecurity=False)
    return digest.hexdigest().upper()


def payment_form(rec_account: str, language: str, request: PaymentRequest) -> dict[str, str]:
    """The hidden fields of the form the browser posts to Idram, in Idram's order.

    ``EDP_BILL_NO`` is the attempt's reference: unique per attempt, it comes back in
    the precheck and the confirmation and is the attempt's gateway reference.
    """
    fields = {
        "EDP_LANGUAGE": language,
        "EDP_REC_ACCOUNT": rec_account,
        "EDP_DESCRIPTION": request.description or request.reference,
        "EDP_AMOUNT": str(whole_drams(request.amount)),
        "EDP_BILL_NO": request.attempt_ref,
    }
    if request.customer.email:
        fields["EDP_EMAIL"] = request.customer.email
    return fields

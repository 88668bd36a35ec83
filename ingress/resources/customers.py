"""``/v1/customers/{phone}``: what a merchant tells us about a customer (KYC, registration)."""

from __future__ import annotations

from typing import Any

import falcon
from sqlalchemy.dialects.postgresql import insert

from ingress.auth import Authenticator
from ingress.validation import read_json_object
from shared.db.models import Customer
from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.phone import mask_msisdn, normalise_ke_msisdn


class CustomerResource:
    """PUT registers (or updates) a customer, GET reads, DELETE forgets.

    A registered customer marked ``kyc_required`` is refused payments with
    ``kyc_required``; when the merchant requires registered customers, an
    unregistered phone is refused with ``account_missing``.
    """

    def __init__(self, db: Database, auth: Authenticator) -> None:
        self.db = db
        self.auth = auth

    def on_put(self, req: falcon.Request, resp: falcon.Response, phone: str) -> None:
        merchant_id = self.auth.require_merchant(req, "payments:write")
        msisdn = normalise_ke_msisdn(phone)
        document = read_json_object(req, 1024)
        if set(document) - {"kyc_required"} or not isinstance(
            document.get("kyc_required", False), bool
        ):
            raise MalipoError(errors.INVALID_REQUEST, 'the body is {"kyc_required": true|false}')
        kyc_required = bool(document.get("kyc_required", False))
        with self.db.transaction() as session:
            statement = insert(Customer).values(
                merchant_id=merchant_id, phone=msisdn, kyc_required=kyc_required
            )
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["merchant_id", "phone"], set_={"kyc_required": kyc_required}
                )
            )
        resp.media = _view(msisdn, kyc_required)

    def on_get(self, req: falcon.Request, resp: falcon.Response, phone: str) -> None:
        merchant_id = self.auth.require_merchant(req, "payments:read")
        msisdn = normalise_ke_msisdn(phone)
        with self.db.transaction() as session:
            customer = session.get(Customer, (merchant_id, msisdn))
            if customer is None:
                raise MalipoError(errors.NOT_FOUND)
            resp.media = _view(msisdn, customer.kyc_required)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, phone: str) -> None:
        merchant_id = self.auth.require_merchant(req, "payments:write")
        msisdn = normalise_ke_msisdn(phone)
        with self.db.transaction() as session:
            customer = session.get(Customer, (merchant_id, msisdn))
            if customer is not None:
                session.delete(customer)
        resp.status = falcon.HTTP_204


def _view(msisdn: str, kyc_required: bool) -> dict[str, Any]:
    return {"phone": mask_msisdn(msisdn), "kyc_required": kyc_required}

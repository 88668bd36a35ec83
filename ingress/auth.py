"""Merchant authentication: ``Authorization: Bearer <api key>`` and scopes."""

from __future__ import annotations

import uuid

import falcon

from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.merchants import Principal, authenticate_api_key


class Authenticator:
    def __init__(self, db: Database, pepper: bytes) -> None:
        self.db = db
        self.pepper = pepper

    def require(self, req: falcon.Request, scope: str) -> Principal:
        """The principal behind the request, holding ``scope``; otherwise 401 or 403."""
        header = req.get_header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or len(token) > 200:
            raise MalipoError(errors.UNAUTHORIZED)
        with self.db.transaction() as session:
            principal = authenticate_api_key(session, self.pepper, token.strip())
        if principal is None:
            raise MalipoError(errors.UNAUTHORIZED)
        if scope not in principal.scopes:
            raise MalipoError(errors.FORBIDDEN, f"this API key lacks the {scope!r} scope")
        return principal

    def require_merchant(self, req: falcon.Request, scope: str) -> uuid.UUID:
        """The merchant a merchant key speaks for (operator keys cannot act for merchants)."""
        principal = self.require(req, scope)
        if principal.merchant_id is None:
            raise MalipoError(errors.FORBIDDEN, "an operator key cannot act for a merchant")
        return principal.merchant_id

"""``/ops/dead-letters``: the dead-letter archive for platform operators.

``GET /ops/dead-letters`` (``ops:read``) lists with the same filters as
``malipo dlq list``; ``GET /ops/dead-letters/{id}`` shows one;
``POST /ops/dead-letters/{id}/replay`` and ``…/discard`` (``ops:write``, body
``{"reason": "..."}``; a reason is required to discard) act on one, audited
with the operator key's label or prefix. Only platform operator keys: dead
letters belong to no single merchant. A replay's audit row commits before the
message is published; if RabbitMQ does not take it, the dead letter is dead
again (audited) and the answer is ``503``: asking again is safe. A dead letter
already replayed is refused with ``409 dead_letter_already_replayed`` unless
the body says ``"force": true``; a discarded one with ``400 invalid_request``.
"""

from __future__ import annotations

from typing import Any

import falcon

from ingress.auth import Authenticator
from ingress.validation import read_json_object, text_param, time_param
from shared.archive import (
    AlreadyReplayed,
    Filters,
    NotReplayable,
    discard,
    list_dead_letters,
    view,
)
from shared.db.models import ApiKey, DeadLetter
from shared.db.session import Database
from shared.dead_letter_replay import replay_dead_letter
from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.merchants import Principal
from shared.messages import BrokerUnavailable, Publisher

STATUSES = ("dead", "replayed", "discarded", "all")


class DeadLettersResource:
    def __init__(self, db: Database, auth: Authenticator, publisher: Publisher) -> None:
        self.db = db
        self.auth = auth
        self.publisher = publisher

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        operator_only(self.auth.require(req, "ops:read"))
        status = req.get_param("status") or "dead"
        if status not in STATUSES:
            raise MalipoError(
                errors.INVALID_REQUEST, f"status must be one of {', '.join(STATUSES)}"
            )
        filters = Filters(
            queue=text_param(req, "queue"),
            actor=text_param(req, "actor"),
            since=time_param(req),
            error=text_param(req, "error"),
            status=None if status == "all" else status,
        )
        limit = req.get_param_as_int("limit", min_value=1, max_value=500) or 100
        after_id = req.get_param_as_int("after_id", min_value=0, max_value=2**63 - 1)
        with self.db.transaction() as session:
            rows = list_dead_letters(session, filters, limit=limit, after_id=after_id)
            shown = [view(row) for row in rows]
        resp.media = {
            "dead_letters": shown,
            "next_after_id": shown[-1]["id"] if len(shown) == limit else None,
        }

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, dead_letter_id: int) -> None:
        operator_only(self.auth.require(req, "ops:read"))
        with self.db.transaction() as session:
            row = session.get(DeadLetter, dead_letter_id)
            if row is None:
                raise MalipoError(errors.NOT_FOUND)
            resp.media = view(row, full=True)

    def on_post_replay(
        self, req: falcon.Request, resp: falcon.Response, dead_letter_id: int
    ) -> None:
        principal = operator_only(self.auth.require(req, "ops:write"))
        document = _body(req, required=False)
        reason = _reason_in(document, required=False) or "replayed through /ops"
        force = document.get("force", False)
        if not isinstance(force, bool):
            raise MalipoError(errors.INVALID_REQUEST, '"force" must be true or false')
        with self.db.transaction() as session:
            who = operator_name(session, principal)
        try:
            found = replay_dead_letter(
                self.db, self.publisher, dead_letter_id, operator=who, reason=reason, force=force
            )
        except AlreadyReplayed as exc:
            raise MalipoError(
                errors.DEAD_LETTER_ALREADY_REPLAYED, f'{exc} (send {{"force": true}})'
            ) from None
        except NotReplayable as exc:
            raise MalipoError(errors.INVALID_REQUEST, str(exc)) from None
        except BrokerUnavailable as exc:
            raise MalipoError(errors.SERVICE_UNAVAILABLE) from exc
        if not found:
            raise MalipoError(errors.NOT_FOUND)
        resp.status = falcon.HTTP_202
        resp.media = {"id": dead_letter_id, "status": "replayed"}

    def on_post_discard(
        self, req: falcon.Request, resp: falcon.Response, dead_letter_id: int
    ) -> None:
        principal = operator_only(self.auth.require(req, "ops:write"))
        reason = _reason(req, required=True)
        with self.db.transaction() as session:
            who = operator_name(session, principal)
            found = discard(session, dead_letter_id, operator=who, reason=reason)
        if not found:
            raise MalipoError(errors.NOT_FOUND)
        resp.media = {"id": dead_letter_id, "status": "discarded"}


def operator_only(principal: Principal) -> Principal:
    if not principal.is_operator:
        raise MalipoError(errors.FORBIDDEN, "dead letters are for platform operator keys")
    return principal


def operator_name(session: Any, principal: Principal) -> str:
    key = session.get(ApiKey, principal.api_key_id)
    return f"api-key:{key.label or key.prefix}" if key is not None else "api-key:unknown"


def _reason(req: falcon.Request, *, required: bool) -> str:
    return _reason_in(_body(req, required=required), required=required)


def _body(req: falcon.Request, *, required: bool) -> dict[str, Any]:
    """The JSON object body; with none, an empty one unless ``required``."""
    if not req.content_length and not required:
        return {}
    return read_json_object(req, 2048)


def _reason_in(document: dict[str, Any], *, required: bool) -> str:
    reason = document.get("reason", "")
    if not isinstance(reason, str) or (required and not reason.strip()) or len(reason) > 500:
        raise MalipoError(errors.INVALID_REQUEST, 'say why: {"reason": "..."} (1-500 characters)')
    return reason.strip()

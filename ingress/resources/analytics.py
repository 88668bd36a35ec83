"""``GET /ops/analytics`` (JSON, or CSV by ``Accept: text/csv``) and ``GET /ops/analytics.csv``.

Scope ``ops:read``. A platform operator's key sees every merchant, or one by
``merchant=``; a merchant's key sees its own merchant only, and naming another
merchant is refused (403) rather than quietly answered with its own figures.
The figures themselves are computed in PostgreSQL (shared/analytics.py).
"""

from __future__ import annotations

import csv
import functools
import io
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import falcon
from sqlalchemy.exc import DataError

from ingress.auth import Authenticator
from shared.analytics import BUCKETS, ROW_FIELDS, analytics_rows, analytics_totals
from shared.db.session import Database
from shared.domain import errors
from shared.domain.errors import MalipoError

MAX_SPAN = timedelta(days=366)
CSV = "text/csv"


@dataclass(frozen=True)
class Query:
    """What one analytics request asks for, checked."""

    start: datetime
    end: datetime
    bucket: str
    tz: str
    gateway: str | None
    merchant_id: uuid.UUID | None


class AnalyticsResource:
    def __init__(self, db: Database, auth: Authenticator, gateway_names: list[str]) -> None:
        self.db = db
        self.auth = auth
        self.gateway_names = gateway_names

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.client_prefers([falcon.MEDIA_JSON, CSV]) == CSV:
            self.on_get_csv(req, resp)
            return
        query = self.query(req)
        rows, totals = self.figures(query)
        resp.media = {
            "from": query.start.isoformat(),
            "to": query.end.isoformat(),
            "bucket": query.bucket,
            "tz": query.tz,
            "gateway": query.gateway,
            "merchant": str(query.merchant_id) if query.merchant_id else None,
            "rows": rows,
            "totals": totals,
        }

    def on_get_csv(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The rows (no totals) with a header line; ``top_failures`` as ``code:count;...``."""
        rows, _ = self.figures(self.query(req))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=ROW_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({name: csv_value(name, value) for name, value in row.items()})
        resp.content_type = f"{CSV}; charset=utf-8"
        resp.set_header("Content-Disposition", 'attachment; filename="analytics.csv"')
        resp.text = out.getvalue()

    def figures(self, query: Query) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        try:
            return self._figures(query)
        except DataError:
            if query.tz == "UTC":
                raise
            # A zone Python knows and this PostgreSQL does not (their tz databases differ).
            raise MalipoError(
                errors.INVALID_REQUEST, "tz is not a time zone the database knows", param="tz"
            ) from None

    def _figures(self, query: Query) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        with self.db.transaction() as session:
            # One snapshot for both statements: the totals are those of the rows' payments.
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            rows = analytics_rows(
                session,
                start=query.start,
                end=query.end,
                bucket=query.bucket,
                gateway=query.gateway,
                merchant_id=query.merchant_id,
                tz=query.tz,
            )
            totals = analytics_totals(
                session,
                start=query.start,
                end=query.end,
                gateway=query.gateway,
                merchant_id=query.merchant_id,
            )
        return rows, totals

    def query(self, req: falcon.Request) -> Query:
        principal = self.auth.require(req, "ops:read")
        tz = printable_param(req, "tz") or "UTC"
        if tz != "UTC" and tz not in time_zones():
            raise MalipoError(errors.INVALID_REQUEST, "tz must be an IANA time zone", param="tz")
        zone = zoneinfo.ZoneInfo(tz)
        start, end = moment_param(req, "from", zone), moment_param(req, "to", zone)
        if end <= start:
            raise MalipoError(errors.INVALID_REQUEST, "to must be later than from", param="to")
        if end - start > MAX_SPAN:
            raise MalipoError(
                errors.INVALID_REQUEST, "from and to are at most 366 days apart", param="to"
            )
        bucket = req.get_param("bucket") or "day"
        if bucket not in BUCKETS:
            raise MalipoError(
                errors.INVALID_REQUEST,
                f"bucket must be one of {', '.join(BUCKETS)}",
                param="bucket",
            )
        gateway = req.get_param("gateway")
        if gateway is not None and gateway not in self.gateway_names:
            raise MalipoError(
                errors.INVALID_REQUEST,
                f"gateway must be one of {', '.join(self.gateway_names)}",
                param="gateway",
            )
        merchant_id = merchant_param(req)
        if principal.merchant_id is not None:
            if merchant_id not in (None, principal.merchant_id):
                raise MalipoError(
                    errors.FORBIDDEN, "a merchant key sees its own merchant only", param="merchant"
                )
            merchant_id = principal.merchant_id
        return Query(start, end, bucket, tz, gateway, merchant_id)


@functools.cache
def time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def moment_param(req: falcon.Request, name: str, zone: zoneinfo.ZoneInfo) -> datetime:
    """A required ISO-8601 time with a zone, or a date (its midnight in ``zone``)."""
    raw = printable_param(req, name)
    if raw is None:
        raise MalipoError(errors.INVALID_REQUEST, f"{name} is required", param=name)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise MalipoError(
            errors.INVALID_REQUEST, f"{name} must be an ISO-8601 time or date", param=name
        ) from None
    if moment.tzinfo is None:
        if not _is_date(raw):
            raise MalipoError(
                errors.INVALID_REQUEST, f"{name} needs a time zone (e.g. Z)", param=name
            )
        moment = moment.replace(tzinfo=zone)
    return moment


def _is_date(raw: str) -> bool:
    try:
        date.fromisoformat(raw)
    except ValueError:
        return False
    return True


def printable_param(req: falcon.Request, name: str, max_length: int = 64) -> str | None:
    """A query parameter of printable text (``fromisoformat`` takes a trailing NUL)."""
    value = req.get_param(name)
    if value is not None and (len(value) > max_length or not value.isprintable()):
        raise MalipoError(
            errors.INVALID_REQUEST,
            f"{name} must be printable text of at most {max_length} characters",
            param=name,
        )
    return value


def merchant_param(req: falcon.Request) -> uuid.UUID | None:
    raw = req.get_param("merchant")
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise MalipoError(
            errors.INVALID_REQUEST, "merchant must be a UUID", param="merchant"
        ) from None


def csv_value(name: str, value: Any) -> Any:
    """A figure as a CSV cell: ``top_failures`` as ``code:count;code:count``, null as empty."""
    if name == "top_failures":
        return ";".join(f"{failure['code']}:{failure['count']}" for failure in value)
    return "" if value is None else value

"""Hypothesis strategies for fuzzing the ingress: malformed requests, in-process and raw bytes.

Strategies are built from :class:`FuzzTargets` (the real keys, secrets and payment
ids a fuzz run set up), so that some generated requests pass authentication and
reach the deeper code while the rest of the request is wrong in some way.

Header values are latin-1 text without CR, LF or NUL: what a WSGI server can hand
to the application (raw bytes that gunicorn refuses are the raw-HTTP part's job).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_from_bytes

from hypothesis import strategies as st

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
SIGNATURE_HEADER = "X-Malipo-Signature"


@dataclass(frozen=True)
class FuzzTargets:
    """What a fuzz run set up for real: keys that pass, secrets that match, ids that exist."""

    merchant_key: str
    other_merchant_key: str
    ops_key: str  # the merchant's key with ops:read only
    operator_key: str  # a platform operator's key (no merchant)
    callback_secret: str
    signed_callback_secret: str  # a merchant that requires X-Malipo-Signature
    allowlisted_callback_secret: str  # a merchant with a source-IP allowlist
    allowed_source_ip: str
    signing_secret: bytes
    final_payment_ids: tuple[str, ...]  # finished payments of the merchant
    redeemable_payment_id: str
    redeemable_amount: int
    event_ids: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class FuzzRequest:
    """One request for ``falcon.testing.TestClient``; ``path`` is percent-encoded (as sent)."""

    method: str
    path: str
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None

    def header(self, name: str) -> str | None:
        """The last value sent for ``name`` (case-insensitive)."""
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found


# --- building blocks ---------------------------------------------------------------------------

LATIN1_NO_CRLF_NUL = st.binary(max_size=40).map(
    lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"").decode("latin-1")
)
CONTROL_CHARS = st.text(
    alphabet=st.sampled_from([chr(c) for c in (*range(1, 10), 11, 12, *range(14, 32), 127)]),
    min_size=1,
    max_size=5,
)


def encoded(text: str) -> str:
    """Percent-encode everything but unreserved characters (so the server decodes it back)."""
    return quote(text, safe="")


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``one_of`` where each strategy is picked in proportion to its weight.

    Hypothesis favours the first and last of a ``sampled_from`` list, so the heaviest
    choice (the first given) takes both ends.
    """
    expanded = [strategy for weight, strategy in choices for _ in range(weight)]
    expanded.append(expanded.pop(0))
    return st.sampled_from(expanded).flatmap(lambda strategy: strategy)


RAW_PERCENT_GARBAGE = (
    "",
    ".",
    "..",
    "%2e%2e",
    "%2E%2e%2F",
    "%2F",
    "%",
    "%%",
    "%zz",
    "%f",
    "%ff%fe",
    "%c0%af",
    "%00",
    "%0d%0a",
    "%ed%a0%80",
    "%e2%82",
    "%F0%9F%92",
    "a%20b",
    "+",
    "~",
    "*",
    "%u0041",
    "%25",
)

SEGMENTS: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(RAW_PERCENT_GARBAGE),
    st.text(max_size=40).map(encoded),
    st.binary(max_size=30).map(lambda raw: quote_from_bytes(raw, safe="")),
    st.text(
        alphabet=st.characters(
            min_codepoint=0x80, max_codepoint=0x2FFFF, exclude_categories=["Cs"]
        ),
        min_size=1,
        max_size=8,
    ),
    st.integers(min_value=1, max_value=6000).map(lambda n: "a" * n),
    st.uuids().map(str),
)

UUID_VARIANTS: st.SearchStrategy[str] = st.uuids().flatmap(
    lambda u: st.sampled_from(
        [
            str(u),
            str(u).upper(),
            u.hex,
            "{" + str(u) + "}",
            "urn:uuid:" + str(u),
            str(u)[:-1],
            str(u) + "0",
            str(u).replace("-", "_"),
            str(u)[:8],
        ]
    )
)

PHONE_SEGMENTS: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(
        [
            "0712345678",
            "254712345678",
            "+254712345678",
            "0712 345 678",
            "0712-345-678",
            "712345678",
            "0112345678",
            "255712345678",
            "07123456789",
            "+",
            "2547" + "1" * 40,
        ]
    ).map(encoded),
    st.text(alphabet="0123456789 +-", max_size=20).map(encoded),
    st.text(alphabet=st.characters(categories=["Nd"]), min_size=9, max_size=13).map(encoded),
    SEGMENTS,
)

TRAILERS = weighted((12, st.just("")), (1, st.sampled_from(["/", "//", "/.", "/..", "/%2F"])))


# --- headers -----------------------------------------------------------------------------------


def _authorizations(
    targets: FuzzTargets, preferred: tuple[str, ...]
) -> st.SearchStrategy[str | None]:
    """Mostly a key that authenticates here (``preferred``), else every way of getting it wrong."""
    key = targets.merchant_key
    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    return weighted(
        (12, st.sampled_from(preferred).map(lambda k: f"Bearer {k}")),
        (1, st.none()),
        (
            4,
            st.sampled_from(
                [
                    f"Bearer {targets.merchant_key}",
                    f"Bearer {targets.other_merchant_key}",
                    f"Bearer {targets.ops_key}",
                    f"Bearer {targets.operator_key}",
                    f"bearer {key}",
                    f"BEARER   {key}  ",
                    f"Bearer {wrong_secret}",
                    f"Bearer {key[:17]}",
                    f"Bearer {key}{key}",
                    "Bearer",
                    "Bearer ",
                    "Bearer mlp_000000000000_nope",
                    "Bearer mlp_zzzzzzzzzzzz_nope",
                    f"Basic {key}",
                    key,
                    "Bearer \t",
                ]
            ),
        ),
        (1, LATIN1_NO_CRLF_NUL.map(lambda garbage: f"Bearer {garbage}")),
        (1, LATIN1_NO_CRLF_NUL),
        (1, st.integers(min_value=150, max_value=12_000).map(lambda n: "Bearer " + "A" * n)),
    )


IDEMPOTENCY_KEYS: st.SearchStrategy[str | None] = weighted(
    (10, st.uuids().map(str)),
    (1, st.none()),
    (2, st.sampled_from(["", " ", "k", "x" * 255, "x" * 256, "é", "ключ", "a b", "\x1b[31mred"])),
    (1, CONTROL_CHARS),
    (1, CONTROL_CHARS.map(lambda c: f"key{c}key")),
    (1, LATIN1_NO_CRLF_NUL),
    (1, st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300)),
)

CONTENT_TYPES: st.SearchStrategy[str | None] = weighted(
    (10, st.just("application/json")),
    (1, st.none()),
    (1, LATIN1_NO_CRLF_NUL),
    (
        3,
        st.sampled_from(
            [
                "application/json",
                "application/json",
                "application/json; charset=utf-8",
                "application/json;charset=UTF-8",
                'application/json; charset="utf-8"',
                "application/json; charset=utf8",
                "APPLICATION/JSON",
                "application/json; charset=utf-16",
                "application/json; charset=utf-32",
                "application/json; charset=latin-1",
                "application/json; charset=utf-8; charset=utf-16",
                "application/json;;;",
                "application/json; charset",
                "application/json; charset=",
                "application/jsonx",
                "application/problem+json",
                "text/plain",
                "text/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "*/*",
                "",
                ";",
            ]
        ),
    ),
)

FORWARDED_FOR: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(
        [
            "203.0.113.7",
            "203.0.113.7, 127.0.0.1",
            "10.0.0.1, 203.0.113.7",
            "unknown",
            "",
            ",,,",
            "::1",
            "fe80::1%eth0",
            "fe80::1%25eth0",
            "999.999.999.999",
            "203.0.113.7:443",
            "[::1]:80",
            "127.0.0.1, " * 200,
        ]
    ),
    LATIN1_NO_CRLF_NUL,
    st.lists(st.ip_addresses().map(str), max_size=5).map(", ".join),
)

REQUEST_IDS: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(["fuzz-request-0001", "short", "x" * 64, "x" * 65, "id with spaces", "é" * 10]),
    LATIN1_NO_CRLF_NUL,
    CONTROL_CHARS,
)

GARBAGE_SIGNATURES: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(
        [
            "",
            "t=",
            "v1=",
            "t=1,v1=",
            "t=abc,v1=00",
            "t=-1,v1=00",
            "t=9999999999999,v1=00",
            "t=1700000000,v1=" + "0" * 64,
            "t=1700000000,v1=" + "0" * 64 + ",v1=zz",
            "v1=" + "a" * 64 + ",t=" + "9" * 12,
            ",,,,",
            "t=1,t=2,v1=x",
        ]
    ),
    LATIN1_NO_CRLF_NUL,
)


def _timestamps() -> st.SearchStrategy[str]:
    """Signature timestamps around now, stale, and odd digit strings (int() accepts them all)."""
    return st.one_of(
        # Offsets, not absolute times: the strategy must not change while Hypothesis replays.
        st.integers(min_value=-1000, max_value=1000).map(lambda d: str(int(time.time()) + d)),
        st.sampled_from(["0", "1", "000000000001", "999999999999", "0" * 12]),
        st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=12),
        st.sampled_from(["²", "¹²³", "³" * 10]),  # digits to str.isdigit(), not to int()
    )


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """A correct ``X-Malipo-Signature`` for ``body`` (computed here, independently of malipo)."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@st.composite
def headers(
    draw: st.DrawFn,
    targets: FuzzTargets,
    *,
    idempotency: bool = True,
    content_type: bool = True,
    operator: bool = False,
) -> tuple[tuple[str, str], ...]:
    """Authorization, Idempotency-Key, Content-Type and a random selection of odd extras.

    Mostly the merchant's key (or with ``operator``, the ops keys), so the rest is tried.
    """
    preferred = (targets.ops_key, targets.operator_key) if operator else (targets.merchant_key,)
    chosen: list[tuple[str, str]] = []
    authorization = draw(_authorizations(targets, preferred))
    if authorization is not None:
        chosen.append(("Authorization", authorization))
    if idempotency:
        key = draw(IDEMPOTENCY_KEYS)
        if key is not None:
            chosen.append(("Idempotency-Key", key))
    if content_type:
        media = draw(CONTENT_TYPES)
        if media is not None:
            chosen.append(("Content-Type", media))
    extras = draw(
        st.lists(
            st.one_of(
                FORWARDED_FOR.map(lambda v: ("X-Forwarded-For", v)),
                REQUEST_IDS.map(lambda v: ("X-Request-ID", v)),
                GARBAGE_SIGNATURES.map(lambda v: (SIGNATURE_HEADER, v)),
                IDEMPOTENCY_KEYS.filter(bool).map(lambda v: ("Idempotency-Key", str(v))),
                st.tuples(
                    st.text(
                        alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=20
                    ).map(lambda n: f"X-{n}"),
                    LATIN1_NO_CRLF_NUL,
                ),
                st.sampled_from(["Accept", "Accept-Encoding", "Accept-Charset", "Host"]).flatmap(
                    lambda n: LATIN1_NO_CRLF_NUL.map(lambda v: (n, v))
                ),
            ),
            max_size=3,
        )
    )
    chosen.extend(extras)
    if draw(st.integers(0, 15)) == 0:  # a second Authorization: the two are joined with ","
        second = draw(_authorizations(targets, preferred))
        chosen.append(("Authorization", second or ""))
    # Rarely many or huge headers: past the limits nothing deeper is reached (431).
    many = draw(st.sampled_from([0] * 20 + [10, 55, 64, 200]))
    chosen.extend((f"X-Many-{i}", str(i)) for i in range(many))
    huge = draw(st.sampled_from([0] * 20 + [4000, 8150, 8200, 20_000]))
    if huge:
        chosen.append(("X-Huge", "h" * huge))
    return tuple(chosen)


# --- bodies ------------------------------------------------------------------------------------

WEIRD_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(
        [0, -1, -100, 1, 99, 100, 101, 25_000_000, 25_000_100, 2**63, 10**20, -(2**63)]
    ),
    st.floats(),
    st.sampled_from([100.0, 1e309, -0.0, 0.5]),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e309",
            "100",
            "１００",
            "0x64",
            "1_000",
            "KES",
            "kes",
        ]
    ),
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    WEIRD_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)

VALID_PAYMENT: dict[str, Any] = {
    "amount": 1500,
    "currency": "KES",
    "phone": "0712345678",
    "reference": "FUZZ-1",
    "description": "Fuzzed",
    "gateway": "daraja",
}
PAYMENT_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "amount": st.one_of(st.sampled_from([100, 1500, 1050, 25_000_000, 0]), JSON_VALUES),
    "currency": st.one_of(st.sampled_from(["KES", "kes", "USD", "KESS", "ＫＥＳ"]), JSON_VALUES),
    "phone": st.one_of(
        st.sampled_from(
            [
                "0712345678",
                "+254 712-345-678",
                "254700000001",
                "0202345678",
                712345678,
                "٠٧١٢٣٤٥٦٧٨",
            ]
        ),
        JSON_VALUES,
    ),
    "reference": st.one_of(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 _.:/#-]{0,70}", fullmatch=True), JSON_VALUES
    ),
    "description": st.one_of(st.text(max_size=120), JSON_VALUES),
    "gateway": st.one_of(st.sampled_from(["daraja", "MPESA", "intasend", ""]), JSON_VALUES),
}
EXTRA_FIELD_NAMES = st.one_of(
    st.sampled_from(["ammount", "id", "status", "__proto__", "", "amount ", "Amount"]),
    st.text(max_size=10),
    # Lone surrogates: JSON can spell them ("\ud800"), UTF-8 cannot encode them.
    st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=2),
)


@st.composite
def payment_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A payment request with any subset of its fields mutated, dropped or added to."""
    document: dict[str, Any] = {}
    for name, valid in VALID_PAYMENT.items():
        fate = draw(st.sampled_from(["keep"] * 5 + ["mutate", "drop"]))
        if fate == "keep":
            document[name] = valid
        elif fate == "mutate":
            document[name] = draw(PAYMENT_FIELD_VALUES[name])
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        document[draw(EXTRA_FIELD_NAMES)] = draw(JSON_VALUES)
    return document


def redeem_documents(targets: FuzzTargets) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "order_id": st.one_of(
                st.sampled_from(["ORDER-1", "ORDER-2", "x" * 100, "x" * 101]), JSON_VALUES
            ),
            "expected_amount": st.one_of(
                st.sampled_from([targets.redeemable_amount, targets.redeemable_amount + 1]),
                JSON_VALUES,
            ),
            "extra": JSON_VALUES,
        },
    )


CUSTOMER_DOCUMENTS = st.one_of(
    st.fixed_dictionaries({"kyc_required": st.booleans()}),
    st.dictionaries(st.sampled_from(["kyc_required", "phone", ""]), JSON_VALUES, max_size=2),
)


@st.composite
def daraja_callbacks(draw: st.DrawFn) -> dict[str, Any]:
    """A Daraja STK callback with any part replaced by something else."""

    def maybe(valid: Any) -> Any:
        return draw(st.one_of(st.just(valid), st.just(valid), JSON_VALUES))

    items = [
        {"Name": "Amount", "Value": maybe(15.0)},
        {"Name": "MpesaReceiptNumber", "Value": maybe("NLJ7RT61SV")},
        {"Name": "TransactionDate", "Value": maybe(20191219102115)},
        {"Name": "PhoneNumber", "Value": maybe(254712345678)},
    ]
    callback = {
        "MerchantRequestID": maybe("29115-34620561-1"),
        "CheckoutRequestID": maybe(f"ws_CO_{draw(st.integers(0, 10**9))}"),
        "ResultCode": maybe(draw(st.sampled_from([0, 1, 1032, 1037, 2001, 17, 9999]))),
        "ResultDesc": maybe("The service request is processed successfully."),
        "CallbackMetadata": maybe({"Item": items}),
    }
    return {"Body": maybe({"stkCallback": callback})}


def _serialised(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """JSON documents as bytes in every encoding and shape a client might get wrong."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        document = draw(documents)
        text = json.dumps(document, ensure_ascii=draw(st.booleans()))
        form = draw(
            st.sampled_from(
                ["utf-8"] * 12
                + [
                    "utf-8-sig",
                    "utf-16",
                    "utf-16-le",
                    "utf-32",
                    "truncated",
                    "duplicated",
                    "padded",
                ]
            )
        )
        utf8 = text.encode(errors="surrogatepass")
        if form == "truncated":
            return utf8[: draw(st.integers(0, max(0, len(utf8) - 1)))]
        if form == "duplicated":  # a repeated key before the document's own
            return b'{"amount": 100, "amount": "x", ' + utf8[1:] if utf8[:2] == b'{"' else utf8
        if form == "padded":
            return b" \t\r\n" + utf8 + b"\n\n"
        return text.encode(form, errors="surrogatepass")

    return build()


def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


RAW_BODIES: st.SearchStrategy[bytes | None] = st.one_of(
    st.none(),
    st.just(b""),
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"\xff\xfe\xfd",
            b'{"amount": "\xff\xfe"}',
            b'{"phone": "\xc3\x28"}',
            b"\xef\xbb\xbf{}",
            b"\xfe\xff\x00{\x00}",
            b"{",
            b"}",
            b'{"a":',
            b"null",
            b"1",
            b'"x"',
            b"[]",
            b"true",
            b"{}",
            b"NaN",
            b'{"amount": NaN, "currency": "KES"}',
            b'{"amount": 1e999999}',
            b'{"a": "\\ud800"}',
            b'{"\\ud800": 1}',
            b'{"phone": "\\u0000"}',
            b"a=1&b=2",
            b"\x00\x00\x00\x00",
        ]
    ),
    st.integers(min_value=4000, max_value=5000).map(lambda n: b'{"amount": ' + b"9" * n + b"}"),
    st.tuples(st.integers(1, 20_000), st.sampled_from(["list", "dict"])).map(
        lambda spec: _nested(*spec)
    ),
    st.integers(min_value=16_300, max_value=70_000).map(lambda n: b"{" + b" " * n + b"}"),
    st.integers(min_value=60_000, max_value=70_000).map(lambda n: b'{"Body": "' + b"x" * n + b'"}'),
)


def bodies(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes | None]:
    return st.one_of(_serialised(documents), _serialised(documents), RAW_BODIES)


# --- query strings -----------------------------------------------------------------------------

# ``wait`` values that never hold a request (a wait of 1-30 s is fuzzed only on finished payments).
NON_HOLDING_WAITS = st.one_of(
    st.sampled_from(
        ["", "0", "00", "-1", "31", "999999", "1e1", "1.5", " 1", "+1", "0x1", "abc", "%", "%zz"]
    ),
    st.sampled_from(["²", "¹⁰", "①", "٣¹"]).map(encoded),  # digits to str.isdigit(), not to int()
    st.integers(min_value=31).map(str),
    st.integers(max_value=-1).map(str),
    st.text(alphabet="abc-+. %", max_size=5),
)
HOLDING_WAITS = st.one_of(
    st.integers(min_value=1, max_value=30).map(str),
    # Decimal digits in other scripts: int() reads them.
    st.sampled_from(["٣", "०५", "００１"]).map(encoded),
)
UNTILS = st.sampled_from(["change", "final", "", "FINAL", "soon", "%00"])
OUTCOMES = st.one_of(
    st.sampled_from(["orphan", "mismatch,refused", "late_success", "applied", "", ",", "ORPHAN"]),
    st.text(max_size=20).map(encoded),
)
LIMITS = st.one_of(
    st.integers(min_value=-10, max_value=600).map(str),
    st.sampled_from(["", "abc", "1e3", "0x10", "1.0", "99999999999999999999999"]),
)
SINCES = st.one_of(
    st.sampled_from(
        [
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01T00:00:00",
            "2024-01-01",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "2024-13-45T99:99:99Z",
            "yesterday",
            "",
        ]
    ).map(encoded),
    st.datetimes(timezones=st.timezones()).map(lambda d: encoded(d.isoformat())),
    st.text(max_size=30).map(encoded),
)
BEFORE_IDS = st.one_of(
    st.integers(min_value=-5, max_value=2**63 - 1).map(str),
    st.integers(min_value=2**63).map(str),
    st.sampled_from(["", "abc", "1.5", "0"]),
)
GATEWAY_FILTERS = st.one_of(
    st.sampled_from(["daraja", "", "MPESA", "x" * 40]), st.text(max_size=20).map(encoded)
)
QUERY_NAMES = st.one_of(
    st.sampled_from(["until", "outcome", "limit", "since", "before_id", "gateway", "x", ""]),
    st.text(max_size=10).map(encoded).filter(lambda name: name != "wait"),
)
QUERY_VALUES = st.one_of(st.sampled_from(RAW_PERCENT_GARBAGE), st.text(max_size=20).map(encoded))


def query_string(
    named: dict[str, st.SearchStrategy[str]], *, extras: bool = True
) -> st.SearchStrategy[str]:
    """``name=value`` pairs from ``named`` (each maybe present), odd extra pairs, odd separators."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        pairs = [f"{name}={draw(values)}" for name, values in named.items() if draw(st.booleans())]
        if extras:
            pairs += [
                f"{draw(QUERY_NAMES)}={draw(QUERY_VALUES)}"
                for _ in range(draw(st.sampled_from([0, 0, 1, 2])))
            ]
            pairs += draw(
                st.lists(st.sampled_from(["", "=", "&", "a", "=x", "%", "a=%zz"]), max_size=2)
            )
        if draw(st.integers(0, 20)) == 0:
            pairs.append("p=" + "q" * draw(st.integers(1000, 5000)))
        return draw(st.sampled_from(["&", "&&", ";"])).join(pairs) if pairs else ""

    return build()


# --- whole requests ----------------------------------------------------------------------------


def _request(
    methods: st.SearchStrategy[str],
    paths: st.SearchStrategy[str],
    queries: st.SearchStrategy[str],
    header_sets: st.SearchStrategy[tuple[tuple[str, str], ...]],
    body_choices: st.SearchStrategy[bytes | None],
) -> st.SearchStrategy[FuzzRequest]:
    return st.builds(
        FuzzRequest,
        method=methods,
        path=paths,
        query=queries,
        headers=header_sets,
        body=body_choices,
    )


def _mostly(method: str) -> st.SearchStrategy[str]:
    return weighted((6, st.just(method)), (1, st.sampled_from(METHODS)))


def merchant_commands(targets: FuzzTargets) -> st.SearchStrategy[FuzzRequest]:
    """``POST /v1/payments`` with every part of the request in doubt."""
    return _request(
        _mostly("POST"),
        TRAILERS.map(lambda t: "/v1/payments" + t),
        query_string({"wait": NON_HOLDING_WAITS}),
        headers(targets),
        bodies(payment_documents()),
    )


def merchant_reads(targets: FuzzTargets) -> st.SearchStrategy[FuzzRequest]:
    """Payment views, redemptions and customer records, with odd ids, phones and bodies."""
    payment_ids = weighted(
        (4, st.sampled_from([*targets.final_payment_ids, targets.redeemable_payment_id])),
        (1, st.uuids().map(str)),
        (1, UUID_VARIANTS),
        (1, SEGMENTS),
    )
    views = _request(
        _mostly("GET"),
        st.tuples(payment_ids, TRAILERS).map(lambda p: f"/v1/payments/{p[0]}{p[1]}"),
        query_string({"wait": NON_HOLDING_WAITS, "until": UNTILS}),
        headers(targets, idempotency=False),
        st.one_of(st.none(), RAW_BODIES),
    )
    redemptions = _request(
        _mostly("POST"),
        st.tuples(payment_ids, TRAILERS).map(lambda p: f"/v1/payments/{p[0]}/redeem{p[1]}"),
        query_string({}),
        headers(targets, idempotency=False),
        bodies(redeem_documents(targets)),
    )
    customers = _request(
        st.sampled_from(["PUT", "GET", "DELETE", "PUT", "POST", "HEAD", "PATCH"]),
        st.tuples(PHONE_SEGMENTS, TRAILERS).map(lambda p: f"/v1/customers/{p[0]}{p[1]}"),
        query_string({}),
        headers(targets, idempotency=False),
        bodies(CUSTOMER_DOCUMENTS),
    )
    return st.one_of(views, redemptions, customers)


def finished_payment_waits(targets: FuzzTargets) -> st.SearchStrategy[FuzzRequest]:
    """``GET /v1/payments/{id}?wait=N`` on payments that are already final (answered at once)."""
    return _request(
        st.just("GET"),
        st.sampled_from(targets.final_payment_ids).map(lambda i: f"/v1/payments/{i}"),
        query_string({"wait": HOLDING_WAITS, "until": UNTILS}, extras=False),
        st.just((("Authorization", f"Bearer {targets.merchant_key}"),)),
        st.none(),
    )


@st.composite
def gateway_callbacks(draw: st.DrawFn, targets: FuzzTargets) -> FuzzRequest:
    """``POST /callbacks/{gateway}/{secret}[/{attempt}]``: right and wrong secrets, odd bodies."""
    right = targets.callback_secret
    secret = draw(
        weighted(
            (
                6,
                st.sampled_from(
                    [
                        right,
                        right,
                        targets.signed_callback_secret,
                        targets.signed_callback_secret,
                        targets.allowlisted_callback_secret,
                        right[:-1] + ("A" if not right.endswith("A") else "B"),
                        right[:-1],
                        right + "x",
                        right.upper(),
                        right * 3,
                        encoded(right + "\x00"),
                    ]
                ),
            ),
            (1, SEGMENTS),
        )
    )
    gateway = draw(
        weighted((8, st.just("daraja")), (1, st.sampled_from(["MPESA", "intasend"])), (1, SEGMENTS))
    )
    attempt = draw(st.one_of(st.none(), st.uuids().map(str), SEGMENTS))
    trailer = draw(TRAILERS)
    path = f"/callbacks/{gateway}/{secret}" + (f"/{attempt}" if attempt is not None else "")
    body = draw(bodies(daraja_callbacks()))
    header_set = list(draw(headers(targets, idempotency=False)))
    if draw(st.booleans()):
        timestamp = draw(_timestamps())
        header_set.append(
            (SIGNATURE_HEADER, signature(targets.signing_secret, timestamp, body or b""))
        )
    if draw(st.booleans()):
        header_set.append(
            ("X-Forwarded-For", draw(st.sampled_from([targets.allowed_source_ip, "198.51.100.1"])))
        )
    return FuzzRequest(
        method=draw(_mostly("POST")),
        path=path + trailer,
        query=draw(query_string({})),
        headers=tuple(header_set),
        body=body,
    )


def anything_else(targets: FuzzTargets) -> st.SearchStrategy[FuzzRequest]:
    """Operator views, health checks and paths that match no route at all."""
    operator_views = _request(
        _mostly("GET"),
        TRAILERS.map(lambda t: "/ops/events" + t),
        query_string(
            {
                "outcome": OUTCOMES,
                "limit": LIMITS,
                "since": SINCES,
                "before_id": st.one_of(
                    BEFORE_IDS, st.sampled_from([*targets.event_ids, 0]).map(lambda i: str(i + 1))
                ),
                "gateway": GATEWAY_FILTERS,
            }
        ),
        headers(targets, idempotency=False, operator=True),
        st.one_of(st.none(), RAW_BODIES),
    )
    health = _request(
        st.sampled_from(METHODS),
        st.tuples(st.sampled_from(["/healthz", "/readyz"]), TRAILERS).map("".join),
        query_string({}),
        headers(targets, idempotency=False),
        st.one_of(st.none(), RAW_BODIES),
    )
    prefixes = st.sampled_from(
        [
            "",
            "/v1",
            "/v1/payments",
            "/v1/customers",
            "/callbacks",
            "/callbacks/mpesa",
            "/ops",
            "/v2",
        ]
    )
    nowhere = _request(
        st.sampled_from(METHODS),
        st.tuples(prefixes, st.lists(SEGMENTS, max_size=5)).map(
            lambda p: p[0] + "/" + "/".join(p[1])
        ),
        query_string({"wait": NON_HOLDING_WAITS}),
        headers(targets),
        st.one_of(st.none(), RAW_BODIES, bodies(JSON_VALUES)),
    )
    return st.one_of(operator_views, health, nowhere)


# --- raw HTTP ----------------------------------------------------------------------------------


ODD_METHODS = (b"get", b"G ET", b"", b"CONNECT", b"TRACE", b"X" * 300, b"\x00GET", b"GET\xff")
ODD_TARGETS = (
    b"/v1/payments/%E2%82",
    b"/v1/payments/%00",
    b"/v1/payments?wait=%C2%B9x",
    b"/ops/events?limit=%zz&since=%",
    b"/v1/customers/0712%20345%20678",
    b"/%",
    b"/%zz",
    b"/%ff%fe",
    b"*",
    b"http://evil.example/v1/payments",
    b"//",
    b"/a b",
    b"/\x00",
    b"/\xff\xfe",
    b"/caf\xc3\xa9",
    b"/..%2f..%2fetc/passwd",
    b"/healthz?" + b"%" * 50,
    b"",
    b"/" + b"a" * 9000,
    b"/" + b"a" * 5000,
    b"/healthz#fragment",
)
ODD_VERSIONS = (b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1", b"http/1.1", b"HTTP/1.1x", b"", b"HTTP/0.9")
ODD_HEADER_LINES = (
    b"NoColon",
    b" Leading: space",
    b"Name : space-before-colon",
    b"Na me: x",
    b": empty-name",
    b"X-Obs: a\r\n folded",
    b"X-Obs-Tab: a\r\n\tfolded",
    b"X-Nul: a\x00b",
    b"X-Bin: \xff\xfe",
    b"X-Utf8: caf\xc3\xa9",
    b"\xc3\xa9: x",
    b"X_Underscore: 1",
    b"X-Long: " + b"x" * 20_000,
    b"X-Longish: " + b"x" * 9000,
    b"Content-Length: -1",
    b"Content-Length: abc",
    b"Content-Length: 1, 2",
    b"Content-Length: 99999999999999999999",
    b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: chunked, chunked",
    b"Transfer-Encoding: identity",
    b"Expect: 100-continue",
    b"Expect: 417-nope",
    b"X-Forwarded-For: \xff, 1.2.3.4",
    b"X-Request-ID: \xc3\xa9\xc3\xa9\xc3\xa9",
    b"X-Malipo-Signature: t=\xb2,v1=00",
    b"Idempotency-Key: \x01\x02",
    b"Idempotency-Key: \xc3\xa9t\xc3\xa9",
    b"Authorization: Bearer \xff\xfe",
    b"Content-Type: application/json; charset=utf-16",
    b"Connection: keep-alive, Upgrade",
    b"Upgrade: h2c",
    b"Host: a\x00b",
)
ODD_FRAMINGS = (
    (b"Content-Length: 10\r\n", b"{}"),  # shorter than announced, then EOF
    (b"Content-Length: 0\r\n", b"{}"),
    (b"Content-Length: 2\r\nContent-Length: 3\r\n", b"{}x"),
    (b"Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n"),
    (b"Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"),
    (b"Transfer-Encoding: chunked\r\n", b"-1\r\n{}\r\n0\r\n\r\n"),
    (b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffffffff\r\n{}\r\n"),
    (b"Transfer-Encoding: chunked\r\n", b"5\r\n{}\r\n0\r\n\r\n"),
    (b"Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n"),
    (b"Transfer-Encoding: chunked\r\n", b"2;\x00ext\r\n{}\r\n0\r\n\r\n"),
    (b"Transfer-Encoding: chunked\r\n", b"0x2\r\n{}\r\n0\r\n\r\n"),
    (b"Transfer-Encoding: chunked\r\n", b" 2\r\n{}\r\n0\r\n\r\n"),
    (b"Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\nTrailer: x\r\n\r\n"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n", b"2\r\n{}\r\n0\r\n\r\n"),
)
ODD_BODIES = (
    b'{"phone": "\xff\xfe\xfd"}',
    b"\xef\xbb\xbf{}",
    b'{"amount": NaN}',
    b"[" * 5000 + b"]" * 5000,
    b"{",
    b"\x00\x00",
    b'{"amount": "1"}',
)
RAW_DEFECTS = ("method", "target", "version", "eol", "header", "many", "framing", "body")


def raw_requests(targets: FuzzTargets) -> st.SearchStrategy[bytes]:
    """Whole HTTP/1.x requests as bytes: a sound request with one or two defects at the layer
    a parser looks at (request line, line endings, header syntax, framing, body)."""
    key = targets.merchant_key.encode()
    payment = b'{"amount": 100, "currency": "KES", "phone": "0712345678", "reference": "RAW-1"}'
    routes = (
        (b"POST", b"/v1/payments", payment),
        (b"GET", b"/v1/payments/" + targets.final_payment_ids[0].encode(), b""),
        (b"GET", b"/v1/payments/" + targets.final_payment_ids[1].encode() + b"?wait=1", b""),
        (b"POST", b"/callbacks/mpesa/" + targets.callback_secret.encode(), b'{"Body": {}}'),
        (b"POST", b"/callbacks/mpesa/wrong-secret", b'{"Body": {}}'),
        (b"PUT", b"/v1/customers/0712345678", b'{"kyc_required": false}'),
        (b"GET", b"/ops/events", b""),
        (b"GET", b"/healthz", b""),
    )

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        method, target, body = draw(st.sampled_from(routes))
        version, eol = b"HTTP/1.1", b"\r\n"
        lines = [
            b"Host: 127.0.0.1",
            b"Authorization: Bearer " + key,
            b"Content-Type: application/json",
            b"Idempotency-Key: raw-" + str(draw(st.uuids())).encode(),
        ]
        framing = b"Content-Length: %d\r\n" % len(body) if body else b""
        for defect in draw(st.lists(st.sampled_from(RAW_DEFECTS), min_size=1, max_size=2)):
            if defect == "method":
                method = draw(st.sampled_from(ODD_METHODS))
            elif defect == "target":
                target = draw(st.sampled_from(ODD_TARGETS))
            elif defect == "version":
                version = draw(st.sampled_from(ODD_VERSIONS))
            elif defect == "eol":
                eol = draw(st.sampled_from([b"\n", b"\r", b"\n\r"]))
            elif defect == "header":
                lines.insert(
                    draw(st.integers(0, len(lines))), draw(st.sampled_from(ODD_HEADER_LINES))
                )
            elif defect == "many":
                lines += [
                    b"X-Many-%d: %d" % (i, i) for i in range(draw(st.sampled_from([70, 150])))
                ]
            elif defect == "framing":
                framing, body = draw(st.sampled_from(ODD_FRAMINGS))
            else:
                body = draw(st.sampled_from(ODD_BODIES))
                framing = b"Content-Length: %d\r\n" % len(body)
        head = eol.join([b" ".join((method, target, version)), *lines]) + eol
        return head + framing.replace(b"\r\n", eol) + eol + body

    return build()

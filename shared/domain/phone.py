"""Mobile numbers of every country malipo's gateways serve, and their masking.

Numbers are stored as E.164 digits without the ``+`` (``254712345678``,
``221771234567``). Kenyan numbers follow Daraja's documented rule (strip spaces,
dashes and a leading ``+``; ``07…``/``01…`` become ``254`` + the last nine
digits; nine digits starting with 7 or 1 get the ``254`` prefix; the result must
match ``^254(7|1)\\d{8}$``); every other country is parsed and validated with the
``phonenumbers`` library. Anything else is ``invalid_phone``, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import phonenumbers
from phonenumbers import PhoneNumberType

from shared.domain.errors import INVALID_PHONE, MalipoError

_VALID_KE = re.compile(r"254[71]\d{8}")
_SEPARATORS = re.compile(r"[ \-]")  # Daraja's rule: spaces and dashes only
_WRITTEN_SEPARATORS = re.compile(r"[ \-().]")
_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
# Countries whose numbers are masked in free text (the gateways' countries and neighbours).
MASKED_REGIONS = (
    "KE", "UG", "TZ", "RW",
    "SN", "CI", "ML", "BF", "BJ", "TG", "NE", "GN", "GW",
    "CM", "GA", "CG", "CD", "TD", "CF", "GQ",
    "AM",
)  # fmt: skip
_CALLING_CODES = sorted(
    {str(phonenumbers.country_code_for_region(region)) for region in MASKED_REGIONS}
)
# Kenyan MSISDNs in any written form inside free text — 2547XXXXXXXX, +2541XXXXXXXX,
# 07XXXXXXXX, 7XXXXXXXX, with or without spaces or dashes between digits — but not
# digits inside longer numbers (timestamps, ids).
_MSISDN_IN_TEXT = re.compile(r"(?<![0-9])(?:\+?254[ -]?|0)?([17](?:[ -]?[0-9]){8})(?![0-9])")
# Other countries' numbers in international form: the calling code, then 7-10 digits.
_INTERNATIONAL_IN_TEXT = re.compile(
    rf"(?<![0-9])\+?((?:{'|'.join(_CALLING_CODES)})(?:[ -]?[0-9]){{7,10}})(?![0-9])"
)
# Identifiers whose digit runs only look like phone numbers: UUIDs and 32-hex ids.
_HEX_IDS = re.compile(
    r"(?i)(?<![0-9a-z])(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})(?![0-9a-z])"
)


def normalise_ke_msisdn(raw: object) -> str:
    """The canonical ``2547XXXXXXXX``/``2541XXXXXXXX`` form, or ``invalid_phone``."""
    if not isinstance(raw, str) or len(raw) > 32:
        raise MalipoError(INVALID_PHONE)
    digits = _SEPARATORS.sub("", raw.strip())
    if digits.startswith("+"):
        digits = digits[1:]
    if not digits.isascii() or not digits.isdigit():
        raise MalipoError(INVALID_PHONE)
    if len(digits) == 10 and digits[0] == "0" and digits[1] in "71":
        digits = "254" + digits[1:]
    elif len(digits) == 9 and digits[0] in "71":
        digits = "254" + digits
    if not _VALID_KE.fullmatch(digits):
        raise MalipoError(INVALID_PHONE)
    return digits


def normalise_phone(raw: object, regions: Sequence[str]) -> str:
    """E.164 digits of a mobile number of one of ``regions`` (the first is the default
    for numbers written without a country code), or ``invalid_phone``."""
    if list(regions) == ["KE"]:
        return normalise_ke_msisdn(raw)
    if not isinstance(raw, str) or len(raw) > 32:
        raise MalipoError(INVALID_PHONE)
    text = _WRITTEN_SEPARATORS.sub("", raw.strip())
    if not text.lstrip("+").isascii() or not text.lstrip("+").isdigit():
        raise MalipoError(INVALID_PHONE)
    for region in regions:
        found = _parse_mobile(text, region, regions)
        if found is not None:
            return found
    raise MalipoError(
        INVALID_PHONE, f"not a mobile number of {', '.join(regions[:8])}" if regions else None
    )


def _parse_mobile(text: str, region: str, regions: Sequence[str]) -> str | None:
    if region == "KE":
        try:
            return normalise_ke_msisdn(text)
        except MalipoError:
            return None
    code = str(phonenumbers.country_code_for_region(region))
    candidates = [text]
    if not text.startswith("+") and text.startswith(code):
        candidates.insert(0, "+" + text)  # international digits written without the '+'
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if (
            phonenumbers.is_valid_number(number)
            and phonenumbers.region_code_for_number(number) in regions
            and phonenumbers.number_type(number) in _MOBILE_TYPES
        ):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    return None


def mask_msisdn(msisdn: str) -> str:
    """Keep the country/operator prefix and the last four digits: ``2547****5678``."""
    if len(msisdn) < 8:
        return "*" * len(msisdn)
    return msisdn[:4] + "*" * (len(msisdn) - 8) + msisdn[-4:]


def phones_agree(expected: str, reported: str) -> bool:
    """Whether a gateway's (possibly masked) phone can be ours.

    Gateways mask in several formats (``254722000***``, ``0722000***``,
    ``2547******78``): the digits both sides show are compared, aligned on the
    right; a trunk ``0`` is dropped. A phone that cannot be compared (no digits,
    longer than ours) is not a mismatch.
    """
    shown = _SEPARATORS.sub("", reported.strip()).lstrip("+")
    if shown.startswith("0"):
        shown = shown[1:]
    if not shown or len(shown) > len(expected) or not any(c.isdigit() for c in shown):
        return True
    tail = expected[len(expected) - len(shown) :]
    return all(not s.isdigit() or s == e for s, e in zip(shown, tail, strict=True))


def mask_phone_numbers(text: str) -> str:
    """Mask every mobile number in free text (logs, stored callback bodies).

    UUIDs and 32-hex ids are left whole, so that log lines can still be joined on them.
    """
    pieces, last = [], 0
    for match in _HEX_IDS.finditer(text):
        pieces.append(_mask_run(text[last : match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(_mask_run(text[last:]))
    return "".join(pieces)


def _mask_run(text: str) -> str:
    text = _MSISDN_IN_TEXT.sub(lambda m: mask_msisdn("254" + _SEPARATORS.sub("", m.group(1))), text)
    return _INTERNATIONAL_IN_TEXT.sub(lambda m: mask_msisdn(_SEPARATORS.sub("", m.group(1))), text)

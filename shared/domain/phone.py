"""Kenyan mobile numbers (MSISDNs) and their masking.

Normalisation follows Daraja's rules: strip spaces, dashes and a leading ``+``;
``07…``/``01…`` become ``254`` + the last nine digits; nine digits starting
with 7 or 1 get the ``254`` prefix; ``254…`` stays. The result must match
``^254(7|1)\\d{8}$``; anything else is ``invalid_phone``, never a guess.
"""

from __future__ import annotations

import re

from shared.domain.errors import INVALID_PHONE, MalipoError

_VALID = re.compile(r"254[71]\d{8}")
_SEPARATORS = re.compile(r"[ \-]")
# Kenyan MSISDNs in any written form inside free text — 2547XXXXXXXX, +2541XXXXXXXX,
# 07XXXXXXXX, 7XXXXXXXX, with or without spaces or dashes between digits — but not
# digits inside longer numbers (timestamps, ids).
_MSISDN_IN_TEXT = re.compile(r"(?<![0-9])(?:\+?254[ -]?|0)?([17](?:[ -]?[0-9]){8})(?![0-9])")
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
    if not _VALID.fullmatch(digits):
        raise MalipoError(INVALID_PHONE)
    return digits


def mask_msisdn(msisdn: str) -> str:
    """Keep the country/operator prefix and the last four digits: ``2547****5678``."""
    if len(msisdn) < 8:
        return "*" * len(msisdn)
    return msisdn[:4] + "*" * (len(msisdn) - 8) + msisdn[-4:]


def mask_phone_numbers(text: str) -> str:
    """Mask every Kenyan mobile number in free text (logs, stored callback bodies).

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
    return _MSISDN_IN_TEXT.sub(lambda m: mask_msisdn("254" + _SEPARATORS.sub("", m.group(1))), text)

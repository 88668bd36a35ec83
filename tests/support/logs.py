"""Reading what the processes logged: the workers' captured lines and phone-number leaks."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def captured_worker_log() -> Iterator[io.StringIO]:
    """Every line logged in this process meanwhile, rendered as the workers' handler renders it.

    The workers' handler (shared/logging.py) holds the ``sys.stdout`` of when the
    broker was imported, which ``capfd`` cannot swap; a second handler with the same
    formatter (so the same masking and rendering) sees exactly the same lines.
    """
    root = logging.getLogger()
    assert root.handlers, "logging is not configured"
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(root.handlers[0].formatter)
    handler.setLevel(logging.NOTSET)
    root.addHandler(handler)
    try:
        yield captured
    finally:
        root.removeHandler(handler)


def phone_leaks(e164: str, country_code: str, text: str) -> list[str]:
    """Lines holding the number in full: E.164 digits or the national number, spaced or not."""
    national = e164.removeprefix(country_code)
    patterns = [
        re.compile(r"[\s.-]*".join(e164)),
        # No digit boundaries: the national digits inside any longer run (00221..., 0...) leak too.
        re.compile(r"[\s.-]*".join(national)),
    ]
    return [line[:300] for line in text.splitlines() if any(p.search(line) for p in patterns)]

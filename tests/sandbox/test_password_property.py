"""Property: the simulator accepts exactly base64(shortcode + passkey + timestamp)."""

from __future__ import annotations

import base64
import string
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.config import SimulatorConfig
from sandbox.daraja import Simulator, create_simulator
from tests.sandbox.helpers import Daraja

B64_ALPHABET = string.ascii_letters + string.digits + "+/="

shortcodes = st.from_regex(r"[1-9][0-9]{4,6}", fullmatch=True)
passkeys = st.text(
    alphabet=string.ascii_letters + string.digits + string.punctuation, min_size=1, max_size=64
)
timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)
).map(lambda moment: moment.strftime("%Y%m%d%H%M%S"))


@contextmanager
def simulator() -> Iterator[Simulator]:
    # Outcomes are never due during the test, so no callback is ever sent.
    sim = create_simulator(SimulatorConfig(callback_delay_s=3600))
    try:
        yield sim
    finally:
        sim.close()


@settings(max_examples=60, deadline=None)
@given(shortcode=shortcodes, passkey=passkeys, timestamp=timestamps, data=st.data())
def test_only_the_exact_password_is_accepted(
    shortcode: str, passkey: str, timestamp: str, data: st.DataObject
) -> None:
    with simulator() as sim:
        check_passwords(Daraja(sim), shortcode, passkey, timestamp, data)


def check_passwords(
    daraja: Daraja, shortcode: str, passkey: str, timestamp: str, data: st.DataObject
) -> None:
    daraja.control("POST", "/shortcodes", {"shortcode": shortcode, "passkey": passkey})
    exact = base64.b64encode((shortcode + passkey + timestamp).encode("ascii")).decode()
    position = data.draw(st.integers(0, len(exact) - 1), label="position")
    replacement = data.draw(
        st.sampled_from(B64_ALPHABET).filter(lambda c: c != exact[position]), label="replacement"
    )
    altered = exact[:position] + replacement + exact[position + 1 :]
    fields = {"BusinessShortCode": shortcode, "PartyB": shortcode, "Timestamp": timestamp}

    accepted = daraja.push(Password=exact, **fields)
    refused = daraja.push(Password=altered, **fields)

    assert accepted.status_code == 200, accepted.json
    assert refused.status_code == 500
    assert refused.json["errorMessage"] == "Wrong credentials"

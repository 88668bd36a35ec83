"""Fixtures the end-to-end suites share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fastshift_sim import FastShiftSimulator
from tests.support.processes import ManagedProcess


@pytest.fixture
def fastshift(
    sandbox_server: ManagedProcess, test_env: dict[str, str]
) -> Iterator[FastShiftSimulator]:
    """A client of the FastShift simulator in this run's sandbox."""
    simulator = FastShiftSimulator(f"http://127.0.0.1:{test_env['MALIPO_SANDBOX_PORT']}/fastshift")
    yield simulator
    simulator.close()

"""The callback spool as a trust boundary: private files, sealed entries, only callbacks published.

Whoever can put a file in the spool gets it published with the ingress's authority,
so the drainer publishes only entries this ingress sealed (HMAC-SHA256 under the
settings' spool key) that name the callback actor; anything else is quarantined.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from ingress.resources.callbacks import spool_entry
from ingress.spool import QUARANTINE, CallbackSpool, SpoolUnusable, prepare_directory
from shared.messages import APPLY_CALLBACK, INITIATE_PAYMENT, ApplyCallback
from tests.unit.properties import PROPERTY

KEY = b"k" * 32


def callback_entry(n: int) -> dict[str, Any]:
    """What the callback resource spools: an apply_callback message, numbered by its body."""
    message = ApplyCallback(
        gateway="daraja",
        merchant_id="5f0c8a52-8a55-4c58-a6b2-2a3f3d7c0e11",
        body_b64=f"callback-{n}",
        headers={"content-type": "application/json"},
        received_at="2026-01-01T00:00:00+00:00",
    )
    return spool_entry(APPLY_CALLBACK, message.to_kwargs())


class Publisher:
    def __init__(self, failing_attempts: frozenset[int] = frozenset()) -> None:
        self.failing_attempts = failing_attempts
        self.attempts = 0
        self.published: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, entry: dict[str, Any]) -> None:
        with self.lock:
            attempt, self.attempts = self.attempts, self.attempts + 1
            if attempt in self.failing_attempts:
                raise ConnectionError(f"no confirm for attempt {attempt}")
            self.published.append(entry)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would leave new files world-readable and -writable."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- permissions -------------------------------------------------------------------------------


@pytest.mark.usefixtures("open_umask")
def test_the_spool_directory_is_0700_and_its_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    # Given a process umask of 0 and a spool directory that does not exist yet
    directory = tmp_path / "spool"

    # When the spool is opened, one callback spooled and the spool drained once (lock file)
    spool = CallbackSpool(directory, key=KEY)
    written = spool.append(callback_entry(1))
    spool.drain(Publisher())
    spool.append(callback_entry(2))

    # Then nobody but the ingress user can list, read or write any of it
    assert mode(directory) == 0o700
    assert not written.exists()  # published and deleted
    assert [mode(path) for path in directory.iterdir()] == [0o600, 0o600]  # entry and lock


def test_an_existing_world_readable_spool_directory_is_made_private(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    directory.chmod(0o755)

    CallbackSpool(directory, key=KEY)

    assert mode(directory) == 0o700


# --- seals and actors --------------------------------------------------------------------------


def test_a_file_dropped_into_the_spool_without_the_seal_is_quarantined_not_published(
    tmp_path: Path,
) -> None:
    # Given a spool, and a file someone else wrote there naming the callback actor
    spool = CallbackSpool(tmp_path, key=KEY)
    forged = tmp_path / "00000000000000000001-0000001-00000000.json"
    forged.write_text(json.dumps(callback_entry(0)))
    spool.append(callback_entry(1))
    publisher = Publisher()

    # When the spool is drained
    with structlog.testing.capture_logs() as logged:
        spool.drain(publisher)

    # Then only the sealed entry was published; the forged one sits in quarantine
    assert publisher.published == [callback_entry(1)]
    assert [p.name for p in spool.quarantined()] == [forged.name]
    assert spool.depth() == 0
    # And the log says what happened and what to do about it
    (line,) = [e for e in logged if e["event"] == "spool entry quarantined, not published"]
    assert line["log_level"] == "error"
    assert line["file"] == forged.name
    assert str(tmp_path / QUARANTINE / forged.name) == line["quarantined_as"]
    assert "MALIPO_SPOOL_DIR" in line["action"]


def test_a_sealed_entry_altered_on_disk_is_quarantined(tmp_path: Path) -> None:
    spool = CallbackSpool(tmp_path, key=KEY)
    path = spool.append(callback_entry(1))
    sealed = json.loads(path.read_bytes())
    sealed["entry"] = sealed["entry"].replace("callback-1", "callback-666")
    path.write_text(json.dumps(sealed))
    publisher = Publisher()

    spool.drain(publisher)

    assert publisher.published == []
    assert [p.name for p in spool.quarantined()] == [path.name]


def test_a_sealed_file_renamed_is_quarantined(tmp_path: Path) -> None:
    spool = CallbackSpool(tmp_path, key=KEY)
    path = spool.append(callback_entry(1))
    copy = tmp_path / ("0" * 19 + "1" + path.name[20:])  # sorts first
    copy.write_bytes(path.read_bytes())
    publisher = Publisher()

    spool.drain(publisher)

    assert publisher.published == [callback_entry(1)]
    assert [p.name for p in spool.quarantined()] == [copy.name]


def test_an_entry_sealed_under_another_key_is_quarantined(tmp_path: Path) -> None:
    CallbackSpool(tmp_path, key=b"another-key-of-32-bytes-exactly!").append(callback_entry(1))
    spool = CallbackSpool(tmp_path, key=KEY)
    publisher = Publisher()

    spool.drain(publisher)

    assert publisher.published == []
    assert len(spool.quarantined()) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"actor": INITIATE_PAYMENT.actor_name, "queue": INITIATE_PAYMENT.queue_name},
        {"actor": "apply_callback", "queue": "payments"},
        {"actor": "notify_merchant"},
        {"kwargs": {"payment_id": "x", "merchant_id": "y"}},
        {"options": {"eta": "0"}},
        {"options": {"request_id": 1}},
        {"extra": True},
    ],
    ids=["another-actor", "another-queue", "actor-only", "other-kwargs", "eta", "non-text", "key"],
)
def test_a_sealed_entry_for_anything_but_the_callback_actor_is_quarantined(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    # Given an entry sealed with the right key that asks for something other than a callback
    spool = CallbackSpool(tmp_path, key=KEY)
    spool.append({**callback_entry(1), **change})
    publisher = Publisher()

    # When the spool is drained, Then nothing is published and the file is kept aside
    spool.drain(publisher)

    assert publisher.published == []
    assert len(spool.quarantined()) == 1
    assert spool.depth() == 0


def test_a_torn_write_is_quarantined_and_does_not_block_the_rest(tmp_path: Path) -> None:
    spool = CallbackSpool(tmp_path, key=KEY)
    first = spool.append(callback_entry(0))
    spool.append(callback_entry(1))
    first.write_bytes(b"{torn write")
    publisher = Publisher()

    spool.drain(publisher)

    assert publisher.published == [callback_entry(1)]
    assert [p.name for p in spool.quarantined()] == [first.name]


def test_two_processes_sharing_the_settings_key_drain_each_others_entries(tmp_path: Path) -> None:
    # Given two ingress processes with one spool directory and the same key
    writer, drainer = CallbackSpool(tmp_path, key=KEY), CallbackSpool(tmp_path, key=KEY)
    for n in range(5):
        writer.append(callback_entry(n))
    publisher = Publisher()

    drainer.drain(publisher)

    assert publisher.published == [callback_entry(n) for n in range(5)]
    assert drainer.quarantined() == []


# --- what the spool always did, with sealed callback entries -----------------------------------


@PROPERTY
@given(
    count=st.integers(min_value=0, max_value=25),
    failing_attempts=st.frozensets(st.integers(min_value=0, max_value=40), max_size=5),
)
def test_every_sealed_entry_is_published_once_in_arrival_order_despite_failures(
    count: int, failing_attempts: frozenset[int]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        spool = CallbackSpool(directory, key=KEY)
        entries = [callback_entry(n) for n in range(count)]
        for entry in entries:
            spool.append(entry)
        publisher = Publisher(failing_attempts)

        for _ in range(len(failing_attempts) + 2):
            try:
                spool.drain(publisher)
            except ConnectionError:
                continue
            if not spool.depth():
                break

        assert publisher.published == entries
        assert spool.depth() == 0
        assert spool.quarantined() == []


def test_two_drainers_at_once_publish_each_entry_once_in_order(tmp_path: Path) -> None:
    writer = CallbackSpool(tmp_path, key=KEY)
    for n in range(100):
        writer.append(callback_entry(n))
    drainers = [CallbackSpool(tmp_path, key=KEY), CallbackSpool(tmp_path, key=KEY)]
    publisher = Publisher()
    start = threading.Barrier(2)

    def run(spool: CallbackSpool) -> None:
        start.wait()
        while spool.depth():
            spool.drain(publisher)

    threads = [threading.Thread(target=run, args=(spool,)) for spool in drainers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert publisher.published == [callback_entry(n) for n in range(100)]


# --- start-up checks ---------------------------------------------------------------------------


def test_a_relative_spool_directory_is_refused_naming_the_variable() -> None:
    with pytest.raises(SpoolUnusable, match="MALIPO_SPOOL_DIR must be an absolute path"):
        prepare_directory("var/spool")


def test_a_spool_directory_that_cannot_be_created_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    with pytest.raises(SpoolUnusable, match=r"MALIPO_SPOOL_DIR=.*cannot be created or written"):
        prepare_directory(blocker / "spool")


def test_a_spool_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "spool"
    blocker.write_text("not a directory")

    with pytest.raises(SpoolUnusable, match="MALIPO_SPOOL_DIR"):
        CallbackSpool(blocker, key=KEY)

"""`MALIPO_QUEUE_TYPE=quorum` on a single node, and `MALIPO_BROKER_URL` listing several nodes."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest

from ingress.bus import declare_commands
from shared.bus import EventStream
from shared.bus_commands import COMMANDS_QUEUE, REFUSED_QUEUE
from shared.messages import (
    ALL_ACTORS,
    STREAM_EVENTS,
    MalipoBroker,
    Publisher,
    StreamEvents,
    broker_urls,
    build_broker,
    queue_arguments,
)
from shared.reachability import broker_problem
from tests.conftest import TEST_ENV
from tests.support.env import free_port
from tests.support.rabbit import Rabbit
from tests.support.services import PREFIX, delete_vhost, ensure_vhost
from tests.support.waiting import wait_until


@pytest.fixture
def quorum_vhost(broker: Any) -> Iterator[str]:
    """A vhost of its own: a queue's type is fixed when it is first declared."""
    vhost = f"{PREFIX}quorum_{uuid.uuid4().hex[:8]}"
    url = TEST_ENV["MALIPO_BROKER_URL"].rsplit("/", 1)[0] + f"/{vhost}"
    ensure_vhost(url)
    yield url
    delete_vhost(url)


def queue_types(vhost_url: str) -> dict[str, str]:
    vhost = vhost_url.rsplit("/", 1)[1]
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "type", "--formatter", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return {queue["name"]: queue["type"] for queue in json.loads(listed)}


def test_every_queue_is_declared_quorum_and_a_message_is_processed(quorum_vhost: str) -> None:
    broker = build_broker(quorum_vhost, queue_type="quorum")
    assert isinstance(broker, MalipoBroker)
    done: list[int] = []

    @dramatiq.actor(broker=broker, queue_name="quorum_probe", actor_name="quorum_probe")
    def probe(number: int) -> None:
        done.append(number)

    for queue in {spec.queue_name for spec in ALL_ACTORS} | {"quorum_probe"}:
        broker.declare_queue(queue, ensure=True)
    rabbit = Rabbit(quorum_vhost)
    with rabbit.channel() as channel:
        declare_commands(channel, "quorum")
    types = queue_types(quorum_vhost)
    names = {spec.queue_name for spec in ALL_ACTORS} | {"quorum_probe"}
    for name in names:
        assert types[name] == types[f"{name}.DQ"] == types[f"{name}.XQ"] == "quorum", name
    assert types[COMMANDS_QUEUE] == types[REFUSED_QUEUE] == "quorum"

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        probe.send(7)
        probe.send_with_options(args=(8,), delay=200)  # through the delay queue
        wait_until(lambda: sorted(done) == [7, 8], timeout_s=30, what="both messages processed")
    finally:
        worker.stop()
        broker.close()


def test_a_quorum_queue_dead_letters_a_message_its_consumers_keep_dying_on() -> None:
    assert queue_arguments("quorum") == {"x-queue-type": "quorum", "x-delivery-limit": 50}
    # The dead-letter queue itself never drops a message for its delivery count.
    assert queue_arguments("quorum", delivery_limit=False) == {"x-queue-type": "quorum"}
    assert queue_arguments("classic") == {}
    with pytest.raises(ValueError, match="queue type"):
        queue_arguments("stream")


def test_a_broker_url_listing_a_dead_node_first_still_connects() -> None:
    live = TEST_ENV["MALIPO_BROKER_URL"]
    dead = live.replace("127.0.0.1:5672", f"127.0.0.1:{free_port()}")
    assert dead != live
    cluster = f"{dead};{live}"
    assert broker_urls(cluster) == [dead, live]
    assert broker_problem(cluster) is None  # one node answers: reachable
    problem = broker_problem(f"{dead};{dead}")
    assert problem is not None
    assert problem.setting == "MALIPO_BROKER_URL"
    # Every connection malipo opens moves past the dead node.
    published = EventStream(cluster).publish([])
    assert published == 0
    publisher = Publisher(build_broker(cluster, publish_only=True))
    publisher.send(StreamEvents())
    assert Rabbit(live).count(STREAM_EVENTS.queue_name) >= 1
    Rabbit(live).purge(STREAM_EVENTS.queue_name)

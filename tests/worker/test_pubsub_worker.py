"""A real `qc-worker` against the real Cloud Pub/Sub emulator: leases, time limits, dead letters, kills."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.cloud import pubsub_v1

from devstack.polling import wait_until
from devstack.services import PubSubEmulator
from qc_common import worker_env
from tests.worker.worker_harness import WorkerProcess, body, completions

ACK_DEADLINE_SECONDS = 10  # the emulator's minimum


@dataclass
class Topology:
    project: str
    topic: str
    subscription: str
    dead_letter_topic: str
    dead_letter_subscription: str
    publisher: pubsub_v1.PublisherClient
    subscriber: pubsub_v1.SubscriberClient

    def publish(self, bodies: list[bytes]) -> None:
        futures = [self.publisher.publish(self.topic, b) for b in bodies]
        for future in futures:
            future.result(timeout=30)

    def environment(self, task: str) -> dict[str, str]:
        """A worker's environment for this subscription, retrying at once."""
        return {
            worker_env.SOURCE: "pubsub",
            worker_env.PUBSUB_PROJECT: self.project,
            worker_env.PUBSUB_SUBSCRIPTION: self.subscription.rsplit("/", 1)[1],
            worker_env.PUBSUB_DEAD_LETTER_TOPIC: self.dead_letter_topic.rsplit("/", 1)[1],
            worker_env.TASK: task,
            worker_env.RETRY_BACKOFF_MIN_SECONDS: "0",
            worker_env.RETRY_BACKOFF_MAX_SECONDS: "0",
        }


@pytest.fixture
def topology(pubsub_env: PubSubEmulator) -> Iterator[Topology]:
    suffix = uuid.uuid4().hex[:8]
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    project = pubsub_env.project
    names = Topology(
        project,
        publisher.topic_path(project, f"work-{suffix}"),
        subscriber.subscription_path(project, f"work-{suffix}"),
        publisher.topic_path(project, f"dead-{suffix}"),
        subscriber.subscription_path(project, f"dead-{suffix}"),
        publisher,
        subscriber,
    )
    publisher.create_topic(name=names.topic)
    publisher.create_topic(name=names.dead_letter_topic)
    subscriber.create_subscription(
        name=names.subscription, topic=names.topic, ack_deadline_seconds=ACK_DEADLINE_SECONDS
    )
    subscriber.create_subscription(name=names.dead_letter_subscription, topic=names.dead_letter_topic)
    yield names
    subscriber.close()


def pull_all(
    subscriber: pubsub_v1.SubscriberClient, subscription: str
) -> list[pubsub_v1.types.ReceivedMessage]:
    response = subscriber.pull(subscription=subscription, max_messages=100, timeout=10)
    messages = list(response.received_messages)
    if messages:
        subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in messages])
    return messages


def test_a_task_lasting_five_lease_deadlines_is_not_redelivered_while_it_runs(
    topology: Topology, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    lease_seconds = 2
    topology.publish([body("long", sleep=5 * lease_seconds)])
    env = topology.environment("worker_tasks:work_async") | {worker_env.LEASE_SECONDS: str(lease_seconds)}
    worker = start_worker(**env)
    wait_until(lambda: worker.metric("qc_worker_tasks_in_flight") == 1, 30, "the task to start")
    started = time.monotonic()
    # While it runs, another consumer of the same subscription must get nothing: the lease holds.
    while time.monotonic() - started < 5 * lease_seconds - 1:
        stolen = topology.subscriber.pull(subscription=topology.subscription, max_messages=10, timeout=3)
        assert list(stolen.received_messages) == [], "the message was redelivered while its task ran"
    wait_until(lambda: completions(records) == {"long": 1}, 30, "the long task to finish")
    wait_until(lambda: worker.metric("qc_worker_messages_acked_total") == 1, 10, "the ack")
    assert worker.metric("qc_worker_lease_extensions_total") >= 4
    assert worker.metric("qc_worker_messages_received_total") == 1


def test_a_task_past_its_time_limit_is_killed_redelivered_and_dead_lettered(
    topology: Topology, start_worker: Callable[..., WorkerProcess]
) -> None:
    topology.publish([body("stuck")])
    # worker_tasks.stuck: time limit 1 s, 2 delivery attempts.
    worker = start_worker(**topology.environment("worker_tasks:stuck"))
    wait_until(
        lambda: worker.metric("qc_worker_messages_dead_lettered_total", reason="time_limit") == 1,
        60,
        "the dead letter",
    )
    assert worker.metric("qc_worker_time_limit_kills_total") == 2
    assert worker.metric("qc_worker_messages_received_total") == 2  # redelivered once after the first kill
    dead = pull_all(topology.subscriber, topology.dead_letter_subscription)
    assert len(dead) == 1
    attributes = dict(dead[0].message.attributes)
    assert attributes["qc-dead-letter-reason"] == "time_limit"
    assert attributes["qc-delivery-attempts"] == "2"
    assert "1 s time limit" in attributes["qc-dead-letter-detail"]
    # Nothing is left behind on the work subscription.
    assert pull_all(topology.subscriber, topology.subscription) == []


def test_malformed_message_goes_to_the_dead_letter_topic_with_its_reason(
    topology: Topology, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    topology.publish([b"\x00\x01 binary junk", body("fine")])
    worker = start_worker(**topology.environment("worker_tasks:work_async"))
    wait_until(
        lambda: worker.metric("qc_worker_messages_dead_lettered_total", reason="malformed") == 1,
        30,
        "the malformed message to be dead-lettered",
    )
    wait_until(lambda: set(completions(records)) == {"fine"}, 30, "the good message to be processed")
    dead = pull_all(topology.subscriber, topology.dead_letter_subscription)
    assert [m.message.data for m in dead] == [b"\x00\x01 binary junk"]
    assert dead[0].message.attributes["qc-dead-letter-reason"] == "malformed"


def test_sigkill_in_the_middle_of_a_run_loses_no_message(
    topology: Topology, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    ids = [f"p{i}" for i in range(300)]
    topology.publish([body(i, sleep=0.02) for i in ids])
    env = topology.environment("worker_tasks:work")
    env |= {worker_env.CONCURRENCY: "4", worker_env.LEASE_SECONDS: "10"}
    first = start_worker(**env)
    wait_until(lambda: sum(completions(records).values()) >= 60, 60, "the first worker to process some")
    first.kill_hard()
    assert len(completions(records)) < len(ids), "the kill came too late to prove anything"
    # Messages leased by the dead worker come back when their deadline (<= 10 s) lapses.
    start_worker(**env)
    wait_until(lambda: set(ids) <= set(completions(records)), 120, "every message to be processed")
    counts = completions(records)
    duplicates = sum(c - 1 for c in counts.values())
    print(
        f"SIGKILL run (Pub/Sub): published {len(ids)}, processed {len(set(counts))}, duplicates {duplicates}"
    )
    assert set(ids) - set(counts) == set()
    assert duplicates <= 4


def test_attributes_with_the_client_s_parameter_names_are_dead_lettered_whole_within_byte_limits(
    topology: Topology, start_worker: Callable[..., WorkerProcess]
) -> None:
    # Names the client's publish() takes as its own parameters, and a value at Pub/Sub's 1,024-byte limit.
    attributes = {
        "ordering_key": "k",
        "retry": "r",
        "timeout": "t",
        "topic": "x",
        "data": "d",
        "big": "é" * 512,
    }
    future = topology.publisher.publish(topology.topic, body("odd", fail="always", detail="ü" * 3000))
    future.result(timeout=30)
    message = pubsub_v1.types.PubsubMessage(data=b"\xff not json", attributes=attributes)
    topology.publisher.api.publish(topic=topology.topic, messages=[message])
    worker = start_worker(
        **(topology.environment("worker_tasks:fail_with_detail") | {worker_env.MAX_DELIVERY_ATTEMPTS: "1"})
    )
    wait_until(lambda: worker.metric("qc_worker_messages_dead_lettered_total") == 2, 60, "two dead letters")
    dead = {
        m.message.data: dict(m.message.attributes)
        for m in pull_all(topology.subscriber, topology.dead_letter_subscription)
    }
    odd = dead[b"\xff not json"]
    assert {k: odd[k] for k in attributes} == attributes
    assert odd["qc-dead-letter-reason"] == "malformed"
    [failed] = [a for data, a in dead.items() if data != b"\xff not json"]
    detail = failed["qc-dead-letter-detail"]
    assert len(detail.encode()) <= 1024
    assert detail.startswith("RuntimeError: üü")
    assert pull_all(topology.subscriber, topology.subscription) == []


def test_a_subscription_whose_every_task_fails_never_reports_an_empty_receive(
    topology: Topology, start_worker: Callable[..., WorkerProcess]
) -> None:
    # Fewer messages than slots, all in their backoff at once: pulls come back empty, yet the subscription
    # holds them all, so the operator must not read "drained".
    topology.publish([body(f"f{i}", fail="always") for i in range(3)])
    worker = start_worker(
        **(
            topology.environment("worker_tasks:work_async")
            | {
                worker_env.CONCURRENCY: "8",
                worker_env.MAX_DELIVERY_ATTEMPTS: "1000",
                worker_env.RETRY_BACKOFF_MIN_SECONDS: "8",
                worker_env.RETRY_BACKOFF_MAX_SECONDS: "8",
            }
        )
    )
    wait_until(lambda: worker.metric("qc_worker_messages_retried_total") >= 6, 90, "two retry rounds")
    assert worker.metric("qc_worker_empty_receives_total") == 0

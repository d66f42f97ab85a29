"""A real `qc-worker` on the Pub/Sub emulator: a message that kills the worker reaches its dead letter
through the subscription's delivery count, and an emulator that is down at start or goes away is weathered."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import worker_tasks
from google.cloud import pubsub_v1

from devstack.polling import wait_until
from devstack.process import port_open
from devstack.services import PubSubEmulator
from tests.worker.worker_harness import WorkerProcess, body, completions, restart_until_poison_dead_lettered

ACK_DEADLINE_SECONDS = 10  # the emulator's minimum: a crashed worker's message returns after it


def names(project: str) -> tuple[str, str, str, str]:
    suffix = uuid.uuid4().hex[:8]
    return (
        f"projects/{project}/topics/work-{suffix}",
        f"projects/{project}/subscriptions/work-{suffix}",
        f"projects/{project}/topics/dead-{suffix}",
        f"projects/{project}/subscriptions/dead-{suffix}",
    )


def worker_env(project: str, subscription: str, dead_topic: str, task: str, **extra: str) -> dict[str, str]:
    return {
        "QC_SOURCE": "pubsub",
        "QC_PUBSUB_PROJECT": project,
        "QC_PUBSUB_SUBSCRIPTION": subscription.rsplit("/", 1)[1],
        "QC_PUBSUB_DEAD_LETTER_TOPIC": dead_topic.rsplit("/", 1)[1],
        "QC_TASK": task,
        **extra,
    }


def test_a_message_that_kills_the_worker_is_dead_lettered_by_the_subscription_s_delivery_count(
    pubsub_env: PubSubEmulator, records: Path, tmp_path: Path
) -> None:
    topic, subscription, dead_topic, dead_subscription = names(pubsub_env.project)
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    publisher.create_topic(name=topic)
    publisher.create_topic(name=dead_topic)
    # The dead-letter policy makes Pub/Sub count deliveries, across crashes; its own limit (at least 5) is
    # only a backstop behind the worker's attempts (3 here).
    subscriber.create_subscription(
        request={
            "name": subscription,
            "topic": topic,
            "ack_deadline_seconds": ACK_DEADLINE_SECONDS,
            "dead_letter_policy": {"dead_letter_topic": dead_topic, "max_delivery_attempts": 10},
        }
    )
    subscriber.create_subscription(name=dead_subscription, topic=dead_topic)
    ids = [f"h{i}" for i in range(10)]
    for data in [body("poison", fail="crash"), *(body(i) for i in ids)]:
        publisher.publish(topic, data).result(timeout=30)
    settings = worker_env(
        pubsub_env.project,
        subscription,
        dead_topic,
        "worker_tasks:kill_worker_async",
        QC_CONCURRENCY="1",
        QC_MAX_DELIVERY_ATTEMPTS="3",
        **{worker_tasks.RECORDS_DIR_ENV: str(records)},
    )
    dead: list[pubsub_v1.types.ReceivedMessage] = []

    def dead_lettered() -> bool:
        response = subscriber.pull(subscription=dead_subscription, max_messages=10, timeout=5)
        dead.extend(response.received_messages)
        return bool(dead)

    crashes = restart_until_poison_dead_lettered(
        settings,
        tmp_path,
        dead_lettered,
        lambda: set(ids) <= set(completions(records)),
        max_crashes=3,
        crash_timeout_seconds=90,
    )
    assert crashes == 3
    assert dead[0].message.attributes["qc-dead-letter-reason"] == "crashed"
    assert b"poison" in dead[0].message.data
    subscriber.close()


@pytest.fixture
def private_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PubSubEmulator:
    emulator = PubSubEmulator(tmp_path / "emulator")
    emulator.start()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
    return emulator


def test_an_emulator_down_at_start_and_gone_mid_run_is_weathered(
    private_emulator: PubSubEmulator, records: Path, tmp_path: Path
) -> None:
    emulator = private_emulator
    process = emulator.process
    assert process is not None
    process.stop()
    topic, subscription, dead_topic, _ = names(emulator.project)
    settings = worker_env(
        emulator.project,
        subscription,
        dead_topic,
        "worker_tasks:work_async",
        **{worker_tasks.RECORDS_DIR_ENV: str(records)},
        PUBSUB_EMULATOR_HOST=emulator.host,
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        wait_until(lambda: "cannot reach the broker" in worker.log_path.read_text(), 60, "the retry log line")
        assert worker.popen.poll() is None
        assert not worker.ready()

        process.start()  # the same port; the emulator keeps nothing, so the topics are made again
        emulator.process = process
        wait_until(lambda: port_open(emulator.port), 60, "the emulator")
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        publisher.create_topic(name=topic)
        publisher.create_topic(name=dead_topic)
        subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=10)
        wait_until(worker.ready, 90, "the worker to connect once the subscription exists")
        publisher.publish(topic, body("one")).result(timeout=30)
        wait_until(lambda: set(completions(records)) == {"one"}, 30, "the message to be processed")

        process.stop()
        wait_until(lambda: not worker.ready(), 60, "/readyz to report the emulator unreachable")
        assert worker.popen.poll() is None
        subscriber.close()
    finally:
        worker.stop()
    assert "Event loop is closed" not in worker.log_path.read_text()

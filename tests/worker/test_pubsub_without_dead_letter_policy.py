"""What a Pub/Sub subscription's dead-letter policy adds, on the emulator (the README's "Pub/Sub without a
dead-letter policy"): without one the service reports no delivery count, so the worker counts receipts
itself, per process. A message that kills only its pool process is still counted (the worker lives on)
and dead-lettered after its attempts; one that kills the whole worker starts from attempt 1 in each new
process, so it is redelivered without end. With a policy the count survives (tests in
test_pubsub_crashes_and_outages.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import policy_tasks
import pytest
from google.cloud import pubsub_v1

from devstack.polling import wait_until
from devstack.services import PubSubEmulator
from qc_common import worker_env
from tests.worker.worker_harness import WorkerProcess, body

ACK_DEADLINE_SECONDS = 10  # the emulator's minimum: a crashed worker's message returns after it
MAX_ATTEMPTS = 2


@dataclass
class NoPolicy:
    """A subscription without a dead-letter policy, the worker's dead-letter topic, and a way to read it."""

    project: str
    topic: str
    subscription: str
    dead_topic: str
    dead_subscription: str
    subscriber: pubsub_v1.SubscriberClient

    def environment(self, task: str, attempts_file: Path) -> dict[str, str]:
        return {
            worker_env.SOURCE: "pubsub",
            worker_env.PUBSUB_PROJECT: self.project,
            worker_env.PUBSUB_SUBSCRIPTION: self.subscription.rsplit("/", 1)[1],
            worker_env.PUBSUB_DEAD_LETTER_TOPIC: self.dead_topic.rsplit("/", 1)[1],
            worker_env.TASK: task,
            worker_env.CONCURRENCY: "1",
            worker_env.MAX_DELIVERY_ATTEMPTS: str(MAX_ATTEMPTS),
            worker_env.RETRY_BACKOFF_MIN_SECONDS: "0",
            worker_env.RETRY_BACKOFF_MAX_SECONDS: "0",
            policy_tasks.ATTEMPTS_FILE_ENV: str(attempts_file),
        }

    def dead_letters(self) -> list[pubsub_v1.types.ReceivedMessage]:
        response = self.subscriber.pull(subscription=self.dead_subscription, max_messages=10, timeout=5)
        return list(response.received_messages)


@pytest.fixture
def no_policy(pubsub_env: PubSubEmulator) -> Iterator[NoPolicy]:
    suffix = uuid.uuid4().hex[:8]
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    project = pubsub_env.project
    names = NoPolicy(
        project,
        publisher.topic_path(project, f"work-{suffix}"),
        subscriber.subscription_path(project, f"work-{suffix}"),
        publisher.topic_path(project, f"dead-{suffix}"),
        subscriber.subscription_path(project, f"dead-{suffix}"),
        subscriber,
    )
    publisher.create_topic(name=names.topic)
    publisher.create_topic(name=names.dead_topic)
    subscriber.create_subscription(
        name=names.subscription, topic=names.topic, ack_deadline_seconds=ACK_DEADLINE_SECONDS
    )
    subscriber.create_subscription(name=names.dead_subscription, topic=names.dead_topic)
    publisher.publish(names.topic, body("poison")).result(timeout=30)
    yield names
    subscriber.close()


def exited(worker: WorkerProcess) -> Callable[[], bool]:
    return lambda: worker.popen.poll() is not None


def attempts(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_without_a_policy_a_message_killing_its_pool_process_is_counted_by_the_worker_and_dead_lettered(
    no_policy: NoPolicy, tmp_path: Path
) -> None:
    noted = tmp_path / "attempts"
    worker = WorkerProcess(
        no_policy.environment("policy_tasks:kills_its_process", noted), tmp_path / "worker.log"
    )
    try:
        dead: list[pubsub_v1.types.ReceivedMessage] = []

        def dead_lettered() -> bool:
            dead.extend(no_policy.dead_letters())
            return bool(dead)

        wait_until(dead_lettered, 90, "the dead letter")
        assert worker.popen.poll() is None, "the worker itself died"
        assert attempts(noted) == list(range(1, MAX_ATTEMPTS + 1))
        [dead_letter] = dead
        assert dead_letter.message.attributes["qc-dead-letter-reason"] == "crashed"
        assert dead_letter.message.attributes["qc-delivery-attempts"] == str(MAX_ATTEMPTS)
        assert "no dead-letter policy" in worker.log_path.read_text()  # the start-up warning
    finally:
        worker.stop()


@pytest.mark.slow
def test_without_a_policy_a_message_killing_the_whole_worker_starts_from_attempt_one_in_each_process(
    no_policy: NoPolicy, tmp_path: Path
) -> None:
    noted = tmp_path / "attempts"
    settings = no_policy.environment("policy_tasks:kills_the_worker", noted)
    restarts = MAX_ATTEMPTS + 1
    for restart in range(restarts):  # what the Deployment does: start the worker again whenever it dies
        worker = WorkerProcess(settings, tmp_path / f"worker-{restart}.log")
        try:
            wait_until(exited(worker), 90, "the poison to kill the worker")
        finally:
            worker.stop()
    # Past its attempts, and still never dead-lettered: no process saw more than its first receipt.
    assert attempts(noted) == [1] * restarts
    assert no_policy.dead_letters() == []

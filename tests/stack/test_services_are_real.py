"""RabbitMQ, the Pub/Sub emulator, Prometheus and helm on loopback do what the project relies on."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import aio_pika
import prometheus_client
import pytest
from google.cloud import pubsub_v1
from prometheus_client import CollectorRegistry, Gauge

from devstack.kube import KubeControlPlane
from devstack.polling import wait_until, wait_until_async
from devstack.process import free_port
from devstack.services import Prometheus, PubSubEmulator, RabbitMQ


async def test_rabbitmq_round_trips_a_persistent_message_and_counts_it(rabbitmq: RabbitMQ) -> None:
    queue_name = f"smoke-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect_robust(rabbitmq.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(queue_name, durable=True)
        message = aio_pika.Message(b"hello", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await channel.default_exchange.publish(message, routing_key=queue_name)

        async def counted() -> bool:
            return rabbitmq.queue_counts(queue_name)["messages_ready"] == 1

        await wait_until_async(counted, 15, "the management API to report the message")

        incoming = await queue.get(timeout=5)
        assert incoming is not None
        assert incoming.body == b"hello"
        assert incoming.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        await incoming.ack()


def test_pubsub_emulator_redelivers_a_nacked_message(pubsub_env: PubSubEmulator) -> None:
    project, suffix = pubsub_env.project, uuid.uuid4().hex[:8]
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(project, f"smoke-{suffix}")
    subscription = subscriber.subscription_path(project, f"smoke-{suffix}")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=10)
    publisher.publish(topic, b"again").result(timeout=10)

    first = subscriber.pull(subscription=subscription, max_messages=1, timeout=10).received_messages
    assert [m.message.data for m in first] == [b"again"]
    # A nack is an ack deadline of zero: the message is handed out again at once.
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first[0].ack_id], ack_deadline_seconds=0
    )

    def pull() -> list[pubsub_v1.types.ReceivedMessage]:
        return list(subscriber.pull(subscription=subscription, max_messages=1, timeout=5).received_messages)

    again = wait_until(pull, 15, "the nacked message to come again", interval_seconds=0)
    assert [m.message.data for m in again] == [b"again"]
    assert again[0].message.message_id == first[0].message.message_id
    subscriber.acknowledge(subscription=subscription, ack_ids=[again[0].ack_id])
    subscriber.close()


def test_prometheus_scrapes_a_local_exporter_and_answers_promql(prometheus: Prometheus) -> None:
    registry = CollectorRegistry()
    Gauge("qc_smoke_answer", "A value to find again through PromQL.", registry=registry).set(42)
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prometheus.add_target("smoke", f"127.0.0.1:{port}")
        result = prometheus.wait_for('qc_smoke_answer{instance_name="smoke"}', timeout_seconds=30)
        assert float(result[0]["value"][1]) == 42
        assert prometheus.query("sum(qc_smoke_answer) * 2")[0]["value"][1] == "84"
    finally:
        prometheus.remove_target("smoke")
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def trivial_chart(tmp_path: Path) -> Path:
    chart = tmp_path / "trivial"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: trivial\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    return chart


def test_helm_renders_and_installs_a_chart_into_the_local_apiserver(
    helm_binary: Path, kube: KubeControlPlane, trivial_chart: Path
) -> None:
    env = {
        "KUBECONFIG": str(kube.admin_kubeconfig),
        "HOME": str(trivial_chart.parent),
        "PATH": "/usr/bin:/bin",
    }
    rendered = subprocess.run(
        [str(helm_binary), "template", "smoke", str(trivial_chart), "--set", "greeting=hi"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    assert 'greeting: "hi"' in rendered
    subprocess.run(
        [str(helm_binary), "install", "smoke", str(trivial_chart), "--namespace", "default", "--wait"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    from kubernetes import client, config

    with config.new_client_from_config(config_file=str(kube.admin_kubeconfig)) as api:
        configmap = client.CoreV1Api(api).read_namespaced_config_map("smoke-greeting", "default")
    assert configmap.data == {"greeting": "hello"}

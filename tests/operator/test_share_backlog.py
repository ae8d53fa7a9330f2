"""A queue-mode Connector's backlog, as the operator reads it from the real broker: records
its share group has not finished (accepted, rejected, archived), in flight ones included."""

from __future__ import annotations

import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import AcknowledgeType, Message, ShareConsumer

from sluice_operator import share_group_offsets
from sluice_operator.kafka_facts import KafkaFactsReader, KafkaIdentities, KafkaIdentity
from sluice_operator.kafka_wire import GroupOffsetsUnavailable
from sluice_operator.queue_scaling import share_backlog
from sluice_operator.share_group_offsets import describe_share_group_offsets
from sluice_runtime.config import Connector, load_connector
from tests.broker_front import BrokerFront
from tests.runtime.test_queue_mode import set_group_config
from tests.support import produce

pytestmark = pytest.mark.integration

PLAIN = KafkaIdentity("connector", {})


def queue_connector(bootstrap: str, topic: str, group: str, initial_offset: str) -> Connector:
    return load_connector(
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Connector",
            "metadata": {"name": "backlog", "namespace": "ns"},
            "spec": {
                "source": {
                    "kafka": {
                        "bootstrapServers": [bootstrap],
                        "topics": [topic],
                        "consumption": "queue",
                        "shareGroup": group,
                        "initialOffset": initial_offset,
                    }
                },
                "delivery": {"ordering": "unordered"},
                "sink": {"uri": "http://f/"},
            },
        }
    )


@pytest.fixture
def reader() -> Iterator[KafkaFactsReader]:
    facts = KafkaFactsReader(timeout=5.0)
    yield facts
    facts.close()


def backlog(reader: KafkaFactsReader, connector: Connector) -> tuple[int | None, Any]:
    facts = reader.read(connector, KafkaIdentities(PLAIN, PLAIN))
    return facts.lag, facts.lag_by_topic


def share_member(bootstrap: str, group: str, topic: str) -> ShareConsumer:
    consumer = ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
        }
    )
    consumer.subscribe([topic])
    return consumer


def acquire(consumer: ShareConsumer, want: int) -> list[Message]:
    """One poll's worth at a time until ``want`` records are held (none acknowledged)."""
    deadline = time.monotonic() + 30
    messages: list[Message] = []
    while len(messages) < want and time.monotonic() < deadline:
        messages += [m for m in consumer.poll(1) if m.error() is None]
    assert len(messages) == want, f"acquired {len(messages)} of {want}"
    return messages


def settle(consumer: ShareConsumer, messages: list[Message], how: Callable[[int], Any]) -> None:
    for message in messages:
        offset = message.offset()
        assert offset is not None
        consumer.acknowledge(message, how(offset))
    consumer.commit_sync()


def test_the_backlog_is_what_the_share_group_has_not_finished(
    kafka_bootstrap: str, make_topic: Callable[..., str], reader: KafkaFactsReader
) -> None:
    topic = make_topic(partitions=2, prefix="backlog")
    group = f"backlog-{topic}"
    set_group_config(kafka_bootstrap, group, **{"share.auto.offset.reset": "earliest"})
    connector = queue_connector(kafka_bootstrap, topic, group, "earliest")
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(10)), partition=0)
    assert backlog(reader, connector) == (10, {topic: 10})  # nobody has started

    consumer = share_member(kafka_bootstrap, group, topic)
    try:
        held = acquire(consumer, 10)
        assert backlog(reader, connector)[0] == 10  # acquired is not finished

        # Out of order: 0 rejected (archived), 5-9 accepted, 1-4 released for redelivery.
        def first_round(offset: int) -> Any:
            if offset == 0:
                return AcknowledgeType.REJECT
            return AcknowledgeType.ACCEPT if offset >= 5 else AcknowledgeType.RELEASE

        settle(consumer, held, first_round)
        # 4 records left, though the start offset alone would say 9 or more (the broker
        # persists it lazily): the broker's own count of what is done above it is used.
        assert backlog(reader, connector) == (4, {topic: 4})

        produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(3)), partition=1)
        assert backlog(reader, connector) == (7, {topic: 7})

        again = acquire(consumer, 7)  # the 4 released ones and partition 1's 3
        assert backlog(reader, connector)[0] == 7
        settle(consumer, again, lambda _offset: AcknowledgeType.ACCEPT)
        assert backlog(reader, connector) == (0, {topic: 0})
    finally:
        consumer.close()


def test_a_share_group_nobody_started_counts_from_where_it_will_start(
    kafka_bootstrap: str, make_topic: Callable[..., str], reader: KafkaFactsReader
) -> None:
    topic = make_topic(partitions=3, prefix="backlog")
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(12)))
    never_used = f"never-{topic}"
    earliest = queue_connector(kafka_bootstrap, topic, never_used, "earliest")
    latest = queue_connector(kafka_bootstrap, topic, never_used, "latest")
    assert backlog(reader, earliest)[0] == 12  # the runtime will start at the beginning
    assert backlog(reader, latest)[0] == 0  # ... or at the end: nothing to catch up on
    # ... where its first member joins: until then it is unstarted (the operator keeps a
    # replica to start it); a group reading from the beginning has its start already.
    facts = reader.read(latest, KafkaIdentities(PLAIN, PLAIN))
    assert facts.unstarted
    assert not reader.read(earliest, KafkaIdentities(PLAIN, PLAIN)).unstarted


def test_a_latest_share_group_starts_when_its_member_finishes_records(
    kafka_bootstrap: str, make_topic: Callable[..., str], reader: KafkaFactsReader
) -> None:
    topic = make_topic(partitions=2, prefix="backlog")
    group = f"started-{topic}"
    set_group_config(kafka_bootstrap, group, **{"share.auto.offset.reset": "latest"})
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(6)))  # before it starts
    connector = queue_connector(kafka_bootstrap, topic, group, "latest")
    assert reader.read(connector, KafkaIdentities(PLAIN, PLAIN)).unstarted

    consumer = share_member(kafka_bootstrap, group, topic)
    try:
        # A member that read nothing leaves no start with the broker (4.2 persists it with
        # the first acknowledgement): the operator keeps that member running meanwhile.
        for _ in range(6):
            consumer.poll(0.5)
        assert reader.read(connector, KafkaIdentities(PLAIN, PLAIN)).unstarted
        # Records until both partitions had one (those produced before the broker set the
        # start are skipped, as the six were), each accepted as it comes.
        finished: set[int] = set()
        deadline = time.monotonic() + 60
        while finished != {0, 1} and time.monotonic() < deadline:
            for partition in {0, 1} - finished:
                produce(kafka_bootstrap, topic, [(None, "now")], partition=partition)
            held = [m for m in consumer.poll(1) if m.error() is None]
            assert all(m.value() == b"now" for m in held)
            settle(consumer, held, lambda _offset: AcknowledgeType.ACCEPT)
            finished |= {m.partition() or 0 for m in held}
        assert finished == {0, 1}
        assert not reader.read(connector, KafkaIdentities(PLAIN, PLAIN)).unstarted
    finally:
        consumer.close()
    # From then on what arrives is backlog, with no member running.
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(4)))
    assert backlog(reader, connector)[0] == 4


def test_version_0_reads_the_start_offset(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Brokers without KIP-1226's lag answer version 0: the start offset alone, which the
    broker persists lazily (it may trail what is done), so the backlog read from it is
    never below the truth."""
    topic = make_topic(prefix="backlog")
    group = f"v0-{topic}"
    set_group_config(kafka_bootstrap, group, **{"share.auto.offset.reset": "earliest"})
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(8)))
    consumer = share_member(kafka_bootstrap, group, topic)
    try:
        held = acquire(consumer, 8)
        settle(
            consumer,
            held,
            lambda o: AcknowledgeType.ACCEPT if o < 3 else AcknowledgeType.RELEASE,
        )
    finally:
        consumer.close()
    monkeypatch.setattr(share_group_offsets, "DESCRIBE_VERSIONS", (0, 0))
    offsets = describe_share_group_offsets([kafka_bootstrap], {}, group, {topic: 1}, 5.0)
    assert 0 <= offsets[(topic, 0)].start_offset <= 3  # 3 records accepted, in order
    assert offsets[(topic, 0)].lag is None
    backlog = share_backlog({topic: 1}, offsets, {(topic, 0): 8}, {(topic, 0): 0}, True)
    assert backlog[topic] >= 5


def test_what_cannot_be_read_is_unknown_not_a_crash(
    kafka_bootstrap: str, make_topic: Callable[..., str], reader: KafkaFactsReader
) -> None:
    topic = make_topic(prefix="backlog")
    group = f"unread-{topic}"
    # librdkafka's default mechanism, GSSAPI (Kerberos), is not spoken here.
    with pytest.raises(GroupOffsetsUnavailable, match=r"sasl\.mechanism GSSAPI is not spoken"):
        describe_share_group_offsets(
            [kafka_bootstrap], {"security.protocol": "SASL_SSL"}, group, {topic: 1}, 2.0
        )
    # TLS towards a plaintext listener: the handshake fails, the reader says so.
    with pytest.raises(GroupOffsetsUnavailable, match=r"no bootstrap server answered.*SSL"):
        describe_share_group_offsets(
            [kafka_bootstrap], {"security.protocol": "SSL"}, group, {topic: 1}, 2.0
        )
    with pytest.raises(GroupOffsetsUnavailable, match="no bootstrap server answered"):
        describe_share_group_offsets(["127.0.0.1:1"], {}, group, {topic: 1}, 2.0)

    # In the operator's reader (the hook read() calls in queue mode), with a SASL identity
    # whose mechanism (GSSAPI, by default) this module does not speak: unknown, so the lag
    # rules keep the replica count.
    connector = queue_connector(kafka_bootstrap, topic, group, "earliest")
    sasl = KafkaIdentity("connector", {"security.protocol": "SASL_PLAINTEXT"})
    admin = reader._client([kafka_bootstrap], PLAIN)[1]
    assert reader._share_backlog(admin, connector, {topic: 1}, PLAIN) == ({topic: 0}, False)
    assert reader._share_backlog(admin, connector, {topic: 1}, sasl) is None


def self_signed(directory: Path, name: str) -> tuple[str, str]:
    """A self-signed certificate for localhost and 127.0.0.1: (certificate, key) as PEM,
    also left in ``directory`` as NAME.crt and NAME.key."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", f"/CN={name}"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert.read_text(), key.read_text()


def test_tls_with_a_client_certificate(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    broker_cert, _ = self_signed(tmp_path, "broker")
    client_cert, client_key = self_signed(tmp_path, "operator")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=client_cert)
    server.load_cert_chain(tmp_path / "broker.crt", tmp_path / "broker.key")
    server.verify_mode = ssl.CERT_REQUIRED
    front = BrokerFront(kafka_bootstrap, server)
    topic = make_topic(prefix="backlog")
    group = f"tls-{topic}"
    set_group_config(kafka_bootstrap, group, **{"share.auto.offset.reset": "earliest"})
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(6)))
    consumer = share_member(kafka_bootstrap, group, topic)
    try:
        settle(consumer, acquire(consumer, 6), lambda o: AcknowledgeType.ACCEPT)
    finally:
        consumer.close()
    tls = {
        "security.protocol": "SSL",
        "ssl.ca.pem": broker_cert,
        "ssl.certificate.pem": client_cert,
        "ssl.key.pem": client_key,
    }
    try:
        offsets = describe_share_group_offsets(
            [f"localhost:{front.port}"], tls, group, {topic: 1}, 5.0
        )
        assert offsets[(topic, 0)].lag == 0
        # Both connections (bootstrap, then coordinator) showed the operator's certificate.
        assert front.clients == ["operator", "operator"]
        # A broker certificate the CA does not vouch for: refused, reported.
        with pytest.raises(GroupOffsetsUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            describe_share_group_offsets(
                [f"localhost:{front.port}"], {**tls, "ssl.ca.pem": client_cert}, group, {}, 5.0
            )
    finally:
        front.close()

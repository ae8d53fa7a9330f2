"""A queue-mode Connector's backlog read from the real broker's SASL_PLAINTEXT listener
(scripts/kafka.sh) with each mechanism a Connector may name, over TLS too (SASL_SSL), and
what a wrong password gives: an unknown backlog, for a reason that does not hold the
password."""

from __future__ import annotations

import logging
import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import AcknowledgeType, Message, ShareConsumer

from sluice_operator import kafka_wire, share_group_offsets
from sluice_operator.kafka_facts import KafkaFactsReader, KafkaIdentities, KafkaIdentity
from sluice_operator.kafka_wire import BrokerConnection, GroupOffsetsUnavailable
from sluice_operator.share_group_offsets import describe_share_group_offsets
from tests.broker_front import BrokerFront
from tests.operator.test_share_backlog import (
    PLAIN,
    backlog,
    queue_connector,
    reader,  # noqa: F401  (the fixture)
    self_signed,
    share_member,
)
from tests.runtime.test_queue_mode import set_group_config
from tests.sasl_broker import PLAIN_PASSWORD, SCRAM_PASSWORD, SaslListener
from tests.support import produce

pytestmark = pytest.mark.integration


def by_host_name(address: str) -> str:
    """The listener by host name when it is loopback's IP: the broker advertises the IP,
    so the coordinator differs from the bootstrap server and the read opens a second
    connection, which must authenticate too."""
    host, _, port = address.rpartition(":")
    return f"localhost:{port}" if host == "127.0.0.1" else address


def settle_every_record(
    consumer: ShareConsumer, count: int, how: Callable[[Message], AcknowledgeType]
) -> None:
    """Acknowledge each of ``count`` records as ``how`` says, poll by poll (explicit
    acknowledgement wants each poll's records settled before the next), then close."""
    try:
        seen: set[tuple[int | None, int | None]] = set()
        deadline = time.monotonic() + 30
        while len(seen) < count and time.monotonic() < deadline:
            for message in consumer.poll(1):
                if message.error() is None:
                    seen.add((message.partition(), message.offset()))
                    consumer.acknowledge(message, how(message))
            consumer.commit_sync()
        assert len(seen) == count, f"acquired {len(seen)} of {count}"
    finally:
        consumer.close()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_backlog_read_over_sasl_is_the_truth(
    kafka_bootstrap: str,
    kafka_sasl: SaslListener,
    make_topic: Callable[..., str],
    reader: KafkaFactsReader,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    mechanism: str,
) -> None:
    topic = make_topic(partitions=2, prefix="sasl")
    group = f"sasl-{topic}"
    set_group_config(kafka_bootstrap, group, **{"share.auto.offset.reset": "earliest"})
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(10)), partition=0)
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(3)), partition=1)
    authenticated: list[str] = []
    real_authenticate = BrokerConnection.authenticate

    def spy(connection: BrokerConnection, *args: Any) -> None:
        real_authenticate(connection, *args)
        authenticated.append(connection.address)

    monkeypatch.setattr(BrokerConnection, "authenticate", spy)
    bootstrap = by_host_name(kafka_sasl.bootstrap)
    over_sasl = queue_connector(bootstrap, topic, group, "earliest")
    identity = KafkaIdentity("connector", kafka_sasl.settings(mechanism))

    def sasl_backlog() -> tuple[int | None, Any]:
        facts = reader.read(over_sasl, KafkaIdentities(identity, identity))
        return facts.lag, facts.lag_by_topic

    assert sasl_backlog() == (13, {topic: 13})  # nobody has started

    # Partition 1 and partition 0's offsets 0-3 accepted, partition 0's 4-9 released
    # (explicit acknowledgement wants each poll's records settled before the next poll).
    def done_or_not(message: Message) -> AcknowledgeType:
        offset = message.offset()
        assert offset is not None
        if message.partition() == 1 or offset < 4:
            return AcknowledgeType.ACCEPT
        return AcknowledgeType.RELEASE

    settle_every_record(share_member(kafka_bootstrap, group, topic), 13, done_or_not)
    assert sasl_backlog() == (6, {topic: 6})
    # The same as over the PLAINTEXT listener, without credentials.
    plaintext = queue_connector(kafka_bootstrap, topic, group, "earliest")
    assert backlog(reader, plaintext) == (6, {topic: 6})
    # Both connections authenticated: to the bootstrap server, then to the coordinator.
    expected = {bootstrap, kafka_sasl.bootstrap}
    assert set(authenticated) == expected


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_a_wrong_password_is_an_unknown_backlog_and_never_shown(
    kafka_bootstrap: str,
    kafka_sasl: SaslListener,
    make_topic: Callable[..., str],
    reader: KafkaFactsReader,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    mechanism: str,
) -> None:
    topic = make_topic(prefix="sasl")
    group = f"wrong-{topic}"
    wrong = f"wrong-{uuid.uuid4().hex}"
    settings = kafka_sasl.settings(mechanism, password=wrong)
    with pytest.raises(GroupOffsetsUnavailable, match="SASL_AUTHENTICATION_FAILED") as caught:
        describe_share_group_offsets([kafka_sasl.bootstrap], settings, group, {topic: 1}, 5.0)
    reason = str(caught.value)
    assert settings["sasl.username"] in reason  # who, so that an operator can fix it
    for secret in (wrong, PLAIN_PASSWORD, SCRAM_PASSWORD):
        assert secret not in reason

    # The operator's reader: unknown (so the lag rules keep the replica count), logged
    # without the password.
    connector = queue_connector(kafka_sasl.bootstrap, topic, group, "earliest")
    admin = reader._client([kafka_bootstrap], PLAIN)[1]
    identity = KafkaIdentity("connector", settings)
    with caplog.at_level(logging.WARNING):
        assert reader._share_backlog(admin, connector, {topic: 1}, identity) is None
    assert "SASL_AUTHENTICATION_FAILED" in caplog.text
    assert wrong not in caplog.text


@pytest.mark.parametrize("version", [0, 1, 2])
def test_every_version_of_sasl_authenticate(
    kafka_sasl: SaslListener,
    make_topic: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    version: int,
) -> None:
    """Brokers older than Kafka 2.2 have no version 1, older than 2.7 no version 2 (the
    flexible one, which today's brokers are asked for): each is spoken."""
    topic = make_topic(prefix="sasl")
    monkeypatch.setattr(kafka_wire, "SASL_AUTHENTICATE_VERSIONS", (version, version))
    for mechanism in ("PLAIN", "SCRAM-SHA-256"):
        offsets = describe_share_group_offsets(
            [kafka_sasl.bootstrap], kafka_sasl.settings(mechanism), f"v-{topic}", {topic: 1}, 5.0
        )
        started = offsets.get((topic, 0))  # nobody has: missing, or not initialised
        assert started is None or started.start_offset == share_group_offsets.UNINITIALIZED
        with pytest.raises(GroupOffsetsUnavailable, match="SASL_AUTHENTICATION_FAILED"):
            describe_share_group_offsets(
                [kafka_sasl.bootstrap],
                kafka_sasl.settings(mechanism, password="wrong"),
                f"v-{topic}",
                {topic: 1},
                5.0,
            )


def test_sasl_ssl_with_scram(
    kafka_bootstrap: str,
    kafka_sasl: SaslListener,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    """SASL over TLS: a TLS listener before the broker's SASL listener (the broker itself
    has no TLS listener), coordinator included, as SASL_SSL clusters are read."""
    broker_cert, _ = self_signed(tmp_path, "broker")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "broker.crt", tmp_path / "broker.key")
    front = BrokerFront(kafka_sasl.bootstrap, server)
    topic = make_topic(prefix="sasl")
    group = f"sasl-ssl-{topic}"
    set_group_config(kafka_bootstrap, group, **{"share.auto.offset.reset": "earliest"})
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(6)))

    def two_done(message: Message) -> AcknowledgeType:
        offset = message.offset()
        assert offset is not None
        return AcknowledgeType.ACCEPT if offset < 2 else AcknowledgeType.RELEASE

    settle_every_record(share_member(kafka_bootstrap, group, topic), 6, two_done)
    settings = {
        **kafka_sasl.settings("SCRAM-SHA-512"),
        "security.protocol": "SASL_SSL",
        "ssl.ca.pem": broker_cert,
    }
    try:
        offsets = describe_share_group_offsets(
            [f"localhost:{front.port}"], settings, group, {topic: 1}, 5.0
        )
        assert offsets[(topic, 0)].lag == 4
    finally:
        front.close()

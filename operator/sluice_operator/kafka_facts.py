"""What the operator needs to know from Kafka about one Connector: the partition counts of
its topics, the consumer group's lag, and that its dead-letter topic exists (created when
missing).

The operator connects with the Connector's security protocol and SASL mechanism, and with
credentials from its *own* environment (the same ``SLUICE_KAFKA_*`` variables the runtime
reads): it never reads the Connector's Secret. Admin clients are shared per cluster and
dropped after an error, so the next attempt bootstraps afresh.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

# Where these are defined: confluent_kafka.admin re-exports them without declaring so.
from confluent_kafka.admin._listoffsets import OffsetSpec
from confluent_kafka.cimpl import NewTopic

from sluice_operator.conditions import Reason
from sluice_runtime.config import Connector, KafkaAuth
from sluice_runtime.source import kafka_auth_settings

log = logging.getLogger("sluice.operator.kafka")

_UNREACHABLE = {
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._RESOLVE,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
}
_DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._AUTHENTICATION,
}


class KafkaFactsError(Exception):
    """Kafka could not tell; ``reason`` is the SourceReady condition's reason."""

    def __init__(self, reason: Reason, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.code = code


@dataclass(frozen=True)
class KafkaFacts:
    partitions: dict[str, int]
    """Partition count of each topic."""
    lag: int | None
    """Records the group has yet to commit over all partitions; None when unreadable."""
    dead_letter_created: str | None = None
    """The dead-letter topic, when this call created it."""
    dead_letter_error: str | None = None
    """Why the dead-letter topic could not be checked or created."""

    @property
    def total_partitions(self) -> int:
        return sum(self.partitions.values())


def _classify(error: KafkaError, what: str) -> KafkaFactsError:
    code = error.code()
    if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
        reason = Reason.TOPIC_NOT_FOUND
    elif code in _UNREACHABLE:
        reason = Reason.KAFKA_UNREACHABLE
    elif code in _DENIED:
        reason = Reason.KAFKA_ACCESS_DENIED
    else:
        reason = Reason.KAFKA_ERROR
    return KafkaFactsError(reason, f"{what}: {error.str()}", code)


class KafkaFactsReader:
    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._clients: dict[tuple[Any, ...], AdminClient] = {}
        self._lock = threading.Lock()

    def _client(self, servers: Iterable[str], auth: KafkaAuth | None) -> tuple[Any, AdminClient]:
        settings = {"bootstrap.servers": ",".join(sorted(servers)), **kafka_auth_settings(auth)}
        key = tuple(sorted(settings.items()))
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = AdminClient(
                    {
                        **settings,
                        "client.id": "sluice-operator",
                        "socket.connection.setup.timeout.ms": int(self.timeout * 1000),
                        "logger": log,  # type: ignore[dict-item]
                    }
                )
                self._clients[key] = client
            return key, client

    def _forget(self, key: Any) -> None:
        with self._lock:
            client = self._clients.pop(key, None)
        if client is not None:
            client.poll(0)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.poll(0)  # serves the log events librdkafka queued for our logger

    def _wait(self, future: Future[Any], what: str) -> Any:
        try:
            return future.result(timeout=self.timeout + 1)
        except KafkaException as error:
            raise _classify(error.args[0], what) from None
        except FutureTimeout:
            raise KafkaFactsError(
                Reason.KAFKA_UNREACHABLE, f"{what}: no answer in {self.timeout:g}s"
            ) from None

    def read(self, connector: Connector) -> KafkaFacts:
        """Raises KafkaFactsError when the topics cannot be described; the lag and the
        dead-letter topic are best effort (reported in the result)."""
        kafka = connector.spec.source.kafka
        key, client = self._client(kafka.bootstrap_servers, kafka.auth)
        try:
            partitions = self._partitions(client, kafka.topics)
        except KafkaFactsError as error:
            if error.reason != Reason.TOPIC_NOT_FOUND:
                self._forget(key)
            raise
        lag = self._lag(client, connector, partitions)
        created, dlq_error = self._ensure_dead_letter(connector)
        client.poll(0)  # serves queued log events to our logger
        return KafkaFacts(partitions, lag, created, dlq_error)

    def _partitions(self, client: AdminClient, topics: list[str]) -> dict[str, int]:
        futures = client.describe_topics(
            TopicCollection(list(topics)), request_timeout=self.timeout
        )
        counts: dict[str, int] = {}
        for topic in topics:
            description = self._wait(futures[topic], f"topic {topic}")
            counts[topic] = len(description.partitions)
        return counts

    def _lag(
        self, client: AdminClient, connector: Connector, partitions: dict[str, int]
    ) -> int | None:
        group = connector.consumer_group
        tps = [TopicPartition(t, p) for t, n in partitions.items() for p in range(n)]
        try:
            request = [ConsumerGroupTopicPartitions(group, tps)]
            answer = self._wait(
                client.list_consumer_group_offsets(request, request_timeout=self.timeout)[group],
                f"offsets of group {group}",
            )
            committed = {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions}
            latest = self._offsets(client, tps, OffsetSpec.latest())  # type: ignore[no-untyped-call]
            uncommitted = [tp for tp in tps if committed.get((tp.topic, tp.partition), -1) < 0]
            # A new group reads from the start only with initialOffset earliest; with latest
            # it has nothing to catch up on.
            earliest = (
                self._offsets(client, uncommitted, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
                if uncommitted and connector.spec.source.kafka.initial_offset == "earliest"
                else {}
            )
        except KafkaFactsError as error:
            log.warning("Failed to read the lag of group %s: %s", group, error.message)
            return None
        total = 0
        for tp in tps:
            where = (tp.topic, tp.partition)
            end = latest[where]
            start = committed.get(where, -1)
            if start < 0:
                start = earliest.get(where, end)
            total += max(end - start, 0)
        return total

    def _offsets(
        self, client: AdminClient, tps: list[TopicPartition], spec: OffsetSpec
    ) -> dict[tuple[str, int], int]:
        if not tps:
            return {}
        futures = client.list_offsets({tp: spec for tp in tps}, request_timeout=self.timeout)
        return {
            (tp.topic, tp.partition): self._wait(future, f"offsets of {tp.topic}").offset
            for tp, future in futures.items()
        }

    def _ensure_dead_letter(self, connector: Connector) -> tuple[str | None, str | None]:
        dead_letter = connector.spec.delivery.dead_letter
        if dead_letter is None or dead_letter.kafka is None:
            return None, None
        kafka = connector.spec.source.kafka
        topic = dead_letter.kafka.topic
        servers = dead_letter.kafka.bootstrap_servers or kafka.bootstrap_servers
        key, client = self._client(servers, kafka.auth)
        try:
            self._partitions(client, [topic])
            return None, None
        except KafkaFactsError as error:
            if error.reason != Reason.TOPIC_NOT_FOUND:
                self._forget(key)
                return None, f"dead-letter topic {error.message}"
        # -1 partitions and replicas: the broker's defaults (num.partitions,
        # default.replication.factor), as for any topic its operators did not plan for.
        future = client.create_topics(
            [NewTopic(topic, num_partitions=-1, replication_factor=-1)],
            request_timeout=self.timeout,
        )[topic]
        try:
            self._wait(future, f"creating dead-letter topic {topic}")
        except KafkaFactsError as error:
            if error.code == KafkaError.TOPIC_ALREADY_EXISTS:
                return None, None
            return None, error.message
        log.info("Created dead-letter topic %s", topic)
        return topic, None

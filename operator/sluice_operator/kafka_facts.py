"""What the operator needs to know from Kafka about one Connector: the partition counts of
its topics, the consumer group's lag (its committed offsets asked over Kafka's protocol by
``consumer_group_offsets.py``; in queue mode the share group's backlog, by
``share_group_offsets.py``), and that its dead-letter topic exists (created when missing).

Who the operator is on Kafka (:func:`kafka_identities`): the bootstrap servers are the
Connector author's choice, so the operator sends them the *Connector's* own credentials
(from its Secret, which must opt in: ``access.py``), exactly what its pods will send. Its
own identity (SLUICE_OPERATOR_KAFKA_*) goes only to brokers the operator's configuration
lists as trusted, and only when every bootstrap server is listed: anything else would hand
it to whoever runs the address a Connector names.

Admin clients are shared per cluster and identity (a bounded number of them) and dropped
after an error, so the next attempt bootstraps afresh.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar

from confluent_kafka import (
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
from sluice_operator.consumer_group_offsets import committed_offsets
from sluice_operator.kafka_wire import GroupOffsetsUnavailable
from sluice_operator.queue_scaling import share_backlog
from sluice_operator.settings import OperatorConfig
from sluice_operator.share_group_offsets import describe_share_group_offsets
from sluice_runtime.config import Connector, KafkaAuth
from sluice_runtime.contract import KAFKA_AUTH_ENV, KAFKA_AUTH_SECRET_KEYS

log = logging.getLogger("sluice.operator.kafka")

T = TypeVar("T")

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


# Admin clients kept at once; each holds threads and connections, and Connectors with many
# different credentials would otherwise keep one each forever.
MAX_CLIENTS = 32

# librdkafka setting → the key of a Connector's auth Secret that holds it (as the pods get it).
SECRET_KEY_OF_SETTING = {
    setting: KAFKA_AUTH_SECRET_KEYS[variable] for setting, variable in KAFKA_AUTH_ENV.items()
}


@dataclass(frozen=True)
class KafkaIdentity:
    """Who the operator is towards one cluster, for one Connector."""

    whose: Literal["operator", "connector"]
    settings: Mapping[str, str] = field(repr=False)
    """librdkafka security settings (protocol, mechanism, credentials); never logged."""


@dataclass(frozen=True)
class KafkaIdentities:
    source: KafkaIdentity
    dead_letter: KafkaIdentity
    """For the dead-letter topic's cluster, which may be another one."""


def connector_kafka_settings(
    auth: KafkaAuth | None, secret: Mapping[str, str] | None
) -> dict[str, str]:
    """The settings the Connector's pods use: its protocol and mechanism, and the keys of
    its Secret (``secret``: the Secret's decoded data)."""
    if auth is None:
        return {}
    settings: dict[str, str] = {"security.protocol": auth.security_protocol}
    if auth.security_protocol.startswith("SASL") and auth.sasl_mechanism:
        settings["sasl.mechanism"] = auth.sasl_mechanism
    secret = secret or {}
    for setting, key in SECRET_KEY_OF_SETTING.items():
        if secret.get(key):
            settings[setting] = secret[key]
    return settings


def _clusters(connector: Connector) -> tuple[list[str], list[str]]:
    """The bootstrap servers of the source and of the dead-letter topic."""
    kafka = connector.spec.source.kafka
    dead_letter = connector.spec.delivery.dead_letter
    dlq_servers = (
        dead_letter.kafka.bootstrap_servers
        if dead_letter is not None and dead_letter.kafka is not None
        else None
    )
    return kafka.bootstrap_servers, dlq_servers or kafka.bootstrap_servers


def needs_connector_secret(connector: Connector, config: OperatorConfig) -> bool:
    """Whether the operator will talk to Kafka with the Connector's credentials (so must
    read its Secret's data): it has some, and a cluster it names is not a trusted one."""
    if connector.spec.source.kafka.auth is None:
        return False
    return not all(config.trusts(servers) for servers in _clusters(connector))


def kafka_identities(
    connector: Connector, config: OperatorConfig, secret: Mapping[str, str] | None
) -> KafkaIdentities:
    """The operator's own identity for trusted clusters, the Connector's everywhere else.
    ``secret``: the decoded data of the Connector's auth Secret (when it has one and
    :func:`needs_connector_secret`)."""
    auth = connector.spec.source.kafka.auth

    def identity(servers: list[str]) -> KafkaIdentity:
        if config.trusts(servers):
            return KafkaIdentity("operator", config.operator_kafka_settings())
        return KafkaIdentity("connector", connector_kafka_settings(auth, secret))

    source, dead_letter = _clusters(connector)
    return KafkaIdentities(identity(source), identity(dead_letter))


class KafkaFactsError(Exception):
    """Kafka could not tell; ``reason`` is the SourceReady condition's reason."""

    def __init__(self, reason: Reason, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.code = code


class Backlog(NamedTuple):
    by_topic: dict[str, int]
    unstarted: bool


@dataclass(frozen=True)
class KafkaFacts:
    partitions: dict[str, int]
    """Partition count of each topic."""
    lag: int | None
    """Records the group has yet to commit over all partitions (in queue mode: the share
    group has yet to finish); None when unreadable."""
    dead_letter_created: str | None = None
    """The dead-letter topic, when this call created it."""
    dead_letter_error: str | None = None
    """Why the dead-letter topic could not be checked or created."""
    lag_by_topic: dict[str, int] | None = None
    """The lag per topic (None when unreadable)."""
    unstarted: bool = False
    """With ``initialOffset: latest``, the group has no position yet on some partition: it
    starts there where its first member joins, so nothing produced before that counts as
    lag, and without a member it never starts (see ``decide_replicas``)."""

    @property
    def total_partitions(self) -> int:
        return sum(self.partitions.values())


def _let_go(clients: list[AdminClient]) -> None:
    """Drop clients the reader no longer keeps, here and now.

    Each serves the log events librdkafka queued for our logger first. Then the cycle
    collector runs on this thread. A client still held by a reference cycle (a traceback's
    frame, say) would otherwise be freed whenever the collector next runs, possibly inside
    a callback on librdkafka's own background thread (an admin request's result). A client
    destroyed from its own thread takes the process down (confluent-kafka-python #1761;
    their tests turn the collector off around such calls)."""
    for client in clients:
        client.poll(0)
    clients.clear()
    gc.collect()


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
    def __init__(self, timeout: float = 5.0, max_clients: int = MAX_CLIENTS) -> None:
        self.timeout = timeout
        self.max_clients = max_clients
        self._clients: OrderedDict[tuple[Any, ...], AdminClient] = OrderedDict()
        self._lock = threading.Lock()
        # Why a group's lag or backlog was last unreadable, per read (``_positions``).
        self._read_problems: dict[str, str] = {}

    def _client(self, servers: Iterable[str], identity: KafkaIdentity) -> tuple[Any, AdminClient]:
        settings = {"bootstrap.servers": ",".join(sorted(servers)), **identity.settings}
        key = tuple(sorted(settings.items()))
        evicted: list[AdminClient] = []
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
            else:
                while len(self._clients) >= self.max_clients:
                    evicted.append(self._clients.popitem(last=False)[1])
                client = AdminClient(
                    {
                        **settings,
                        "client.id": "sluice-operator",
                        "socket.connection.setup.timeout.ms": int(self.timeout * 1000),
                        "logger": log,  # type: ignore[dict-item]
                    }
                )
                self._clients[key] = client
        if evicted:
            _let_go(evicted)
        return key, client

    def _forget(self, key: Any) -> None:
        with self._lock:
            client = self._clients.pop(key, None)
        if client is not None:
            _let_go([client])

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        _let_go(clients)

    def _wait(self, future: Future[Any], what: str) -> Any:
        try:
            return future.result(timeout=self.timeout + 1)
        except KafkaException as error:
            raise _classify(error.args[0], what) from None
        except FutureTimeout:
            raise KafkaFactsError(
                Reason.KAFKA_UNREACHABLE, f"{what}: no answer in {self.timeout:g}s"
            ) from None

    def read(self, connector: Connector, identities: KafkaIdentities) -> KafkaFacts:
        """Raises KafkaFactsError when the topics cannot be described; the lag and the
        dead-letter topic are best effort (reported in the result)."""
        kafka = connector.spec.source.kafka
        key, client = self._client(kafka.bootstrap_servers, identities.source)
        try:
            partitions = self._partitions(client, kafka.topics)
        except KafkaFactsError as error:
            if error.reason != Reason.TOPIC_NOT_FOUND:
                self._forget(key)
            raise
        if kafka.consumption == "queue":
            backlog = self._share_backlog(client, connector, partitions, identities.source)
        else:
            backlog = self._lag(client, connector, partitions, identities.source)
        created, dlq_error = self._ensure_dead_letter(connector, identities.dead_letter)
        client.poll(0)  # serves queued log events to our logger
        if backlog is None:
            return KafkaFacts(partitions, None, created, dlq_error)
        lag_by_topic, unstarted = backlog
        lag = sum(lag_by_topic.values())
        return KafkaFacts(partitions, lag, created, dlq_error, lag_by_topic, unstarted)

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
        self,
        client: AdminClient,
        connector: Connector,
        partitions: dict[str, int],
        identity: KafkaIdentity,
    ) -> Backlog | None:
        """Records the group has yet to commit, per topic, and whether it is unstarted
        (``KafkaFacts.unstarted``). Records that retention deleted before the group got to
        them are not lag: the group can never read them, so a committed offset below a
        partition's low watermark counts from the watermark. The committed offsets come
        over Kafka's protocol (``consumer_group_offsets``), with the same identity as the
        admin client."""
        kafka = connector.spec.source.kafka
        group = connector.consumer_group
        read = self._positions(
            client,
            partitions,
            f"the lag of group {group}",
            lambda: committed_offsets(
                kafka.bootstrap_servers, identity.settings, group, partitions, self.timeout
            ),
        )
        if read is None:
            return None
        committed, latest, earliest = read
        # A new group reads from the start only with initialOffset earliest; with latest
        # it has nothing to catch up on.
        from_start = kafka.initial_offset == "earliest"
        by_topic = dict.fromkeys(partitions, 0)
        unstarted = False
        for where, end in latest.items():
            low = earliest.get(where, 0)
            start = committed.get(where, -1)
            if start < 0:
                unstarted = unstarted or not from_start
                start = low if from_start else end
            by_topic[where[0]] += max(end - max(start, low), 0)
        return Backlog(by_topic, unstarted)

    def _share_backlog(
        self,
        client: AdminClient,
        connector: Connector,
        partitions: dict[str, int],
        identity: KafkaIdentity,
    ) -> Backlog | None:
        """Records the share group has yet to finish, per topic (``share_backlog``), and
        whether it is unstarted (``KafkaFacts.unstarted``); None when unreadable. The start
        offsets come over Kafka's protocol (the Python client has no admin call for them),
        with the same identity as the admin client."""
        kafka = connector.spec.source.kafka
        group = connector.share_group
        read = self._positions(
            client,
            partitions,
            f"the backlog of share group {group}",
            lambda: describe_share_group_offsets(
                kafka.bootstrap_servers, identity.settings, group, partitions, self.timeout
            ),
        )
        if read is None:
            return None
        offsets, latest, earliest = read
        from_start = kafka.initial_offset == "earliest"
        by_topic = share_backlog(partitions, offsets, latest, earliest, from_start)
        unstarted = not from_start and any(
            (state := offsets.get(where)) is None or state.start_offset < 0 for where in latest
        )
        return Backlog(by_topic, unstarted)

    def _positions(
        self,
        client: AdminClient,
        partitions: dict[str, int],
        what: str,
        read_group: Callable[[], T],
    ) -> tuple[T, dict[tuple[str, int], int], dict[tuple[str, int], int]] | None:
        """What ``read_group`` reads of a group, with every partition's high and low
        watermarks; None when any of it is unreadable. Warned once per reason, not every
        round (a cluster that refuses would say so forever); ``what`` names the read."""
        tps = [TopicPartition(t, p) for t, n in partitions.items() for p in range(n)]
        try:
            positions = read_group()
            latest = self._offsets(client, tps, OffsetSpec.latest())  # type: ignore[no-untyped-call]
            earliest = self._offsets(client, tps, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        except (GroupOffsetsUnavailable, KafkaFactsError) as error:
            problem = str(error) if isinstance(error, GroupOffsetsUnavailable) else error.message
            if self._read_problems.get(what) != problem:
                if len(self._read_problems) >= 4 * self.max_clients:
                    self._read_problems.clear()  # groups of deleted Connectors, say
                self._read_problems[what] = problem
                log.warning("Failed to read %s: %s", what, problem)
            return None
        if self._read_problems.pop(what, None) is not None:
            log.info("Readable again: %s", what)
        return positions, latest, earliest

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

    def _ensure_dead_letter(
        self, connector: Connector, identity: KafkaIdentity
    ) -> tuple[str | None, str | None]:
        dead_letter = connector.spec.delivery.dead_letter
        if dead_letter is None or dead_letter.kafka is None:
            return None, None
        topic = dead_letter.kafka.topic
        key, client = self._client(_clusters(connector)[1], identity)
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

"""Kafka's wire protocol, as much of it as the operator speaks itself: the encodings, one
connection at a time, TLS and SASL, and asking a group's coordinator. Two readers stand on
it: the committed offsets of a consumer group (``consumer_group_offsets``), and where a
share group stands (``share_group_offsets``), for which the Python client has no call.

Every exchange starts the same way, each request answered by the broker before the next:

    ApiVersions (18)                 which versions of the requests below the broker speaks
    FindCoordinator (10, key type 0) the group's coordinator (any broker answers)
    the group's own request          to the coordinator

A coordinator that is still loading the group, has moved, or is not elected yet (a new
cluster, a broker restarting) answers COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR or
COORDINATOR_NOT_AVAILABLE: the coordinator is looked up again and asked again until the
deadline (:class:`CoordinatorMoved`).

The encodings follow the broker's message definitions (clients/src/main/resources/common/
message/*.json in Apache Kafka): the versions used are *flexible*, so strings and arrays
carry unsigned-varint lengths plus one, and every structure ends with tagged fields (none
sent, any received skipped). Request header version 2 (its client id keeps the old int16
length), response header version 1, except ApiVersions' response header: version 0,
always, so that any client can read it. ApiVersions version 3 is the first flexible one:
brokers older than Apache Kafka 2.4 do not speak it.

Security: PLAINTEXT, and SSL through Python's ``ssl`` module (the CA, client certificate and
key given as PEM, as librdkafka's ``ssl.*.pem`` settings carry them); SASL_PLAINTEXT and
SASL_SSL with the mechanisms PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (``kafka_sasl``). On a
SASL listener every connection (bootstrap and coordinator alike) authenticates right after
ApiVersions, which brokers answer before authentication:

    SaslHandshake (17, v1)           the mechanism; the broker says whether it has it
    SaslAuthenticate (36, v0-v2)     one round for PLAIN, two for SCRAM (the second answer
                                     carries the server's signature, verified)

These two are not flexible in the versions used (except SaslAuthenticate v2): request
header version 1, response header version 0, int16-length strings and int32-length bytes.
The password never appears in a :class:`GroupOffsetsUnavailable` message.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from sluice_operator.kafka_sasl import (
    PLAIN,
    SaslCredentials,
    SaslError,
    ScramClient,
    plain_message,
    sasl_credentials,
)

API_VERSIONS = 18
FIND_COORDINATOR = 10
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36

GROUP_KEY_TYPE = 0  # FindCoordinator's key type of a group (share groups included)

# The versions this module encodes; the highest both sides speak is used.
FIND_COORDINATOR_VERSIONS = (3, 6)  # 3: Kafka 2.4; 4: batched keys; 5, 6: nothing read here
API_VERSIONS_VERSION = 3  # the first flexible one (Kafka 2.4)
SASL_HANDSHAKE_VERSIONS = (1, 1)  # 1: the exchange goes on in SaslAuthenticate requests
SASL_AUTHENTICATE_VERSIONS = (0, 2)  # 1 adds the session lifetime, 2 is flexible

# What ``BrokerConnection.version_of`` says a broker too old for a request needs.
SINCE_KAFKA_1 = "Apache Kafka 1.0 or later has them"
SINCE_KAFKA_2_4 = "Apache Kafka 2.4 or later has them"

CLIENT_ID = "sluice-operator"
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # a bound on what a confused peer can make us allocate

# Error codes (org.apache.kafka.common.protocol.Errors) this module tells apart.
NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
GROUP_AUTHORIZATION_FAILED = 30
UNSUPPORTED_VERSION = 35
GROUP_ID_NOT_FOUND = 69
RETRIABLE_COORDINATOR_ERRORS = frozenset(
    {COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR}
)
ERROR_NAMES = {
    3: "UNKNOWN_TOPIC_OR_PARTITION",
    14: "COORDINATOR_LOAD_IN_PROGRESS",
    15: "COORDINATOR_NOT_AVAILABLE",
    16: "NOT_COORDINATOR",
    29: "TOPIC_AUTHORIZATION_FAILED",
    30: "GROUP_AUTHORIZATION_FAILED",
    33: "UNSUPPORTED_SASL_MECHANISM",
    34: "ILLEGAL_SASL_STATE",
    35: "UNSUPPORTED_VERSION",
    42: "INVALID_REQUEST",
    58: "SASL_AUTHENTICATION_FAILED",
    69: "GROUP_ID_NOT_FOUND",
    -1: "UNKNOWN_SERVER_ERROR",
}

COORDINATOR_RETRY_PAUSE = 0.2  # seconds between two lookups of a coordinator that moved

T = TypeVar("T")


class GroupOffsetsUnavailable(Exception):
    """The broker could not tell (or this module cannot ask it); the message says why."""


class ProtocolError(GroupOffsetsUnavailable):
    """An answer that does not parse as the message it should be."""


class CoordinatorMoved(GroupOffsetsUnavailable):
    """The group's coordinator is loading, elsewhere or not elected yet: ask again."""


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"error {code}")


# --- encoding ---------------------------------------------------------------------------


class Writer:
    """A message body in Kafka's encoding (big-endian integers, flexible-version lengths)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def int8(self, value: int) -> Writer:
        self._parts.append(struct.pack(">b", value))
        return self

    def int16(self, value: int) -> Writer:
        self._parts.append(struct.pack(">h", value))
        return self

    def int32(self, value: int) -> Writer:
        self._parts.append(struct.pack(">i", value))
        return self

    def uvarint(self, value: int) -> Writer:
        out = bytearray()
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
        self._parts.append(bytes(out))
        return self

    def compact_string(self, value: str | None) -> Writer:
        if value is None:
            return self.uvarint(0)
        encoded = value.encode()
        self.uvarint(len(encoded) + 1)
        self._parts.append(encoded)
        return self

    def legacy_nullable_string(self, value: str | None) -> Writer:
        """An int16 length (-1 for null): the request header's client id, in every version."""
        if value is None:
            return self.int16(-1)
        encoded = value.encode()
        self.int16(len(encoded))
        self._parts.append(encoded)
        return self

    def compact_array_length(self, count: int | None) -> Writer:
        return self.uvarint(0 if count is None else count + 1)

    def legacy_bytes(self, value: bytes) -> Writer:
        """An int32 length: BYTES in a version that is not flexible."""
        self.int32(len(value))
        self._parts.append(value)
        return self

    def compact_bytes(self, value: bytes) -> Writer:
        self.uvarint(len(value) + 1)
        self._parts.append(value)
        return self

    def no_tagged_fields(self) -> Writer:
        return self.uvarint(0)

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads a response body; every read past the end is a :class:`ProtocolError`."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def _take(self, size: int) -> bytes:
        if size < 0 or self._at + size > len(self._data):
            raise ProtocolError(f"the answer ends early ({len(self._data)} bytes)")
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def int8(self) -> int:
        value: int = struct.unpack(">b", self._take(1))[0]
        return value

    def int16(self) -> int:
        value: int = struct.unpack(">h", self._take(2))[0]
        return value

    def int32(self) -> int:
        value: int = struct.unpack(">i", self._take(4))[0]
        return value

    def int64(self) -> int:
        value: int = struct.unpack(">q", self._take(8))[0]
        return value

    def uuid(self) -> bytes:
        return self._take(16)

    def uvarint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self._take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise ProtocolError("a varint longer than 5 bytes")

    def compact_string(self) -> str | None:
        length = self.uvarint()
        if length == 0:
            return None
        return self._take(length - 1).decode(errors="replace")

    def compact_array_length(self) -> int:
        """The element count; -1 for a null array."""
        return self.uvarint() - 1

    def legacy_string(self) -> str | None:
        """An int16 length (-1 for null): STRING in a version that is not flexible."""
        length = self.int16()
        return None if length < 0 else self._take(length).decode(errors="replace")

    def legacy_bytes(self) -> bytes:
        length = self.int32()
        return b"" if length < 0 else self._take(length)

    def compact_bytes(self) -> bytes:
        length = self.uvarint()
        return b"" if length == 0 else self._take(length - 1)

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # the tag
            self._take(self.uvarint())

    def rest(self) -> bytes:
        return self._data[self._at :]


def request_header(api_key: int, version: int, correlation_id: int, flexible: bool = True) -> bytes:
    """Request header version 2 (what every flexible request version takes), or version 1
    (the same without tagged fields) for a version that is not flexible."""
    writer = (
        Writer()
        .int16(api_key)
        .int16(version)
        .int32(correlation_id)
        .legacy_nullable_string(CLIENT_ID)
    )
    return (writer.no_tagged_fields() if flexible else writer).bytes()


def api_versions_request() -> bytes:
    return Writer().compact_string("sluice").compact_string("1").no_tagged_fields().bytes()


def parse_api_versions(body: bytes) -> dict[int, tuple[int, int]]:
    """API key → (lowest, highest) version the broker speaks."""
    reader = Reader(body)
    code = reader.int16()
    if code != NONE:
        raise GroupOffsetsUnavailable(f"ApiVersions answered {error_name(code)}")
    versions: dict[int, tuple[int, int]] = {}
    for _ in range(max(reader.compact_array_length(), 0)):
        key, low, high = reader.int16(), reader.int16(), reader.int16()
        reader.skip_tagged_fields()
        versions[key] = (low, high)
    reader.int32()  # throttle time
    reader.skip_tagged_fields()  # the supported and finalized features
    return versions


def find_coordinator_request(group: str, version: int) -> bytes:
    """Version 3: one key and its type. Versions 4 to 6: a key type and a batch of keys
    (one here)."""
    if version < 4:
        return Writer().compact_string(group).int8(GROUP_KEY_TYPE).no_tagged_fields().bytes()
    return (
        Writer()
        .int8(GROUP_KEY_TYPE)
        .compact_array_length(1)
        .compact_string(group)
        .no_tagged_fields()
        .bytes()
    )


@dataclass(frozen=True)
class Coordinator:
    node_id: int
    host: str
    port: int


def parse_find_coordinator(body: bytes, group: str, version: int) -> Coordinator:
    reader = Reader(body)
    reader.int32()  # throttle time
    # (key, node id, host, port, error code, error message) per key asked about
    answers: list[tuple[str | None, int, str | None, int, int, str | None]] = []
    if version < 4:
        code, message = reader.int16(), reader.compact_string()
        node_id, host, port = reader.int32(), reader.compact_string(), reader.int32()
        answers.append((group, node_id, host, port, code, message))
    else:
        for _ in range(max(reader.compact_array_length(), 0)):
            key = reader.compact_string()
            node_id, host, port = reader.int32(), reader.compact_string(), reader.int32()
            code, message = reader.int16(), reader.compact_string()
            reader.skip_tagged_fields()
            answers.append((key, node_id, host, port, code, message))
    reader.skip_tagged_fields()
    found: Coordinator | None = None
    problem = "no coordinator in the answer"
    for key, node_id, host, port, code, message in answers:
        if key != group:
            continue
        if code in RETRIABLE_COORDINATOR_ERRORS:
            raise CoordinatorMoved(f"no coordinator for group {group} yet: {error_name(code)}")
        if code != NONE:
            problem = f"no coordinator for group {group}: {error_name(code)}"
            problem += f" ({message})" if message else ""
        elif host:
            found = Coordinator(node_id, host, port)
    if found is None:
        raise GroupOffsetsUnavailable(problem)
    return found


def sasl_handshake_request(mechanism: str) -> bytes:
    return Writer().legacy_nullable_string(mechanism).bytes()


def parse_sasl_handshake(body: bytes, mechanism: str) -> None:
    reader = Reader(body)
    code = reader.int16()
    if code == NONE:
        return
    offered = [reader.legacy_string() or "" for _ in range(max(reader.int32(), 0))]
    raise GroupOffsetsUnavailable(
        f"SASL mechanism {mechanism}: {error_name(code)}"
        + (f" (the broker offers {', '.join(offered)})" if offered else "")
    )


def sasl_authenticate_request(version: int, auth_bytes: bytes) -> bytes:
    if version >= 2:
        return Writer().compact_bytes(auth_bytes).no_tagged_fields().bytes()
    return Writer().legacy_bytes(auth_bytes).bytes()


def parse_sasl_authenticate(body: bytes, version: int, username: str) -> bytes:
    """The server's SASL message; a refusal is :class:`GroupOffsetsUnavailable` with the
    broker's reason (Kafka's reasons name the user at most, never the password)."""
    reader = Reader(body)
    code = reader.int16()
    message = reader.compact_string() if version >= 2 else reader.legacy_string()
    auth_bytes = reader.compact_bytes() if version >= 2 else reader.legacy_bytes()
    if code != NONE:
        raise GroupOffsetsUnavailable(
            f"SASL authentication as {username} failed: {error_name(code)}"
            + (f" ({message})" if message else "")
        )
    return auth_bytes


# --- the connection ---------------------------------------------------------------------


def tls_context(settings: Mapping[str, str]) -> ssl.SSLContext:
    """Verifies the broker against ``ssl.ca.pem`` (the system's CAs without one) and its
    host name, as librdkafka does by default; presents the client certificate when both
    ``ssl.certificate.pem`` and ``ssl.key.pem`` are given."""
    context = ssl.create_default_context(cadata=settings.get("ssl.ca.pem") or None)
    certificate, key = settings.get("ssl.certificate.pem"), settings.get("ssl.key.pem")
    if certificate and key:
        # The ssl module loads a certificate chain from files only: a private directory,
        # removed as soon as the context holds them.
        with tempfile.TemporaryDirectory(prefix="sluice-tls-") as directory:
            cert_file, key_file = (os.path.join(directory, n) for n in ("tls.crt", "tls.key"))
            for path, pem in ((cert_file, certificate), (key_file, key)):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as file:
                    file.write(pem)
            context.load_cert_chain(cert_file, key_file)
    return context


def transport(settings: Mapping[str, str]) -> ssl.SSLContext | None:
    """The TLS context to use (None: plain TCP); raises for what this module cannot speak."""
    protocol = settings.get("security.protocol", "PLAINTEXT").upper()
    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        return None
    if protocol in ("SSL", "SASL_SSL"):
        try:
            return tls_context(settings)
        except (ssl.SSLError, ValueError, OSError) as error:
            raise GroupOffsetsUnavailable(f"the TLS settings do not load: {error}") from None
    raise GroupOffsetsUnavailable(
        f"security.protocol {protocol}: the operator's own Kafka reader speaks PLAINTEXT,"
        " SSL, SASL_PLAINTEXT and SASL_SSL only"
    )


class BrokerConnection:
    """One TCP (or TLS) connection; requests are sent one at a time, each waiting for its
    answer, within the deadline given at creation."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, deadline: float):
        self.address = f"{host}:{port}"
        self.deadline = deadline
        raw = socket.create_connection((host, port), timeout=self._remaining())
        try:
            self._socket = tls.wrap_socket(raw, server_hostname=host) if tls else raw
        except BaseException:
            raw.close()
            raise
        self._correlation = 0
        self.versions: dict[int, tuple[int, int]] = {}

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer in time")
        return left

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> BrokerConnection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, api_key: int, version: int, body: bytes, flexible: bool = True) -> bytes:
        """Sends one request and returns the body of its answer (its header checked).
        ``flexible``: whether this version of the request is (its headers follow)."""
        self._correlation += 1
        message = request_header(api_key, version, self._correlation, flexible) + body
        self._socket.settimeout(self._remaining())
        self._socket.sendall(struct.pack(">i", len(message)) + message)
        (size,) = struct.unpack(">i", self._receive(4))
        if not 4 <= size <= MAX_RESPONSE_BYTES:
            raise ProtocolError(f"{self.address} answered a frame of {size} bytes")
        reader = Reader(self._receive(size))
        if reader.int32() != self._correlation:
            raise ProtocolError(f"{self.address} answered another request")
        # Response header version 1 has tagged fields; version 0 (ApiVersions' answer,
        # always, and the answers to versions that are not flexible) does not.
        if flexible and api_key != API_VERSIONS:
            reader.skip_tagged_fields()
        return reader.rest()

    def _receive(self, size: int) -> bytes:
        chunks: list[bytes] = []
        while size:
            self._socket.settimeout(self._remaining())
            chunk = self._socket.recv(min(size, 1 << 20))
            if not chunk:
                raise ConnectionError(f"{self.address} closed the connection")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def negotiate(self) -> None:
        self.versions = parse_api_versions(
            self.request(API_VERSIONS, API_VERSIONS_VERSION, api_versions_request())
        )

    def authenticate(self, credentials: SaslCredentials) -> None:
        """SaslHandshake, then SaslAuthenticate as the mechanism needs (after negotiate)."""
        handshake = self.version_of(
            SASL_HANDSHAKE, SASL_HANDSHAKE_VERSIONS, "SaslHandshake", SINCE_KAFKA_1
        )
        parse_sasl_handshake(
            self.request(
                SASL_HANDSHAKE,
                handshake,
                sasl_handshake_request(credentials.mechanism),
                flexible=False,
            ),
            credentials.mechanism,
        )
        version = self.version_of(
            SASL_AUTHENTICATE, SASL_AUTHENTICATE_VERSIONS, "SaslAuthenticate", SINCE_KAFKA_1
        )

        def exchange(message: bytes) -> bytes:
            body = self.request(
                SASL_AUTHENTICATE,
                version,
                sasl_authenticate_request(version, message),
                flexible=version >= 2,
            )
            return parse_sasl_authenticate(body, version, credentials.username)

        try:
            if credentials.mechanism == PLAIN:
                exchange(plain_message(credentials))
                return
            scram = ScramClient(credentials)
            server_first = exchange(scram.first_message())
            scram.verify(exchange(scram.final_message(server_first)))
        except SaslError as error:
            raise GroupOffsetsUnavailable(
                f"SASL {credentials.mechanism} as {credentials.username}: {error}"
            ) from None

    def version_of(self, api_key: int, ours: tuple[int, int], name: str, needs: str) -> int:
        """The highest version of ``api_key`` both sides speak. ``needs``: the broker
        release that has ``ours``, for the message when this one does not."""
        low, high = self.versions.get(api_key, (0, -1))
        version = min(high, ours[1])
        if version < max(low, ours[0]):
            spoken = f"{low}-{high}" if high >= 0 else "none"
            raise GroupOffsetsUnavailable(
                f"{self.address} does not speak {name} versions {ours[0]}-{ours[1]}"
                f" (it speaks {spoken}; {needs})"
            )
        return version


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


def _connect(
    servers: Iterable[str],
    tls: ssl.SSLContext | None,
    sasl: SaslCredentials | None,
    deadline: float,
    role: str,
) -> BrokerConnection:
    """A connection to the first of ``servers`` that answers ApiVersions (and accepts the
    SASL identity, when there is one)."""
    failures: list[str] = []
    for server in servers:
        try:
            host, port = _split(server)
            connection = BrokerConnection(host, port, tls, deadline)
        except (OSError, ValueError) as error:
            failures.append(f"{server}: {error}")
            continue
        try:
            connection.negotiate()
            if sasl is not None:
                connection.authenticate(sasl)
        except (OSError, GroupOffsetsUnavailable) as error:
            connection.close()
            failures.append(f"{server}: {error}")
            continue
        return connection
    raise GroupOffsetsUnavailable(f"no {role} answered ({'; '.join(failures)})")


def ask_coordinator(
    servers: Iterable[str],
    settings: Mapping[str, str],
    group: str,
    timeout: float,
    ask: Callable[[BrokerConnection], T],
    what: str,
) -> T:
    """What ``ask(connection)`` gets from group ``group``'s coordinator, found through
    ``servers`` as the identity ``settings`` (librdkafka's security settings), within
    ``timeout`` seconds. A coordinator that is loading or has moved (:class:`CoordinatorMoved`,
    from the lookup or from ``ask``) is looked up and asked again until the time is up.
    Raises :class:`GroupOffsetsUnavailable`, never anything else the network or the broker
    can cause; ``what`` names the question in its message."""
    deadline = time.monotonic() + timeout
    password = settings.get("sasl.password")
    try:
        return _ask(list(servers), settings, group, deadline, ask, what)
    except GroupOffsetsUnavailable as error:
        # Kafka's reasons never hold the password, nor do ours; a peer's text might (a
        # broker echoing what it got): it is taken out wherever it shows up.
        reason = str(error)
        if password and password in reason:
            raise GroupOffsetsUnavailable(reason.replace(password, "<password>")) from None
        raise


def _ask(
    servers: list[str],
    settings: Mapping[str, str],
    group: str,
    deadline: float,
    ask: Callable[[BrokerConnection], T],
    what: str,
) -> T:
    tls = transport(settings)
    try:
        sasl = sasl_credentials(settings)
    except SaslError as error:
        raise GroupOffsetsUnavailable(str(error)) from None
    while True:
        try:
            return _ask_once(servers, tls, sasl, group, deadline, ask)
        except CoordinatorMoved as error:
            if time.monotonic() + COORDINATOR_RETRY_PAUSE >= deadline:
                raise GroupOffsetsUnavailable(f"{what}: {error}, until the time was up") from None
            time.sleep(COORDINATOR_RETRY_PAUSE)
        except GroupOffsetsUnavailable:
            raise
        except Exception as error:  # the network, or an answer nobody expected: still unknown
            raise GroupOffsetsUnavailable(f"{what}: {type(error).__name__}: {error}") from None


def _ask_once(
    servers: list[str],
    tls: ssl.SSLContext | None,
    sasl: SaslCredentials | None,
    group: str,
    deadline: float,
    ask: Callable[[BrokerConnection], T],
) -> T:
    with _connect(servers, tls, sasl, deadline, "bootstrap server") as bootstrap:
        version = bootstrap.version_of(
            FIND_COORDINATOR, FIND_COORDINATOR_VERSIONS, "FindCoordinator", SINCE_KAFKA_2_4
        )
        coordinator = parse_find_coordinator(
            bootstrap.request(FIND_COORDINATOR, version, find_coordinator_request(group, version)),
            group,
            version,
        )
        address = f"{coordinator.host}:{coordinator.port}"
        if address == bootstrap.address:
            return ask(bootstrap)
    with _connect([address], tls, sasl, deadline, f"coordinator of group {group}") as connection:
        return ask(connection)

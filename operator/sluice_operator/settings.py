"""The operator's own configuration, from environment variables (each documented here).

Per-Connector choices live in the Connector; these are the operator-wide defaults, timings
and the limits of what a Connector's author may ask of the operator (docs/security.md).
Invalid values stop the operator at start with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar, get_args

from sluice_runtime.config import KafkaAuth

DEFAULT_RUNTIME_IMAGE = "ghcr.io/sluice-dev/sluice:0.1.0"


def _literal_values(annotation: Any) -> tuple[str, ...]:
    """The strings of a Literal, also inside ``Literal[...] | None``."""
    values: list[str] = []
    for arg in get_args(annotation):
        if isinstance(arg, str):
            values.append(arg)
        else:
            values += _literal_values(arg)
    return tuple(values)


# The same choices as a Connector's source.kafka.auth.
SECURITY_PROTOCOLS = _literal_values(KafkaAuth.model_fields["security_protocol"].annotation)
SASL_MECHANISMS = _literal_values(KafkaAuth.model_fields["sasl_mechanism"].annotation)

OPERATOR_KAFKA_CREDENTIALS = {
    "sasl.username": "SLUICE_OPERATOR_KAFKA_USERNAME",
    "sasl.password": "SLUICE_OPERATOR_KAFKA_PASSWORD",
    "ssl.ca.pem": "SLUICE_OPERATOR_KAFKA_CA_PEM",
    "ssl.certificate.pem": "SLUICE_OPERATOR_KAFKA_CERT_PEM",
    "ssl.key.pem": "SLUICE_OPERATOR_KAFKA_KEY_PEM",
}
"""librdkafka setting → the variable that carries the operator's own Kafka identity. Not
the runtime's SLUICE_KAFKA_* names: this identity is the operator's, used only with the
brokers of SLUICE_OPERATOR_KAFKA_TRUSTED_SERVERS, never a Connector's."""

T = TypeVar("T")


@dataclass(frozen=True)
class OperatorConfig:
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    """SLUICE_RUNTIME_IMAGE: the runtime pods' image unless a Connector sets
    spec.runtime.image."""

    timer_interval: float = 10.0
    """SLUICE_OPERATOR_TIMER_INTERVAL: seconds between re-reads of partitions, lag and the
    Deployment's state for each Connector (new partitions are picked up within it)."""

    backoff_max: float = 120.0
    """SLUICE_OPERATOR_BACKOFF_MAX: longest wait between retries of a Connector whose Kafka
    or sink cannot be reached (the wait starts at the timer interval and doubles)."""

    kafka_timeout: float = 5.0
    """SLUICE_OPERATOR_KAFKA_TIMEOUT: seconds one Kafka admin request may take."""

    workers: int = 16
    """SLUICE_OPERATOR_WORKERS: Connectors reconciled at the same time."""

    cluster_domain: str = "cluster.local"
    """SLUICE_CLUSTER_DOMAIN: the DNS domain of Service addresses (sink.ref to a Service)."""

    allowed_runtime_images: tuple[str, ...] = ()
    """SLUICE_ALLOWED_RUNTIME_IMAGES: comma-separated images a Connector may name in
    spec.runtime.image besides the default; an entry ending in ``*`` allows every image that
    starts with what precedes it (``registry.example/sluice@sha256:*``). Empty: only the
    default image, which a Connector may always name."""

    sink_ref_namespaces: frozenset[str] = frozenset()
    """SLUICE_SINK_REF_NAMESPACES: comma-separated namespaces whose objects a Connector of
    any namespace may name in sink.ref. A Connector's own namespace is always allowed."""

    kafka_trusted_servers: frozenset[str] = frozenset()
    """SLUICE_OPERATOR_KAFKA_TRUSTED_SERVERS: comma-separated host:port of brokers the
    operator may reach with its own Kafka identity (below), for a Connector whose bootstrap
    servers are all listed. Everywhere else it uses the Connector's own credentials. Empty:
    the operator's identity is never used."""

    kafka_security_protocol: str = "SASL_SSL"
    """SLUICE_OPERATOR_KAFKA_SECURITY_PROTOCOL: of the operator's own identity (trusted
    servers only); a Connector cannot change it."""

    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    """SLUICE_OPERATOR_KAFKA_SASL_MECHANISM: of the operator's own identity (SASL only)."""

    queue_mode: bool = False
    """SLUICE_QUEUE_MODE: whether Connectors may use source.kafka.consumption queue (Kafka
    share groups). Off by default while the Python client's share consumer is a preview."""

    kafka_credentials: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """SLUICE_OPERATOR_KAFKA_USERNAME, _PASSWORD, _CA_PEM, _CERT_PEM, _KEY_PEM: the operator's
    own Kafka credentials as (librdkafka setting, value) pairs; never logged."""

    def allows_image(self, image: str) -> bool:
        """Whether a Connector may run its pods with ``image``."""
        if image == self.runtime_image:
            return True
        return any(
            image.startswith(allowed[:-1]) if allowed.endswith("*") else image == allowed
            for allowed in self.allowed_runtime_images
        )

    def trusts(self, servers: list[str]) -> bool:
        """Whether the operator may send its own identity to these bootstrap servers: only
        when every one is listed (one address of the Connector's choosing would be enough
        to receive it)."""
        return bool(self.kafka_trusted_servers) and all(
            _normalized_server(address) in self.kafka_trusted_servers for address in servers
        )

    def operator_kafka_settings(self) -> dict[str, str]:
        """librdkafka settings of the operator's own identity."""
        settings = {"security.protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            settings["sasl.mechanism"] = self.kafka_sasl_mechanism
        return {**settings, **dict(self.kafka_credentials)}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        parsers: dict[str, tuple[str, Callable[[str], Any]]] = {
            "runtime_image": ("SLUICE_RUNTIME_IMAGE", _text),
            "timer_interval": ("SLUICE_OPERATOR_TIMER_INTERVAL", _positive(float)),
            "backoff_max": ("SLUICE_OPERATOR_BACKOFF_MAX", _positive(float)),
            "kafka_timeout": ("SLUICE_OPERATOR_KAFKA_TIMEOUT", _positive(float)),
            "workers": ("SLUICE_OPERATOR_WORKERS", _positive(int)),
            "cluster_domain": ("SLUICE_CLUSTER_DOMAIN", _text),
            "allowed_runtime_images": ("SLUICE_ALLOWED_RUNTIME_IMAGES", _items),
            "sink_ref_namespaces": ("SLUICE_SINK_REF_NAMESPACES", _set_of(_text)),
            "kafka_trusted_servers": ("SLUICE_OPERATOR_KAFKA_TRUSTED_SERVERS", _set_of(_server)),
            "kafka_security_protocol": (
                "SLUICE_OPERATOR_KAFKA_SECURITY_PROTOCOL",
                _one_of(SECURITY_PROTOCOLS),
            ),
            "kafka_sasl_mechanism": (
                "SLUICE_OPERATOR_KAFKA_SASL_MECHANISM",
                _one_of(SASL_MECHANISMS),
            ),
            "queue_mode": ("SLUICE_QUEUE_MODE", _boolean),
        }
        assert set(parsers) | {"kafka_credentials"} == {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for field_name, (variable, parse) in parsers.items():
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            try:
                values[field_name] = parse(raw)
            except ValueError as error:
                raise ValueError(f"{variable}={raw!r}: {error}") from None
        values["kafka_credentials"] = tuple(
            (setting, env[variable])
            for setting, variable in OPERATOR_KAFKA_CREDENTIALS.items()
            if env.get(variable)
        )
        config = cls(**values)
        if (
            config.kafka_trusted_servers
            and config.kafka_security_protocol.startswith("SASL")
            and "sasl.username" not in dict(config.kafka_credentials)
        ):
            raise ValueError(
                "SLUICE_OPERATOR_KAFKA_TRUSTED_SERVERS is set and the operator's protocol is"
                f" {config.kafka_security_protocol}, but SLUICE_OPERATOR_KAFKA_USERNAME is not"
            )
        return config


def _text(raw: str) -> str:
    return raw.strip()


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ValueError("must be true or false")
    return value == "true"


def _items(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _set_of(parse: Callable[[str], str]) -> Callable[[str], frozenset[str]]:
    def parse_all(raw: str) -> frozenset[str]:
        return frozenset(parse(item) for item in _items(raw))

    return parse_all


def _server(address: str) -> str:
    """host:port as librdkafka reads it, with the host in lower case (DNS names are)."""
    host, colon, port = address.strip().rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"{address.strip()!r} is not host:port")
    return f"{host.lower()}:{int(port)}"


def _normalized_server(address: str) -> str | None:
    try:
        return _server(address)
    except ValueError:
        return None  # no port: matches no entry, which all have one


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = kind(raw)
        if not value > 0:  # type: ignore[operator]
            raise ValueError("must be greater than zero")
        return value

    return parse

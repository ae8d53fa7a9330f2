"""The Connector manifest as typed models: the one source of truth for the CRD schema, the
operator's rendering and the runtime's configuration.

Field names are camelCase in manifests (aliases) and snake_case in Python. Unknown fields
are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from sluice_runtime.errors import ManifestError, SpecError
from sluice_runtime.units import Duration, DurationRange, Quantity, SizeRange

API_GROUP = "sluice.dev"
API_VERSION = "v1alpha1"
KIND = "Connector"


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


# What Kubernetes accepts as an object's name (a DNS-1123 subdomain) and as a namespace's
# (a DNS-1123 label). The operator puts referenced names into API paths: a name such as
# "../../other/secrets/x" would otherwise reach another namespace's object.
OBJECT_NAME: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
NAMESPACE_NAME: Final = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"  # empty: the Connector's own


def object_name(description: str) -> Any:
    return Field(min_length=1, max_length=253, pattern=OBJECT_NAME, description=description)


class SecretKeyRef(Model):
    name: str = object_name("Name of a Secret in the Connector's namespace.")
    key: str = Field(min_length=1, description="Key inside the Secret.")


class ConfigMapKeyRef(Model):
    name: str = object_name("Name of a ConfigMap in the Connector's namespace.")
    key: str = Field(min_length=1, description="Key inside the ConfigMap.")


class SecretRef(Model):
    name: str = object_name("Name of a Secret in the Connector's namespace.")


class KafkaAuth(Model):
    """SASL and TLS material, always by reference to a Secret.

    The Secret's keys are read into the runtime's environment: ``username`` and ``password``
    (SASL), ``ca.crt`` (TLS trust) and ``tls.crt`` / ``tls.key`` (mutual TLS); missing keys are
    simply not used.
    """

    secret_ref: SecretRef = Field(description="Secret holding the credentials.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="SASL_SSL", description="Kafka security.protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default="SCRAM-SHA-512", description="Kafka sasl.mechanism (SASL protocols only)."
    )


class SchemaRegistryAuth(Model):
    """Credentials for the schema registry, always by reference to a Secret.

    The Secret's keys are read into the runtime's environment: ``username`` and ``password``
    (HTTP basic auth), or ``token`` (``Authorization: Bearer``), and ``ca.crt`` (TLS trust)
    with ``tls.crt`` / ``tls.key`` (mutual TLS); missing keys are simply not used.
    """

    secret_ref: SecretRef = Field(description="Secret holding the credentials.")


class SchemaRegistry(Model):
    """A Confluent-compatible schema registry holding the schemas of registry-encoded records."""

    url: str = Field(
        min_length=1,
        description="Base URL of the registry's Confluent-compatible API "
        "(for Apicurio Registry, ending in /apis/ccompat/v7).",
    )
    auth: SchemaRegistryAuth | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"schemaRegistry.url must start with http:// or https://, got {url!r}")
        return url


RecordFormat = Literal["json", "avro", "protobuf", "json-schema", "string", "bytes"]
"""How a record's key or value bytes are read (docs/schemas.md)."""
REGISTRY_FORMATS: Final = frozenset({"avro", "protobuf", "json-schema"})
"""Formats in the registry's wire format: magic byte, schema id, payload."""


class KafkaSource(Model):
    """The Kafka topics to consume and how to reach them."""

    bootstrap_servers: list[str] = Field(min_length=1, description="host:port of the brokers.")
    topics: list[str] = Field(min_length=1, description="Topics to consume.")
    consumer_group: str | None = Field(
        default=None,
        description="Consumer group; defaults to <namespace>.<name>. Immutable.",
    )
    initial_offset: Literal["earliest", "latest"] = Field(
        default="latest", description="Where a new consumer group starts reading."
    )
    consumption: Literal["group", "queue"] = Field(
        default="group",
        description="group: a consumer group, at most one consumer per partition; queue: a "
        "Kafka share group, every replica reads every partition (needs delivery.ordering "
        "unordered; see the queue mode docs).",
    )
    share_group: str | None = Field(
        default=None,
        description="Share group (consumption queue); defaults to <namespace>.<name>.queue. "
        "Immutable.",
    )
    auth: KafkaAuth | None = None
    key_format: RecordFormat = Field(
        default="json",
        description="How record keys are decoded: json (JSON when the bytes are JSON, else "
        "text or base64), avro, protobuf or json-schema (registry wire format, needs "
        "schemaRegistry), string, or bytes (base64).",
    )
    value_format: RecordFormat = Field(
        default="json", description="How record values are decoded; as keyFormat."
    )
    schema_registry: SchemaRegistry | None = Field(
        default=None,
        description="Where avro, protobuf and json-schema keys and values find their schemas.",
    )

    @model_validator(mode="after")
    def _registry_when_needed(self) -> KafkaSource:
        for field, value in (("keyFormat", self.key_format), ("valueFormat", self.value_format)):
            if value in REGISTRY_FORMATS and self.schema_registry is None:
                raise ValueError(f"{field} {value} needs source.kafka.schemaRegistry")
        return self

    @field_validator("topics")
    @classmethod
    def _unique_topics(cls, topics: list[str]) -> list[str]:
        if len(set(topics)) != len(topics):
            raise ValueError("topics must not repeat")
        return topics


class Source(Model):
    """Where records come from."""

    kafka: KafkaSource


PATTERN_MAX_DEPTH: Final = 32
"""Levels of objects and arrays in a filter's pattern(s); real patterns use under 15."""
PATTERN_MAX_NODES: Final = 10_000
"""Objects, arrays and values in a filter's pattern(s), all patterns together."""
PATTERN_MAX_FIELDS: Final = 100
"""Fields at the top of one pattern (the envelope has nine)."""
PATTERNS_MAX: Final = 100
"""Patterns in filter.patterns."""


def bounded_pattern(pattern: Any) -> Any:
    """Refuse a pattern too deep or too large before anything walks it recursively (the
    compiler, error messages): such a pattern is a mistake or an attack, and checking it
    would take the time or the stack of everyone else.

    Iterative, and stops at the bound: a YAML alias bomb costs no more than the bound.
    """
    pending: list[tuple[Any, int]] = [(pattern, 1)]
    nodes = 0
    while pending:
        value, depth = pending.pop()
        nodes += 1
        if nodes > PATTERN_MAX_NODES:
            raise ValueError(
                f"is too large: more than {PATTERN_MAX_NODES} objects, arrays and values"
            )
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > PATTERN_MAX_DEPTH:
            raise ValueError(
                f"is nested too deeply: more than {PATTERN_MAX_DEPTH} levels of objects and arrays"
            )
        pending.extend((child, depth + 1) for child in children)
    return pattern


# Depth and size are checked here, on any manifest. The CRD can only restate the breadth
# bounds (maxProperties, maxItems): a pattern is free-form below its top, CEL cannot see
# free-form fields, and a structural schema that bounded depth would have to spell out
# both an object and an array branch at every level, 2^depth nodes.
BoundedPattern = Annotated[
    dict[str, Any], Field(max_length=PATTERN_MAX_FIELDS), BeforeValidator(bounded_pattern)
]


class Filter(Model):
    """EventBridge-style event patterns over the record envelope."""

    pattern: BoundedPattern | None = Field(
        default=None,
        description=f"One event pattern (at most {PATTERN_MAX_FIELDS} fields at its top,"
        f" {PATTERN_MAX_DEPTH} levels deep and {PATTERN_MAX_NODES} objects, arrays and"
        " values).",
    )
    patterns: (
        Annotated[
            list[Annotated[dict[str, Any], Field(max_length=PATTERN_MAX_FIELDS)]],
            Field(max_length=PATTERNS_MAX),
            BeforeValidator(bounded_pattern),
        ]
        | None
    ) = Field(
        default=None,
        description=f"Several patterns (at most {PATTERNS_MAX}); a record passes when any"
        " matches. The bounds of pattern apply to each, its depth and size to all together.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Filter:
        if (self.pattern is None) == (self.patterns is None):
            raise ValueError("set exactly one of filter.pattern or filter.patterns")
        return self


class Template(Model):
    """Named JSONPath variables placed into a JSON or text template."""

    paths: dict[str, str] = Field(
        default_factory=dict, description="Named JSONPath variables, used as <name>."
    )
    template: str = Field(description="JSON or text with <name> or <$.path> placeholders.")


UDF_MAX_SOURCE: Final = 2**20
"""Characters of a UDF's source: a ConfigMap holds at most 1 MiB."""


class Udf(Model):
    """Python source defining ``handle_message(event, context)``."""

    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="ConfigMap name and key holding the source (in the cluster)."
    )
    file: str | None = Field(default=None, description="Path of the source file (standalone).")
    source: str | None = Field(
        default=None,
        max_length=UDF_MAX_SOURCE,
        description="The source inline (at most 1 MiB, as in a ConfigMap).",
    )
    function: str = Field(default="handle_message", description="Name of the function to call.")
    timeout: Annotated[Duration, DurationRange("1ms", "10m")] = Field(
        default=5.0,
        description="Longest one record may take in the UDF; a record over it fails in "
        "stage transform and the UDF's worker process is restarted.",
    )
    memory_limit: Annotated[Quantity, SizeRange("64Mi", "64Gi")] = Field(
        default=512 * 2**20,
        description="Address space of the UDF's worker process; a worker that runs out is "
        "restarted and the record fails in stage transform.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Udf:
        given = [x for x in (self.config_map_ref, self.file, self.source) if x is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of udf.configMapRef, udf.file or udf.source")
        return self


class Transform(Model):
    """What the function receives for each record: one of jsonPath, template or udf; without
    a transform, the whole record envelope."""

    json_path: str | None = Field(default=None, description="Select one part of the envelope.")
    template: Template | None = None
    udf: Udf | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Transform:
        given = [x for x in (self.json_path, self.template, self.udf) if x is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of transform.jsonPath, .template or .udf")
        return self


class Window(Model):
    """A batch closes on the first of maxMessages, maxInterval and maxBytes."""

    max_messages: int = Field(default=100, ge=1, le=10000, description="Records per batch.")
    max_interval: Annotated[Duration, DurationRange("0s", "5m")] = Field(
        default=0.0, description="0s delivers as soon as records are read."
    )
    max_bytes: Annotated[Quantity, SizeRange(1, "64Mi")] = Field(
        default=6 * 2**20, description="Bytes of records per batch."
    )


class SinkRef(Model):
    """A Service or Knative Service whose address the operator resolves."""

    api_version: str = Field(default="v1", description="v1 or serving.knative.dev/v1.")
    kind: str = Field(default="Service", description="Service.")
    name: str = object_name("Name of the Service.")
    namespace: str | None = Field(
        default=None,
        max_length=63,
        pattern=NAMESPACE_NAME,
        description="Defaults to the Connector's.",
    )


class BearerAuth(Model):
    """Credentials sent to the function."""

    bearer_token_secret_ref: SecretKeyRef = Field(
        description="Secret key holding a token sent as 'Authorization: Bearer'."
    )


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


class Sink(Model):
    """The HTTP function that receives the batches."""

    uri: str | None = Field(default=None, description="HTTP(S) URL of the function.")
    ref: SinkRef | None = Field(default=None, description="A Service or Knative Service.")
    format: Literal["cloudevents-batch", "json-array", "json-values", "cloudevents-binary"] = Field(
        default="cloudevents-batch",
        description="Array of CloudEvents, array of data, array of the records' values "
        "(a transform's output where there is one), or one binary-mode event per request.",
    )
    timeout: Annotated[Duration, DurationRange("1ms", "15m")] = Field(
        default=30.0, description="Timeout of one request."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Static request headers.")
    auth: BearerAuth | None = None
    record_format: Literal["decoded", "source"] = Field(
        default="decoded",
        description="decoded: the envelope carries keys and values as keyFormat and "
        "valueFormat decode them; source: as the record's original bytes (JSON, text or "
        "base64), while filters still see the decoded record.",
    )

    @field_validator("uri")
    @classmethod
    def _http_uri(cls, uri: str | None) -> str | None:
        if uri is not None and not uri.startswith(("http://", "https://")):
            raise ValueError(f"sink.uri must start with http:// or https://, got {uri!r}")
        return uri

    @field_validator("headers")
    @classmethod
    def _http_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        # Written into the request as they are: a CR or LF would start a header (or a
        # request) of its own, and framing is the runtime's to decide.
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"sink.headers: {name!r} is not an HTTP header name")
            if name.lower() in _FRAMING_HEADERS:
                raise ValueError(f"sink.headers: {name!r} is set by the runtime")
            if not _HEADER_VALUE.fullmatch(value):
                raise ValueError(
                    f"sink.headers.{name}: only printable ASCII and tabs are allowed in a value"
                )
        return headers

    @model_validator(mode="after")
    def _exactly_one(self) -> Sink:
        if (self.uri is None) == (self.ref is None):
            raise ValueError("set exactly one of sink.uri or sink.ref")
        return self


class Retry(Model):
    """How failed deliveries are retried; both bounds apply, whichever comes first."""

    policy: Literal["exponential", "backoff", "none"] = Field(
        default="exponential",
        description="exponential: full jitter doubling; backoff: 3 retries after 10-20 s.",
    )
    max_attempts: int = Field(
        default=176, ge=1, le=10000, description="Attempts including the first."
    )
    initial_delay: Annotated[Duration, DurationRange("1ms", "1h")] = Field(
        default=1.0, description="First exponential delay."
    )
    max_delay: Annotated[Duration, DurationRange("1ms", "1h")] = Field(
        default=512.0, description="Largest delay between attempts."
    )
    max_retry_duration: Annotated[Duration, DurationRange("0s", "168h")] = Field(
        default=86400.0, description="Time from the first attempt after which retries stop."
    )
    backoff_min: Annotated[Duration, DurationRange("0s", "1h")] = Field(
        default=10.0, description="Lower bound for policy backoff."
    )
    backoff_max: Annotated[Duration, DurationRange("0s", "1h")] = Field(
        default=20.0, description="Upper bound for policy backoff."
    )


class KafkaDeadLetter(Model):
    """A Kafka topic for records that failed for good."""

    topic: str = Field(min_length=1, description="Topic for failed records.")
    bootstrap_servers: list[str] | None = Field(
        default=None, description="Defaults to the source's brokers."
    )


class DeadLetter(Model):
    """Where records that failed for good go (errorTolerance all)."""

    kafka: KafkaDeadLetter | None = None


class RateLimit(Model):
    """Request rate cap for the whole Connector, divided among its replicas."""

    requests_per_second: float = Field(
        gt=0, le=1_000_000, allow_inf_nan=False, description="For the whole Connector."
    )


class Delivery(Model):
    """Ordering, retries and what happens to records that keep failing."""

    ordering: Literal["ordered", "unordered", "key-ordered"] = Field(
        default="ordered",
        description="ordered: one batch in flight per partition; unordered: maxInFlight; "
        "key-ordered: parallel across keys, serial per key.",
    )
    max_in_flight: int = Field(
        default=4, ge=1, le=256, description="Batches in flight per partition when not ordered."
    )
    retry: Retry = Field(default_factory=Retry)
    error_tolerance: Literal["all", "none"] = Field(
        default="all",
        description="all: dead-letter (or drop) after retries and go on; none: block the "
        "partition.",
    )
    dead_letter: DeadLetter | None = None
    rate_limit: RateLimit | None = None


MAX_REPLICAS: Final = 1000
"""Runtime pods of one Connector."""
MAX_PROCESSES_PER_REPLICA: Final = 64
"""Runtime processes one pod may run (each takes up to a core)."""
MAX_CONSUMERS_PER_POD: Final = 100
"""Kafka consumers one pod may run, over all its processes (each holds its own connections
and buffers)."""
MAX_LAG: Final = 10**12
"""Records of lag a threshold can name."""


class Scaling(Model):
    """How many runtime pods run."""

    mode: Literal["partitions", "lag"] = Field(
        default="partitions", description="Follow the partition count, or the lag."
    )
    min_replicas: int = Field(
        default=1, ge=0, le=MAX_REPLICAS, description="0 allows scaling to zero (lag mode)."
    )
    max_replicas: int | None = Field(
        default=None, ge=1, le=MAX_REPLICAS, description="Defaults to partitions."
    )
    consumers_per_replica: int = Field(
        default=1, ge=1, le=100, description="Kafka consumers per runtime process."
    )
    processes_per_replica: int = Field(
        default=1,
        ge=1,
        le=MAX_PROCESSES_PER_REPLICA,
        description="Runtime processes per pod, each with its own consumers in the group "
        "(each uses up to one CPU core; give the pod about as many cores).",
    )
    lag_threshold: int = Field(
        default=1000,
        ge=1,
        le=MAX_LAG,
        description="Lag mode, until the replicas' throughput is measured: records of lag per"
        " replica.",
    )
    target_drain_time: Annotated[Duration, DurationRange("1s", "24h")] = Field(
        default=60.0,
        description="Lag mode: replicas so that the backlog drains within this time, from"
        " the throughput the replicas measured.",
    )
    activation_lag_threshold: int = Field(
        default=0, ge=0, le=MAX_LAG, description="Lag that wakes a Connector scaled to zero."
    )
    stabilization_window: Annotated[Duration, DurationRange("0s", "1h")] = Field(
        default=300.0,
        description="How long fewer replicas must have been enough before scaling down"
        " (the scale-down cooldown).",
    )

    @model_validator(mode="after")
    def _bounds(self) -> Scaling:
        if self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError("scaling.minReplicas must not exceed scaling.maxReplicas")
        consumers = self.consumers_per_replica * self.processes_per_replica
        if consumers > MAX_CONSUMERS_PER_POD:
            raise ValueError(
                f"scaling.consumersPerReplica times scaling.processesPerReplica is {consumers}"
                f" Kafka consumers per pod; at most {MAX_CONSUMERS_PER_POD} are allowed"
            )
        return self

    @property
    def consumers_per_pod(self) -> int:
        """Kafka consumers one replica runs: each of its processes runs its own."""
        return self.consumers_per_replica * self.processes_per_replica


class Buffer(Model):
    """Bounds on what a runtime holds in memory. A full partition is paused; a full process
    reads no further (one record per 100 ms keeps the group membership) until half of what
    it holds is delivered."""

    max_records_per_partition: int = Field(
        default=20000,
        ge=1,
        le=1_000_000,
        description="Records held per partition before it pauses.",
    )
    max_bytes_per_partition: Annotated[Quantity, SizeRange(1, "1Gi")] = Field(
        default=16 * 2**20, description="Bytes held per partition before it pauses."
    )
    max_records: int = Field(
        default=50000,
        ge=1,
        le=10_000_000,
        description="Records held per process before reading waits.",
    )
    max_bytes: Annotated[Quantity, SizeRange(1, "16Gi")] = Field(
        default=96 * 2**20, description="Bytes held per process before reading waits."
    )


class Runtime(Model):
    """How the runtime pods run."""

    image: str | None = Field(default=None, description="Overrides the operator's default.")
    resources: dict[str, Any] | None = Field(
        default=None, description="Kubernetes resource requests and limits for each pod."
    )
    buffer: Buffer = Field(default_factory=Buffer)
    trace_records: bool = Field(default=False, description="Log each record's fate.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Runtime log level."
    )
    processing: Literal["inline", "worker"] = Field(
        default="inline",
        description="Where records are decoded, filtered and transformed: inline, in the "
        "runtime's event loop, or worker, in a worker process beside it, so that a pod with "
        "two cores uses both (schema registry formats, heavy filters and templates). A UDF "
        "always runs in the worker.",
    )


class ConnectorSpec(Model):
    source: Source
    filter: Filter | None = None
    transform: Transform | None = None
    window: Window = Field(default_factory=Window)
    sink: Sink
    delivery: Delivery = Field(default_factory=Delivery)
    scaling: Scaling = Field(default_factory=Scaling)
    runtime: Runtime = Field(default_factory=Runtime)
    paused: bool = Field(default=False, description="Stop consuming (scales to zero).")
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=MAX_REPLICAS,
        description="Written through the scale subresource (kubectl scale, an HPA or KEDA); "
        "when set it replaces the scaling rule.",
    )

    @model_validator(mode="after")
    def _cross_field(self) -> ConnectorSpec:
        if self.sink.format == "cloudevents-binary" and self.window.max_messages != 1:
            raise ValueError("sink.format cloudevents-binary needs window.maxMessages: 1")
        if self.source.kafka.consumption == "queue":
            if self.delivery.ordering != "unordered":
                raise ValueError(QUEUE_NEEDS_UNORDERED)
            if self.delivery.error_tolerance != "all":
                raise ValueError(QUEUE_NEEDS_TOLERANCE)
        if self.sink.record_format == "source" and self.transform is not None:
            raise ValueError(
                "sink.recordFormat source sends the records as read, so it cannot be "
                "combined with a transform"
            )
        return self


QUEUE_NEEDS_UNORDERED: Final = (
    "source.kafka.consumption queue spreads a partition over every replica: it needs "
    "delivery.ordering: unordered"
)
QUEUE_NEEDS_TOLERANCE: Final = (
    "source.kafka.consumption queue cannot hold a failing record (the broker archives it "
    "after its delivery count limit): it needs delivery.errorTolerance: all"
)


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(min_length=1)
    namespace: str = "default"


class Connector(Model):
    api_version: Literal["sluice.dev/v1alpha1"] = "sluice.dev/v1alpha1"
    kind: Literal["Connector"] = "Connector"
    metadata: Metadata
    spec: ConnectorSpec
    status: dict[str, Any] | None = None

    @property
    def consumer_group(self) -> str:
        kafka = self.spec.source.kafka
        return kafka.consumer_group or f"{self.metadata.namespace}.{self.metadata.name}"

    @property
    def share_group(self) -> str:
        """The share group of queue mode. Not the consumer group's name: the broker refuses
        a share group under the id of an existing consumer group."""
        kafka = self.spec.source.kafka
        return kafka.share_group or f"{self.metadata.namespace}.{self.metadata.name}.queue"

    @property
    def source_uri(self) -> str:
        """The CloudEvents ``source`` attribute of records from this Connector."""
        return f"/namespaces/{self.metadata.namespace}/connectors/{self.metadata.name}"


def spec_errors(error: ValidationError) -> list[SpecError]:
    """The problems pydantic found, each a SpecError at its field."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        problem = item["msg"].removeprefix("Value error, ")
        problems.append(SpecError(item["loc"], problem))
    return problems


def load_connector(data: Any, origin: str = "<manifest>") -> Connector:
    """The Connector in ``data``; ManifestError holding every schema problem otherwise.

    This is the schema only: ``sluice_runtime.speccheck`` also compiles what the spec holds.
    """
    if not isinstance(data, dict):
        raise ManifestError(origin, reason="a Connector manifest must be a mapping")
    try:
        return Connector.model_validate(data)
    except ValidationError as error:
        raise ManifestError(origin, spec_errors(error)) from None


def load_connector_file(path: str | Path) -> Connector:
    """Load one Connector from a YAML or JSON file (the first Connector document in it)."""
    from sluice_runtime.manifests import read_manifest_documents

    documents = read_manifest_documents(Path(path))
    connectors = [d.data for d in documents if d.is_connector]
    if not connectors:
        raise ManifestError(str(path), reason="no document with kind: Connector")
    return load_connector(connectors[0], str(path))

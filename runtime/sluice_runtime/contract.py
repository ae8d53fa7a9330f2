"""The contract between the operator and the runtime pods it renders: where the pod finds
its configuration, which environment variables carry Secrets, which port serves probes and
metrics, and the header prefix of dead-lettered records.

Both sides import these names from here, so a change to one side cannot silently break the
other. The operator may import the runtime; the runtime never imports the operator.
"""

from __future__ import annotations

from typing import Final

CONFIG_KEY: Final = "connector.yaml"
"""Key of the runtime's Connector manifest in its ConfigMap."""
CONFIG_DIR: Final = "/etc/sluice/config"
CONFIG_PATH: Final = f"{CONFIG_DIR}/{CONFIG_KEY}"
UDF_DIR: Final = "/etc/sluice/udf"
UDF_FILE: Final = "udf.py"

METRICS_PORT: Final = 9090
"""Port of /metrics, /healthz, /readyz and /status on every runtime pod."""
STATUS_PATH: Final = "/status"
"""The runtime's delivery health as JSON (``health.RuntimeHealth``), which the operator
reads from every pod into the Connector's status."""

PROCESS_INDEX_ENV: Final = "SLUICE_PROCESS_INDEX"
"""Set by ``sluice run`` on each of its runtime processes when a pod runs several
(scaling.processesPerReplica): the process's index, in its consumers' client ids and logs."""

UDF_FILE_ENV: Final = "SLUICE_UDF_FILE"
"""Path of the UDF source mounted from a ConfigMap (transform.udf.configMapRef)."""
BEARER_TOKEN_ENV: Final = "SLUICE_SINK_BEARER_TOKEN"
"""The sink's bearer token, from the Secret named by sink.auth."""

KAFKA_AUTH_ENV: Final = {
    "sasl.username": "SLUICE_KAFKA_USERNAME",
    "sasl.password": "SLUICE_KAFKA_PASSWORD",
    "ssl.ca.pem": "SLUICE_KAFKA_CA_PEM",
    "ssl.certificate.pem": "SLUICE_KAFKA_CERT_PEM",
    "ssl.key.pem": "SLUICE_KAFKA_KEY_PEM",
}
"""librdkafka setting → the environment variable that carries it into the pod."""
KAFKA_AUTH_SECRET_KEYS: Final = {
    "SLUICE_KAFKA_USERNAME": "username",
    "SLUICE_KAFKA_PASSWORD": "password",
    "SLUICE_KAFKA_CA_PEM": "ca.crt",
    "SLUICE_KAFKA_CERT_PEM": "tls.crt",
    "SLUICE_KAFKA_KEY_PEM": "tls.key",
}
"""Environment variable → the key of source.kafka.auth's Secret it is filled from."""

SCHEMA_REGISTRY_SECRET_KEYS: Final = {
    "SLUICE_SCHEMA_REGISTRY_USERNAME": "username",
    "SLUICE_SCHEMA_REGISTRY_PASSWORD": "password",
    "SLUICE_SCHEMA_REGISTRY_TOKEN": "token",
    "SLUICE_SCHEMA_REGISTRY_CA_PEM": "ca.crt",
    "SLUICE_SCHEMA_REGISTRY_CERT_PEM": "tls.crt",
    "SLUICE_SCHEMA_REGISTRY_KEY_PEM": "tls.key",
}
"""Environment variable → the key of source.kafka.schemaRegistry.auth's Secret it is filled from."""

ERROR_HEADER_PREFIX: Final = "sluice.error."
"""Headers that dead-lettered records carry: stage, reason, status, attempts, topic, ..."""

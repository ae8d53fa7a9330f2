"""Pure builders of the objects that run one Connector's data plane: the ConfigMap with the
manifest the runtime reads, the Deployment of runtime pods and the metrics Service.

Each returns a plain dict, ready for server-side apply, and depends only on its arguments,
so the whole rendering is tested without a cluster.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import yaml

from sluice_operator.settings import OperatorConfig
from sluice_runtime.config import API_GROUP, API_VERSION, KIND, Connector, Metadata, Scaling
from sluice_runtime.contract import (
    BEARER_TOKEN_ENV,
    CONFIG_DIR,
    CONFIG_KEY,
    CONFIG_PATH,
    KAFKA_AUTH_SECRET_KEYS,
    METRICS_PORT,
    SCHEMA_REGISTRY_SECRET_KEYS,
    UDF_DIR,
    UDF_FILE,
    UDF_FILE_ENV,
)
from sluice_runtime.units import format_quantity

CONFIG_HASH_ANNOTATION = f"{API_GROUP}/config-hash"
CONNECTOR_LABEL = f"{API_GROUP}/connector"
MANAGED_BY = "sluice-operator"
CONTAINER = "runtime"
# The image's unprivileged user; any non-zero uid works as the image needs no home.
RUNTIME_UID = 65532


def runtime_name(connector_name: str) -> str:
    """The name of the ConfigMap, Deployment and Service of a Connector."""
    return f"sluice-{connector_name}"


def selector_labels(connector_name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "sluice-runtime",
        "app.kubernetes.io/instance": connector_name,
    }


def selector_string(connector_name: str) -> str:
    """The pod selector as the scale subresource wants it (``status.selector``)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(connector_name).items())


def labels(connector_name: str) -> dict[str, str]:
    return {
        **selector_labels(connector_name),
        "app.kubernetes.io/component": "runtime",
        "app.kubernetes.io/part-of": "sluice",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        CONNECTOR_LABEL: connector_name,
    }


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    """Makes the Connector the controller of an object: deleting it deletes the object."""
    metadata = body["metadata"]
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(connector: Connector, owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": runtime_name(connector.metadata.name),
        "namespace": connector.metadata.namespace,
        "labels": labels(connector.metadata.name),
        "ownerReferences": [owner],
    }


def per_replica_rate(requests_per_second: float, replicas: int) -> float:
    """One replica's share of the Connector's rate limit, rounded down so the shares never
    add up to more than the whole."""
    if replicas <= 1:
        return requests_per_second
    share = math.floor(requests_per_second / replicas * 1000) / 1000
    return max(share, 0.001)


def build_runtime_manifest(connector: Connector, sink_uri: str, replicas: int) -> dict[str, Any]:
    """The Connector as one runtime pod should run it: the sink resolved to a URI, its share
    of the rate limit, and without the fields only the operator uses (so that changing
    them does not roll the pods)."""
    spec = connector.spec
    delivery = spec.delivery
    if delivery.rate_limit is not None:
        share = per_replica_rate(delivery.rate_limit.requests_per_second, replicas)
        delivery = delivery.model_copy(
            update={
                "rate_limit": delivery.rate_limit.model_copy(update={"requests_per_second": share})
            }
        )
    runtime_spec = spec.model_copy(
        update={
            "sink": spec.sink.model_copy(update={"uri": sink_uri, "ref": None}),
            "delivery": delivery,
            "scaling": Scaling(
                consumers_per_replica=spec.scaling.consumers_per_replica,
                processes_per_replica=spec.scaling.processes_per_replica,
            ),
            "paused": False,
            "replicas": None,
        }
    )
    rendered = Connector(
        metadata=Metadata(name=connector.metadata.name, namespace=connector.metadata.namespace),
        spec=runtime_spec,
    )
    return rendered.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class RuntimeConfig:
    """The rendered configuration and its hash (which also covers the UDF's source)."""

    text: str
    hash: str


def render_runtime_config(
    connector: Connector, sink_uri: str, replicas: int, udf_source: str | None = None
) -> RuntimeConfig:
    text = yaml.safe_dump(
        build_runtime_manifest(connector, sink_uri, replicas), sort_keys=False, width=1000
    )
    digest = hashlib.sha256(text.encode())
    if udf_source is not None:
        digest.update(b"\0udf\0" + udf_source.encode())
    return RuntimeConfig(text, digest.hexdigest()[:16])


def build_configmap(
    connector: Connector, config: RuntimeConfig, owner: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(connector, owner),
        "data": {CONFIG_KEY: config.text},
    }


def runtime_grace(connector: Connector) -> int:
    """Seconds a stopping runtime gets to finish the batches in flight: a window that just
    closed plus one delivery, and a little for committing."""
    spec = connector.spec
    return math.ceil(spec.window.max_interval + spec.sink.timeout) + 5


def default_resources(connector: Connector) -> dict[str, Any]:
    """Requests and limits sized from the runtime's own buffer bound, once per runtime
    process (scaling.processesPerReplica: each has its own buffer and, for a UDF, its own
    worker process that may use up to the UDF's memory limit on top); no CPU limit, which
    would only throttle a consumer that has work. The CPU request stays small: a pod of
    several processes is worth it where the node has a core for each, which the user says
    in runtime.resources (docs/operator.md, "Several runtime processes per pod")."""
    buffered = connector.spec.runtime.buffer.max_bytes
    transform = connector.spec.transform
    udf = transform.udf if transform is not None else None
    worker = int(udf.memory_limit) if udf is not None else 0
    processes = connector.spec.scaling.processes_per_replica
    return {
        "requests": {
            "cpu": f"{100 * processes}m",
            "memory": format_quantity(processes * (128 * 2**20 + buffered)),
        },
        "limits": {"memory": format_quantity(processes * (256 * 2**20 + 2 * buffered + worker))},
    }


def _secret_env(name: str, secret: str, key: str, optional: bool) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def build_env(connector: Connector) -> list[dict[str, Any]]:
    """The runtime's environment: Secrets only by reference, so no value is ever copied into
    an object; absent auth keys are skipped (``optional``), as the runtime skips them."""
    spec = connector.spec
    env: list[dict[str, Any]] = []
    auth = spec.source.kafka.auth
    if auth is not None:
        env += [
            _secret_env(variable, auth.secret_ref.name, key, optional=True)
            for variable, key in KAFKA_AUTH_SECRET_KEYS.items()
        ]
    registry = spec.source.kafka.schema_registry
    if registry is not None and registry.auth is not None:
        env += [
            _secret_env(variable, registry.auth.secret_ref.name, key, optional=True)
            for variable, key in SCHEMA_REGISTRY_SECRET_KEYS.items()
        ]
    if spec.sink.auth is not None:
        ref = spec.sink.auth.bearer_token_secret_ref
        env.append(_secret_env(BEARER_TOKEN_ENV, ref.name, ref.key, optional=False))
    udf = spec.transform.udf if spec.transform is not None else None
    if udf is not None and udf.config_map_ref is not None:
        env.append({"name": UDF_FILE_ENV, "value": f"{UDF_DIR}/{UDF_FILE}"})
    return env


def build_deployment(
    connector: Connector,
    config: RuntimeConfig,
    replicas: int,
    settings: OperatorConfig,
    owner: dict[str, Any],
) -> dict[str, Any]:
    spec = connector.spec
    name = connector.metadata.name
    grace = runtime_grace(connector)
    volumes: list[dict[str, Any]] = [
        {
            "name": "config",
            "configMap": {
                "name": runtime_name(name),
                "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
            },
        },
        # A writable /tmp on a read-only root filesystem.
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    udf = spec.transform.udf if spec.transform is not None else None
    if udf is not None and udf.config_map_ref is not None:
        volumes.append(
            {
                "name": "udf",
                "configMap": {
                    "name": udf.config_map_ref.name,
                    "items": [{"key": udf.config_map_ref.key, "path": UDF_FILE}],
                },
            }
        )
        mounts.append({"name": "udf", "mountPath": UDF_DIR, "readOnly": True})

    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.runtime.image or settings.runtime_image,
        "command": ["sluice"],
        "args": [
            "run",
            "-f",
            CONFIG_PATH,
            "--metrics-port",
            str(METRICS_PORT),
            "--grace",
            str(grace),
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "env": build_env(connector),
        "resources": spec.runtime.resources or default_resources(connector),
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "metrics"},
            "periodSeconds": 5,
            "timeoutSeconds": 5,
            "failureThreshold": 2,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    if not container["env"]:
        del container["env"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(connector, owner),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector_labels(name)},
            "template": {
                "metadata": {
                    "labels": labels(name),
                    "annotations": {CONFIG_HASH_ANNOTATION: config.hash},
                },
                "spec": {
                    "containers": [container],
                    "volumes": volumes,
                    # The runtime talks to Kafka and the function, never to the API server.
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": grace + 10,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUNTIME_UID,
                        "runAsGroup": RUNTIME_UID,
                        "fsGroup": RUNTIME_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                },
            },
        },
    }


def build_service(connector: Connector, owner: dict[str, Any]) -> dict[str, Any]:
    """A headless Service over the runtime pods, for Prometheus to find them."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(connector, owner),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(connector.metadata.name),
            "ports": [
                {
                    "name": "metrics",
                    "port": METRICS_PORT,
                    "targetPort": "metrics",
                    "protocol": "TCP",
                }
            ],
        },
    }

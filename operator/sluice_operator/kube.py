"""A small typed layer over the Kubernetes REST API for what the operator does: read
objects, server-side apply with one field manager, post Events, discover resource names.

Objects are plain dicts (the builders' output) rather than generated models, so what is
applied is exactly what was built and tested.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kubernetes import client, config

log = logging.getLogger("sluice.operator.kube")

FIELD_MANAGER = "sluice-operator"
REQUEST_TIMEOUT = 30.0
# Asks the API server for an object's metadata only: what is not needed is never fetched.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

# The plural names of the kinds the operator builds or reads without discovery.
PLURALS = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "Event"): "events",
    ("apps/v1", "Deployment"): "deployments",
    ("sluice.dev/v1alpha1", "Connector"): "connectors",
}


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def resource_path(api_version: str, plural: str, namespace: str | None, name: str | None) -> str:
    """The API path of a collection or an object. The namespace and the name come from
    manifests: each must be one path segment, so that no name reaches another namespace's
    object (HTTP clients resolve "../" before sending)."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace is not None:
        base += f"/namespaces/{_segment(namespace)}"
    base += f"/{plural}"
    return base if name is None else f"{base}/{_segment(name)}"


def _segment(text: str) -> str:
    if text in ("", ".", "..") or "/" in text:
        raise ValueError(f"{text!r} is not a Kubernetes object name")
    return quote(text, safe="")


def object_path(obj: dict[str, Any]) -> str:
    metadata = obj["metadata"]
    plural = PLURALS[(obj["apiVersion"], obj["kind"])]
    return resource_path(obj["apiVersion"], plural, metadata.get("namespace"), metadata["name"])


def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """In-cluster credentials when running in a pod (and no kubeconfig is named), else the
    kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``)."""
    configuration = client.Configuration()
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return configuration
        except config.ConfigException:
            pass
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration
    )
    return configuration


@dataclass(frozen=True)
class Write:
    """One write the operator made, for metrics and tests."""

    verb: str
    kind: str
    namespace: str | None
    name: str


class Kube:
    def __init__(
        self,
        configuration: client.Configuration,
        *,
        field_manager: str = FIELD_MANAGER,
        pool_size: int = 16,
        on_write: Callable[[Write], None] | None = None,
    ) -> None:
        configuration.connection_pool_maxsize = max(
            pool_size, configuration.connection_pool_maxsize or 0
        )
        self.configuration = configuration
        self.api = client.ApiClient(configuration)
        self.field_manager = field_manager
        self.on_write = on_write
        self._plurals: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        prepared = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*prepared, _request_timeout=REQUEST_TIMEOUT)
        data: bytes = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise _error(response.status, data)
        return json.loads(data) if data else None

    def get(self, path: str, *, metadata_only: bool = False) -> dict[str, Any] | None:
        """The object at ``path`` (only its ``metadata`` with ``metadata_only``), or None
        when it does not exist."""
        try:
            found: dict[str, Any] = self.request(
                "GET", path, accept=METADATA_ONLY if metadata_only else "application/json"
            )
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        return found

    def apply(self, obj: dict[str, Any], *, subresource: str | None = None) -> dict[str, Any]:
        """Server-side apply ``obj`` as the operator's field manager, taking over fields
        others changed (the operator is the controller of what it applies)."""
        path = object_path(obj)
        if subresource is not None:
            path += f"/{subresource}"
        applied: dict[str, Any] = self.request(
            "PATCH",
            path,
            body=obj,
            query=[("fieldManager", self.field_manager), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        metadata = obj["metadata"]
        self._wrote(
            Write(
                f"apply/{subresource}" if subresource else "apply",
                obj["kind"],
                metadata.get("namespace"),
                metadata["name"],
            )
        )
        return applied

    def post_event(
        self,
        involved: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        now: datetime | None = None,
    ) -> None:
        """A Kubernetes Event about ``involved`` (what ``kubectl describe`` shows); failing
        to post one is logged, never raised: Events are best effort."""
        metadata = involved["metadata"]
        stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.field_manager},
            "reportingComponent": self.field_manager,
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.request(
                "POST", resource_path("v1", "events", metadata["namespace"], None), body=event
            )
        except (KubeError, OSError) as error:
            log.warning(
                "Failed to post Event %s on %s/%s: %s",
                reason,
                metadata["namespace"],
                metadata["name"],
                error,
            )
            return
        self._wrote(Write("create", "Event", metadata["namespace"], reason))

    def plural(self, api_version: str, kind: str) -> str | None:
        """The resource name of a kind, from discovery; only answers found are cached, so a
        kind whose CRD is installed later is found then."""
        key = (api_version, kind)
        with self._lock:
            known = PLURALS.get(key) or self._plurals.get(key)
        if known is not None:
            return known
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        for resource in (self.get(base) or {}).get("resources", []):
            if resource.get("kind") == kind and "/" not in resource.get("name", "/"):
                with self._lock:
                    self._plurals[key] = str(resource["name"])
                return str(resource["name"])
        return None

    def _wrote(self, write: Write) -> None:
        log.debug("Wrote %s", write)
        if self.on_write is not None:
            self.on_write(write)


def _error(status: int, data: bytes) -> KubeError:
    try:
        body = json.loads(data)
    except ValueError:
        return KubeError(status, "Unknown", data.decode("utf-8", "replace")[:500])
    if not isinstance(body, dict):
        return KubeError(status, "Unknown", str(body)[:500])
    return KubeError(status, str(body.get("reason", "Unknown")), str(body.get("message", "")))

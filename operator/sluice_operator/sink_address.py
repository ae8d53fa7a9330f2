"""Where a Connector delivers: ``sink.uri`` as given, or the address of the object
``sink.ref`` names: a core Service (its cluster DNS name and port) or anything Addressable
in the Knative sense (a Knative Service, Broker, Channel…: its ``status.address.url``).

``sink.ref`` names an object in the Connector's own namespace, or in one the operator's
configuration allows (SLUICE_SINK_REF_NAMESPACES). The operator reads it with its own
rights, which a Connector's author may not have there; so for another namespace the status
says only whether it resolved, never whether the object exists, has ports or is ready.
"""

from __future__ import annotations

from typing import Any

from sluice_operator.conditions import Reason
from sluice_operator.kube import Kube, KubeError, resource_path
from sluice_operator.settings import OperatorConfig
from sluice_operator.status import Check
from sluice_runtime.config import Connector, SinkRef


def service_url(service: dict[str, Any], cluster_domain: str) -> str | None:
    """http://<name>.<namespace>.svc.<domain>:<port>/ for the port named http (or https),
    else the first; None for a Service without ports."""
    metadata = service["metadata"]
    ports = (service.get("spec") or {}).get("ports") or []
    if not ports:
        return None
    chosen = next((p for p in ports if p.get("name") in ("http", "https")), ports[0])
    scheme = "https" if chosen.get("name") == "https" or chosen.get("port") == 443 else "http"
    host = f"{metadata['name']}.{metadata['namespace']}.svc.{cluster_domain}"
    return f"{scheme}://{host}:{chosen['port']}/"


def resolve_sink(
    kube: Kube, connector: Connector, config: OperatorConfig
) -> tuple[str | None, Check]:
    """The sink's URI and the SinkResolved check."""
    sink = connector.spec.sink
    if sink.uri is not None:
        return sink.uri, Check("True", Reason.RESOLVED, "spec.sink.uri is set.")
    assert sink.ref is not None  # the model wants exactly one
    own = connector.metadata.namespace
    namespace = sink.ref.namespace or own
    if namespace == own:
        return _resolve_ref(kube, sink.ref, namespace, config.cluster_domain)
    if namespace not in config.sink_ref_namespaces:
        allowed = ", ".join(sorted(config.sink_ref_namespaces)) or "none"
        return None, Check(
            "False",
            Reason.NOT_PERMITTED,
            f"spec.sink.ref.namespace: a Connector may name a sink in its own namespace"
            f" ({own}) or in one the operator allows (allowed: {allowed}), not {namespace}.",
        )
    url, check = _resolve_ref(kube, sink.ref, namespace, config.cluster_domain)
    if check.ok or check.reason == Reason.SINK_KIND_UNSUPPORTED:
        return url, check  # what the whole cluster may know: its address, its API's kinds
    # Not found, unreadable, without ports, not ready: one answer for all, so that status
    # tells nothing about another namespace's objects that its owner may not read.
    return None, Check(
        "False",
        Reason.SINK_NOT_FOUND,
        f"{sink.ref.kind} {namespace}/{sink.ref.name} cannot be resolved to an address: it"
        " does not exist, has none yet, or the operator may not read it.",
    )


def addressable_kind(api_version: str, kind: str) -> bool:
    """Whether a sink.ref may name this kind: a core Service, or a kind of an API group
    that is not Kubernetes' own (Knative's, any Addressable a CRD adds). The operator reads
    the object with its own rights: a Secret, a ConfigMap or a Pod named as a sink would
    be read whole, and whether it exists would show in the status."""
    if api_version == "v1":
        return kind == "Service"
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return "." in group and group != "k8s.io" and not group.endswith(".k8s.io")


def _resolve_ref(
    kube: Kube, ref: SinkRef, namespace: str, cluster_domain: str
) -> tuple[str | None, Check]:
    what = f"{ref.kind} {namespace}/{ref.name}"
    if not addressable_kind(ref.api_version, ref.kind):
        return None, Check(
            "False",
            Reason.SINK_KIND_UNSUPPORTED,
            f"spec.sink.ref: {ref.kind} in {ref.api_version} is not a sink: name a core"
            " Service or an Addressable (a Knative Service, Broker, …).",
        )
    try:
        plural = kube.plural(ref.api_version, ref.kind)
        if plural is None:
            return None, Check(
                "False",
                Reason.SINK_KIND_UNSUPPORTED,
                f"The API server serves no kind {ref.kind} in {ref.api_version}.",
            )
        found = kube.get(resource_path(ref.api_version, plural, namespace, ref.name))
    except KubeError as error:
        return None, Check("False", Reason.SINK_NOT_FOUND, f"Cannot read {what}: {error}")
    if found is None:
        return None, Check("False", Reason.SINK_NOT_FOUND, f"{what} not found.")
    if ref.api_version == "v1" and ref.kind == "Service":
        url = service_url(found, cluster_domain)
        if url is None:
            return None, Check("False", Reason.SINK_NOT_ADDRESSABLE, f"{what} has no ports.")
    else:
        address = ((found.get("status") or {}).get("address") or {}).get("url")
        if not address:
            return None, Check(
                "False",
                Reason.SINK_NOT_ADDRESSABLE,
                f"{what} has no status.address.url yet (is it ready?).",
            )
        url = str(address)
    return url, Check("True", Reason.RESOLVED, f"{what} resolved to {url}.")

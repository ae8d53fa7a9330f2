"""The kopf handlers: the only module that knows kopf. Each is a thin delegation; the
reconciles themselves run on the work queue's threads (``workqueue.py``).

- create, update (of the spec) and resume (operator start) run one reconcile;
- an event handler keeps the set of Connectors that the periodic re-check walks
  (``periodic.py``: kopf's timers would put a finalizer on every Connector);
- an event handler on the runtime Deployments reconciles their Connector as soon as the
  Deployment's availability changes (or it is deleted), so Ready is prompt;
- nothing is needed on deletion: owner references let the garbage collector remove the
  objects, so no finalizer holds the Connector.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from sluice_operator.builders import CONNECTOR_LABEL, MANAGED_BY
from sluice_operator.context import OperatorContext
from sluice_runtime.config import API_GROUP, API_VERSION

CONNECTORS = (API_GROUP, API_VERSION, "connectors")


def configure(settings: kopf.OperatorSettings, memo: OperatorContext, **_: Any) -> None:
    """All of kopf's settings, in one place."""
    # Our own domain for what kopf stores on Connectors (never kopf.zalando.org).
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    # Kopf's own Events only for trouble; the reconcile posts the ones users need.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = MANAGED_BY
    # The API server ends a watch after server_timeout; the client gives up a little later.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # Reconciles run on the work queue's thread pools; kopf's runs only these few handlers.
    settings.execution.max_workers = 2
    # No cluster-wide scanning of CRDs and namespaces: the operator needs no RBAC for it.
    settings.scanning.disabled = True
    settings.peering.standalone = True


def login(memo: OperatorContext, **_: Any) -> kopf.ConnectionInfo:
    """Kopf uses the same credentials as the operator's own client."""
    configuration = memo.kube.configuration
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    scheme: str | None = None
    token: str | None = None
    if header:
        parts = header.split(" ", 1)
        scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


# Connectors are namespaced: kopf's ``namespace`` is never None for them.


async def reconcile_changed(
    namespace: str | None, name: str, memo: OperatorContext, **_: Any
) -> None:
    await memo.queue.submit(namespace or "", name, "change")


async def track(
    type: str | None, namespace: str | None, name: str, memo: OperatorContext, **_: Any
) -> None:
    """Keeps the set of Connectors the periodic re-check walks (type None: the listing)."""
    if type == "DELETED":
        memo.periodic.untrack(namespace or "", name)
        memo.queue.forget(f"{namespace}/{name}")
    else:
        memo.periodic.track(namespace or "", name)


async def reconcile_owner(
    body: kopf.Body, namespace: str | None, type: str | None, memo: OperatorContext, **_: Any
) -> None:
    """A runtime Deployment changed: reconcile its Connector if what it reports changed."""
    connector = body.metadata.labels.get(CONNECTOR_LABEL)
    if connector is None or namespace is None or type is None:  # None: the initial listing
        return
    if memo.queue.deployment_changed(namespace, connector, body, deleted=type == "DELETED"):
        await memo.queue.submit(namespace, connector, "deployment")


async def start_rechecks(memo: OperatorContext, **_: Any) -> None:
    memo.periodic.start()


async def stop_rechecks(memo: OperatorContext, **_: Any) -> None:
    await memo.periodic.stop()


def build_registry(retry_delay: float) -> kopf.OperatorRegistry:
    """``retry_delay``: how soon kopf retries a handler that raised."""
    registry = kopf.OperatorRegistry()
    kopf.on.startup(registry=registry)(configure)
    kopf.on.startup(registry=registry)(start_rechecks)
    kopf.on.login(registry=registry)(login)
    kopf.on.cleanup(registry=registry)(stop_rechecks)
    kopf.on.create(*CONNECTORS, registry=registry, backoff=retry_delay)(reconcile_changed)
    kopf.on.update(*CONNECTORS, field="spec", registry=registry, backoff=retry_delay)(
        reconcile_changed
    )
    kopf.on.resume(*CONNECTORS, registry=registry, backoff=retry_delay)(reconcile_changed)
    kopf.on.event(*CONNECTORS, registry=registry)(track)
    kopf.on.event(
        "apps",
        "v1",
        "deployments",
        labels={"app.kubernetes.io/managed-by": MANAGED_BY},
        registry=registry,
    )(reconcile_owner)
    return registry

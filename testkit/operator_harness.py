"""Helpers to run the operator against a real API server in tests and benchmarks: the
operator in a thread, the CRD installed, and a stand-in for the kubelet (the local control
plane has none, so pods never become ready by themselves)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sluice_operator.context import OperatorContext
from sluice_operator.crd import CRD_FILE, CRD_NAME
from sluice_operator.kube import Kube, KubeError, resource_path
from sluice_operator.pod_health import Resolver, dns_resolver
from sluice_operator.reconcile import connector_path
from sluice_operator.runner import THREAD_STACK, run_operator
from sluice_operator.settings import OperatorConfig

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

# Short enough for tests to see changes within seconds.
FAST = OperatorConfig(timer_interval=1.5, backoff_max=3.0, kafka_timeout=2.0, workers=8)


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Polls ``probe`` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None and last is not False:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def install_crd(kube: Kube, timeout: float = 30) -> None:
    """Applies the committed CRD (idempotent) and waits until it is served."""
    crd = yaml.safe_load((ROOT / CRD_FILE).read_text())
    kube.request(
        "PATCH",
        resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", None, CRD_NAME),
        body=crd,
        query=[("fieldManager", "sluice-tests"), ("force", "true")],
        content_type="application/apply-patch+yaml",
    )

    def established() -> bool:
        found = kube.get(
            resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", None, CRD_NAME)
        )
        conditions = ((found or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    eventually(established, timeout, "the Connector CRD to be established")


class OperatorThread:
    """The operator, run in a thread of the test process and stopped with a flag."""

    def __init__(
        self,
        kubeconfig: str,
        namespaces: list[str],
        config: OperatorConfig = FAST,
        resolver: Resolver = dns_resolver,
        **overrides: Any,
    ) -> None:
        self.config = replace(config, **overrides)
        self.namespaces = namespaces
        self.context = OperatorContext.create(self.config, kubeconfig, resolver)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="sluice-operator", daemon=True)

    def _main(self) -> None:
        try:
            run_operator(
                self.config,
                namespaces=self.namespaces,
                port=None,
                stop_flag=self._stop,
                ready_flag=self._ready,
                context=self.context,
            )
        except BaseException as error:  # surfaced by stop()
            self.error = error

    def start(self, timeout: float = 30) -> OperatorThread:
        # In a pod kopf runs on the main thread, whose stack grows to the container's
        # limit; here it runs in a thread, whose stack is fixed when it starts: as large as
        # the threads the operator starts itself (runner.THREAD_STACK).
        previous = threading.stack_size(THREAD_STACK)
        try:
            self._thread.start()
        finally:
            threading.stack_size(previous)
        if not self._ready.wait(timeout):
            raise AssertionError("the operator did not start")
        return self

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the operator did not stop"
        if self.error is not None:
            raise self.error

    def reconciles(self, trigger: str | None = None) -> float:
        """How many reconciles finished (of one trigger: change, timer, deployment)."""
        total = 0.0
        for metric in self.context.metrics.reconciles.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and (
                    trigger is None or sample.labels["trigger"] == trigger
                ):
                    total += sample.value
        return total

    def writes(self) -> float:
        return sum(
            sample.value
            for metric in self.context.metrics.writes.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )

    def __enter__(self) -> OperatorThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def connector_body(
    name: str, namespace: str, bootstrap: str, topics: list[str], sink: str, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Connector",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"kafka": {"bootstrapServers": [bootstrap], "topics": topics}},
            "sink": {"uri": sink},
            **spec,
        },
    }


def create_connector(kube: Kube, body: dict[str, Any]) -> dict[str, Any]:
    metadata = body["metadata"]
    created: dict[str, Any] = kube.request(
        "POST",
        resource_path("sluice.dev/v1alpha1", "connectors", metadata["namespace"], None),
        body=body,
    )
    return created


def patch_spec(kube: Kube, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch of the spec (null removes a field), as ``kubectl patch`` does."""
    patched: dict[str, Any] = kube.request(
        "PATCH",
        connector_path(namespace, name),
        body={"spec": spec},
        content_type="application/merge-patch+json",
    )
    return patched


def condition_of(body: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for condition in ((body or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_:
            found: dict[str, Any] = condition
            return found
    return None


def mark_pods_ready(kube: Kube, namespace: str, selector: str) -> int:
    """Does what the kubelet would for pods that started and passed their readiness probe;
    returns how many pods there are."""
    pods = kube.request(
        "GET",
        resource_path("v1", "pods", namespace, None),
        query=[("labelSelector", selector)],
    )["items"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for pod in pods:
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
        if ready or pod["metadata"].get("deletionTimestamp"):
            continue
        status = {
            "phase": "Running",
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": now}
                for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
        }
        try:
            kube.request(
                "PATCH",
                resource_path("v1", "pods", namespace, pod["metadata"]["name"]) + "/status",
                body={"status": status},
                content_type="application/merge-patch+json",
            )
        except KubeError as error:
            if error.status != 404:  # deleted meanwhile by a rollout
                raise
    return len(pods)

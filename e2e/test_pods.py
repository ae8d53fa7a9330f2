"""The user path on real pods: `helm install` the chart (the operator runs as a pod with the
chart's RBAC), apply the quickstart Connector, and the runtime pod the operator renders runs
from the image built without Docker, passes its probes and delivers records to a function;
a spec change rolls the Deployment, a pod killed mid-run loses nothing, and deleting the
Connector removes everything.

Needs a node (scripts/node.sh): skipped where ``node.sh check`` says this machine cannot run
one, failed where it could but does not start.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from tests.support import produce

from e2e.node import Node, NodeError, admit, pod_logs, running_node, unavailable_reason
from sluice_operator.builders import runtime_name, selector_string
from sluice_operator.kube import Kube, resource_path
from testkit.function_server import FunctionServer, ThreadedFunctionServer
from testkit.operator_harness import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.pods]

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "sluice"
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
RELEASE = "sluice"
T = TypeVar("T")


@pytest.fixture(scope="module")
def node(kubeconfig: str, kafka_bootstrap: str) -> Iterator[Node]:
    reason = unavailable_reason(kubeconfig, kafka_bootstrap)
    if reason is not None:
        pytest.skip(f"no node: {reason}")
    try:
        with running_node(kubeconfig, kafka_bootstrap) as started:
            yield started
    except NodeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def helm() -> str:
    built = subprocess.run(
        [ROOT / "scripts" / "helm.sh"], capture_output=True, text=True, timeout=1200, check=False
    )
    assert built.returncode == 0, built.stderr
    return built.stdout.strip()


def pods(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = kube.request(
        "GET", resource_path("v1", "pods", namespace, None), query=[("labelSelector", selector)]
    )["items"]
    return found


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def rolled_out(kube: Kube, path: str) -> dict[str, Any] | None:
    """The Deployment once every replica runs its current template and is ready."""
    deployment = kube.get(path)
    if deployment is None:
        return None
    status = deployment.get("status", {})
    replicas = deployment["spec"]["replicas"]
    done = (
        status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == replicas
        and status.get("readyReplicas") == replicas
        and status.get("replicas") == replicas
    )
    return deployment if done else None


def values_received(function: FunctionServer) -> set[int]:
    return {event["data"]["value"]["n"] for event in function.events()}


def test_chart_and_quickstart_on_real_pods(
    node: Node,
    helm: str,
    kubeconfig: str,
    kube: Kube,
    namespace: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    repository, tag = node.image.rsplit(":", 1)
    admit(kubeconfig, namespace)
    install = subprocess.run(
        [
            helm,
            "install",
            RELEASE,
            str(CHART),
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            namespace,
            # The test session installed the CRD already; the chart would not adopt it.
            "--set",
            "crd.install=false",
            "--set",
            f"image.repository={repository}",
            "--set",
            f"image.tag={tag}",
            "--set",
            f"operator.watchNamespaces={{{namespace}}}",
            "--wait",
            "--timeout",
            "3m",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        assert install.returncode == 0, install.stderr + pod_logs(namespace)
        [operator] = pods(
            kube,
            namespace,
            f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator",
        )
        assert ready(operator)
        assert operator["spec"]["containers"][0]["image"] == node.image

        with ThreadedFunctionServer(host=node.gateway) as function:
            deliver_on_real_pods(node.image, kube, namespace, kafka_bootstrap, make_topic, function)
        # The operator pod ran through all of it without a restart.
        [operator] = pods(
            kube,
            namespace,
            f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator",
        )
        assert operator["status"]["containerStatuses"][0]["restartCount"] == 0, pod_logs(namespace)
    finally:
        subprocess.run(
            [helm, "uninstall", RELEASE, "--kubeconfig", kubeconfig, "--namespace", namespace],
            capture_output=True,
            check=False,
        )


def deliver_on_real_pods(
    image: str,
    kube: Kube,
    namespace: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    function: FunctionServer,
) -> None:
    topic = make_topic(1, prefix="pods")
    connector = yaml.safe_load(QUICKSTART.read_text())
    name = connector["metadata"]["name"]
    connector["metadata"]["namespace"] = namespace
    kafka = connector["spec"]["source"]["kafka"]
    kafka["bootstrapServers"] = [kafka_bootstrap]
    kafka["topics"] = [topic]
    connector["spec"]["sink"]["uri"] = function.url
    connectors = resource_path("sluice.dev/v1alpha1", "connectors", namespace, None)
    kube.request("POST", connectors, body=connector)

    deployment_path = resource_path("apps/v1", "deployments", namespace, runtime_name(name))
    selector = selector_string(name)

    def within(probe: Callable[[], T | None], timeout: float, what: str) -> T:
        """eventually(), with what the namespace's containers said when it times out."""
        try:
            return eventually(probe, timeout, what)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{pod_logs(namespace)}") from None

    first = within(lambda: rolled_out(kube, deployment_path), 120, "the runtime pod ready")
    [pod] = pods(kube, namespace, selector)
    # The operator gives the runtime its own image (the chart's SLUICE_RUNTIME_IMAGE).
    assert pod["spec"]["containers"][0]["image"] == image
    assert ready(pod)

    produce(kafka_bootstrap, topic, ((f"k{n}", f'{{"n": {n}}}') for n in range(20)))
    within(lambda: values_received(function) >= set(range(20)), 60, "20 records delivered")

    # A spec change rolls the Deployment: a new pod replaces the old one.
    kube.request(
        "PATCH",
        f"{connectors}/{name}",
        body={"spec": {"window": {"maxMessages": 5}}},
        content_type="application/merge-patch+json",
    )
    old_hash = first["spec"]["template"]["metadata"]["annotations"]

    def rolled_to_new_template() -> dict[str, Any] | None:
        current = rolled_out(kube, deployment_path)
        if current is None or current["spec"]["template"]["metadata"]["annotations"] == old_hash:
            return None
        running = pods(kube, namespace, selector)
        replaced = len(running) == 1 and running[0]["metadata"]["name"] != pod["metadata"]["name"]
        return current if replaced else None

    within(rolled_to_new_template, 180, "the Deployment rolled to the new spec")
    produce(kafka_bootstrap, topic, ((f"k{n}", f'{{"n": {n}}}') for n in range(20, 40)))
    within(lambda: values_received(function) >= set(range(40)), 60, "40 records after the roll")

    # Killed mid-run (no grace period): its replacement resumes from committed offsets.
    function.delay = 0.2
    produce(kafka_bootstrap, topic, ((f"k{n}", f'{{"n": {n}}}') for n in range(40, 240)))
    within(lambda: len(values_received(function)) >= 60, 60, "delivery under way")
    [victim] = pods(kube, namespace, selector)
    assert len(values_received(function)) < 240, "the pod should be killed mid-run"
    kube.request(
        "DELETE",
        resource_path("v1", "pods", namespace, victim["metadata"]["name"]),
        query=[("gracePeriodSeconds", "0")],
    )
    within(
        lambda: values_received(function) >= set(range(240)), 180, "all 240 records after the kill"
    )
    [replacement] = within(
        lambda: [p for p in pods(kube, namespace, selector) if ready(p)] or None,
        60,
        "a ready replacement pod",
    )
    assert replacement["metadata"]["name"] != victim["metadata"]["name"]

    # Deleting the Connector removes what the operator made, pods included.
    kube.request("DELETE", f"{connectors}/{name}")
    for kind, api, plural in (
        ("Deployment", "apps/v1", "deployments"),
        ("ConfigMap", "v1", "configmaps"),
        ("Service", "v1", "services"),
    ):
        path = resource_path(api, plural, namespace, runtime_name(name))
        within(functools.partial(_gone, kube, path), 60, f"the {kind} to be removed")
    within(lambda: not pods(kube, namespace, selector), 120, "the runtime pods to be gone")


def _gone(kube: Kube, path: str) -> bool:
    return kube.get(path) is None

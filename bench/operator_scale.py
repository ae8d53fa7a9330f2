"""How fast the operator turns Connectors into running objects (a benchmark, not a test).

``bench_operator`` starts the operator as its own process (as in a cluster: its own
interpreter and event loop) watching a fresh namespace, creates ``n`` Connectors at once,
and measures the time until every one has its Deployment and a status for its current
generation; then the latency from creating one more Connector to its Deployment; then how
many re-checks and writes happen while nothing changes (writes should be zero).

    python -m bench.operator_scale --kubeconfig .cache/local-cluster/kubeconfig \\
        --bootstrap 127.0.0.1:19092 -n 200
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from sluice_operator.builders import MANAGED_BY, runtime_name
from sluice_operator.kube import Kube, load_configuration, resource_path
from testkit.operator_harness import connector_body, create_connector, eventually, install_crd

CONNECTORS = ("sluice.dev/v1alpha1", "connectors")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _count_settled(kube: Kube, namespace: str) -> tuple[int, int]:
    """(Deployments made by the operator, Connectors whose status is for their generation)."""
    deployments = kube.request(
        "GET",
        resource_path("apps/v1", "deployments", namespace, None),
        query=[("labelSelector", f"app.kubernetes.io/managed-by={MANAGED_BY}")],
    )["items"]
    connectors = kube.request("GET", resource_path(*CONNECTORS, namespace, None))["items"]
    observed = sum(
        1
        for c in connectors
        if (c.get("status") or {}).get("observedGeneration") == c["metadata"]["generation"]
    )
    return len(deployments), observed


def _controllers_done(kube: Kube, namespace: str, n: int) -> bool:
    deployments = kube.request("GET", resource_path("apps/v1", "deployments", namespace, None))[
        "items"
    ]
    done = [
        d
        for d in deployments
        if (d.get("status") or {}).get("observedGeneration") == d["metadata"]["generation"]
        and (d.get("status") or {}).get("updatedReplicas") == d["spec"]["replicas"]
    ]
    return len(done) >= n


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("sluice_operator_") and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            if name.endswith("_created") or "_bucket" in name:
                continue
            totals[name] = float(value)
    return totals


def bench_operator(
    kubeconfig: str, bootstrap: str, n: int = 200, partitions: int = 1, idle: float = 25.0
) -> dict[str, Any]:
    """Returns the measured seconds and the operator's own counters."""
    kube = Kube(load_configuration(kubeconfig), pool_size=32)
    install_crd(kube)
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions)])[topic].result(30)
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix="sluice-bench-operator-", suffix=".log")[1])
    with log.open("wb") as output:
        operator = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "sluice"),
                "operator",
                "--namespace",
                namespace,
                "--kubeconfig",
                kubeconfig,
                "--port",
                str(port),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
    try:
        eventually(lambda: _serving(port), 30, "the operator to serve /healthz")
        bodies = [
            connector_body(f"c{i:04d}", namespace, bootstrap, [topic], "http://fn.example/")
            for i in range(n)
        ]
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda body: create_connector(kube, body), bodies))
        created = time.monotonic() - started

        deployments_at: float | None = None
        while True:
            deployments, observed = _count_settled(kube, namespace)
            now = time.monotonic() - started
            if deployments_at is None and deployments >= n:
                deployments_at = now
            if deployments_at is not None and observed >= n:
                settled_at = now
                break
            if now > 600:
                raise AssertionError(f"not settled in 600s: {deployments=}, {observed=}")
            time.sleep(0.25)

        one = connector_body("latency", namespace, bootstrap, [topic], "http://fn.example/")
        path = resource_path("apps/v1", "deployments", namespace, runtime_name("latency"))
        started_one = time.monotonic()
        create_connector(kube, one)
        while kube.get(path) is None:
            time.sleep(0.02)
        latency = time.monotonic() - started_one

        # Idle: once the Deployment controller has caught up (its status changes are news
        # the Connectors report), the periodic re-checks go on and should write nothing.
        eventually(lambda: _controllers_done(kube, namespace, n + 1), 120, "Deployments rolled out")
        time.sleep(2)  # the last status changes reach the operator through its watch
        before = _scrape(port)
        time.sleep(idle)
        after = _scrape(port)

        def delta(prefix: str) -> float:
            return sum(v - before.get(k, 0) for k, v in after.items() if k.startswith(prefix))

        return {
            "connectors": n,
            "partitions_per_topic": partitions,
            "create_requests_seconds": round(created, 2),
            "all_deployments_seconds": round(deployments_at, 2),
            "all_observed_generation_seconds": round(settled_at, 2),
            "apply_to_deployment_seconds": round(latency, 3),
            "idle_seconds": idle,
            "idle_rechecks": delta("sluice_operator_reconciles_total"),
            "idle_writes": delta("sluice_operator_writes_total"),
            "operator_metrics": _scrape(port),
        }
    finally:
        operator.terminate()
        operator.wait(60)
        kube.request("DELETE", f"/api/v1/namespaces/{namespace}")
        admin.delete_topics([topic])[topic].exception(30)
        kube.close()
        log.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args()
    result = bench_operator(args.kubeconfig, args.bootstrap, args.n, args.partitions)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

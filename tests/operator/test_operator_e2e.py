"""The whole path: the Deployment the operator rendered, run as a local process with exactly
its command, environment and mounted files, delivers records from the real broker to a
local function.

The local control plane has no kubelet, so this test does the kubelet's part: it writes the
pod's ConfigMap volumes to a directory, resolves its Secret references into environment
variables, and starts the container's command there. The only changes to what the pod
declares are the mount paths (to that directory) and the metrics port (to a free one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.localpod import LocalPod

from sluice_operator.access import CONNECTOR_ACCESS_LABEL
from sluice_operator.builders import runtime_name
from sluice_operator.kube import Kube, resource_path
from testkit.function_server import FunctionServer, ThreadedFunctionServer
from testkit.operator_harness import (
    OperatorThread,
    condition_of,
    connector_body,
    create_connector,
    eventually,
)
from tests.support import free_port, produce

pytestmark = pytest.mark.integration

TOKEN = "s3cr3t-token"
UDF = """\
def handle_message(event, context):
    value = event["value"]
    return {"user": value["user"], "doubled": value["n"] * 2, "connector": context.connector}
"""


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture
def function() -> Iterator[FunctionServer]:
    with ThreadedFunctionServer() as server:
        yield server


def test_the_rendered_deployment_delivers_records_to_the_function(
    kubeconfig: str,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    function: FunctionServer,
    tmp_path: Path,
) -> None:
    topic = make_topic(2, prefix="e2e")
    kube.request(
        "POST",
        resource_path("v1", "secrets", ns, None),
        # Connectors may use only Secrets that opt in (docs/security.md).
        body={
            "metadata": {"name": "fn-token", "labels": {CONNECTOR_ACCESS_LABEL: "true"}},
            "stringData": {"token": TOKEN},
        },
    )
    kube.request(
        "POST",
        resource_path("v1", "configmaps", ns, None),
        body={"metadata": {"name": "enrich"}, "data": {"main.py": UDF}},
    )
    body = connector_body(
        "e2e",
        ns,
        kafka_bootstrap,
        [topic],
        function.url,
        transform={"udf": {"configMapRef": {"name": "enrich", "key": "main.py"}}},
        window={"maxMessages": 10, "maxInterval": "100ms"},
    )
    body["spec"]["source"]["kafka"]["initialOffset"] = "earliest"
    body["spec"]["sink"]["auth"] = {"bearerTokenSecretRef": {"name": "fn-token", "key": "token"}}

    with OperatorThread(kubeconfig, [ns]):
        create_connector(kube, body)

        def deployed() -> dict[str, Any] | None:
            connector = kube.get(resource_path("sluice.dev/v1alpha1", "connectors", ns, "e2e"))
            source = condition_of(connector, "SourceReady")
            if source is None or source["status"] != "True":
                return None
            return kube.get(resource_path("apps/v1", "deployments", ns, runtime_name("e2e")))

        deployment = eventually(deployed, 30, "the runtime Deployment")
        assert deployment["spec"]["replicas"] == 2

    pod = LocalPod(kube, deployment, tmp_path)
    metrics_port = free_port()
    log = tmp_path / "runtime.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            pod.command(metrics_port),
            env={"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1", **pod.environment()},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:

        def probe(path: str) -> int | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}{path}") as answer:
                    status: int = answer.status
                    return status
            except OSError:
                return None

        # The probes the Deployment declares answer where it says.
        eventually(lambda: probe("/readyz") == 200, 30, "the runtime's readiness endpoint")
        assert probe("/healthz") == 200

        records = [(f"user-{i}", f'{{"user": "u{i}", "n": {i}}}') for i in range(20)]
        produce(kafka_bootstrap, topic, records)
        eventually(lambda: len(function.events()) >= 20, 30, "20 events at the function")

        data = sorted((event["data"] for event in function.events()), key=lambda d: d["doubled"])
        assert data == [{"user": f"u{i}", "doubled": 2 * i, "connector": "e2e"} for i in range(20)]
        assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in function.requests)
        assert all(
            event["source"] == f"/namespaces/{ns}/connectors/e2e" for event in function.events()
        )
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        if code != 0:
            print(log.read_text())
    assert code == 0

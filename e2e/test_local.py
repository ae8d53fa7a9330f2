"""The user path on the local control plane: the operator and the runtime as processes,
exactly as a cluster would run them (the runtime from the Deployment the operator
rendered), a real broker and a function; then deletion cleans everything up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support import produce

from e2e.localpod import LocalPod
from sluice_operator.builders import runtime_name
from sluice_operator.kube import Kube, resource_path
from testkit.function_server import ThreadedFunctionServer
from testkit.operator_harness import condition_of, connector_body, eventually

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def test_apply_deliver_delete(
    kubeconfig: str,
    kube: Kube,
    namespace: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topic = make_topic(3, prefix="e2e")
    operator_log = (tmp_path / "operator.log").open("wb")
    operator = subprocess.Popen(
        [
            str(BIN / "sluice"),
            "operator",
            "--namespace",
            namespace,
            "--kubeconfig",
            kubeconfig,
            "--port",
            "0",
        ],
        stdout=operator_log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SLUICE_OPERATOR_TIMER_INTERVAL": "2"},
    )
    runtime: subprocess.Popen[bytes] | None = None
    try:
        with ThreadedFunctionServer() as function:
            body = connector_body(
                "shop",
                namespace,
                kafka_bootstrap,
                [topic],
                function.url,
                window={"maxMessages": 10, "maxInterval": "200ms"},
            )
            body["spec"]["source"]["kafka"]["initialOffset"] = "earliest"
            connectors = resource_path("sluice.dev/v1alpha1", "connectors", namespace, None)
            kube.request("POST", connectors, body=body)
            deployment_path = resource_path(
                "apps/v1", "deployments", namespace, runtime_name("shop")
            )
            deployment = eventually(lambda: kube.get(deployment_path), 60, "the Deployment")
            assert deployment["spec"]["replicas"] == 3  # one per partition
            eventually(
                lambda: (
                    (condition_of(kube.get(f"{connectors}/shop"), "SourceReady") or {}).get(
                        "status"
                    )
                    == "True"
                ),
                30,
                "SourceReady=True in the Connector's status",
            )

            pod = LocalPod(kube, deployment, tmp_path)
            with (tmp_path / "runtime.log").open("wb") as log:
                runtime = subprocess.Popen(
                    pod.command(0),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={"PATH": os.environ["PATH"], **pod.environment()},
                )
            produce(kafka_bootstrap, topic, ((f"k{i}", f'{{"order": {i}}}') for i in range(90)))
            eventually(lambda: function.event_count >= 90, 60, "90 orders at the function")
            orders = sorted(e["data"]["value"]["order"] for e in function.events())
            assert orders == list(range(90))
            runtime.send_signal(signal.SIGTERM)
            assert runtime.wait(60) == 0

        kube.request("DELETE", f"{connectors}/shop")
        for kind, api, plural in (
            ("Deployment", "apps/v1", "deployments"),
            ("ConfigMap", "v1", "configmaps"),
            ("Service", "v1", "services"),
        ):
            path = resource_path(api, plural, namespace, runtime_name("shop"))
            eventually(
                lambda path=path: kube.get(path) is None,  # type: ignore[misc]
                60,
                f"the {kind} to be garbage-collected",
            )
    finally:
        if runtime is not None and runtime.poll() is None:
            runtime.kill()
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:
            operator.kill()
        operator_log.close()

"""The kubelet's and the cluster DNS's part for tests on a control plane without nodes:
the runtime pods of a Connector's Deployment run as local processes (``e2e.localpod``),
as many as the Deployment asks for, and the operator finds them under the headless
Service's name, as cluster DNS would answer it.

    fleet = LocalFleet(kube, namespace, "views", tmp_path)
    with OperatorThread(kubeconfig, [namespace], resolver=fleet.resolve):
        ... fleet.follow()   # start or stop processes to match spec.replicas
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from e2e.localpod import LocalPod
from tests.support import free_port

from sluice_operator.builders import runtime_name, selector_string
from sluice_operator.kube import Kube, resource_path
from testkit.operator_harness import mark_pods_ready


class LocalFleet:
    def __init__(self, kube: Kube, namespace: str, connector: str, root: Path) -> None:
        self.kube = kube
        self.namespace = namespace
        self.connector = connector
        self.root = root
        self.processes: list[tuple[subprocess.Popen[bytes], int]] = []
        self.started = 0
        self.host = f"{runtime_name(connector)}.{namespace}.svc.cluster.local"

    def resolve(self, host: str, _port: int) -> list[str]:
        """What cluster DNS answers for the headless Service: the pods' addresses."""
        if host != self.host:
            return []
        return [f"127.0.0.1:{port}" for process, port in self.processes if process.poll() is None]

    @property
    def deployment_path(self) -> str:
        return resource_path("apps/v1", "deployments", self.namespace, runtime_name(self.connector))

    def follow(self) -> int:
        """Starts or stops runtime processes to match the Deployment's replicas (newest
        stopped first, with SIGTERM as the kubelet would) and marks the pods ready."""
        deployment = self.kube.get(self.deployment_path)
        wanted = int(deployment["spec"].get("replicas", 1)) if deployment else 0
        while len(self.processes) > wanted:
            process, _port = self.processes.pop()
            process.send_signal(signal.SIGTERM)
            process.wait(60)
        while deployment is not None and len(self.processes) < wanted:
            self.started += 1
            root = self.root / f"pod-{self.started}"
            root.mkdir()
            pod = LocalPod(self.kube, deployment, root)
            port = free_port()
            with (root / "runtime.log").open("wb") as log:  # the child keeps its own copy
                process = subprocess.Popen(
                    pod.command(port),
                    env={"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1", **pod.environment()},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.processes.append((process, port))
        mark_pods_ready(self.kube, self.namespace, selector_string(self.connector))
        return len(self.processes)

    def stop(self) -> None:
        for process, _port in self.processes:
            process.send_signal(signal.SIGTERM)
        for process, _port in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

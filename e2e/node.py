"""A real node for the end-to-end tests and the demo: scripts/node.sh joins containerd and a
kubelet to the local control plane, and scripts/image.sh builds the Sluice image without
Docker and loads it into the node.

The node can join only a cluster made by scripts/cluster.sh (it signs the kubelet's
certificate with that cluster's CA), and only on a machine where ``node.sh check`` passes
(root, cgroups, overlayfs, namespaces).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
# Where the kubelet writes the containers' output (podLogsDir in node.sh's kubelet.yaml).
POD_LOGS = ROOT / ".cache" / "node" / "pod-logs"


@dataclass(frozen=True)
class Node:
    gateway: str  # the node's address on the pod network: pods reach the machine here
    image: str  # the Sluice image, loaded into the node


class NodeError(RuntimeError):
    pass


def _node_environment(kubeconfig: str, kafka_bootstrap: str) -> dict[str, str]:
    kafka_port = kafka_bootstrap.rsplit(":", 1)[1]
    return {
        **os.environ,
        "SLUICE_NODE_CLUSTER_DIR": str(Path(kubeconfig).resolve().parent),
        # The broker, and the quickstart's function on 127.0.0.1:8080 (make demo).
        "SLUICE_NODE_HOST_PORTS": f"{kafka_port} 8080",
    }


def unavailable_reason(kubeconfig: str, kafka_bootstrap: str) -> str | None:
    """Why no node can run here for this cluster and broker, or None when one can."""
    check = subprocess.run(
        [SCRIPTS / "node.sh", "check"], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        return check.stderr.strip()
    if not (Path(kubeconfig).resolve().parent / "pki" / "ca.key").is_file():
        return f"the node joins only clusters made by scripts/cluster.sh; {kubeconfig} is not one"
    host = kafka_bootstrap.rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost"):
        return f"pods on the node reach the machine's own broker only; {kafka_bootstrap} is not"
    cluster = subprocess.run(
        [SCRIPTS / "node.sh", "check-cluster"],
        capture_output=True,
        text=True,
        env=_node_environment(kubeconfig, kafka_bootstrap),
        check=False,
    )
    if cluster.returncode != 0:
        return cluster.stderr.strip().removeprefix("error: ")
    return None


def _run(args: list[str | Path], env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise NodeError(f"{' '.join(map(str, args))} failed: {result.stderr.strip()}")
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


@contextlib.contextmanager
def running_node(kubeconfig: str, kafka_bootstrap: str) -> Iterator[Node]:
    """Starts the node unless it runs (stopping it afterwards only if it was started here)
    and loads the current Sluice image into it."""
    env = _node_environment(kubeconfig, kafka_bootstrap)
    was_running = (
        subprocess.run([SCRIPTS / "node.sh", "status"], capture_output=True, check=False).returncode
        == 0
    )
    # A cold start builds the kubelet (many minutes); a warm one takes seconds.
    gateway = _run([SCRIPTS / "node.sh", "up"], env, timeout=3600)
    try:
        image = _run([SCRIPTS / "image.sh", "name"], env, timeout=60)
        loaded = subprocess.run([SCRIPTS / "node.sh", "has-image", image], check=False)
        if loaded.returncode != 0:
            archive = _run([SCRIPTS / "image.sh", "archive"], env, timeout=1800)
            _run([SCRIPTS / "node.sh", "import", archive], env, timeout=600)
        yield Node(gateway=gateway, image=image)
    finally:
        if not was_running:
            subprocess.run([SCRIPTS / "node.sh", "down"], capture_output=True, env=env, check=False)


def admit(kubeconfig: str, namespace: str) -> None:
    """Lets the pods of ``namespace`` (created if missing) run on the node: it is tainted so
    that no other pod of the shared test cluster lands there."""
    env = {**os.environ, "SLUICE_NODE_CLUSTER_DIR": str(Path(kubeconfig).resolve().parent)}
    _run([SCRIPTS / "node.sh", "admit", namespace], env, timeout=60)


def pod_logs(namespace: str) -> str:
    """The last lines each container of the namespace's pods wrote (for failure messages)."""
    parts = []
    for log in sorted(POD_LOGS.glob(f"{namespace}_*/*/*.log")):
        lines = log.read_text(errors="replace").splitlines()[-15:]
        parts.append(f"--- {log.relative_to(POD_LOGS)}\n" + "\n".join(lines))
    return "\n".join(parts) or f"(no container output for namespace {namespace})"

"""The quickstart demo (`make demo`): the seed walkthrough on this machine.

It brings up the local Kafka broker and Kubernetes control plane (unless they run) and a
demo function, then runs Sluice one of two ways, and says which:

- on real pods, where this machine can run a node (scripts/node.sh): the node starts, the
  image built without Docker is loaded into it, `helm install` runs the operator as a pod,
  and the operator's runtime Deployment runs as a pod;
- as local processes otherwise: the operator, and the runtime pod's command (the demo plays
  the kubelet's part).

It applies examples/quickstart.yaml, produces 3 records and shows what the function
receives: 2 records at once (the window's maxMessages), then 1 more when the 10 s interval
closes the window. Then it stops everything it started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from e2e.localpod import LocalPod
from e2e.node import admit, running_node, unavailable_reason
from sluice_operator.builders import runtime_name
from sluice_operator.kube import Kube, resource_path
from testkit.operator_harness import condition_of

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
T = TypeVar("T")


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m", flush=True)


def wait(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    raise SystemExit(f"demo: timed out after {timeout:.0f}s waiting for {what}")


@contextlib.contextmanager
def service(script: str, what: str, external: str) -> Iterator[str]:
    """Start a local service with its script unless it runs; stop it after if we started it.
    The environment variable ``external`` (as for the tests) names one to use instead."""
    if os.environ.get(external):
        say(f"using the {what} at {os.environ[external]} (${external})")
        yield os.environ[external]
        return
    running = (
        subprocess.run(
            [ROOT / "scripts" / script, "status"], capture_output=True, check=False
        ).returncode
        == 0
    )
    say(f"{'using the running' if running else 'starting the'} {what}")
    up = subprocess.run([ROOT / "scripts" / script, "up"], stdout=subprocess.PIPE, check=False)
    if up.returncode != 0:
        raise SystemExit(f"demo: could not start the {what}")
    try:
        yield up.stdout.decode().strip().splitlines()[-1]
    finally:
        if not running:
            subprocess.run([ROOT / "scripts" / script, "down"], capture_output=True, check=False)


@contextlib.contextmanager
def process(
    args: list[str], log: Path | None, env: dict[str, str] | None = None, echo: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    output = None if echo else (log.open("wb") if log else subprocess.DEVNULL)
    child = subprocess.Popen(
        args,
        stdout=output,
        stderr=subprocess.STDOUT if log else None,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()


def main() -> None:
    from sluice_operator.kube import Kube, load_configuration
    from testkit.operator_harness import install_crd

    manifest: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    topic = manifest["spec"]["source"]["kafka"]["topics"][0]
    work = Path(tempfile.mkdtemp(prefix="sluice-demo-"))
    with contextlib.ExitStack() as stack:
        bootstrap = stack.enter_context(service("kafka.sh", "Kafka broker", "SLUICE_TEST_KAFKA"))
        kubeconfig = stack.enter_context(
            service("cluster.sh", "Kubernetes API server", "SLUICE_TEST_KUBECONFIG")
        )
        manifest["spec"]["source"]["kafka"]["bootstrapServers"] = [bootstrap]
        kube = Kube(load_configuration(kubeconfig))
        stack.callback(kube.close)

        say("installing the Connector CRD (sluice crd)")
        install_crd(kube)
        _create_topic(bootstrap, topic)

        say("starting the demo function on 127.0.0.1:8080; it prints each invocation")
        function = stack.enter_context(
            process(
                [
                    str(BIN / "python"),
                    str(ROOT / "testkit" / "function_server.py"),
                    "--port",
                    "8080",
                    "--print",
                ],
                None,
                echo=True,
            )
        )
        del function

        reason = unavailable_reason(kubeconfig, bootstrap)
        if reason is None:
            say("a node can run here: the operator and the runtime run as real pods")
            run_on_pods(stack, kube, kubeconfig, bootstrap, manifest, work)
        else:
            say(f"no real pods ({reason}): the operator and the runtime run as local processes")
            run_as_processes(stack, kube, kubeconfig, manifest, work)

        say("producing 3 records to topic quickstart")
        started = time.time()
        _produce(bootstrap, topic, [f'{{"n": {n}, "message": "hello {n}"}}' for n in (1, 2, 3)])
        say(
            "expect: one request with 2 records now (maxMessages: 2), "
            "one with 1 record about 10 s later (maxInterval: 10s)"
        )
        threading.Event().wait(13)
        say(f"done after {time.time() - started:.0f}s")

        say("where to look next:")
        print(f"  runtime and operator logs: {work}/ (local processes) or .cache/node/pod-logs/")
        print(f"  the Connector's status:    KUBECONFIG={kubeconfig} kubectl get connectors -A")
        print("  every field:               docs/reference.md; more examples in examples/")
        say("stopping what the demo started")


def apply_quickstart(kube: Kube, manifest: dict[str, Any]) -> dict[str, Any]:
    """Applies the Connector (replacing an old demo's) and waits for its Deployment."""
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    say(f"applying examples/quickstart.yaml (Connector {namespace}/{name})")
    path = resource_path("sluice.dev/v1alpha1", "connectors", namespace, None)
    existing = kube.get(f"{path}/{name}")
    if existing is not None:
        kube.request("DELETE", f"{path}/{name}")
        wait(lambda: kube.get(f"{path}/{name}") is None, 30, "the old demo Connector to go")
    kube.request("POST", path, body=manifest)
    deployment: dict[str, Any] = wait(
        lambda: kube.get(resource_path("apps/v1", "deployments", namespace, runtime_name(name))),
        60,
        "the operator to render the runtime Deployment",
    )
    connector = kube.get(f"{path}/{name}") or {}
    source = condition_of(connector, "SourceReady") or {}
    say(
        f"the operator rendered Deployment {namespace}/{runtime_name(name)} with "
        f"{deployment['spec']['replicas']} replica(s); SourceReady={source.get('status')}"
    )
    return deployment


def run_as_processes(
    stack: contextlib.ExitStack, kube: Kube, kubeconfig: str, manifest: dict[str, Any], work: Path
) -> None:
    namespace = manifest["metadata"]["namespace"]
    say(f"starting the operator, watching namespace {namespace} (log: {work}/operator.log)")
    stack.enter_context(
        process(
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
            work / "operator.log",
        )
    )
    deployment = apply_quickstart(kube, manifest)
    say("running the rendered pod's command as a local process (the kubelet's part)")
    pod = LocalPod(kube, deployment, work)
    stack.enter_context(process(pod.command(9191), work / "runtime.log", env=pod.environment()))
    wait(lambda: _ready(9191), 60, "the runtime to be ready")
    time.sleep(2)  # the consumer joins its group


def run_on_pods(
    stack: contextlib.ExitStack,
    kube: Kube,
    kubeconfig: str,
    bootstrap: str,
    manifest: dict[str, Any],
    work: Path,
) -> None:
    namespace = manifest["metadata"]["namespace"]
    say("starting the node (containerd, kubelet) and loading the Sluice image into it")
    node = stack.enter_context(running_node(kubeconfig, bootstrap))
    helm = subprocess.run(
        [ROOT / "scripts" / "helm.sh"], capture_output=True, text=True, check=True
    ).stdout.strip()
    repository, tag = node.image.rsplit(":", 1)
    say(f"helm install sluice charts/sluice (namespace sluice-system, image {node.image})")
    common = ["--kubeconfig", kubeconfig, "--namespace", "sluice-system"]
    for admitted in ("sluice-system", namespace):  # the node takes only their pods
        admit(kubeconfig, admitted)
    subprocess.run([helm, "uninstall", "sluice", *common], capture_output=True, check=False)
    settings = {
        "crd.install": "false",  # installed above, as the CRD the tests share
        "image.repository": repository,
        "image.tag": tag,
        "operator.watchNamespaces": f"{{{namespace}}}",
    }
    chart = str(ROOT / "charts" / "sluice")
    installed = subprocess.run(
        [helm, "install", "sluice", chart, *common, "--wait"]
        + [item for key, value in settings.items() for item in ("--set", f"{key}={value}")],
        stdout=(work / "helm.log").open("wb"),
        stderr=subprocess.STDOUT,
        check=False,
    )
    if installed.returncode != 0:
        raise SystemExit(f"demo: helm install failed; see {work}/helm.log")
    stack.callback(
        lambda: subprocess.run([helm, "uninstall", "sluice", *common], capture_output=True)
    )
    name = manifest["metadata"]["name"]
    deployment = apply_quickstart(kube, manifest)
    connectors = resource_path("sluice.dev/v1alpha1", "connectors", namespace, name)
    stack.callback(lambda: kube.request("DELETE", connectors))
    path = resource_path("apps/v1", "deployments", namespace, deployment["metadata"]["name"])
    wait(
        lambda: (kube.get(path) or {}).get("status", {}).get("readyReplicas"),
        120,
        "the runtime pod to pass its readiness probe",
    )
    say("the runtime pod is ready")
    time.sleep(2)  # the consumer joins its group


# The demo's own Kafka clients live only inside these two functions: a client still open when
# the demo stops the broker it started makes librdkafka print a screen of "Connection
# refused" lines. Each client is destroyed when its function returns (nothing else refers to
# it), so by the time the ExitStack stops anything, only the runtime and the operator (child
# processes, stopped first) have connections. Like the runtime's and the operator's clients,
# they log through Python logging: warnings and errors still reach the screen, librdkafka's
# notices (such as "Purging 1 unserved events" when an admin client closes) do not.
KAFKA_LOG = logging.getLogger("demo.kafka")


def _create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=KAFKA_LOG)
    if topic not in admin.list_topics(timeout=10).topics:
        admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(30)


def _produce(bootstrap: str, topic: str, values: list[str]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap}, logger=KAFKA_LOG)
    for value in values:
        producer.produce(topic, value=value)
    if producer.flush(10):
        raise SystemExit("demo: the records were not delivered to Kafka within 10 s")


def _ready(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()

"""Shared fixtures: a real Kafka broker and a real Kubernetes API server.

Both are started on first use (session scope) by the project's scripts and stopped at the
end, unless they were already running or the environment names existing ones:

- ``SLUICE_TEST_KAFKA``: bootstrap address of a broker to use instead (nothing is started);
- ``SLUICE_TEST_KAFKA_SASL``: that broker's SASL_PLAINTEXT listener, set up as
  ``scripts/kafka.sh`` sets its own (default: the bootstrap port + 2, as the script does);
- ``SLUICE_TEST_KUBECONFIG``: kubeconfig of a cluster to use instead (nothing is started);
- ``SLUICE_TEST_SCHEMA_REGISTRY``: URL of a Confluent-compatible schema registry to use
  instead (nothing is started).

Each test gets its own topics and its own namespace, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent
SCRIPTS = ROOT / "scripts"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests on a fresh event loop (no plugin needed for so little): the
    runtime's tests on the loop the runtime runs on (uvloop's), the others on asyncio's."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    arguments = {name: pyfuncitem.funcargs[name] for name in names}
    if (ROOT / "tests" / "runtime") in Path(pyfuncitem.path).parents:
        from sluice_runtime.app import run_runtime

        run_runtime(pyfuncitem.obj(**arguments))
    else:
        asyncio.run(pyfuncitem.obj(**arguments))
    return True


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPTS / name), *args], capture_output=True, text=True, check=False, cwd=ROOT
    )


def _start(name: str, what: str) -> tuple[str, bool]:
    """Start a local service with its script; returns (its address, whether we started it)."""
    was_running = _script(name, "status").returncode == 0
    result = _script(name, "up")
    if result.returncode != 0:
        pytest.fail(f"could not start {what}: {result.stderr.strip()}", pytrace=False)
    return result.stdout.strip().splitlines()[-1], not was_running


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a real Kafka broker."""
    external = os.environ.get("SLUICE_TEST_KAFKA")
    if external:
        yield external
        return
    address, started = _start("kafka.sh", "the local Kafka broker")
    yield address
    if started:
        _script("kafka.sh", "down")


@pytest.fixture(scope="session")
def kafka_sasl(kafka_bootstrap: str) -> Any:
    """The broker's SASL_PLAINTEXT listener (``tests.sasl_broker.SaslListener``), with its
    PLAIN user and a SCRAM user created here. A broker without one fails the test rather
    than skipping it: scripts/kafka.sh (what CI runs) always has it."""
    from tests.sasl_broker import SaslListener, add_scram_user, listening, sasl_address

    address = os.environ.get("SLUICE_TEST_KAFKA_SASL") or sasl_address(kafka_bootstrap)
    if not listening(address):
        pytest.fail(
            f"no SASL listener at {address}: a broker started by an older scripts/kafka.sh"
            " has none (restart it), or set SLUICE_TEST_KAFKA_SASL",
            pytrace=False,
        )
    add_scram_user(kafka_bootstrap)
    return SaslListener(address)


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[str]:
    """URL of a real Confluent-compatible schema registry (Apicurio Registry's ccompat API)."""
    external = os.environ.get("SLUICE_TEST_SCHEMA_REGISTRY")
    if external:
        yield external
        return
    url, started = _start("registry.sh", "the local schema registry")
    yield url
    if started:
        _script("registry.sh", "down")


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    """Path of a kubeconfig for a real Kubernetes API server."""
    external = os.environ.get("SLUICE_TEST_KUBECONFIG")
    if external:
        yield external
        return
    path, started = _start("cluster.sh", "the local Kubernetes control plane")
    yield path
    if started:
        _script("cluster.sh", "down")


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Create fresh topics for one test; they are deleted afterwards."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created: list[str] = []

    def make(partitions: int = 1, prefix: str = "t", config: dict[str, str] | None = None) -> str:
        name = unique_name(prefix)
        topic = NewTopic(name, num_partitions=partitions, config=config or {})
        futures = admin.create_topics([topic])
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield make
    if created:
        for future in admin.delete_topics(created).values():
            future.exception(timeout=30)


@pytest.fixture(scope="session")
def kube_api(kubeconfig: str) -> object:
    """A configured ``kubernetes.client.ApiClient`` for the test cluster."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


@pytest.fixture(scope="session")
def kube(kubeconfig: str) -> Iterator[Any]:
    """The operator's own API client (``sluice_operator.kube.Kube``), with the Connector
    CRD installed."""
    from sluice_operator.kube import Kube, load_configuration
    from testkit.operator_harness import install_crd

    client = Kube(load_configuration(kubeconfig))
    install_crd(client)
    yield client
    client.close()


@pytest.fixture
def namespace(kube_api: object) -> Iterator[str]:
    """A fresh namespace for one test (deleted afterwards; the local controller-manager
    finishes the deletion)."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    name = unique_name("test")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)

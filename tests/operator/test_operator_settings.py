"""The operator's configuration from its environment, and small reconcile helpers."""

from __future__ import annotations

import pytest

from sluice_operator.plan import is_subset
from sluice_operator.settings import DEFAULT_RUNTIME_IMAGE, OperatorConfig
from sluice_operator.sink_address import service_url
from sluice_operator.workqueue import Backoff


def test_defaults_and_overrides() -> None:
    assert OperatorConfig.from_env({}) == OperatorConfig()
    assert OperatorConfig().runtime_image == DEFAULT_RUNTIME_IMAGE
    config = OperatorConfig.from_env(
        {
            "SLUICE_RUNTIME_IMAGE": "r/sluice:2",
            "SLUICE_OPERATOR_TIMER_INTERVAL": "2.5",
            "SLUICE_OPERATOR_WORKERS": "4",
            "SLUICE_OPERATOR_KAFKA_TIMEOUT": "",
        }
    )
    assert config.runtime_image == "r/sluice:2"
    assert config.timer_interval == 2.5
    assert config.workers == 4
    assert config.kafka_timeout == OperatorConfig().kafka_timeout


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SLUICE_OPERATOR_TIMER_INTERVAL", "soon"), ("SLUICE_OPERATOR_WORKERS", "0")],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        OperatorConfig.from_env({variable: value})


def test_subset_ignores_what_the_api_server_adds() -> None:
    desired = {"spec": {"ports": [{"port": 9090}], "replicas": 2}}
    live = {"spec": {"ports": [{"port": 9090, "protocol": "TCP"}], "replicas": 2}, "status": {}}
    assert is_subset(desired, live)
    assert not is_subset({"spec": {"replicas": 3}}, live)
    assert not is_subset({"spec": {"ports": []}}, live)
    assert not is_subset(desired, None)


def test_backoff_doubles_to_a_cap_and_resets() -> None:
    backoff = Backoff(base=10, cap=30)
    assert backoff.due("c", 0)
    assert backoff.record("c", ok=False, now=0) == 10
    assert not backoff.due("c", 4)
    assert backoff.due("c", 5)
    assert backoff.record("c", ok=False, now=5) == 20
    assert backoff.record("c", ok=False, now=25) == 30
    assert backoff.record("c", ok=True, now=60) is None
    assert backoff.due("c", 60)


def test_service_urls() -> None:
    def service(*ports: dict[str, object]) -> dict[str, object]:
        return {"metadata": {"name": "f", "namespace": "ns"}, "spec": {"ports": list(ports)}}

    assert service_url(service({"port": 8080}), "cluster.local") == (
        "http://f.ns.svc.cluster.local:8080/"
    )
    assert service_url(
        service({"name": "grpc", "port": 9}, {"name": "http", "port": 80}), "c.x"
    ) == ("http://f.ns.svc.c.x:80/")
    assert service_url(service({"port": 443}), "cluster.local") == (
        "https://f.ns.svc.cluster.local:443/"
    )
    assert service_url(service(), "cluster.local") is None


def test_tenancy_settings_from_the_environment() -> None:
    config = OperatorConfig.from_env(
        {
            "SLUICE_ALLOWED_RUNTIME_IMAGES": "registry.example/sluice@sha256:*, mine:2",
            "SLUICE_SINK_REF_NAMESPACES": "shared, functions",
            "SLUICE_OPERATOR_KAFKA_TRUSTED_SERVERS": "Kafka-0.Kafka:9092,kafka-1.kafka:9092",
            "SLUICE_OPERATOR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SLUICE_OPERATOR_KAFKA_SASL_MECHANISM": "PLAIN",
            "SLUICE_OPERATOR_KAFKA_USERNAME": "sluice-operator",
            "SLUICE_OPERATOR_KAFKA_PASSWORD": "s3cret",
            # The runtime's variables are not the operator's identity.
            "SLUICE_KAFKA_PASSWORD": "someone-else",
        }
    )
    assert config.sink_ref_namespaces == {"shared", "functions"}
    assert not config.queue_mode  # off unless enabled
    assert OperatorConfig.from_env({"SLUICE_QUEUE_MODE": "true"}).queue_mode
    with pytest.raises(ValueError, match="SLUICE_QUEUE_MODE='yes': must be true or false"):
        OperatorConfig.from_env({"SLUICE_QUEUE_MODE": "yes"})
    assert config.allows_image(config.runtime_image)
    assert config.allows_image("registry.example/sluice@sha256:0123")
    assert config.allows_image("mine:2")
    assert not config.allows_image("mine:3")
    assert not config.allows_image("registry.example/sluice:latest")
    assert config.trusts(["kafka-0.kafka:9092"])
    assert config.trusts(["KAFKA-1.kafka:9092", "kafka-0.kafka:9092"])
    # One address of a Connector's choosing is enough to receive the credentials.
    assert not config.trusts(["kafka-0.kafka:9092", "attacker.example:9092"])
    assert not config.trusts(["kafka-0.kafka"])  # no port: not a listed address
    assert config.operator_kafka_settings() == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "sluice-operator",
        "sasl.password": "s3cret",
    }
    assert "s3cret" not in repr(config)


def test_nothing_is_trusted_or_allowed_by_default() -> None:
    config = OperatorConfig()
    assert not config.trusts(["localhost:9092"])
    assert not config.allows_image("anything:1")
    assert not config.sink_ref_namespaces


def test_trusted_servers_need_the_operator_s_credentials() -> None:
    trusted = {"SLUICE_OPERATOR_KAFKA_TRUSTED_SERVERS": "kafka:9092"}
    with pytest.raises(ValueError, match="SLUICE_OPERATOR_KAFKA_USERNAME"):
        OperatorConfig.from_env(trusted)
    plain = {**trusted, "SLUICE_OPERATOR_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    assert OperatorConfig.from_env(plain).trusts(["kafka:9092"])


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SLUICE_OPERATOR_KAFKA_TRUSTED_SERVERS", "kafka-without-port"),
        ("SLUICE_OPERATOR_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("SLUICE_OPERATOR_KAFKA_SASL_MECHANISM", "GSSAPI"),
    ],
)
def test_bad_tenancy_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        OperatorConfig.from_env({variable: value})

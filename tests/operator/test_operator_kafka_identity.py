"""Whose Kafka credentials the operator uses for a Connector: its own only on brokers its
configuration trusts, the Connector's everywhere else (integration: test_operator_tenancy)."""

from __future__ import annotations

from typing import Any

from sluice_operator.kafka_facts import kafka_identities, needs_connector_secret
from sluice_operator.settings import OperatorConfig
from sluice_runtime.config import Connector, load_connector

OPERATOR = OperatorConfig(
    kafka_trusted_servers=frozenset({"kafka.platform:9092"}),
    kafka_credentials=(("sasl.username", "operator"), ("sasl.password", "operator-pw")),
)
SECRET = {"username": "tenant", "password": "tenant-pw", "ca.crt": "PEM", "other": "x"}


def connector(servers: list[str], auth: bool = True, **delivery: Any) -> Connector:
    kafka: dict[str, Any] = {"bootstrapServers": servers, "topics": ["t"]}
    if auth:
        kafka["auth"] = {
            "secretRef": {"name": "creds"},
            "securityProtocol": "SASL_PLAINTEXT",
            "saslMechanism": "PLAIN",
        }
    return load_connector(
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Connector",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {
                "source": {"kafka": kafka},
                "sink": {"uri": "http://f/"},
                "delivery": delivery,
            },
        }
    )


def test_a_connector_s_own_brokers_get_its_own_credentials() -> None:
    chosen = connector(["attacker.example:9092"])
    assert needs_connector_secret(chosen, OPERATOR)
    identities = kafka_identities(chosen, OPERATOR, SECRET)
    assert identities.source.whose == "connector"
    assert dict(identities.source.settings) == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "tenant",
        "sasl.password": "tenant-pw",
        "ssl.ca.pem": "PEM",
    }
    assert "operator-pw" not in repr(identities)
    assert "tenant-pw" not in repr(identities)


def test_without_auth_nothing_is_sent() -> None:
    chosen = connector(["attacker.example:9092"], auth=False)
    assert not needs_connector_secret(chosen, OPERATOR)
    assert dict(kafka_identities(chosen, OPERATOR, None).source.settings) == {}


def test_trusted_brokers_get_the_operator_s_identity_whatever_the_connector_asks() -> None:
    chosen = connector(["kafka.platform:9092"])
    assert not needs_connector_secret(chosen, OPERATOR)
    identities = kafka_identities(chosen, OPERATOR, None)
    assert identities.source.whose == "operator"
    # The operator's protocol, not the Connector's SASL_PLAINTEXT: no downgrade to clear text.
    assert dict(identities.source.settings) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "operator",
        "sasl.password": "operator-pw",
    }


def test_one_untrusted_address_makes_the_cluster_untrusted() -> None:
    chosen = connector(["kafka.platform:9092", "attacker.example:9092"])
    identities = kafka_identities(chosen, OPERATOR, SECRET)
    assert identities.source.whose == "connector"


def test_the_dead_letter_cluster_is_judged_on_its_own() -> None:
    elsewhere: dict[str, Any] = {"kafka": {"topic": "d", "bootstrapServers": ["evil:9092"]}}
    chosen = connector(["kafka.platform:9092"], deadLetter=elsewhere)
    assert needs_connector_secret(chosen, OPERATOR)
    identities = kafka_identities(chosen, OPERATOR, SECRET)
    assert identities.source.whose == "operator"
    assert identities.dead_letter.whose == "connector"
    assert "operator-pw" not in identities.dead_letter.settings.values()

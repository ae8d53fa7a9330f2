"""The test broker's SASL_PLAINTEXT listener (``scripts/kafka.sh``) and its users."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

PLAIN_USER, PLAIN_PASSWORD = "sluice", "sluice-secret"
"""The PLAIN user of the JAAS line in scripts/kafka.sh's server.properties."""
SCRAM_USER, SCRAM_PASSWORD = "sluice-scram", "sluice-scram-secret"
"""Created by :func:`add_scram_user` (SCRAM credentials live in the cluster's metadata)."""
SCRAM_MECHANISMS = {
    "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256,
    "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512,
}


@dataclass(frozen=True)
class SaslListener:
    bootstrap: str
    """host:port of the SASL_PLAINTEXT listener."""

    def settings(self, mechanism: str, password: str | None = None) -> dict[str, str]:
        """librdkafka settings of the listener's user for ``mechanism`` (its own password
        unless ``password`` is given)."""
        plain = mechanism == "PLAIN"
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism,
            "sasl.username": PLAIN_USER if plain else SCRAM_USER,
            "sasl.password": password or (PLAIN_PASSWORD if plain else SCRAM_PASSWORD),
        }


def sasl_address(bootstrap: str) -> str:
    """scripts/kafka.sh's default: the SASL listener two ports above the PLAINTEXT one."""
    host, _, port = bootstrap.rpartition(":")
    return f"{host}:{int(port) + 2}"


def listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
    except OSError:
        return False
    return True


def add_scram_user(plaintext_bootstrap: str) -> None:
    """SCRAM-SHA-256 and -512 credentials for SCRAM_USER, set over the PLAINTEXT listener
    (no authorizer on the test broker). Idempotent: an upsert."""
    admin = AdminClient({"bootstrap.servers": plaintext_bootstrap})
    # One request per mechanism: a request may not alter one user twice.
    for mechanism in SCRAM_MECHANISMS.values():
        upsert = UserScramCredentialUpsertion(
            SCRAM_USER, ScramCredentialInfo(mechanism, 4096), SCRAM_PASSWORD.encode()
        )
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=30)

"""What a Connector may make the operator do for its author.

The operator is a deputy: it holds rights that a Connector's author may lack (it creates
Deployments, and so pods, in every namespace it watches, and it may read Secrets there),
and whatever a Connector asks for, it does with those rights. So before acting, it checks
that the Connector asks only for what its author could have without the operator:

- a Secret it names (``spec.source.kafka.auth.secretRef``,
  ``spec.sink.auth.bearerTokenSecretRef``) must opt in, with the label
  ``sluice.dev/connector-access: "true"``. Rendering it into a pod hands its value to
  the Connector's function, image and brokers; only someone who may write the Secret (and
  so knows or may replace its value) can label it, so the label is that person's consent.
  A Secret that does not opt in and one that does not exist get the same answer, since the
  author may not be allowed to know which Secrets exist;
- ``spec.runtime.image`` must be the default image or on the operator's allow-list: any
  other image would run with the Connector's Secrets, as a pod the author could not create;
- ``sink.ref`` may cross namespaces only where the operator allows it (``sink_address.py``), and
  the operator's own Kafka identity goes only to trusted brokers (``kafka_facts.py``).

A refusal (:class:`NotPermitted`) is ``Ready=False`` with reason ``NotPermitted`` and a
message that names the field; the objects are left as they are, as for an invalid spec.
docs/security.md has the whole model.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from sluice_operator.conditions import Reason
from sluice_operator.kafka_facts import KafkaIdentities, kafka_identities, needs_connector_secret
from sluice_operator.kube import Kube, KubeError, resource_path
from sluice_operator.settings import OperatorConfig
from sluice_operator.status import Check
from sluice_runtime.config import API_GROUP, Connector

CONNECTOR_ACCESS_LABEL = f"{API_GROUP}/connector-access"
"""The label by which a Secret opts in to being used by the Connectors of its namespace."""


class NotPermitted(Exception):
    """The message names the field at fault, e.g. ``spec.runtime.image: …``."""

    @property
    def check(self) -> Check:
        """What Ready says about it."""
        return Check("False", Reason.NOT_PERMITTED, str(self))


def check_access(kube: Kube, connector: Connector, config: OperatorConfig) -> KafkaIdentities:
    """Raises NotPermitted; else returns who the operator is towards the Connector's Kafka
    clusters (the credentials it may use there)."""
    spec = connector.spec
    image = spec.runtime.image
    if image is not None and not config.allows_image(image):
        allowed = ", ".join([config.runtime_image, *config.allowed_runtime_images])
        raise NotPermitted(
            f"spec.runtime.image: {image} is not an image this operator runs Connectors with"
            f" (allowed: {allowed})."
        )
    namespace = connector.metadata.namespace
    if spec.sink.auth is not None:
        name = spec.sink.auth.bearer_token_secret_ref.name
        _shared_secret(kube, namespace, name, "spec.sink.auth.bearerTokenSecretRef", False)
    registry = spec.source.kafka.schema_registry
    if registry is not None and registry.auth is not None:
        name = registry.auth.secret_ref.name
        _shared_secret(
            kube, namespace, name, "spec.source.kafka.schemaRegistry.auth.secretRef", False
        )
    secret: dict[str, str] | None = None
    auth = spec.source.kafka.auth
    if auth is not None:
        with_data = needs_connector_secret(connector, config)
        secret = _shared_secret(
            kube, namespace, auth.secret_ref.name, "spec.source.kafka.auth.secretRef", with_data
        )
    return kafka_identities(connector, config, secret)


def _shared_secret(
    kube: Kube, namespace: str, name: str, where: str, with_data: bool
) -> dict[str, str] | None:
    """The Secret's decoded data with ``with_data`` (else None); raises NotPermitted when
    it does not opt in or does not exist."""
    path = resource_path("v1", "secrets", namespace, name)
    try:
        # Only what is needed leaves the API server: the labels, or the data to use.
        found = kube.get(path, metadata_only=not with_data)
    except KubeError as error:
        if error.status != 403:
            raise
        raise NotPermitted(
            f"{where}: the operator may not read Secrets in {namespace} ({error.reason});"
            " it needs get on secrets there."
        ) from None
    labels = ((found or {}).get("metadata") or {}).get("labels") or {}
    if found is None or labels.get(CONNECTOR_ACCESS_LABEL) != "true":
        raise NotPermitted(
            f"{where}: {namespace} has no Secret {name} that Connectors may use; a Secret"
            f' opts in with the label {CONNECTOR_ACCESS_LABEL}: "true".'
        )
    return _decoded(found.get("data") or {}) if with_data else None


def _decoded(data: Mapping[str, str]) -> dict[str, str]:
    decoded: dict[str, str] = {}
    for key, value in data.items():
        try:
            decoded[key] = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue  # not text: no librdkafka setting can use it
    return decoded

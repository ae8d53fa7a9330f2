"""The local API server is real: it serves custom resources, and its controller-manager
garbage-collects objects owned by a deleted custom object."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration

GROUP = "infra-test.sluice.dev"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def _install_crd(api: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api)
    try:
        extensions.create_custom_resource_definition(WIDGET_CRD)
    except ApiException as error:
        if error.status != 409:
            raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = extensions.read_custom_resource_definition(f"widgets.{GROUP}")
        conditions = crd.status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.2)
    pytest.fail("the CRD was never Established")


def _wait_gone(read: Any, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            read()
        except ApiException as error:
            if error.status == 404:
                return True
            raise
        time.sleep(0.5)
    return False


def test_custom_object_lifecycle_and_owned_garbage_collection(
    kube_api: client.ApiClient, namespace: str
) -> None:
    _install_crd(kube_api)
    custom = client.CustomObjectsApi(kube_api)
    core = client.CoreV1Api(kube_api)

    widget = custom.create_namespaced_custom_object(
        GROUP,
        "v1",
        namespace,
        "widgets",
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 1},
        },
    )
    patched = custom.patch_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", "w", {"spec": {"size": 3}}
    )
    assert patched["spec"]["size"] == 3
    assert patched["metadata"]["generation"] == 2

    # The schema is enforced by the server, not by us.
    with pytest.raises(ApiException) as rejected:
        custom.patch_namespaced_custom_object(
            GROUP, "v1", namespace, "widgets", "w", {"spec": {"size": 0}}
        )
    assert rejected.value.status == 422

    owner = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "name": "w",
        "uid": widget["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    core.create_namespaced_config_map(
        namespace,
        {"metadata": {"name": "owned", "ownerReferences": [owner]}, "data": {"a": "b"}},
    )

    custom.delete_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w")
    assert _wait_gone(
        lambda: custom.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w")
    )
    assert _wait_gone(lambda: core.read_namespaced_config_map("owned", namespace)), (
        "the owned ConfigMap was not garbage-collected"
    )

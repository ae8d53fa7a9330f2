"""The Helm chart lints, renders with several values files, is accepted by the real API
server, and grants the operator what it needs and nothing more."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "sluice"
VALUES = sorted((ROOT / "tests" / "charts").glob("*.yaml"))


@pytest.fixture(scope="module")
def helm() -> str:
    built = subprocess.run(
        [ROOT / "scripts" / "helm.sh"], capture_output=True, text=True, timeout=1200, check=False
    )
    assert built.returncode == 0, built.stderr
    return built.stdout.strip()


def render(helm: str, *values: Path, namespace: str = "sluice-system") -> list[dict[str, Any]]:
    args = [helm, "template", "sluice", str(CHART), "--namespace", namespace]
    for path in values:
        args += ["--values", str(path)]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


@pytest.mark.parametrize("values", [None, *VALUES], ids=lambda v: v.name if v else "default")
def test_chart_lints(helm: str, values: Path | None) -> None:
    args = [helm, "lint", "--strict", str(CHART)] + (["--values", str(values)] if values else [])
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_values_are_rejected_by_the_schema(helm: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("operator:\n  watchNamespaces: [Not_A_Namespace]\nimage:\n  tag: 1\n")
    result = subprocess.run(
        [helm, "template", "x", str(CHART), "--values", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "watchNamespaces" in result.stderr


def test_default_render(helm: str) -> None:
    objects = render(helm)
    [deployment] = by_kind(objects, "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["args"] == ["operator", "--all-namespaces"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    [crd] = by_kind(objects, "CustomResourceDefinition")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd == {
        **yaml.safe_load((CHART / "files" / "connector-crd.yaml").read_text()),
        "metadata": crd["metadata"],
    }
    assert by_kind(objects, "ClusterRole")
    assert not by_kind(objects, "ServiceMonitor")
    for obj in objects:
        if obj["kind"] != "CustomResourceDefinition":
            assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "sluice"


def test_namespaced_render_uses_roles(helm: str) -> None:
    objects = render(helm, ROOT / "tests" / "charts" / "namespaced.yaml")
    assert not by_kind(objects, "ClusterRole")
    assert {r["metadata"]["namespace"] for r in by_kind(objects, "Role")} == {"team-a", "team-b"}
    [deployment] = by_kind(objects, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["operator", "--namespace=team-a", "--namespace=team-b"]
    [crd] = by_kind(objects, "CustomResourceDefinition")
    assert "annotations" not in crd["metadata"]


def test_rbac_has_no_wildcards_and_no_secrets(helm: str) -> None:
    for values in [[], *[[v] for v in VALUES]]:
        for role in by_kind(render(helm, *values), "ClusterRole") + by_kind(
            render(helm, *values), "Role"
        ):
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
                assert "secrets" not in rule["resources"]


def _apply(api: client.ApiClient, obj: dict[str, Any], dry_run: bool) -> None:
    """Server-side apply, as `helm install` or `kubectl apply --server-side` would."""
    from kubernetes.dynamic import DynamicClient

    resource = DynamicClient(api).resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    resource.server_side_apply(
        body=obj,
        name=obj["metadata"]["name"],
        namespace=obj["metadata"].get("namespace"),
        field_manager="sluice-chart-test",
        force_conflicts=True,
        **({"dry_run": "All"} if dry_run else {}),
    )


@pytest.fixture
def release_namespace(kube_api: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(kube_api)
    name = f"chart-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.mark.parametrize("values", [None, *VALUES], ids=lambda v: v.name if v else "default")
def test_api_server_accepts_the_rendered_chart(
    helm: str, kube_api: client.ApiClient, release_namespace: str, values: Path | None
) -> None:
    objects = render(helm, *([values] if values else []), namespace=release_namespace)
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":
            continue  # its CRD belongs to the Prometheus Operator, not installed here
        namespace = obj["metadata"].get("namespace")
        if namespace and namespace != release_namespace:
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": release_namespace}}
        _apply(kube_api, obj, dry_run=True)


def can(
    api: client.ApiClient,
    user: str,
    verb: str,
    resource: str,
    group: str = "",
    namespace: str = "default",
    subresource: str = "",
) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": ["system:serviceaccounts"],
                "resourceAttributes": {
                    "verb": verb,
                    "resource": resource,
                    "group": group,
                    "namespace": namespace,
                    "subresource": subresource,
                },
            },
        }
    )
    return bool(review.status.allowed)


def test_operator_service_account_can_do_its_job_and_no_more(
    helm: str, kube_api: client.ApiClient, release_namespace: str
) -> None:
    objects = render(helm, namespace=release_namespace)
    release = f"sluice-{release_namespace}"
    for obj in (
        by_kind(objects, "ServiceAccount")
        + by_kind(objects, "ClusterRole")
        + by_kind(objects, "ClusterRoleBinding")
    ):
        obj["metadata"]["name"] = (
            release if obj["kind"] != "ServiceAccount" else obj["metadata"]["name"]
        )
        if obj["kind"] == "ClusterRoleBinding":
            obj["roleRef"]["name"] = release
        _apply(kube_api, obj, dry_run=False)
    user = f"system:serviceaccount:{release_namespace}:sluice"
    try:
        allowed = [
            ("watch", "connectors", "sluice.dev", ""),
            ("patch", "connectors", "sluice.dev", ""),
            ("patch", "connectors", "sluice.dev", "status"),
            ("create", "deployments", "apps", ""),
            ("patch", "deployments", "apps", ""),
            ("delete", "configmaps", "", ""),
            ("create", "services", "", ""),
            ("get", "services", "serving.knative.dev", ""),
            ("create", "events", "", ""),
        ]
        for verb, resource, group, sub in allowed:
            assert can(kube_api, user, verb, resource, group, subresource=sub), (verb, resource)
        denied = [
            ("get", "secrets", ""),
            ("list", "secrets", ""),
            ("delete", "connectors", "sluice.dev"),
            ("create", "connectors", "sluice.dev"),
            ("create", "pods", ""),
            ("create", "clusterroles", "rbac.authorization.k8s.io"),
            ("delete", "services", "serving.knative.dev"),
        ]
        for verb, resource, group in denied:
            assert not can(kube_api, user, verb, resource, group), (verb, resource)
    finally:
        rbac = client.RbacAuthorizationV1Api(kube_api)
        for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
            try:
                delete(release)
            except ApiException as error:
                if error.status != 404:
                    raise


def test_chart_carries_the_generated_crd() -> None:
    committed = (ROOT / "crds" / "sluice.dev_connectors.yaml").read_text()
    assert (CHART / "files" / "connector-crd.yaml").read_text() == committed, (
        "charts/sluice/files/connector-crd.yaml is stale: copy crds/sluice.dev_connectors.yaml"
    )

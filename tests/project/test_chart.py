"""The Helm chart lints, renders with several values files, is accepted by the real API
server, and grants the operator what it needs and nothing more: the operator runs under the
chart's ServiceAccount and uses every verb the chart grants."""

from __future__ import annotations

import functools
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient
from kubernetes import client
from kubernetes.client.rest import ApiException

from sluice_operator.access import CONNECTOR_ACCESS_LABEL
from sluice_operator.builders import runtime_name
from sluice_operator.kube import Kube, KubeError, resource_path
from sluice_operator.settings import OperatorConfig
from testkit.operator_harness import (
    OperatorThread,
    connector_body,
    create_connector,
    eventually,
    patch_spec,
)
from tests.api_recorder import RecordingApiProxy

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


def test_tenancy_values_reach_the_operator_s_configuration(helm: str) -> None:
    """What the chart's values say is what the operator reads from its environment."""
    [deployment] = by_kind(
        render(helm, ROOT / "tests" / "charts" / "namespaced.yaml"), "Deployment"
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value", "") for e in container["env"] if "value" in e}
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
    }
    assert from_secret["SLUICE_OPERATOR_KAFKA_PASSWORD"] == {
        "name": "sluice-operator-kafka",
        "key": "password",
        "optional": True,
    }
    config = OperatorConfig.from_env(
        {**env, **{name: f"<{ref['key']}>" for name, ref in from_secret.items()}}
    )
    assert config.allows_image("registry.example/sluice@sha256:" + "0" * 64)
    assert not config.allows_image("registry.example/other:1")
    assert config.sink_ref_namespaces == {"functions"}
    assert config.trusts(["kafka-0.kafka.svc:9093", "kafka-1.kafka.svc:9093"])
    assert config.operator_kafka_settings()["sasl.username"] == "<username>"
    assert config.operator_kafka_settings()["security.protocol"] == "SASL_SSL"
    assert {k for k, _ in config.kafka_credentials} == {
        "sasl.username",
        "sasl.password",
        "ssl.ca.pem",
        "ssl.certificate.pem",
        "ssl.key.pem",
    }
    # By default nothing is allowed or trusted beyond the defaults.
    [default] = by_kind(render(helm), "Deployment")
    [container] = default["spec"]["template"]["spec"]["containers"]
    config = OperatorConfig.from_env({e["name"]: e["value"] for e in container["env"]})
    assert config == OperatorConfig(runtime_image=config.runtime_image)


def test_rbac_has_no_wildcards_and_reads_secrets_one_by_one(helm: str) -> None:
    for values in [[], *[[v] for v in VALUES]]:
        for role in by_kind(render(helm, *values), "ClusterRole") + by_kind(
            render(helm, *values), "Role"
        ):
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
                if "secrets" in rule["resources"]:
                    # Only Secrets a Connector names, never a listing of them all.
                    assert rule["verbs"] == ["get"]


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
            ("patch", "configmaps", "", ""),
            ("create", "services", "", ""),
            ("get", "secrets", "", ""),
            ("get", "services", "serving.knative.dev", ""),
            ("create", "events", "", ""),
        ]
        for verb, resource, group, sub in allowed:
            assert can(kube_api, user, verb, resource, group, subresource=sub), (verb, resource)
        denied = [
            ("list", "secrets", ""),
            ("watch", "secrets", ""),
            # Garbage collection deletes what a Connector owns; the operator never does.
            ("delete", "deployments", "apps"),
            ("delete", "configmaps", ""),
            ("delete", "services", ""),
            ("list", "namespaces", ""),
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


def _granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# Granted without being a call: the OwnerReferencesPermissionEnforcement admission plugin
# (not enabled on the test API server) checks it when an owner reference blocks deletion.
NOT_A_CALL = {("sluice.dev", "connectors/finalizers", "update")}


def test_cluster_and_namespaced_installs_grant_the_same(helm: str) -> None:
    [cluster_role] = by_kind(render(helm), "ClusterRole")
    roles = by_kind(render(helm, ROOT / "tests" / "charts" / "namespaced.yaml"), "Role")
    assert roles
    for role in roles:
        assert _granted(role) == _granted(cluster_role)
    for _, resource, verb in _granted(cluster_role):
        assert verb not in ("delete", "deletecollection", "update") or (
            ("sluice.dev", resource, verb) in NOT_A_CALL
        ), (resource, verb)


@pytest.fixture
def knative_crd(kube: Kube) -> Iterator[str]:
    """A stand-in for Knative Serving's Service CRD (enough for sink.ref to resolve)."""
    name = "services.serving.knative.dev"
    path = resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", None, name)
    kube.request(
        "PATCH",
        path,
        body={
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": "serving.knative.dev",
                "scope": "Namespaced",
                "names": {"plural": "services", "singular": "service", "kind": "Service"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        },
        query=[("fieldManager", "sluice-tests"), ("force", "true")],
        content_type="application/apply-patch+yaml",
    )
    yield "serving.knative.dev/v1"
    kube.request("DELETE", path)


def test_operator_runs_under_the_chart_rbac_and_uses_every_verb_it_grants(
    helm: str,
    kube_api: client.ApiClient,
    kube: Kube,
    release_namespace: str,
    knative_crd: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    """The operator, run through a recording proxy with the token of the chart's
    ServiceAccount, does its whole job (no request refused) and calls every verb the
    chart grants (none granted in vain)."""
    ns = release_namespace
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"operator": {"watchNamespaces": [ns]}}))
    objects = render(helm, values, namespace=ns)
    for obj in by_kind(objects, "ServiceAccount") + by_kind(objects, "Role"):
        _apply(kube_api, obj, dry_run=False)
    for obj in by_kind(objects, "RoleBinding"):
        _apply(kube_api, obj, dry_run=False)
    [role] = by_kind(objects, "Role")
    [account] = by_kind(objects, "ServiceAccount")
    token = (
        client.CoreV1Api(kube_api)
        .create_namespaced_service_account_token(
            account["metadata"]["name"], ns, {"spec": {"expirationSeconds": 3600}}
        )
        .status.token
    )

    # What the operator is asked to do: every kind of sink, Secrets, a dead-letter topic,
    # and a change to an existing Connector.
    topic = make_topic(1, prefix="rbac")
    dead_letter = f"dlq-{uuid.uuid4().hex[:8]}"
    kube.request(
        "POST",
        resource_path("v1", "secrets", ns, None),
        body={
            "metadata": {"name": "fn-token", "labels": {CONNECTOR_ACCESS_LABEL: "true"}},
            "stringData": {"token": "t"},
        },
    )
    kube.request(
        "POST",
        resource_path("v1", "services", ns, None),
        body={"metadata": {"name": "fn"}, "spec": {"ports": [{"name": "http", "port": 80}]}},
    )
    eventually(
        lambda: _try_create(
            kube,
            resource_path(knative_crd, "services", ns, None),
            {
                "apiVersion": knative_crd,
                "kind": "Service",
                "metadata": {"name": "kn"},
                "status": {"address": {"url": "http://kn.example"}},
            },
        ),
        30,
        "the Knative stand-in to be served",
    )
    to_service = connector_body("svc", ns, kafka_bootstrap, [topic], "http://unused/")
    to_service["spec"]["sink"] = {
        "ref": {"name": "fn"},
        "auth": {"bearerTokenSecretRef": {"name": "fn-token", "key": "token"}},
    }
    to_service["spec"]["delivery"] = {"deadLetter": {"kafka": {"topic": dead_letter}}}
    to_knative = connector_body("kn", ns, kafka_bootstrap, [topic], "http://unused/")
    to_knative["spec"]["sink"] = {
        "ref": {"apiVersion": knative_crd, "kind": "Service", "name": "kn"}
    }

    configuration = kube_api.configuration
    with RecordingApiProxy(configuration.host, configuration.ssl_ca_cert) as proxy:
        kubeconfig = tmp_path / "operator.kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "proxy", "cluster": {"server": proxy.url}}],
                    "users": [{"name": "operator", "user": {"token": token}}],
                    "contexts": [
                        {"name": "operator", "context": {"cluster": "proxy", "user": "operator"}}
                    ],
                    "current-context": "operator",
                }
            )
        )
        try:
            with OperatorThread(str(kubeconfig), [ns]):
                create_connector(kube, to_service)
                create_connector(kube, to_knative)
                for name in ("svc", "kn"):
                    path = resource_path("apps/v1", "deployments", ns, runtime_name(name))
                    eventually(functools.partial(kube.get, path), 30, f"the Deployment of {name}")
                patch_spec(kube, ns, "svc", {"window": {"maxMessages": 7}})

                def rolled() -> bool:
                    configmap = kube.get(resource_path("v1", "configmaps", ns, "sluice-svc"))
                    return configmap is not None and "maxMessages: 7" in str(configmap["data"])

                eventually(rolled, 30, "the changed configuration")
        except AssertionError:
            refused = [c for c in proxy.calls() if c.status in (401, 403)]
            assert not refused, f"the chart grants too little: {refused}"
            raise
        finally:
            AdminClient({"bootstrap.servers": kafka_bootstrap}).delete_topics([dead_letter])

    calls = proxy.calls()
    refused = [c for c in calls if c.status in (401, 403)]
    assert not refused, f"the chart grants too little: {refused}"
    used = set().union(*(call.access() for call in calls))
    assert used <= _granted(role)
    assert _granted(role) - used == NOT_A_CALL, "granted but never used"


def _try_create(kube: Kube, path: str, body: dict[str, Any]) -> bool:
    try:
        kube.request("POST", path, body=body)
    except KubeError as error:
        if error.status == 404:  # the CRD is not served yet
            return False
        raise
    return True

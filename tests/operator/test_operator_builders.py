"""The objects the operator applies, as plain dicts: what the runtime will read and how its
pods run."""

from __future__ import annotations

from typing import Any

import yaml

from sluice_operator.builders import (
    CONFIG_HASH_ANNOTATION,
    build_configmap,
    build_deployment,
    build_env,
    build_service,
    per_replica_rate,
    render_runtime_config,
)
from sluice_operator.settings import OperatorConfig
from sluice_runtime.config import Connector, load_connector
from sluice_runtime.contract import CONFIG_PATH

OWNER = {
    "apiVersion": "sluice.dev/v1alpha1",
    "kind": "Connector",
    "name": "ads",
    "uid": "1234",
    "controller": True,
    "blockOwnerDeletion": True,
}
SETTINGS = OperatorConfig(runtime_image="registry.example/sluice:1.2.3")


def connector(**spec: Any) -> Connector:
    body: dict[str, Any] = {
        "source": {"kafka": {"bootstrapServers": ["kafka:9092"], "topics": ["ad-views"]}},
        "sink": {"ref": {"name": "cleaner"}},
    }
    body.update(spec)
    return load_connector(
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Connector",
            "metadata": {"name": "ads", "namespace": "shop"},
            "spec": body,
        }
    )


def rendered(c: Connector, replicas: int = 4, sink: str = "http://cleaner/") -> dict[str, Any]:
    configmap = build_configmap(c, render_runtime_config(c, sink, replicas), OWNER)
    loaded: dict[str, Any] = yaml.safe_load(configmap["data"]["connector.yaml"])
    return loaded


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return found


def deployment_for(c: Connector, replicas: int = 4, udf: str | None = None) -> dict[str, Any]:
    config = render_runtime_config(c, "http://cleaner/", replicas, udf)
    return build_deployment(c, config, replicas, SETTINGS, OWNER)


def test_configmap_holds_a_manifest_the_runtime_loads_with_the_sink_resolved() -> None:
    manifest = rendered(connector(window={"maxMessages": 10, "maxInterval": "2s"}))
    loaded = load_connector(manifest)
    assert loaded.spec.sink.uri == "http://cleaner/"
    assert loaded.spec.sink.ref is None
    assert loaded.spec.window.max_messages == 10
    assert manifest["spec"]["window"]["maxInterval"] == "2s"
    assert manifest["metadata"] == {"name": "ads", "namespace": "shop"}


def test_rate_limit_is_shared_among_replicas() -> None:
    c = connector(delivery={"rateLimit": {"requestsPerSecond": 500}})
    assert rendered(c, replicas=4)["spec"]["delivery"]["rateLimit"] == {"requestsPerSecond": 125.0}
    assert rendered(c, replicas=0)["spec"]["delivery"]["rateLimit"]["requestsPerSecond"] == 500
    # Shares round down: never more than the whole together.
    assert per_replica_rate(100, 3) * 3 <= 100
    assert per_replica_rate(0.001, 7) == 0.001


def test_operator_only_fields_do_not_change_the_config_hash() -> None:
    base = render_runtime_config(connector(), "http://cleaner/", 3)
    for spec in (
        {"paused": True},
        {"replicas": 7},
        {"scaling": {"minReplicas": 2, "maxReplicas": 9, "mode": "lag"}},
    ):
        assert render_runtime_config(connector(**spec), "http://cleaner/", 5).hash == base.hash
    changed = render_runtime_config(connector(window={"maxMessages": 7}), "http://cleaner/", 3)
    assert changed.hash != base.hash
    with_udf = render_runtime_config(connector(), "http://cleaner/", 3, "def handle_message")
    assert with_udf.hash != base.hash
    # consumersPerReplica is the runtime's business: it stays.
    per_replica = rendered(connector(scaling={"consumersPerReplica": 3}))
    assert per_replica["spec"]["scaling"]["consumersPerReplica"] == 3
    # So is processesPerReplica: the pod's sluice run starts that many processes.
    processes = rendered(connector(scaling={"processesPerReplica": 2}))
    assert processes["spec"]["scaling"]["processesPerReplica"] == 2


def test_default_resources_grow_with_the_runtime_processes() -> None:
    one = container(deployment_for(connector()))["resources"]
    two = container(deployment_for(connector(scaling={"processesPerReplica": 2})))["resources"]
    assert one["requests"]["cpu"] == "100m"
    assert two["requests"]["cpu"] == "200m"
    assert two["limits"]["memory"] == "896Mi"  # each process its own buffer: twice 448Mi
    assert "cpu" not in two["limits"]


def test_deployment_pods_are_locked_down_and_probed() -> None:
    deployment = deployment_for(connector())
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    runtime = container(deployment)
    assert runtime["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert runtime["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert runtime["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert runtime["ports"][0]["containerPort"] == 9090
    assert runtime["image"] == "registry.example/sluice:1.2.3"
    assert runtime["command"] == ["sluice"]
    assert runtime["args"][:3] == ["run", "-f", CONFIG_PATH]
    # 256Mi plus twice the default process byte bound (96Mi).
    assert runtime["resources"]["limits"]["memory"] == "448Mi"
    assert "cpu" not in runtime["resources"]["limits"]
    assert {"name": "tmp", "mountPath": "/tmp"} in runtime["volumeMounts"]


def test_deployment_follows_the_spec() -> None:
    resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    c = connector(
        runtime={"image": "mine:2", "resources": resources},
        window={"maxInterval": "20s"},
        sink={"uri": "http://f/", "timeout": "40s"},
    )
    deployment = deployment_for(c, replicas=6)
    assert deployment["spec"]["replicas"] == 6
    runtime = container(deployment)
    assert runtime["image"] == "mine:2"
    assert runtime["resources"] == resources
    # Long enough to flush a window that just opened and deliver it.
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert runtime["args"][-2:] == ["--grace", "65"]
    assert grace == 75


def test_config_hash_annotation_rolls_the_pods() -> None:
    before = deployment_for(connector())["spec"]["template"]["metadata"]["annotations"]
    after = deployment_for(connector(window={"maxMessages": 5}))["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert before[CONFIG_HASH_ANNOTATION] != after[CONFIG_HASH_ANNOTATION]


def test_secrets_are_only_referenced() -> None:
    c = connector(
        source={
            "kafka": {
                "bootstrapServers": ["kafka:9093"],
                "topics": ["t"],
                "auth": {"secretRef": {"name": "kafka-creds"}},
            }
        },
        sink={
            "uri": "https://f/",
            "auth": {"bearerTokenSecretRef": {"name": "fn-token", "key": "token"}},
        },
    )
    env = {item["name"]: item for item in build_env(c)}
    assert env["SLUICE_KAFKA_USERNAME"]["valueFrom"]["secretKeyRef"] == {
        "name": "kafka-creds",
        "key": "username",
        "optional": True,
    }
    assert env["SLUICE_KAFKA_KEY_PEM"]["valueFrom"]["secretKeyRef"]["key"] == "tls.key"
    assert env["SLUICE_SINK_BEARER_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "fn-token",
        "key": "token",
    }
    assert all("value" not in item for item in env.values())


def test_udf_configmap_is_mounted_and_named_in_the_environment() -> None:
    c = connector(transform={"udf": {"configMapRef": {"name": "code", "key": "main.py"}}})
    deployment = deployment_for(c, udf="def handle_message(e, c): return e")
    runtime = container(deployment)
    assert {"name": "SLUICE_UDF_FILE", "value": "/etc/sluice/udf/udf.py"} in runtime["env"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["udf"]["configMap"] == {
        "name": "code",
        "items": [{"key": "main.py", "path": "udf.py"}],
    }
    assert {"name": "udf", "mountPath": "/etc/sluice/udf", "readOnly": True} in runtime[
        "volumeMounts"
    ]


def test_all_objects_are_owned_labelled_and_selected_alike() -> None:
    c = connector()
    config = render_runtime_config(c, "http://cleaner/", 2)
    objects = [
        build_configmap(c, config, OWNER),
        build_deployment(c, config, 2, SETTINGS, OWNER),
        build_service(c, OWNER),
    ]
    for obj in objects:
        assert obj["metadata"]["name"] == "sluice-ads"
        assert obj["metadata"]["namespace"] == "shop"
        assert obj["metadata"]["ownerReferences"] == [OWNER]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sluice-operator"
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "ads"
    deployment, service = objects[1], objects[2]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"

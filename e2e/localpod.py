"""The kubelet's part, for machines whose local control plane has none.

``LocalPod`` takes a Deployment the operator rendered and runs its container as a local
process: ConfigMap volumes are written to a directory, Secret references are resolved into
environment variables, and the command runs with this environment's ``sluice``. The only
changes to what the pod declares are the mount paths and the metrics port.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

from sluice_operator.kube import Kube, resource_path


class LocalPod:
    """The kubelet's part, for one pod of a Deployment."""

    def __init__(self, kube: Kube, deployment: dict[str, Any], root: Path) -> None:
        self.kube = kube
        self.namespace = deployment["metadata"]["namespace"]
        pod = deployment["spec"]["template"]["spec"]
        [self.container] = pod["containers"]
        self.root = root
        self.mounts: dict[str, Path] = {}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for mount in self.container["volumeMounts"]:
            volume = volumes[mount["name"]]
            target = root / mount["name"]
            target.mkdir()
            if "configMap" in volume:
                self._project_configmap(volume["configMap"], target)
            self.mounts[mount["mountPath"]] = target

    def _project_configmap(self, source: dict[str, Any], target: Path) -> None:
        configmap = self.kube.get(resource_path("v1", "configmaps", self.namespace, source["name"]))
        if configmap is None:
            raise LookupError(f"ConfigMap {self.namespace}/{source['name']} not found")
        for item in source["items"]:
            (target / item["path"]).write_text(configmap["data"][item["key"]])

    def local_path(self, text: str) -> str:
        for mount_path, directory in self.mounts.items():
            if text.startswith(mount_path + "/"):
                return str(directory / text[len(mount_path) + 1 :])
        return text

    def environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in self.container.get("env", []):
            if "value" in item:
                env[item["name"]] = self.local_path(item["value"])
                continue
            ref = item["valueFrom"]["secretKeyRef"]
            secret = self.kube.get(resource_path("v1", "secrets", self.namespace, ref["name"]))
            data = (secret or {}).get("data") or {}
            if ref["key"] in data:
                env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
            else:
                if not ref.get("optional"):
                    raise LookupError(f"Secret key {ref} not found")
        return env

    def command(self, metrics_port: int) -> list[str]:
        [program] = self.container["command"]
        # The image's `sluice` is this environment's entry point.
        executable = str(Path(sys.executable).parent / program)
        args = [self.local_path(arg) for arg in self.container["args"]]
        at = args.index("--metrics-port")
        args[at + 1] = str(metrics_port)
        return [executable, *args]

"""The image scripts/image.sh builds without Docker holds what the Dockerfile says: the same
Python minor version, the project's distribution at its version, user 65532, the entrypoint,
command, environment and port; and it stays under 250 MB. Users with Docker build the
Dockerfile; the node (scripts/node.sh) runs this one, so the two must not drift apart."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import tarfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAX_IMAGE_BYTES = 250 * 1000 * 1000


def dockerfile_final_stage() -> list[tuple[str, str]]:
    """(instruction, argument) pairs of the Dockerfile's last stage."""
    instructions: list[tuple[str, str]] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, argument = line.partition(" ")
        if keyword == "FROM":
            instructions = []
        instructions.append((keyword, argument.strip()))
    return instructions


def instruction(stage: list[tuple[str, str]], keyword: str) -> str:
    found = [argument for key, argument in stage if key == keyword]
    assert len(found) == 1, f"the Dockerfile's last stage should have one {keyword}"
    return found[0]


class OciImage:
    """One image of an OCI layout, read with the standard library."""

    def __init__(self, reference: str) -> None:
        layout, _, tag = reference.rpartition(":")
        self.layout = Path(layout)
        index = json.loads((self.layout / "index.json").read_text())
        [entry] = [
            m
            for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
        ]
        manifest = self.blob_json(entry["digest"])
        self.config: dict[str, Any] = self.blob_json(manifest["config"]["digest"])["config"]
        self.layers = [layer["digest"] for layer in manifest["layers"]]

    def blob(self, digest: str) -> Path:
        algorithm, _, value = digest.partition(":")
        return self.layout / "blobs" / algorithm / value

    def blob_json(self, digest: str) -> Any:
        return json.loads(self.blob(digest).read_text())

    def files(self) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
        for digest in self.layers:
            with gzip.open(self.blob(digest)) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
                for member in tar:
                    yield tar, member

    def uncompressed_size(self) -> int:
        total = 0
        for digest in self.layers:
            with gzip.open(self.blob(digest)) as raw:
                while chunk := raw.read(1 << 20):
                    total += len(chunk)
        return total


@pytest.fixture(scope="module")
def image() -> OciImage:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("building the image without Docker needs root on a Debian-like machine")
    built = subprocess.run(
        [ROOT / "scripts" / "image.sh", "build"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return OciImage(built.stdout.strip().splitlines()[-1])


def test_image_runs_as_the_dockerfile_says(image: OciImage) -> None:
    stage = dockerfile_final_stage()
    assert image.config["User"] == instruction(stage, "USER")
    assert image.config["Entrypoint"] == json.loads(instruction(stage, "ENTRYPOINT"))
    assert image.config["Cmd"] == json.loads(instruction(stage, "CMD"))
    assert set(image.config["ExposedPorts"]) == {
        f"{port}/tcp" for port in instruction(stage, "EXPOSE").split()
    }
    environment = dict(item.split("=", 1) for item in image.config["Env"])
    for item in instruction(stage, "ENV").split():
        name, _, value = item.partition("=")
        assert environment.get(name) == value, name


def test_image_holds_the_same_python_distribution_and_user(image: OciImage) -> None:
    base = instruction(dockerfile_final_stage(), "FROM")
    wanted_python = re.fullmatch(r"python:(\d+\.\d+)\.\d+-\S+", base)
    assert wanted_python, f"unexpected base image {base}"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

    pythons: set[str] = set()
    distribution = None
    user_line = None
    for tar, member in image.files():
        name = member.name.lstrip("./")
        if match := re.fullmatch(r"usr/bin/python(\d+\.\d+)", name):
            pythons.add(match.group(1))
        elif re.fullmatch(r"usr/local/lib/python[\d.]+/dist-packages/sluice-[^/]+/METADATA", name):
            metadata = tar.extractfile(member)
            assert metadata is not None
            distribution = re.search(r"^Version: (\S+)$", metadata.read().decode(), re.M)
        elif name == "etc/passwd":
            passwd = tar.extractfile(member)
            assert passwd is not None
            user_line = next(
                (line for line in passwd.read().decode().splitlines() if ":65532:" in line),
                user_line,
            )
    assert pythons == {wanted_python.group(1)}
    assert distribution is not None
    assert distribution.group(1) == version
    assert user_line is not None
    assert user_line.split(":")[2:4] == ["65532", "65532"]
    assert user_line.endswith(":/usr/sbin/nologin")


def test_image_is_under_250_mb(image: OciImage) -> None:
    assert image.uncompressed_size() < MAX_IMAGE_BYTES

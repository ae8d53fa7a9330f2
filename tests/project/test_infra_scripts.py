"""The infrastructure scripts fail fast with one clear line when the machine is not right,
refuse to start twins, and leave no process behind when stopped."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
# What the scripts need from the machine besides the tool a test hides.
BASE_COMMANDS = [
    "bash",
    "cat",
    "curl",
    "cut",
    "dirname",
    "grep",
    "head",
    "kill",
    "mkdir",
    "mv",
    "od",
    "rm",
    "sed",
    "seq",
    "setsid",
    "sha256sum",
    "sleep",
    "tail",
    "timeout",
    "touch",
    "tr",
    "unzip",
    "openssl",
    "ss",
]


def run(
    script: str, *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def path_without(tmp_path: Path, *hidden: str) -> str:
    """A PATH holding the usual commands, minus the hidden ones."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in [*BASE_COMMANDS, "java", "javac", "mvn", "go"]:
        found = shutil.which(name)
        if name not in hidden and found and not (bin_dir / name).exists():
            (bin_dir / name).symlink_to(found)
    return str(bin_dir)


def path_hiding(tmp_path: Path, hidden: str) -> str:
    """A PATH with every command of this one but ``hidden`` (Maven needs many)."""
    bin_dir = tmp_path / "all-but"
    bin_dir.mkdir(exist_ok=True)
    for folder in os.environ["PATH"].split(os.pathsep):
        if not Path(folder).is_dir():
            continue
        for command in Path(folder).iterdir():
            link = bin_dir / command.name
            if command.name != hidden and not link.exists() and os.access(command, os.X_OK):
                link.symlink_to(command)
    return str(bin_dir)


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    """Environment whose state folder is private to the test and whose ports are free."""
    env = dict(os.environ)
    env["SLUICE_STATE"] = str(tmp_path / "state")
    env["SLUICE_KAFKA_PORT"] = str(free_port())
    env["SLUICE_KAFKA_CONTROLLER_PORT"] = str(free_port())
    env["SLUICE_KAFKA_SASL_PORT"] = str(free_port())
    env["SLUICE_APISERVER_PORT"] = str(free_port())
    env["SLUICE_ETCD_PORT"] = str(free_port())
    return env


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_missing_java_is_one_clear_line(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    env = {
        **isolated_env,
        "PATH": path_without(tmp_path, "java"),
        "SLUICE_TOOLS_CACHE": str(tmp_path / "empty-cache"),
    }
    line = one_error_line(run("kafka.sh", "up", env=env, timeout=30))
    assert "'java' not found" in line
    assert "install" in line


def test_event_ruler_without_java_is_one_clear_line(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    env = {
        **isolated_env,
        "PATH": path_without(tmp_path, "java", "javac"),
        "SLUICE_TOOLS_CACHE": str(tmp_path / "empty-cache"),
    }
    line = one_error_line(run("event-ruler.sh", "classpath", env=env, timeout=30))
    assert "'java' not found" in line
    assert "install" in line


def test_event_ruler_harness_compiles_on_a_java_runtime_without_javac(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    """A machine with only a Java runtime compiles the harness with the Eclipse compiler;
    the jars come from the shared cache (fetched there first if need be)."""
    fetched = run("event-ruler.sh", "fetch", env=isolated_env, timeout=600)
    assert fetched.returncode == 0, fetched.stderr
    pom = (SCRIPTS / "event-ruler" / "pom.xml").read_text()
    version = pom.split("<event-ruler.version>")[1].split("<")[0]
    shared = Path(
        os.environ.get("SLUICE_TOOLS_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sluice"
    )
    cache = tmp_path / "cache"
    (cache / f"event-ruler-{version}").mkdir(parents=True)
    (cache / f"event-ruler-{version}" / "libs").symlink_to(
        shared / f"event-ruler-{version}" / "libs"
    )
    env = {**isolated_env, "PATH": path_hiding(tmp_path, "javac"), "SLUICE_TOOLS_CACHE": str(cache)}
    result = run("event-ruler.sh", "classpath", env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    classpath = result.stdout.strip().splitlines()[-1]
    answer = subprocess.run(
        ["java", "-cp", classpath, "EventRulerHarness"],
        input='{"pattern": "{\\"a\\": [1]}", "events": ["{\\"a\\": 1}", "{\\"a\\": 2}"]}\n',
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert answer.stdout.strip() == "OK 10", answer.stderr


def test_missing_go_is_one_clear_line(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    env = {
        **isolated_env,
        "PATH": path_without(tmp_path, "go"),
        "SLUICE_TOOLS_CACHE": str(tmp_path / "empty-cache"),
    }
    line = one_error_line(run("cluster.sh", "build", env=env, timeout=30))
    assert "'go' not found" in line
    assert "SLUICE_TEST_KUBECONFIG" in line


def test_taken_port_is_one_clear_line(isolated_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        kafka = run("kafka.sh", "up", env={**isolated_env, "SLUICE_KAFKA_PORT": str(port)})
        apiserver = run(
            "cluster.sh", "up", env={**isolated_env, "SLUICE_APISERVER_PORT": str(port)}
        )
    for result in (kafka, apiserver):
        line = one_error_line(result)
        assert f"port {port}" in line
        assert "already in use" in line


def test_corrupt_kafka_cache_is_fetched_again(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    cache = tmp_path / "cache"
    version = (SCRIPTS / "kafka" / "pom.xml").read_text().split("<kafka.version>")[1].split("<")[0]
    libs = cache / f"kafka-{version}" / "libs"
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{version}.jar").write_bytes(b"not a zip")
    (libs / f"kafka-clients-{version}.jar").write_bytes(b"not a zip")
    (libs / ".complete").touch()
    result = run(
        "kafka.sh", "fetch", env={**isolated_env, "SLUICE_TOOLS_CACHE": str(cache)}, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "corrupt" in result.stderr
    assert (libs / f"kafka_2.13-{version}.jar").stat().st_size > 1_000_000


def _pids(state: Path) -> list[int]:
    return [int(p.read_text()) for p in state.rglob("*.pid")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def stopper(isolated_env: dict[str, str]) -> Iterator[None]:
    yield
    run("kafka.sh", "down", env=isolated_env)
    run("cluster.sh", "down", env=isolated_env)


@pytest.mark.usefixtures("stopper")
@pytest.mark.parametrize("script", ["kafka.sh", "cluster.sh"])
def test_up_twice_then_down_leaves_nothing(script: str, isolated_env: dict[str, str]) -> None:
    state = Path(isolated_env["SLUICE_STATE"])
    first = run(script, "up", env=isolated_env, timeout=600)
    assert first.returncode == 0, first.stderr
    pids = _pids(state)
    assert pids
    assert all(_alive(pid) for pid in pids)

    second = run(script, "up", env=isolated_env)
    assert second.returncode == 0
    assert "already running" in second.stderr
    assert sorted(_pids(state)) == sorted(pids), "a second up started a twin"

    down = run(script, "down", env=isolated_env)
    assert down.returncode == 0, down.stderr
    assert not any(_alive(pid) for pid in pids)
    assert _pids(state) == []

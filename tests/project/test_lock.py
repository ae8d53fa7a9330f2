"""requirements-dev.lock, which `make venv` installs, pins every dependency that
pyproject.toml declares, at a version its range allows (else: run `make lock`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements-dev.lock").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"not a pin: {line}"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def test_the_lock_pins_every_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [
        Requirement(text)
        for text in project["dependencies"] + project["optional-dependencies"]["dev"]
    ]
    pins = _pins()
    unpinned = [
        str(requirement)
        for requirement in declared
        if (pin := pins.get(canonicalize_name(requirement.name))) is None
        or not requirement.specifier.contains(pin, prereleases=True)
    ]
    assert not unpinned, f"run `make lock`: requirements-dev.lock lacks {unpinned}"

"""Every shell script passes bash -n and shellcheck (the kind e2e script cannot run here,
so this is its check)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [
    *sorted((ROOT / "scripts").glob("*.sh")),
    ROOT / "scripts" / "node" / "cni-host-ports",
    ROOT / "e2e" / "kind.sh",
    ROOT / ".ci" / "run",
]
SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or "shellcheck"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_is_clean(script: Path) -> None:
    syntax = subprocess.run(["bash", "-n", script], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run(
        [SHELLCHECK, "-x", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert lint.returncode == 0, lint.stdout

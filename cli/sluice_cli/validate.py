"""``sluice validate FILE…``: the offline check of Connector manifests for GitOps CI.

Each Connector document goes through :func:`sluice_runtime.speccheck.check_connector`,
the check the operator runs too, which reports every problem of a manifest (schema,
bounds, patterns, JSONPaths, templates, UDF syntax, resources) and never runs UDF code.
Problems print as ``file:line: field: problem`` so editors and CI annotations can point at
them. Files are read within bounds (size, nesting, alias expansion: see
:mod:`sluice_runtime.manifests`), so any file is answered in seconds, never with a
traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from sluice_runtime.config import Udf
from sluice_runtime.errors import FieldPath, ManifestError
from sluice_runtime.manifests import read_manifest_documents
from sluice_runtime.speccheck import ReadUdfSource, check_connector
from sluice_runtime.transform import load_udf_source


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def _line_of(node: yaml.Node | None, path: FieldPath) -> int | None:
    """Line (1-based) of the deepest node along ``path`` in a composed YAML document."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == key), None)
            if pair is None:
                break
            line = pair[0].start_mark.line + 1  # the key's line reads best in messages
            node = pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def udf_beside(base_dir: Path) -> ReadUdfSource:
    """UDF sources as ``sluice run`` finds them: inline, or a file relative to the
    manifest. A ConfigMap lives in the cluster: its source is not checked offline."""

    def read(udf: Udf, where: FieldPath) -> str | None:
        if udf.file is None:
            return None
        return load_udf_source(udf, base_dir, where)

    return read


def check_file(path: Path) -> tuple[int, list[Problem]]:
    """(Connectors checked, problems) for one file."""
    name = str(path)
    try:
        documents = read_manifest_documents(path)
    except ManifestError as error:
        return 0, [Problem(name, error.line or 0, error.reason or str(error))]
    problems: list[Problem] = []
    checked = 0
    read_udf = udf_beside(path.resolve().parent)
    for document in documents:
        if not document.is_connector:
            continue
        checked += 1
        result = check_connector(document.data, read_udf)
        found = [
            Problem(name, _line_of(document.node, problem.path) or document.line, str(problem))
            for problem in result.problems
        ]
        problems += sorted(found, key=lambda problem: problem.line)
    return checked, problems


def run_validate(paths: list[str]) -> int:
    """Exit status: 0 all valid, 1 problems found, 2 nothing to check."""
    total = 0
    failed = False
    for raw in paths:
        try:
            checked, problems = check_file(Path(raw))
        except Exception as error:  # a bug of ours: still one line, never a traceback
            checked = 0
            problems = [Problem(raw, 0, f"could not be checked: {type(error).__name__}: {error}")]
        total += checked
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            failed = True
        elif checked:
            print(f"{raw}: {checked} Connector(s) valid")
    if failed:
        return 1
    if total == 0:
        print("no Connector manifests found in " + ", ".join(paths), file=sys.stderr)
        return 2
    return 0

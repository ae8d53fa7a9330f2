"""``sluice validate FILE…``: the offline check of Connector manifests for GitOps CI.

Each Connector document is checked against the spec models (the same rules the CRD's
schema and CEL rules enforce) and then compiled exactly as the runtime would compile it
(patterns, JSONPaths, templates, UDF syntax). Problems print as ``file:line: field: what``
so editors and CI annotations can point at them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sluice_runtime.config import KIND, Connector, format_validation_error
from sluice_runtime.errors import SpecError
from sluice_runtime.processors import build_processor


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def _line_of(node: yaml.Node | None, path: tuple[str | int, ...]) -> int | None:
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


def _field_path(text: str) -> tuple[str, ...]:
    """'spec.filter.pattern.value[0]: ...' -> ('spec', 'filter', 'pattern', 'value')."""
    head = text.split(":", 1)[0].strip()
    return tuple(part.split("[", 1)[0] for part in head.split(".") if part)


def check_document(data: Any, node: yaml.Node, file: str, base_dir: Path) -> list[Problem]:
    start = node.start_mark.line + 1
    try:
        connector = Connector.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            loc = tuple(item["loc"])
            where = ".".join(str(p) for p in loc) or "(top level)"
            message = item["msg"].removeprefix("Value error, ")
            problems.append(Problem(file, _line_of(node, loc) or start, f"{where}: {message}"))
        return problems or [Problem(file, start, format_validation_error(error, file))]
    transform = connector.spec.transform
    if transform is not None and transform.udf is not None and transform.udf.config_map_ref:
        # The source lives in the cluster; check what can be checked here.
        spec = connector.spec.model_copy(update={"transform": None})
        connector = connector.model_copy(update={"spec": spec})
    try:
        build_processor(connector, base_dir)
    except SpecError as error:
        text = str(error)
        return [Problem(file, _line_of(node, _field_path(text)) or start, text)]
    return []


def check_file(path: Path) -> tuple[int, list[Problem]]:
    """(Connectors checked, problems) for one file."""
    name = str(path)
    try:
        text = path.read_text()
    except OSError as error:
        return 0, [Problem(name, 0, f"cannot read: {error.strerror}")]
    try:
        nodes = list(yaml.compose_all(text))
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        return 0, [Problem(name, line, f"not valid YAML: {getattr(error, 'problem', error)}")]
    problems: list[Problem] = []
    checked = 0
    for data, node in zip(documents, nodes, strict=True):
        if not isinstance(data, dict) or data.get("kind") != KIND:
            continue
        checked += 1
        problems += check_document(data, node, name, path.resolve().parent)
    return checked, problems


def run_validate(paths: list[str]) -> int:
    """Exit status: 0 all valid, 1 problems found, 2 nothing to check."""
    total = 0
    failed = False
    for raw in paths:
        checked, problems = check_file(Path(raw))
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

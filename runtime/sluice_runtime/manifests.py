"""Reading manifest files (YAML or JSON): every document with its node tree, for line
numbers, within bounds that no Connector comes near.

A manifest comes from whoever opens a pull request, so reading one must cost little
whatever it holds. Before anything is built, one pass over the parser's events (no
recursion) refuses:

- nesting deeper than :data:`MAX_DEPTH` levels, which would exhaust the recursion of the
  YAML composer and of everything that walks the data afterwards;
- more than :data:`MAX_NODES` nodes in the file, aliases expanded: a 1 KB "billion laughs"
  file names one list nine times, that list nine others, and so on, and anything that
  walks the loaded data (a pattern compiler, a JSON encoder) sees 10^9 values. The bound
  also keeps building the data (some microseconds a node) within a few seconds.

Aliases are bounded, not refused: ``kubectl`` applies manifests that use anchors (it
bounds their expansion too), so refusing them would make ``sluice validate`` fail files
the cluster accepts. The bound counts the expanded tree, so it also catches a bomb that
uses a few dozen aliases only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from sluice_runtime.config import KIND
from sluice_runtime.errors import ManifestError

MAX_FILE_BYTES: Final = 8 * 2**20
"""A Kubernetes object is at most 1.5 MiB in etcd; a file of several fits in this."""
MAX_DEPTH: Final = 100
"""Levels of mappings and sequences, aliases expanded."""
MAX_NODES: Final = 100_000
"""Mappings, sequences and scalars in one file, aliases expanded: a hundred Connectors
with large patterns."""

# libyaml's parser when the wheel has it: parsing is then fast enough for any file size
# allowed; the bounds below do not depend on which one runs.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class ManifestDocument:
    """One document of a manifest file: its data and its YAML node tree (for lines)."""

    data: Any
    node: yaml.Node

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    @property
    def is_connector(self) -> bool:
        return isinstance(self.data, dict) and self.data.get("kind") == KIND


def read_manifest_documents(path: Path) -> list[ManifestDocument]:
    """Every document in the file at ``path``; ManifestError (with a line where one
    applies) when the file cannot be read, is not YAML or is out of bounds."""
    origin = str(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ManifestError(origin, reason=f"cannot read: {error.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ManifestError(
            origin, reason=f"larger than {MAX_FILE_BYTES // 2**20} MiB: not a manifest"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ManifestError(
            origin, reason=f"not UTF-8 text: {error.reason} at byte {error.start}"
        ) from None
    return parse_manifest_documents(text, origin)


def parse_manifest_documents(text: str, origin: str) -> list[ManifestDocument]:
    """Every document in ``text`` (see :func:`read_manifest_documents`)."""
    try:
        _check_bounds(text, origin)
        loader = _Loader(text)
        try:
            documents = []
            while loader.check_node():
                node = loader.get_node()
                if node is not None:
                    _refuse_duplicate_keys(node, origin)
                    documents.append(ManifestDocument(loader.construct_document(node), node))
            return documents
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise ManifestError(
            origin,
            reason=f"not valid YAML: {problem}",
            line=mark.line + 1 if mark is not None else None,
        ) from None


def _refuse_duplicate_keys(root: yaml.Node, origin: str) -> None:
    """A mapping that names a key twice: YAML loaders keep the last one, so the first
    (a filter's condition, say) would be dropped without a word, where event-ruler
    refuses a pattern that names an operator twice. Iterative, and each node is walked
    once however many aliases name it. Merge keys (``<<``) are YAML's own way to
    override and are left to the loader."""
    pending, seen = [root], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_lines: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    first = first_lines.get((key.tag, key.value))
                    if first is not None:
                        raise ManifestError(
                            origin,
                            reason=f"the key {key.value!r} appears twice in one mapping (first at"
                            f" line {first}): YAML keeps only the last",
                            line=line,
                        )
                    first_lines[key.tag, key.value] = line
                pending += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value


def _check_bounds(text: str, origin: str) -> None:
    """Walk the parser's events once: depth and expanded size of every document."""
    anchors: dict[str, tuple[int, int]] = {}  # anchor → (expanded nodes, levels)
    # Each open collection: [its anchor, the node count before it, its levels so far].
    open_collections: list[tuple[str | None, int, list[int]]] = []
    nodes = 0
    aliases_used = False

    def refuse(event: yaml.Event, reason: str) -> ManifestError:
        mark = event.start_mark
        return ManifestError(origin, reason=reason, line=mark.line + 1 if mark else None)

    def grow_parent(levels: int) -> None:
        if open_collections:
            parent_levels = open_collections[-1][2]
            parent_levels[0] = max(parent_levels[0], levels + 1)

    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.DocumentStartEvent):
            anchors.clear()  # anchors are local to a document
            continue
        if isinstance(event, yaml.CollectionStartEvent):
            nodes += 1
            if len(open_collections) + 1 > MAX_DEPTH:
                raise refuse(event, f"nested more than {MAX_DEPTH} levels deep")
            open_collections.append((event.anchor, nodes - 1, [1]))
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, before, (levels,) = open_collections.pop()
            if anchor is not None:
                anchors[anchor] = (nodes - before, levels)
            grow_parent(levels)
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                anchors[event.anchor] = (1, 0)
        elif isinstance(event, yaml.AliasEvent):
            # An undefined alias counts as one node; the composer reports it.
            size, levels = anchors.get(event.anchor or "", (1, 0))
            nodes += size
            aliases_used = True
            if len(open_collections) + levels > MAX_DEPTH:
                raise refuse(event, f"nested more than {MAX_DEPTH} levels deep through aliases")
            grow_parent(levels)
        else:
            continue
        if nodes > MAX_NODES:
            raise refuse(
                event,
                f"aliases expand this file to more than {MAX_NODES} nodes"
                if aliases_used
                else f"more than {MAX_NODES} nodes in one file",
            )

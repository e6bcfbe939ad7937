"""Label hierarchies: the label set, its parent links and the label sequences HiSR ranks.

This file travels with every checkpoint (``trust_remote_code``): it imports only the standard
library, ``numpy`` and ``torch``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

ROOT = "Root"
_TOP_LEVEL_MARKERS = (None, ROOT, "")


class LabelHierarchy:
    """A set of labels with parent links under an implicit ``Root``.

    Trees are the common case; a label may also have several parents (a DAG). Labels get ids in
    level order: every parent has a smaller id than its children, and labels of one depth are
    contiguous. In a DAG the depth of a label is one more than the depth of its deepest parent.

    Build one with :meth:`from_parents`, :meth:`from_taxonomy_file` or :meth:`from_label_paths`.

    Example:

    ```python
    >>> from hisr_hf import LabelHierarchy
    >>> h = LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A", "A.y": "A"})
    >>> h.labels
    ['A', 'B', 'A.x', 'A.y']
    >>> sorted(h.close({"A.y"}))
    ['A', 'A.y']
    ```
    """

    def __init__(self, parents: Mapping[str, Sequence[str]]):
        self._parents, self._labels, self._depth = _validate_and_order(parents)
        self._label2id = {label: i for i, label in enumerate(self._labels)}
        self._children: dict[str, list[str]] = {label: [] for label in self._labels}
        for label in self._labels:
            for parent in self._parents[label]:
                self._children[parent].append(label)
        self._ancestors: dict[str, tuple[str, ...]] = {}
        for label in self._labels:  # level order: parents are done before their children
            found = set()
            for parent in self._parents[label]:
                found.add(parent)
                found.update(self._ancestors[parent])
            self._ancestors[label] = tuple(sorted(found, key=self._label2id.__getitem__))
        # Index structures built on first use (the hierarchy is immutable once built).
        self._sequence_index: tuple[torch.Tensor, torch.Tensor] | None = None
        self._parent_ids: list[tuple[int, ...]] | None = None
        self._children_index: torch.Tensor | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_parents(cls, mapping: Mapping[str, Any]) -> LabelHierarchy:
        """Build from a ``child -> parent`` mapping.

        Args:
            mapping (`Mapping[str, None | str | list[str]]`):
                Every label is a key. A value of `None`, `"Root"` or `[]` marks a top-level label, a
                string names the parent, a list names several parents (a DAG).
        """
        if not isinstance(mapping, Mapping):
            raise ValueError(
                f"LabelHierarchy.from_parents expects a mapping child -> parent, got {type(mapping).__name__}."
            )
        parents: dict[str, list[str]] = {}
        for child, value in mapping.items():
            if not isinstance(child, str) or not child:
                raise ValueError(f"Label names must be non-empty strings, got {child!r}.")
            if value in _TOP_LEVEL_MARKERS:
                parents[child] = []
            elif isinstance(value, str):
                parents[child] = [value]
            elif isinstance(value, (list, tuple)):
                if not all(isinstance(p, str) for p in value):
                    raise ValueError(f"Parents of label {child!r} must be strings, got {value!r}.")
                parents[child] = [p for p in value if p != ROOT]
            else:
                raise ValueError(
                    f"Parent of label {child!r} must be None, 'Root', a label name or a list of label names, "
                    f"got {value!r}."
                )
        return cls(parents)

    @classmethod
    def from_taxonomy_file(cls, path: str | os.PathLike) -> LabelHierarchy:
        """Read the field's HiAGM taxonomy file: one line per parent, ``parent<TAB>child<TAB>child...``.

        The first line's parent is ``Root`` (its children are the top-level labels). A child listed under
        several parents makes a DAG.
        """
        parents: dict[str, list[str]] = {}
        seen_parent_lines: dict[str, int] = {}
        declared_as_parent: dict[str, int] = {}
        with open(path, encoding="utf-8") as handle:
            lines = [line.rstrip("\n").rstrip("\r") for line in handle]
        content = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
        if not content:
            raise ValueError(f"Taxonomy file {path} is empty: expected a first line 'Root<TAB>top-level labels'.")
        first_number, first_line = content[0]
        if first_line.split("\t")[0].strip() != ROOT:
            raise ValueError(
                f"{path}:{first_number}: the first line must start with 'Root<TAB>', got {first_line[:60]!r}."
            )
        for number, line in content:
            fields = [field.strip() for field in line.split("\t")]
            parent, children = fields[0], fields[1:]
            if not parent or any(not child for child in children):
                raise ValueError(f"{path}:{number}: empty label name in {line!r}.")
            if parent in seen_parent_lines:
                raise ValueError(
                    f"{path}:{number}: parent {parent!r} already has a line ({path}:{seen_parent_lines[parent]}); "
                    "list all children of a parent on one line."
                )
            seen_parent_lines[parent] = number
            if parent != ROOT:
                declared_as_parent[parent] = number
            duplicates = sorted(label for label, count in Counter(children).items() if count > 1)
            if duplicates:
                raise ValueError(f"{path}:{number}: label(s) {duplicates} listed twice under parent {parent!r}.")
            for child in children:
                if child == ROOT:
                    raise ValueError(f"{path}:{number}: 'Root' is reserved for the implicit top node.")
                parents.setdefault(child, [])
                if parent != ROOT:
                    parents[child].append(parent)
        orphans = sorted(p for p in declared_as_parent if p not in parents)
        if orphans:
            where = ", ".join(f"{p!r} ({path}:{declared_as_parent[p]})" for p in orphans[:10])
            raise ValueError(
                f"Parent(s) that are not labels: {where}. Every parent must appear as a child of 'Root' or of "
                "another label."
            )
        return cls(parents)

    @classmethod
    def from_label_paths(cls, paths: Iterable[str], sep: str = "/") -> LabelHierarchy:
        """Build a tree from path strings such as ``"Science/Physics/Optics"``.

        Every prefix of a path becomes a label, named by the prefix itself (``"Science"``,
        ``"Science/Physics"``, ``"Science/Physics/Optics"``), so equal segment names under different
        parents stay different labels.
        """
        parents: dict[str, list[str]] = {}
        for path in paths:
            if not isinstance(path, str):
                raise ValueError(f"Label paths must be strings, got {path!r}.")
            segments = [segment.strip() for segment in path.split(sep)]
            if not path.strip() or any(not segment for segment in segments):
                raise ValueError(f"Label path {path!r} has an empty segment (separator {sep!r}).")
            prefix = None
            for segment in segments:
                name = segment if prefix is None else f"{prefix}{sep}{segment}"
                parents.setdefault(name, [] if prefix is None else [prefix])
                prefix = name
        return cls(parents)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelHierarchy:
        """Inverse of :meth:`to_dict`."""
        if (
            not isinstance(data, Mapping)
            or not isinstance(data.get("labels"), list)
            or not isinstance(data.get("parents"), list)
            or len(data["labels"]) != len(data["parents"])
        ):
            raise ValueError(
                "Expected {'labels': [...], 'parents': [[...], ...]} with one parent list per label "
                f"(LabelHierarchy.to_dict()), got {str(data)[:200]}."
            )
        if len(set(data["labels"])) != len(data["labels"]):
            twice = sorted(label for label, count in Counter(data["labels"]).items() if count > 1)
            raise ValueError(f"Label(s) {twice[:10]} appear twice in 'labels'.")
        return cls.from_parents(dict(zip(data["labels"], data["parents"])))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form in id order: ``{"labels": [...], "parents": [[parents of label 0], ...]}``.

        Lists, not a mapping, so the id order survives JSON writers that sort keys."""
        return {"labels": list(self._labels), "parents": [list(self._parents[label]) for label in self._labels]}

    # ------------------------------------------------------------------ queries
    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    @property
    def label2id(self) -> dict[str, int]:
        return dict(self._label2id)

    @property
    def num_labels(self) -> int:
        return len(self._labels)

    @property
    def max_depth(self) -> int:
        return max(self._depth.values())

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label: object) -> bool:
        return label in self._label2id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelHierarchy) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"LabelHierarchy(num_labels={self.num_labels}, max_depth={self.max_depth}, edges={len(self.edges())})"

    def _check(self, label: str) -> str:
        if label not in self._label2id:
            raise ValueError(f"Unknown label {label!r}; the hierarchy has {self.num_labels} labels, e.g. {self._labels[:5]}.")
        return label

    def parents(self, label: str) -> list[str]:
        return list(self._parents[self._check(label)])

    def children(self, label: str | None = None) -> list[str]:
        """Children of ``label``; the top-level labels for ``None`` or ``"Root"``."""
        if label in _TOP_LEVEL_MARKERS:
            return [label for label in self._labels if not self._parents[label]]
        return list(self._children[self._check(label)])

    def ancestors(self, label: str) -> list[str]:
        """All ancestors of ``label`` (not the label itself), in id order."""
        return list(self._ancestors[self._check(label)])

    def depth(self, label: str) -> int:
        """Depth of ``label``; top-level labels have depth 1."""
        return self._depth[self._check(label)]

    def depths(self) -> list[int]:
        """Depth of every label, in id order."""
        return [self._depth[label] for label in self._labels]

    def leaves(self) -> list[str]:
        return [label for label in self._labels if not self._children[label]]

    def edges(self) -> list[tuple[int, int]]:
        """``(parent_id, child_id)`` for every parent link between two labels, ordered by child id."""
        return [(self._label2id[p], self._label2id[c]) for c in self._labels for p in self._parents[c]]

    def sequence(self, label: str) -> list[str]:
        """The label's sequence: its ancestors and the label itself, in id order."""
        return [*self.ancestors(label), label]

    def path_matrix(self) -> torch.Tensor:
        """Bool tensor ``M`` of shape ``(L, L)`` with ``M[j, i]`` true iff label i is in the sequence of j.

        The spec's form, for small hierarchies and tests; it grows as ``L ** 2`` (100 MB at 10,000 labels), so
        the library itself uses :meth:`sequence_index`."""
        matrix = torch.zeros(self.num_labels, self.num_labels, dtype=torch.bool)
        for j, label in enumerate(self._labels):
            matrix[j, j] = True
            for ancestor in self._ancestors[label]:
                matrix[j, self._label2id[ancestor]] = True
        return matrix

    def sequence_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded label ids of every sequence: ``(L, D)`` long with padding value ``L``, and lengths ``(L,)``.

        ``D`` is the size of the longest sequence (the depth, in a tree), so the index costs ``O(L * depth)``
        where :meth:`path_matrix` costs ``O(L ** 2)``; decoding, metrics and the loss all work from it."""
        if self._sequence_index is None:
            sequences = [[self._label2id[a] for a in self._ancestors[label]] + [j] for j, label in enumerate(self._labels)]
            width = max(len(s) for s in sequences)
            index = np.full((self.num_labels, width), self.num_labels, dtype=np.int64)
            for j, seq in enumerate(sequences):
                index[j, : len(seq)] = seq
            lengths = np.asarray([len(s) for s in sequences], dtype=np.int64)
            self._sequence_index = (torch.from_numpy(index), torch.from_numpy(lengths))
        index, lengths = self._sequence_index
        return index.clone(), lengths.clone()

    def parent_ids(self) -> list[tuple[int, ...]]:
        """Ids of the parents of every label, in id order (empty for top-level labels)."""
        if self._parent_ids is None:
            self._parent_ids = [tuple(self._label2id[p] for p in self._parents[label]) for label in self._labels]
        return list(self._parent_ids)

    def children_index(self) -> torch.Tensor:
        """Padded child ids of every label plus the implicit root: ``(L + 1, W)`` long, padding value ``L``.

        Row ``L`` lists the top-level labels; ``W`` is the largest number of children of one node."""
        if self._children_index is None:
            rows = [[self._label2id[c] for c in self._children[label]] for label in self._labels]
            rows.append([j for j, label in enumerate(self._labels) if not self._parents[label]])
            width = max(1, max(len(row) for row in rows))
            table = np.full((self.num_labels + 1, width), self.num_labels, dtype=np.int64)
            for j, row in enumerate(rows):
                table[j, : len(row)] = row
            self._children_index = torch.from_numpy(table)
        return self._children_index.clone()

    def close(self, label_set: Iterable[str]) -> set[str]:
        """The ancestor-closed set: every label of ``label_set`` plus all of its ancestors."""
        closed: set[str] = set()
        unknown = [label for label in label_set if label not in self._label2id]
        if unknown:
            raise ValueError(
                f"{len(unknown)} unknown label(s): {sorted(set(unknown))[:10]}; known labels look like {self._labels[:5]}."
            )
        for label in label_set:
            closed.add(label)
            closed.update(self._ancestors[label])
        return closed

    def encode(self, label_sets: Iterable[Iterable[str]]) -> np.ndarray:
        """Ancestor-closed multi-hot matrix ``(N, L)`` (float32) for a list of label sets."""
        rows = [sorted(self._label2id[label] for label in self.close(labels)) for labels in label_sets]
        matrix = np.zeros((len(rows), self.num_labels), dtype=np.float32)
        for i, ids in enumerate(rows):
            matrix[i, ids] = 1.0
        return matrix

    def prior(self, label_sets: Iterable[Iterable[str]]) -> dict[str, dict[str, float]]:
        """HiAGM top-down prior ``P(child | parent) = n(child) / n(parent)`` from training label sets.

        Counts are over documents after ancestor closure. Returns ``{parent: {child: probability}}`` for
        every parent link; a parent without training documents gives probability 0 to its children.
        """
        return self.prior_from_counts(self.encode(label_sets).sum(axis=0))

    def prior_from_counts(self, counts: Sequence[float] | np.ndarray) -> dict[str, dict[str, float]]:
        """:meth:`prior` from per-label document counts ``(L,)`` (column sums of the multi-hot training labels)."""
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (self.num_labels,):
            raise ValueError(f"counts must have shape ({self.num_labels},), got {counts.shape}.")
        prior: dict[str, dict[str, float]] = {}
        for parent_id, child_id in self.edges():
            parent, child = self._labels[parent_id], self._labels[child_id]
            denominator = counts[parent_id]
            probability = min(float(counts[child_id] / denominator), 1.0) if denominator > 0 else 0.0
            prior.setdefault(parent, {})[child] = probability
        return prior

    def uniform_prior(self) -> dict[str, dict[str, float]]:
        """``1 / number of children`` on every parent link: the prior before any training data is seen."""
        return {
            parent: {child: 1.0 / len(children) for child in children}
            for parent, children in self._children.items()
            if children
        }


def _validate_and_order(
    parents: Mapping[str, Sequence[str]],
) -> tuple[dict[str, tuple[str, ...]], list[str], dict[str, int]]:
    if not parents:
        raise ValueError("The hierarchy is empty: give at least one label.")
    if ROOT in parents:
        raise ValueError("'Root' is reserved for the implicit top node and cannot be a label.")
    clean: dict[str, tuple[str, ...]] = {}
    for child, plist in parents.items():
        duplicates = sorted(p for p, count in Counter(plist).items() if count > 1)
        if duplicates:
            raise ValueError(f"Label {child!r} is listed twice under the same parent(s) {duplicates}.")
        clean[child] = tuple(plist)
    missing = sorted({p for plist in clean.values() for p in plist if p not in clean})
    if missing:
        users = {p: sorted(c for c, plist in clean.items() if p in plist)[:3] for p in missing[:10]}
        raise ValueError(
            f"Parent(s) that are not labels: {missing[:10]} (used by {users}). Add them as labels or use None/'Root' "
            "for top-level labels."
        )
    depth: dict[str, int] = {}
    state: dict[str, int] = {}  # 1 = on the current walk, 2 = done

    def visit(label: str) -> int:
        # Iterative DFS so deep hierarchies do not hit the recursion limit.
        stack = [(label, iter(clean[label]))]
        state[label] = 1
        while stack:
            node, remaining = stack[-1]
            advanced = False
            for parent in remaining:
                if state.get(parent) == 1:
                    walk = [n for n, _ in stack]
                    cycle = walk[walk.index(parent):] + [parent]
                    raise ValueError(f"The hierarchy has a cycle: {' -> '.join(reversed(cycle))}.")
                if state.get(parent) != 2:
                    state[parent] = 1
                    stack.append((parent, iter(clean[parent])))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                depth[node] = 1 + max((depth[p] for p in clean[node]), default=0)
                state[node] = 2
        return depth[label]

    for label in clean:
        if state.get(label) != 2:
            visit(label)
    position = {label: i for i, label in enumerate(clean)}
    ordered = sorted(clean, key=lambda label: (depth[label], position[label]))
    return clean, ordered, depth

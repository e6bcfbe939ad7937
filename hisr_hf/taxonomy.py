"""The label hierarchy of a corpus: read from a HiAGM taxonomy file, inferred from training labels, written back."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from transformers.utils import logging

from .data import parse_label_value
from .hierarchy import ROOT, LabelHierarchy

logger = logging.get_logger(__name__)

_SHOWN = 5  # how many labels an error message lists


def build_hierarchy(
    taxonomy_file: str | os.PathLike | None = None,
    label_lists: Iterable[Any] | None = None,
    sep: str | None = "/",
) -> LabelHierarchy:
    """The label hierarchy: read from a taxonomy file, or inferred from the training labels.

    Args:
        taxonomy_file (`str`, *optional*):
            HiAGM format: `parent<TAB>child<TAB>...` per line, first line `Root<TAB>top-level labels`.
        label_lists (`Iterable`, *optional*):
            One raw label value per training document (see :func:`parse_label_value`); used without a taxonomy.
        sep (`str`, *optional*, defaults to `"/"`): Path separator inside label strings.

    Without a taxonomy the hierarchy is inferred, with a warning:

    - if labels contain `sep`, the labels are paths (`LabelHierarchy.from_label_paths`), unless most documents
      with such a label also carry a plain label that is not its prefix (WOS: `["Medical", "HIV/AIDS"]`), which
      marks names that merely contain `sep`;
    - otherwise they are ancestor-closed lists of names: `a` is an ancestor of `b` when every document with
      `b` also has `a` and `a` has strictly more documents; `b`'s parent is its ancestor with the fewest
      documents. Labels with exactly the same documents are ordered only when their names form a dotted
      prefix chain (`alt` above `alt.atheism`); otherwise the data cannot tell them apart and a `ValueError`
      asks for a taxonomy file.

    Labels of inferred hierarchies are ordered by name, so the ids do not depend on the order of the
    documents. Every returned hierarchy survives :func:`write_taxonomy` and `from_taxonomy_file` unchanged.

    Example:

    ```python
    >>> build_hierarchy(label_lists=[["A", "A.x"], ["A", "A.y"], ["B"]]).labels
    ['A', 'B', 'A.x', 'A.y']
    ```
    """
    if taxonomy_file is not None:
        if not os.path.isfile(taxonomy_file):
            raise FileNotFoundError(f"The taxonomy file {os.fspath(taxonomy_file)} does not exist.")
        return LabelHierarchy.from_taxonomy_file(taxonomy_file)
    if label_lists is None:
        raise ValueError("Give a --taxonomy_file or training labels to infer the hierarchy from.")
    documents = [parse_label_value(value) for value in label_lists]
    names = sorted({name for labels in documents for name in labels})
    if not names:
        raise ValueError(
            f"The {len(documents)} training documents have no labels, so no hierarchy can be inferred; "
            "give a --taxonomy_file."
        )
    if _looks_like_paths(documents, sep):
        hierarchy = LabelHierarchy.from_label_paths(names, sep=sep)
        how = f"label paths split on {sep!r}"
    else:
        hierarchy = _infer_from_cooccurrence(documents, names)
        how = "which labels occur together (ancestor-closed label lists)"
    hierarchy = _canonical(hierarchy)
    logger.warning(
        "No taxonomy file: inferred a hierarchy of %d labels (%d top-level, depth %d) from %s in %d training "
        "documents. Check the written taxonomy, or pass --taxonomy_file to give it.",
        hierarchy.num_labels,
        len(hierarchy.children(None)),
        hierarchy.max_depth,
        how,
        len(documents),
    )
    return hierarchy


def _looks_like_paths(documents: list[list[str]], sep: str | None) -> bool:
    """Whether labels containing ``sep`` are paths, rather than names that happen to contain it.

    A name list such as WOS's ``["Medical", "HIV/AIDS"]`` pairs the label with a plain label that is not
    its path prefix; path lists are leaf-only (``["Science/Physics"]``) or carry their own prefixes
    (``["Science", "Science/Physics"]``). Paths win unless most documents with a separator look like names.
    """
    if not sep:
        return False
    with_sep = names_like = 0
    for labels in documents:
        paths = [label for label in labels if sep in label]
        if not paths:
            continue
        with_sep += 1
        plain = [label for label in labels if sep not in label]
        if any(not any(path.startswith(label + sep) for path in paths) for label in plain):
            names_like += 1
    return with_sep > 0 and names_like * 2 <= with_sep


def _infer_from_cooccurrence(documents: list[list[str]], names: list[str]) -> LabelHierarchy:
    counts: Counter[str] = Counter()
    common: dict[str, set[str]] = {}  # label -> labels present in every document that has it (itself included)
    for labels in documents:
        present = set(labels)
        for label in present:
            counts[label] += 1
            common[label] = common[label] & present if label in common else set(present)

    # Labels with the same documents: only a dotted name chain ("alt", "alt.atheism") orders them.
    classes: dict[str, list[str]] = {}
    ambiguous: list[list[str]] = []
    for label in names:
        if label in classes:
            continue
        same = sorted((a for a in common[label] if counts[a] == counts[label]), key=lambda a: (len(a), a))
        if len(same) > 1 and not all(_is_name_prefix(upper, lower) for upper, lower in zip(same, same[1:])):
            ambiguous.append(same)
        for member in same:
            classes[member] = same
    if ambiguous:
        shown = "; ".join(f"{group} (each in the same {counts[group[0]]} documents)" for group in ambiguous[:_SHOWN])
        raise ValueError(
            f"Cannot infer the hierarchy from the training labels: {len(ambiguous)} group(s) of labels always occur "
            f"together, so none of them can be placed above the others: {shown}. Give the hierarchy with "
            "--taxonomy_file (HiAGM format: one line 'parent<TAB>child<TAB>...' per parent, first line "
            "'Root<TAB>top-level labels')."
        )

    parents: dict[str, str | None] = {}
    for label in names:
        chain = classes[label]
        position = chain.index(label)
        if position > 0:
            parents[label] = chain[position - 1]
            continue
        above = [a for a in common[label] if counts[a] > counts[label]]
        if not above:
            parents[label] = None
            continue
        fewest = min(counts[a] for a in above)
        nearest = {tuple(classes[a]) for a in above if counts[a] == fewest}
        if len(nearest) > 1:
            raise ValueError(
                f"Cannot infer the parent of {label!r}: {sorted(chain[-1] for chain in nearest)} each occur in all "
                f"of its {counts[label]} documents and in {fewest} documents in all. Give the hierarchy with "
                "--taxonomy_file."
            )
        parents[label] = next(iter(nearest))[-1]  # the deepest label of a same-documents chain
    return LabelHierarchy.from_parents(parents)


def _is_name_prefix(upper: str, lower: str) -> bool:
    return len(lower) > len(upper) and lower.startswith(upper) and not lower[len(upper)].isalnum()


def _taxonomy_lines(hierarchy: LabelHierarchy) -> list[list[str]]:
    """``[parent, child, ...]`` rows of the HiAGM file; parent rows ordered so that reading them back keeps ids."""
    label2id = hierarchy.label2id
    rows = [[label, *hierarchy.children(label)] for label in hierarchy.labels if hierarchy.children(label)]
    # from_taxonomy_file numbers the labels of one depth in the order they first appear.
    rows.sort(key=lambda row: min(label2id[child] for child in row[1:]))
    return [[ROOT, *hierarchy.children(None)], *rows]


def _from_lines(rows: list[list[str]]) -> LabelHierarchy:
    """What `LabelHierarchy.from_taxonomy_file` builds from these rows."""
    parents: dict[str, list[str]] = {}
    for parent, *children in rows:
        for child in children:
            parents.setdefault(child, [])
            if parent != ROOT:
                parents[child].append(parent)
    return LabelHierarchy.from_parents(parents)


def _canonical(hierarchy: LabelHierarchy) -> LabelHierarchy:
    """The same hierarchy with ids grouped by parent, the order a taxonomy file round trip keeps."""
    return _from_lines(_taxonomy_lines(hierarchy))


def write_taxonomy(hierarchy: LabelHierarchy, path: str | os.PathLike) -> None:
    """Write ``hierarchy`` as a HiAGM taxonomy file that `LabelHierarchy.from_taxonomy_file` reads back.

    First line `Root<TAB>top-level labels`, then one `parent<TAB>child<TAB>...` line per label with children.
    Hierarchies from a taxonomy file or from :func:`build_hierarchy` read back equal, ids included; for others
    the file holds the same labels and links, and a warning says when the ids would come back in another order.

    Example:

    ```python
    >>> write_taxonomy(hierarchy, "out/hierarchy.taxonomy")
    >>> LabelHierarchy.from_taxonomy_file("out/hierarchy.taxonomy") == hierarchy
    True
    ```
    """
    unwritable = [label for label in hierarchy.labels if label != label.strip() or re.search(r"[\t\r\n]", label)]
    if unwritable:
        raise ValueError(
            f"Label(s) {unwritable[:_SHOWN]} contain a tab, a line break or outer spaces, which a taxonomy file "
            "cannot hold."
        )
    rows = _taxonomy_lines(hierarchy)
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines("\t".join(row) + "\n" for row in rows)
    if _from_lines(rows) != hierarchy:
        logger.warning(
            "%s holds the same labels and links, but reading it back numbers the labels in another order; "
            "keep the model's config.json as the reference for label ids.",
            os.fspath(path),
        )

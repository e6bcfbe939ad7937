"""Data loading for hierarchical text classification: raw files, the label hierarchy, tokenisation, collation.

The flow mirrors the Transformers text-classification examples:

```python
>>> raw = load_raw_datasets(train_file="train.jsonl", validation_file="dev.jsonl")
>>> text_column, label_column = resolve_columns(raw["train"].column_names)
>>> hierarchy = build_hierarchy("wos.taxonomy")  # hisr_hf.taxonomy; or inferred from raw["train"][label_column]
>>> prepared = prepare_datasets(raw, tokenizer, hierarchy, text_column, label_column)
>>> collator = DataCollatorForHierarchicalClassification(tokenizer)
```

Accepted inputs
    Files are JSON lines (`.json`, `.jsonl`; one object per line, blank lines skipped), CSV (`.csv`, with a
    header row), either of them compressed (`.gz`, `.bz2`, `.xz`: `train.jsonl.gz`), or a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`. A Hub dataset is
    read with `datasets.load_dataset`. Texts are strings (a list of tokens is joined with spaces). A document's
    labels are a list of label names, or one string that is

    - a label name (`"cs.ai"`),
    - a path `"a/b/c"` (`sep`, the full path if the hierarchy has it as a label, else its segments),
    - a JSON list (`'["a", "b"]'`) or a Python list literal (`"['a', 'b']"`, what `pandas.to_csv` writes),
    - names separated by `;` or `|` (`"a;b"`, `"a | b"`),

    which is how a CSV label column holds several labels. Lists may be leaf-only or ancestor-closed: the
    labels are closed under the hierarchy either way.

Nothing is dropped silently: malformed lines, missing columns, empty texts, documents without labels and
labels that are not in the hierarchy raise a `ValueError` that names the file, line, split, rows or labels.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import json
import lzma
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase
from transformers.utils import logging

from .hierarchy import LabelHierarchy

logger = logging.get_logger(__name__)

TEXT_COLUMN_CANDIDATES = ("text", "token", "doc_token")
LABEL_COLUMN_CANDIDATES = ("labels", "label", "doc_label")

SPLITS = ("train", "validation", "test")
# Other names the same splits go by, in Hub datasets and in DatasetDict folders.
_SPLIT_ALIASES = {"train": ("train",), "validation": ("validation", "dev", "valid", "eval"), "test": ("test",)}
_JSON_SUFFIXES = (".json", ".jsonl")
_CSV_SUFFIXES = (".csv",)
_COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_UNKNOWN_LABEL_MODES = ("error", "drop")
_MULTI_LABEL_SEPARATORS = re.compile(r"[;|]")
_SHOWN = 5  # how many rows / labels an error message lists
_LABEL_IDS_COLUMN = "__hisr_label_ids"


# ---------------------------------------------------------------------------------------------- raw data
def load_raw_datasets(
    train_file: str | os.PathLike | None = None,
    validation_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    cache_dir: str | None = None,
) -> datasets.DatasetDict:
    """Load the raw splits from files or from a Hub dataset.

    Args:
        train_file, validation_file, test_file (`str`, *optional*):
            JSON lines (`.json`/`.jsonl`), CSV (`.csv`) or a `save_to_disk` folder. A `DatasetDict` folder
            contributes its split of the same name (`validation` also answers to `dev`, `valid`, `eval`), or its
            only split.
        dataset_name (`str`, *optional*):
            A dataset for `datasets.load_dataset`. Its `train`, `validation` (or `dev`/`valid`) and `test`
            splits are kept; a file given as well replaces the Hub split of the same name.
        dataset_config_name (`str`, *optional*): The Hub dataset's configuration.
        cache_dir (`str`, *optional*): Where `datasets` caches what it builds.

    Returns:
        `datasets.DatasetDict` with the splits `"train"`, `"validation"`, `"test"` that were given, in that order.

    Raises:
        `FileNotFoundError` for a path that does not exist; `ValueError` for an unknown file type, a malformed
        JSON line (`train.jsonl:17: invalid JSON (...)`) or a column that changes type between lines.

    Example:

    ```python
    >>> raw = load_raw_datasets(train_file="data/wos1k/train.jsonl", validation_file="data/wos1k/dev.jsonl")
    >>> list(raw)
    ['train', 'validation']
    ```
    """
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    if dataset_name is None and all(path is None for path in files.values()):
        raise ValueError("No data: give --dataset_name or at least one of --train_file, --validation_file, --test_file.")
    loaded: dict[str, datasets.Dataset] = {}
    if dataset_name is not None:
        hub = datasets.load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)
        if isinstance(hub, datasets.Dataset):
            hub = datasets.DatasetDict({"train": hub})
        for split in SPLITS:
            name = next((alias for alias in _SPLIT_ALIASES[split] if alias in hub), None)
            if name is not None:
                loaded[split] = hub[name]
        ignored = sorted(set(hub) - {alias for split in SPLITS for alias in _SPLIT_ALIASES[split]})
        if ignored:
            logger.info("Ignoring split(s) %s of %s: only train, validation and test are used.", ignored, dataset_name)
        if not loaded:
            raise ValueError(f"{dataset_name} has the splits {sorted(hub)}; expected train, validation (or dev) or test.")
    for split, path in files.items():
        if path is None:
            continue
        if split in loaded:
            logger.info("The %s split comes from %s instead of %s.", split, path, dataset_name)
        loaded[split] = _load_split(split, os.fspath(path), cache_dir)
    return datasets.DatasetDict({split: loaded[split] for split in SPLITS if split in loaded})


def _load_split(split: str, path: str, cache_dir: str | None) -> datasets.Dataset:
    if not os.path.exists(path):
        raise FileNotFoundError(f"The {split} file {path} does not exist.")
    if os.path.isdir(path):
        return _load_from_disk(split, path)
    suffix = _data_suffix(path)
    if suffix in _JSON_SUFFIXES:
        check_json_lines(path)
        return datasets.Dataset.from_json(path, cache_dir=cache_dir)
    if suffix in _CSV_SUFFIXES:
        try:
            # Only an empty cell is missing: "NA" or "null" are kept as text (pandas would turn them into NaN).
            return datasets.Dataset.from_csv(path, cache_dir=cache_dir, keep_default_na=False, na_values=[""])
        except Exception as error:  # pandas / pyarrow parser errors name the line but not the file
            raise ValueError(f"{path}: could not read the CSV file: {error}") from error
    raise ValueError(
        f"The {split} file {path} has the extension {suffix or '(none)'!r}; accepted are JSON lines "
        f"({', '.join(_JSON_SUFFIXES)}), CSV ({', '.join(_CSV_SUFFIXES)}), either compressed "
        f"({', '.join(_COMPRESSIONS)}, e.g. train.jsonl.gz), or a folder written by save_to_disk."
    )


def _data_suffix(path: str) -> str:
    """The format suffix of ``path``, looking through a compression suffix: ``train.jsonl.gz`` -> ``.jsonl``."""
    stem, suffix = os.path.splitext(path)
    if suffix.lower() in _COMPRESSIONS:
        inner = os.path.splitext(stem)[1].lower()
        return inner if inner in _JSON_SUFFIXES + _CSV_SUFFIXES else inner + suffix.lower()
    return suffix.lower()


def open_data_file(path: str | os.PathLike):
    """Open a data file for reading bytes, decompressing `.gz` / `.bz2` / `.xz` files on the fly."""
    opener = _COMPRESSIONS.get(os.path.splitext(os.fspath(path))[1].lower(), open)
    return opener(path, "rb")


def _load_from_disk(split: str, path: str) -> datasets.Dataset:
    try:
        saved = datasets.load_from_disk(path)
    except FileNotFoundError as error:
        raise ValueError(f"The {split} folder {path} was not written by Dataset.save_to_disk: {error}") from error
    if isinstance(saved, datasets.Dataset):
        return saved
    name = next((alias for alias in _SPLIT_ALIASES[split] if alias in saved), None)
    if name is None and len(saved) == 1:
        name = next(iter(saved))
    if name is None:
        raise ValueError(
            f"The {split} folder {path} holds the splits {sorted(saved)} and none of them is {_SPLIT_ALIASES[split]}."
        )
    return saved[name]


def check_json_lines(path: str | os.PathLike) -> int:
    """Validate a JSON lines file before `datasets` parses it; returns the number of documents.

    Every non-blank line must be one JSON object and a column must keep one JSON type over the file (a
    string on one line and a list on another cannot be stored as one Arrow column).

    Raises:
        `ValueError` naming ``path:line``, e.g. ``train.jsonl:17: invalid JSON (Expecting ',' delimiter ...)``.
    """
    path = os.fspath(path)
    first_kind: dict[str, tuple[str, int]] = {}
    documents = 0
    with open_data_file(path) as handle:
        for number, raw_line in enumerate(handle, start=1):
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}:{number}: not UTF-8 ({error}).") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}:{number}: invalid JSON ({error.msg} at column {error.colno}): {line.strip()[:80]!r}"
                ) from None
            if not isinstance(record, dict):
                raise ValueError(
                    f"{path}:{number}: expected one JSON object per line (JSON lines), got a {_json_kind(record)}."
                )
            for key, value in record.items():
                if value is None:
                    continue
                kind = _json_kind(value)
                seen = first_kind.setdefault(key, (kind, number))
                if seen[0] != kind:
                    raise ValueError(
                        f"{path}:{number}: column {key!r} holds a {kind} here but a {seen[0]} on line {seen[1]}; "
                        "use one type per column (e.g. always a list of labels)."
                    )
            documents += 1
    if documents == 0:
        raise ValueError(f"{path} has no documents (expected one JSON object per line).")
    return documents


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object" if isinstance(value, dict) else type(value).__name__


# ---------------------------------------------------------------------------------------------- columns
def resolve_columns(
    column_names: Sequence[str], text_column: str | None = None, label_column: str | None = None
) -> tuple[str, str]:
    """Pick the text and label columns.

    Args:
        column_names (`Sequence[str]`): The columns of the data.
        text_column, label_column (`str`, *optional*):
            Explicit names, which must exist. By default the first of `TEXT_COLUMN_CANDIDATES`
            (`text`, `token`, `doc_token`) and of `LABEL_COLUMN_CANDIDATES` (`labels`, `label`, `doc_label`).

    Returns:
        `(text_column, label_column)`.

    Example:

    ```python
    >>> resolve_columns(["doc_token", "doc_label"])
    ('doc_token', 'doc_label')
    ```
    """
    columns = list(column_names)
    text = _resolve_column(columns, text_column, TEXT_COLUMN_CANDIDATES, "text")
    label = _resolve_column(columns, label_column, LABEL_COLUMN_CANDIDATES, "label")
    if text == label:
        raise ValueError(f"The text and label columns are both {text!r}; give two different columns.")
    return text, label


def _resolve_column(columns: list[str], explicit: str | None, candidates: Sequence[str], role: str) -> str:
    if explicit is not None:
        if explicit not in columns:
            raise ValueError(f"--{role}_column {explicit!r} is not a column of the data; the columns are {columns}.")
        return explicit
    for candidate in candidates:
        if candidate in columns:
            return candidate
    raise ValueError(
        f"No {role} column found: the data has the columns {columns}; expected one of {list(candidates)}, "
        f"or name it with --{role}_column."
    )


# ---------------------------------------------------------------------------------------------- labels
def parse_label_value(value: Any) -> list[str]:
    """The label names in one document's raw label value, without a hierarchy (see the module docstring).

    `None`, NaN and `""` give `[]`; a list gives its items; a string is read as a JSON or Python list literal
    when it looks like one (`[...]`), else split on `;` and `|`. Numbers become strings. Paths (`a/b/c`) are
    left whole.

    Example:

    ```python
    >>> parse_label_value('["cs", "cs.ai"]'), parse_label_value("cs; cs.ai"), parse_label_value("Science/Physics")
    (['cs', 'cs.ai'], ['cs', 'cs.ai'], ['Science/Physics'])
    ```
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [name for item in value for name in _label_items(item)]
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("[") and text.endswith("]"):
            parsed = _parse_list_literal(text)
            if parsed is not None:
                return [name for item in parsed for name in _label_items(item)]
        return [part.strip() for part in _MULTI_LABEL_SEPARATORS.split(text) if part.strip()]
    return _label_items(value)


def _parse_list_literal(text: str) -> list | None:
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(parsed, list):
            return parsed
    return None


def _label_items(item: Any) -> list[str]:
    if item is None or (isinstance(item, float) and math.isnan(item)):
        return []
    if isinstance(item, str):
        return [item.strip()] if item.strip() else []
    if isinstance(item, (bool, np.bool_)):
        return [str(item)]
    if isinstance(item, (int, np.integer)):
        return [str(int(item))]
    return [str(item)]  # anything else is reported as an unknown label by its text


def normalise_labels(value: Any, hierarchy: LabelHierarchy, sep: str | None = "/") -> tuple[list[str], list[str]]:
    """Map one document's raw label value onto the hierarchy.

    Args:
        value: A list of label names, a single string or path, a JSON list string or a `;`/`|`-separated string
            (see the module docstring). Leaf-only and ancestor-closed lists are both fine.
        hierarchy (`LabelHierarchy`): The labels to map onto.
        sep (`str`, *optional*, defaults to `"/"`):
            Separator of path strings. A path is its full string when the hierarchy has that label (hierarchies
            built from paths name labels by their prefix), else its segments when every segment is a label and
            each is an ancestor of the next. `None` or `""` turns path reading off.

    Returns:
        `(known, unknown)`: known label names (not yet ancestor-closed: use `hierarchy.close`) and the raw labels
        that are not in the hierarchy, each in first-seen order without duplicates.

    Example:

    ```python
    >>> h = LabelHierarchy.from_parents({"A": None, "A.x": "A"})
    >>> normalise_labels("A/A.x", h), normalise_labels(["A.x", "Z"], h)
    ((['A', 'A.x'], []), (['A.x'], ['Z']))
    ```
    """
    if isinstance(value, str) and value.strip() in hierarchy:
        items = [value.strip()]  # a label whose name holds ';', '|' or '[' stays whole
    else:
        items = parse_label_value(value)
    known: dict[str, None] = {}
    unknown: dict[str, None] = {}
    for item in items:
        found = _resolve_label(item, hierarchy, sep)
        if found is None:
            unknown[item] = None
        else:
            known.update(dict.fromkeys(found))
    return list(known), list(unknown)


def _resolve_label(item: str, hierarchy: LabelHierarchy, sep: str | None) -> list[str] | None:
    if item in hierarchy:
        return [item]
    if not sep or sep not in item:
        return None
    segments = [segment.strip() for segment in item.split(sep)]
    joined = sep.join(segments)
    if joined in hierarchy:
        return [joined]
    if not all(segments) or not all(segment in hierarchy for segment in segments):
        return None
    # "CS/Cancer" names two labels of different branches: a data error, reported rather than guessed.
    if any(upper not in hierarchy.ancestors(lower) for upper, lower in zip(segments, segments[1:])):
        return None
    return segments


# ---------------------------------------------------------------------------------------------- features
def prepare_datasets(
    raw: datasets.DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    hierarchy: LabelHierarchy,
    text_column: str | None = None,
    label_column: str | None = None,
    max_seq_length: int | None = 128,
    unknown_labels: str = "error",
    sep: str | None = "/",
    num_proc: int | None = None,
) -> datasets.DatasetDict:
    """Validate every split, then tokenise it and encode its labels.

    Args:
        raw (`datasets.DatasetDict`): From :func:`load_raw_datasets`.
        tokenizer (`PreTrainedTokenizerBase`): Texts are truncated, not padded (the collator pads per batch).
        hierarchy (`LabelHierarchy`): Labels are mapped with :func:`normalise_labels` and ancestor-closed.
        text_column, label_column (`str`, *optional*): See :func:`resolve_columns` (resolved on the first split).
        max_seq_length (`int`, *optional*, defaults to 128):
            Longest tokenised text; capped at `tokenizer.model_max_length`. `None` uses that maximum.
        unknown_labels (`str`, *optional*, defaults to `"error"`):
            `"error"` raises on labels that are not in the hierarchy; `"drop"` removes them with a warning.
            A document whose labels are all unknown is an error in both modes.
        sep (`str`, *optional*, defaults to `"/"`): Path separator inside label strings.
        num_proc (`int`, *optional*): Processes for tokenisation.

    Returns:
        `datasets.DatasetDict` with, per split, `input_ids`, `attention_mask` (and `token_type_ids` when the
        tokenizer makes them), `labels` (float32 multi-hot of length `hierarchy.num_labels`, ancestor-closed) and
        `example_id` (the row in the raw split). A `test` split without the label column gets no `labels`.

    Raises:
        `ValueError` listing, per split, empty or missing texts, training documents without labels and unknown
        labels (count of documents and distinct labels, a few of them, and the `--unknown_labels drop` option).
    """
    if unknown_labels not in _UNKNOWN_LABEL_MODES:
        raise ValueError(f"unknown_labels must be one of {list(_UNKNOWN_LABEL_MODES)}, got {unknown_labels!r}.")
    if len(raw) == 0:
        raise ValueError("No splits to prepare.")
    first = next(iter(raw.values()))
    text_column, label_column = resolve_columns(first.column_names, text_column, label_column)
    max_length = _max_length(tokenizer, max_seq_length)

    problems: list[str] = []
    label_ids: dict[str, list[list[int]] | None] = {}
    for split, dataset in raw.items():
        columns = dataset.column_names
        if text_column not in columns:
            problems.append(f"The {split} split has no text column {text_column!r}; its columns are {columns}.")
            continue
        problems.extend(_check_texts(split, dataset[text_column], text_column))
        if label_column not in columns:
            if split in ("train", "validation"):
                problems.append(f"The {split} split has no label column {label_column!r}; its columns are {columns}.")
            else:
                logger.info("The %s split has no %r column: it gets no labels.", split, label_column)
            label_ids[split] = None
            continue
        ids, split_problems = _encode_split_labels(split, dataset[label_column], hierarchy, unknown_labels, sep)
        label_ids[split] = ids
        problems.extend(split_problems)
    if problems:
        raise ValueError("Invalid data:\n- " + "\n- ".join(problems))

    num_labels = hierarchy.num_labels

    def tokenise(batch: dict[str, list], indices: list[int]) -> dict[str, Any]:
        texts = [text if isinstance(text, str) else " ".join(text) for text in batch[text_column]]
        features: dict[str, Any] = dict(tokenizer(texts, truncation=True, max_length=max_length))
        features["example_id"] = indices
        if _LABEL_IDS_COLUMN in batch:
            ids = batch[_LABEL_IDS_COLUMN]
            multi_hot = np.zeros((len(ids), num_labels), dtype=np.float32)
            rows = np.repeat(np.arange(len(ids)), [len(row) for row in ids])
            multi_hot[rows, np.fromiter((i for row in ids for i in row), dtype=np.int64, count=len(rows))] = 1.0
            features["labels"] = multi_hot
        return features

    prepared = {}
    for split, dataset in raw.items():
        if label_ids[split] is not None:
            dataset = dataset.add_column(
                _LABEL_IDS_COLUMN, label_ids[split], feature=datasets.List(datasets.Value("int32"))
            )
        prepared[split] = dataset.map(
            tokenise,
            batched=True,
            with_indices=True,
            remove_columns=dataset.column_names,
            num_proc=num_proc,
            desc=f"Tokenising the {split} split",
        )
    return datasets.DatasetDict(prepared)


def _max_length(tokenizer: PreTrainedTokenizerBase, max_seq_length: int | None) -> int:
    model_max = getattr(tokenizer, "model_max_length", None)
    model_max = model_max if isinstance(model_max, int) and model_max < 1_000_000 else None  # "no limit" sentinel
    if max_seq_length is None:
        if model_max is None:
            raise ValueError("The tokenizer has no model_max_length: give max_seq_length.")
        return model_max
    if max_seq_length < 1:
        raise ValueError(f"max_seq_length must be a positive integer, got {max_seq_length}.")
    if model_max is not None and max_seq_length > model_max:
        logger.warning(
            "max_seq_length %d is longer than the tokenizer's maximum %d; using %d.", max_seq_length, model_max, model_max
        )
        return model_max
    return max_seq_length


def _rows(rows: list[int]) -> str:
    shown = ", ".join(str(row) for row in rows[:_SHOWN])
    return f"{shown}, ..." if len(rows) > _SHOWN else shown


def _check_texts(split: str, texts: Iterable[Any], text_column: str) -> list[str]:
    bad = [
        row
        for row, text in enumerate(texts)
        if not (
            (isinstance(text, str) and text.strip())
            or (isinstance(text, list) and text and all(isinstance(t, str) for t in text) and "".join(text).strip())
        )
    ]
    if not bad:
        return []
    return [
        f"{len(bad)} document(s) in the {split} split have an empty or missing {text_column!r} text "
        f"(rows {_rows(bad)}; 0-based). Fill or remove them; texts are strings or lists of tokens."
    ]


def _encode_split_labels(
    split: str,
    values: Iterable[Any],
    hierarchy: LabelHierarchy,
    unknown_labels: str,
    sep: str | None,
) -> tuple[list[list[int]], list[str]]:
    """Ancestor-closed label ids per row, and the problems found in this split."""
    label2id = hierarchy.label2id
    closure = {label: [label2id[a] for a in hierarchy.sequence(label)] for label in hierarchy.labels}
    ids: list[list[int]] = []
    unlabelled: list[int] = []
    only_unknown: list[int] = []
    with_unknown: list[int] = []
    unknown_counts: Counter[str] = Counter()
    for row, value in enumerate(values):
        known, unknown = normalise_labels(value, hierarchy, sep)
        if unknown:
            with_unknown.append(row)
            unknown_counts.update(unknown)
            if not known:
                only_unknown.append(row)
        elif not known:
            unlabelled.append(row)
        ids.append(sorted({i for label in known for i in closure[label]}))

    problems = []
    if unlabelled:
        message = f"{len(unlabelled)} document(s) in the {split} split have no labels (rows {_rows(unlabelled)}; 0-based)."
        if split == "train":
            problems.append(message + " Every training document needs at least one label.")
        else:
            logger.warning("%s They count as documents with no gold label.", message)
    if unknown_counts:
        shown = ", ".join(f"{label!r} ({count}x)" for label, count in unknown_counts.most_common(_SHOWN))
        more = ", ..." if len(unknown_counts) > _SHOWN else ""
        summary = (
            f"{len(with_unknown)} document(s) in the {split} split have {len(unknown_counts)} distinct label(s) that "
            f"are not in the hierarchy of {hierarchy.num_labels} labels: {shown}{more} (first in row {with_unknown[0]})"
        )
        if unknown_labels == "error":
            problems.append(
                f"{summary}. Fix the labels or the taxonomy, or pass --unknown_labels drop to remove unknown labels."
            )
        else:
            logger.warning("%s; dropped %d unknown label occurrence(s).", summary, sum(unknown_counts.values()))
            if only_unknown:
                problems.append(
                    f"{len(only_unknown)} document(s) in the {split} split have only labels that are not in the "
                    f"hierarchy (rows {_rows(only_unknown)}; 0-based), so --unknown_labels drop would leave them with "
                    "no label. Fix their labels or remove these documents."
                )
    return ids, problems


# ---------------------------------------------------------------------------------------------- collator
@dataclass
class DataCollatorForHierarchicalClassification(DataCollatorWithPadding):
    """`transformers.DataCollatorWithPadding` that also stacks the multi-hot labels.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): Pads the model inputs (`input_ids`, `attention_mask`,
            `token_type_ids`, ...: the tokenizer's `model_input_names`) to the longest text of the batch.
        pad_to_multiple_of (`int`, *optional*): Pad the length up to a multiple of this (8 suits tensor cores).
        padding, max_length, return_tensors: as for `DataCollatorWithPadding` (tensors are PyTorch's).

    Returns a `BatchEncoding` with the padded inputs `(B, T)` as long tensors and, when the examples have
    them, `labels` `(B, L)` float32. Other fields (`example_id`) are left out, so the batch fits `forward`.

    Example:

    ```python
    >>> collator = DataCollatorForHierarchicalClassification(tokenizer)
    >>> batch = collator([prepared["train"][0], prepared["train"][1]])
    >>> batch["labels"].shape
    torch.Size([2, 30])
    ```
    """

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        if not features:
            raise ValueError("Cannot collate an empty batch.")
        input_names = set(self.tokenizer.model_input_names) | {"input_ids", "attention_mask", "token_type_ids"}
        batch = super().__call__([{key: value for key, value in f.items() if key in input_names} for f in features])
        if "labels" in features[0]:
            rows = [np.asarray(feature["labels"], dtype=np.float32) for feature in features]
            lengths = sorted({row.shape for row in rows})
            if len(lengths) > 1 or rows[0].ndim != 1:
                raise ValueError(
                    f"Label vectors of shapes {lengths} in one batch: every example needs a multi-hot vector of the "
                    "same hierarchy (prepare all splits with one LabelHierarchy)."
                )
            batch["labels"] = torch.from_numpy(np.stack(rows))
        return batch

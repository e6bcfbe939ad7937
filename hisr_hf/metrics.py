"""Evaluation metrics of hierarchical text classification (spec section 4), vectorised with numpy.

Every metric is computed from three count vectors (true positives, predictions, gold) summed over
documents, so one pass of boolean matrix algebra scores a whole evaluation set:

- Micro-/Macro-F1 over all labels, and per depth level;
- C-Micro/C-Macro-F1 (path-constrained, HiMatch): a correct label is *right* only when all of its
  ancestors are correct for that document too;
- P-Micro/P-Macro-F1 (path-based, HierVerb): the units are root-to-leaf paths instead of labels.

Training code never imports this module; :func:`compute_metrics_fn` plugs it into `transformers.Trainer`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .hierarchy import LabelHierarchy

__all__ = [
    "EVALUATE_MODULE", "compute_metrics_fn", "f1_rows", "format_metrics_table", "hierarchical_f1", "metric_depths",
    "per_label_f1", "split_prefix",
]  # fmt: skip

# The `evaluate` module of these metrics: `evaluate.load(EVALUATE_MODULE)` (the folder travels with the package).
EVALUATE_MODULE = str(Path(__file__).resolve().parent / "evaluate_modules" / "hierarchical_f1")


@dataclass(frozen=True)
class _HierarchyArrays:
    """The numpy views of a hierarchy the metrics need, computed once per hierarchy: ``O(L * depth)``."""

    labels: list[str]
    sequence_index: np.ndarray  # (L, D) int, row j = ids of the sequence of j (j and its ancestors), padded with L
    depths: np.ndarray  # (L,) int, top level = 1
    leaf_ids: np.ndarray  # (K,) int, one root-to-leaf path per leaf

    @classmethod
    def from_hierarchy(cls, hierarchy: LabelHierarchy) -> _HierarchyArrays:
        if not isinstance(hierarchy, LabelHierarchy):
            raise ValueError(f"Expected a LabelHierarchy, got {type(hierarchy).__name__}.")
        label2id = hierarchy.label2id
        return cls(
            labels=hierarchy.labels,
            sequence_index=hierarchy.sequence_index()[0].numpy(),
            depths=np.asarray(hierarchy.depths(), dtype=np.int64),
            leaf_ids=np.asarray([label2id[leaf] for leaf in hierarchy.leaves()], dtype=np.int64),
        )


# ---------------------------------------------------------------------------------------------- helpers
def _to_numpy(array: Any, name: str) -> np.ndarray:
    if hasattr(array, "detach"):  # torch tensor: leave the graph and the device, widen bfloat16
        array = array.detach().cpu()
        if getattr(array, "is_floating_point", lambda: False)():
            array = array.float()
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (num_documents, num_labels) array, got shape {array.shape}.")
    return array


def _binarize_predictions(probs_or_predictions: Any, threshold: float) -> np.ndarray:
    array = _to_numpy(probs_or_predictions, "probs_or_predictions")
    if array.dtype == np.bool_:
        return array
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"probs_or_predictions must be numeric or boolean, got dtype {array.dtype}.")
    return array > threshold


def _prepare(
    probs_or_predictions: Any, labels: Any, arrays: _HierarchyArrays, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Validated boolean ``(predicted, gold)`` matrices of shape ``(N, L)``."""
    predicted = _binarize_predictions(probs_or_predictions, threshold)
    gold_values = _to_numpy(labels, "labels")
    num_labels = len(arrays.labels)
    if predicted.shape[1] != num_labels or gold_values.shape[1] != num_labels:
        raise ValueError(
            f"The hierarchy has {num_labels} labels but probs_or_predictions has shape {predicted.shape} and "
            f"labels has shape {gold_values.shape}; both must be (num_documents, {num_labels})."
        )
    if predicted.shape[0] != gold_values.shape[0]:
        raise ValueError(
            f"probs_or_predictions has {predicted.shape[0]} rows but labels has {gold_values.shape[0]}; "
            "give one row per document in both."
        )
    if gold_values.dtype != np.bool_:
        bad = ~((gold_values == 0) | (gold_values == 1))
        if bad.any():
            row, column = map(int, np.argwhere(bad)[0])
            raise ValueError(
                f"labels must be 0/1, got {gold_values[row, column]!r} at document {row}, label "
                f"{arrays.labels[column]!r} (column {column})."
            )
    gold = gold_values.astype(bool)
    # The C- and P- metrics assume ancestor-closed gold sets: count the gold labels on every sequence.
    open_sets = gold & ~_whole_sequences(gold, arrays.sequence_index)
    if open_sets.any():
        row, column = map(int, np.argwhere(open_sets)[0])
        label = arrays.labels[column]
        members = arrays.sequence_index[column]
        missing = [arrays.labels[i] for i in members[members < num_labels] if not gold[row, i]]
        raise ValueError(
            f"labels must be ancestor-closed: document {row} has label {label!r} without its ancestor(s) "
            f"{missing}. Encode gold label sets with LabelHierarchy.encode, which adds the ancestors."
        )
    return predicted, gold


# Documents per block in _whole_sequences: a block's (rows, K, D) mask stays small at thousands of labels.
_ROWS_PER_BLOCK = 1024


def _whole_sequences(members: np.ndarray, sequence_index: np.ndarray) -> np.ndarray:
    """``(N, K)`` bool: is every label of sequence k in the document's set? ``sequence_index`` is ``(K, D)``,
    padded with ``L``."""
    out = np.empty((members.shape[0], sequence_index.shape[0]), dtype=bool)
    for start in range(0, members.shape[0], _ROWS_PER_BLOCK):
        block = members[start : start + _ROWS_PER_BLOCK]
        padded = np.concatenate([block, np.ones((block.shape[0], 1), dtype=bool)], axis=1)
        out[start : start + _ROWS_PER_BLOCK] = padded[:, sequence_index].all(axis=-1)
    return out


def _f1(true_positives: np.ndarray, num_predicted: np.ndarray, num_gold: np.ndarray) -> np.ndarray:
    """``2 tp / (predicted + gold)``, 0 where a unit has neither gold nor predictions (sklearn's zero_division=0)."""
    denominator = np.asarray(num_predicted + num_gold, dtype=np.float64)
    numerator = 2.0 * np.asarray(true_positives, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator > 0 else 0.0


def _micro_macro(true_positives: np.ndarray, num_predicted: np.ndarray, num_gold: np.ndarray) -> tuple[float, float]:
    micro = _f1(true_positives.sum(), num_predicted.sum(), num_gold.sum())
    per_unit = _f1(true_positives, num_predicted, num_gold)
    macro = per_unit.mean() if per_unit.size else 0.0
    return float(micro), float(macro)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    # exp of -|x| never overflows; the two branches are the same function on their half-lines.
    logits = np.asarray(logits, dtype=np.float64)
    exp_neg_abs = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1.0 / (1.0 + exp_neg_abs), exp_neg_abs / (1.0 + exp_neg_abs))


def _hierarchical_f1(predicted: np.ndarray, gold: np.ndarray, arrays: _HierarchyArrays) -> dict[str, float]:
    correct = predicted & gold
    true_positives, num_predicted, num_gold = correct.sum(0), predicted.sum(0), gold.sum(0)

    metrics: dict[str, float] = {}
    metrics["micro_f1"], metrics["macro_f1"] = _micro_macro(true_positives, num_predicted, num_gold)
    metrics["micro_precision"] = _ratio(true_positives.sum(), num_predicted.sum())
    metrics["micro_recall"] = _ratio(true_positives.sum(), num_gold.sum())

    # C-: a correct label is right only if its whole sequence (itself and every ancestor) is correct.
    right = _whole_sequences(correct, arrays.sequence_index)
    metrics["c_micro_f1"], metrics["c_macro_f1"] = _micro_macro(right.sum(0), num_predicted, num_gold)

    # P-: units are the leaf sequences. Only defined when every gold label lies on a fully gold leaf path.
    leaf_index = arrays.sequence_index[arrays.leaf_ids]
    gold_paths = _whole_sequences(gold, leaf_index)
    covered = np.zeros((gold.shape[0], gold.shape[1] + 1), dtype=bool)
    documents, paths = np.nonzero(gold_paths)
    covered[documents[:, None], leaf_index[paths]] = True
    if not (gold & ~covered[:, :-1]).any():
        predicted_paths = _whole_sequences(predicted, leaf_index)
        metrics["p_micro_f1"], metrics["p_macro_f1"] = _micro_macro(
            (gold_paths & predicted_paths).sum(0), predicted_paths.sum(0), gold_paths.sum(0)
        )

    for depth in range(1, int(arrays.depths.max()) + 1):
        level = arrays.depths == depth
        micro, macro = _micro_macro(true_positives[level], num_predicted[level], num_gold[level])
        metrics[f"level_{depth}_micro_f1"], metrics[f"level_{depth}_macro_f1"] = micro, macro

    metrics["num_labels_without_support"] = int((num_gold == 0).sum())
    return metrics


# ---------------------------------------------------------------------------------------------- public API
def hierarchical_f1(
    probs_or_predictions: Any, labels: Any, hierarchy: LabelHierarchy, threshold: float = 0.5
) -> dict[str, float]:
    """Flat, path-constrained, path-based and per-level F1 of multi-label predictions (spec section 4).

    A label is predicted when its probability is strictly greater than `threshold`. Macro averages run over
    **all** labels of the hierarchy (or all leaf paths, or all labels of one level): a label with neither gold
    documents nor predictions scores F1 = 0, as the field's evaluation scripts and
    `sklearn.metrics.f1_score(..., zero_division=0)` do; `num_labels_without_support` says how many there are.

    Returned keys:

    - `micro_f1`, `macro_f1`, `micro_precision`, `micro_recall`: over all labels.
    - `c_micro_f1`, `c_macro_f1` (HiMatch): gold and predicted counts as usual, but a correctly predicted label
      is a true positive only if every one of its ancestors is correctly predicted for that document too.
    - `p_micro_f1`, `p_macro_f1` (HierVerb): the units are the root-to-leaf paths, one per leaf (in a DAG a
      leaf's path is the leaf and all its ancestors). A path is gold / predicted when all of its labels are;
      macro averages over all leaf paths. These keys are **present only when every gold label set is a union
      of complete leaf paths** (mandatory-leaf data); for gold sets that stop at an inner label, path-based
      scores are undefined and the keys are omitted.
    - `level_{d}_micro_f1`, `level_{d}_macro_f1` for every depth d = 1 .. max_depth, restricted to the labels
      of that depth.
    - `num_labels_without_support` (`int`): labels with no gold document in `labels`.

    Args:
        probs_or_predictions (`np.ndarray` or `torch.Tensor` of shape `(num_documents, num_labels)`):
            Label probabilities, or a boolean prediction matrix (then `threshold` is ignored).
        labels (`np.ndarray` or `torch.Tensor` of shape `(num_documents, num_labels)`):
            0/1 (or boolean) gold labels, ancestor-closed as produced by `LabelHierarchy.encode`.
        hierarchy ([`LabelHierarchy`]): the hierarchy whose label order the columns follow.
        threshold (`float` or `(num_labels,)` array, *optional*, defaults to 0.5): probabilities above it (above
            each label's own value) are predicted.

    Returns:
        `dict[str, float]`: the metrics above, as fractions in [0, 1].

    Raises:
        `ValueError`: on shape mismatches, gold values other than 0/1, or gold sets that are not
        ancestor-closed (naming the document and the label).

    Example:

    ```python
    >>> import numpy as np
    >>> from hisr_hf import LabelHierarchy
    >>> from hisr_hf.metrics import hierarchical_f1
    >>> h = LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A", "A.y": "A"})
    >>> gold = h.encode([["A.x"], ["B"]])  # columns A, B, A.x, A.y
    >>> probs = np.array([[0.9, 0.1, 0.8, 0.2], [0.3, 0.7, 0.1, 0.6]])
    >>> metrics = hierarchical_f1(probs, gold, h)
    >>> round(metrics["micro_f1"], 4), round(metrics["c_micro_f1"], 4)
    (0.8571, 0.8571)
    >>> "p_micro_f1" in metrics  # gold ["B"] ends at a leaf; gold ["A"] alone would not
    True
    ```
    """
    arrays = _HierarchyArrays.from_hierarchy(hierarchy)
    predicted, gold = _prepare(probs_or_predictions, labels, arrays, threshold)
    return _hierarchical_f1(predicted, gold, arrays)


def per_label_f1(
    probs_or_predictions: Any, labels: Any, hierarchy: LabelHierarchy, threshold: float = 0.5
) -> dict[str, float]:
    """F1 of every label, keyed by label name in id order (the terms that `macro_f1` averages).

    Arguments are those of [`hierarchical_f1`]. A label with neither gold documents nor predictions gets 0.

    Example:

    ```python
    >>> import numpy as np
    >>> from hisr_hf import LabelHierarchy
    >>> from hisr_hf.metrics import per_label_f1
    >>> h = LabelHierarchy.from_parents({"A": None, "A.x": "A", "A.y": "A"})
    >>> per_label_f1(np.array([[0.9, 0.8, 0.7]]), h.encode([["A.x"]]), h)
    {'A': 1.0, 'A.x': 1.0, 'A.y': 0.0}
    ```
    """
    arrays = _HierarchyArrays.from_hierarchy(hierarchy)
    predicted, gold = _prepare(probs_or_predictions, labels, arrays, threshold)
    scores = _f1((predicted & gold).sum(0), predicted.sum(0), gold.sum(0))
    return {label: float(score) for label, score in zip(arrays.labels, scores)}


def compute_metrics_fn(
    hierarchy: LabelHierarchy, threshold: float = 0.5, prefix: str = ""
) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` function for `transformers.Trainer` that scores logits with [`hierarchical_f1`].

    The returned function takes an `EvalPrediction` whose `predictions` are the logits `(num_documents,
    num_labels)` (or a tuple whose first element is the logits, as when the model returns extra outputs) and
    whose `label_ids` are the ancestor-closed 0/1 gold matrix. It applies a numerically stable sigmoid and
    returns the metrics of [`hierarchical_f1`] with `prefix` prepended to every key. (`Trainer` adds its own
    `eval_` prefix; pick the checkpoint with e.g. `metric_for_best_model="micro_f1"`.)

    Args:
        hierarchy ([`LabelHierarchy`]): the model's hierarchy (`model.config` holds it).
        threshold (`float`, *optional*, defaults to 0.5): probabilities above it are predicted.
        prefix (`str`, *optional*, defaults to `""`): prepended to every metric name.

    Example:

    ```python
    >>> import numpy as np
    >>> from transformers import EvalPrediction
    >>> from hisr_hf import LabelHierarchy
    >>> from hisr_hf.metrics import compute_metrics_fn
    >>> h = LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A"})
    >>> compute_metrics = compute_metrics_fn(h)  # Trainer(..., compute_metrics=compute_metrics)
    >>> logits = np.array([[3.0, -2.0, 1.5], [-1.0, 2.0, -4.0]])
    >>> compute_metrics(EvalPrediction(predictions=logits, label_ids=h.encode([["A.x"], ["B"]])))["micro_f1"]
    1.0
    ```
    """
    arrays = _HierarchyArrays.from_hierarchy(hierarchy)

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        if hasattr(eval_prediction, "predictions"):
            logits, label_ids = eval_prediction.predictions, eval_prediction.label_ids
        else:  # a plain (predictions, label_ids) pair
            logits, label_ids = eval_prediction[0], eval_prediction[1]
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        if isinstance(label_ids, (tuple, list)):
            label_ids = label_ids[0]
        probs = _sigmoid(_to_numpy(logits, "predictions (logits)"))
        predicted, gold = _prepare(probs, label_ids, arrays, threshold)
        return {f"{prefix}{name}": value for name, value in _hierarchical_f1(predicted, gold, arrays).items()}

    return compute_metrics


# ---------------------------------------------------------------------------------------------- key names
# The metric families of `hierarchical_f1`, in table order: (row name, short name, key prefix).
METRIC_FAMILIES = (("Overall", "", ""), ("Path-constrained (C-)", "C-", "c_"), ("Path-based (P-)", "P-", "p_"))


def split_prefix(metrics: Mapping[str, Any]) -> str | None:
    """The prefix the metric keys carry (`"eval_"`, `"test_"`, or `""`), found from the shortest key ending in
    `micro_f1`; `None` when there is no such key."""
    candidates = [key[: -len("micro_f1")] for key in metrics if key.endswith("micro_f1")]
    return min(candidates, key=len) if candidates else None


def metric_depths(metrics: Mapping[str, Any], prefix: str = "") -> list[int]:
    """The hierarchy levels (1, 2, ...) that `metrics` has `level_{d}_micro_f1` or `level_{d}_macro_f1` for."""
    depth = 1
    while f"{prefix}level_{depth}_micro_f1" in metrics or f"{prefix}level_{depth}_macro_f1" in metrics:
        depth += 1
    return list(range(1, depth))


def f1_rows(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """`(row name, short name, micro key, macro key)` of every F1 pair that `metrics` holds (keys without
    `prefix`): overall, C-, P-, then one row per level. Every table, chart and card of hisr_hf reads keys here."""
    rows = [(name, short, f"{key}micro_f1", f"{key}macro_f1") for name, short, key in METRIC_FAMILIES]
    rows += [(f"Level {d}", f"Level {d} ", f"level_{d}_micro_f1", f"level_{d}_macro_f1") for d in metric_depths(metrics, prefix)]
    return [row for row in rows if prefix + row[2] in metrics or prefix + row[3] in metrics]


def format_metrics_table(metrics: Mapping[str, Any], digits: int = 2) -> str:
    """Markdown table of the main F1 scores in percent: overall, C-, P- and one row per level.

    Keys may carry a common prefix such as Trainer's `eval_`; it is found from the shortest key ending in
    `micro_f1`. A value may be a number or a `(mean, std)` pair (over seeds), shown as `mean ± std`. Rows whose
    metrics are absent (e.g. P- on data without mandatory leaves) are left out; when
    `num_labels_without_support` is present and positive, a note under the table says so.

    Example:

    ```python
    >>> print(format_metrics_table({"micro_f1": 0.8512, "macro_f1": 0.7, "level_1_micro_f1": 0.9,
    ...                             "level_1_macro_f1": (0.88, 0.011)}))
    | Metric | Micro-F1 | Macro-F1 |
    |---|---:|---:|
    | Overall | 85.12 | 70.00 |
    | Level 1 | 90.00 | 88.00 ± 1.10 |
    ```
    """
    prefix = split_prefix(metrics)
    if prefix is None:
        raise ValueError(
            f"No '...micro_f1' key among the metrics {sorted(metrics)[:10]}; pass hierarchical_f1's output."
        )

    def cell(key: str) -> str:
        if key not in metrics:
            return "–"
        value = metrics[key]
        if isinstance(value, (tuple, list)):
            mean, std = value
            return f"{100 * float(mean):.{digits}f} ± {100 * float(std):.{digits}f}"
        return f"{100 * float(value):.{digits}f}"

    lines = ["| Metric | Micro-F1 | Macro-F1 |", "|---|---:|---:|"]
    for name, _, micro, macro in f1_rows(metrics, prefix):
        lines.append(f"| {name} | {cell(prefix + micro)} | {cell(prefix + macro)} |")
    unsupported = metrics.get(f"{prefix}num_labels_without_support")
    if isinstance(unsupported, (tuple, list)):
        unsupported = unsupported[0]
    if unsupported:
        lines.append("")
        lines.append(
            f"{unsupported:g} label(s) have no gold document in the evaluation set and count as F1 = 0 in Macro-F1."
        )
    return "\n".join(lines)

"""Hierarchical F1: the metrics of hierarchical text classification as an `evaluate` module.

Flat Micro/Macro-F1 over all labels, path-constrained (C-) and path-based (P-) F1 and F1 per hierarchy level, for
multi-label predictions over a label hierarchy (a tree or a DAG). It returns exactly what
`hisr_hf.metrics.hierarchical_f1` returns, which computes it.
"""

import datasets
import evaluate

from hisr_hf import LabelHierarchy
from hisr_hf.metrics import hierarchical_f1
from hisr_hf.model_card import CITATION as _CITATION

_DESCRIPTION = """\
Flat, path-constrained (C-, HiMatch), path-based (P-, HierVerb) and per-level Micro/Macro-F1 of multi-label
predictions over a label hierarchy. Macro averages run over all labels of the hierarchy (a label with neither gold
documents nor predictions scores 0). Gold label sets must be ancestor-closed.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): one row per document, one probability (or 0/1 prediction) per label, in the
        hierarchy's label order.
    references (`list[list[int]]`): ancestor-closed 0/1 gold labels, same shape (`LabelHierarchy.encode`).
    hierarchy (`hisr_hf.LabelHierarchy` or `dict`): the label hierarchy, or its `to_dict()` form (what a HiSR model
        stores in `config.hierarchy`).
    threshold (`float`, defaults to 0.5): a label is predicted when its probability is above it.
Returns:
    `micro_f1`, `macro_f1`, `micro_precision`, `micro_recall`, `c_micro_f1`, `c_macro_f1`, `p_micro_f1` and
    `p_macro_f1` (only when every gold set is a union of complete leaf paths), `level_{d}_micro_f1` /
    `level_{d}_macro_f1` per depth, `num_labels_without_support`.
Examples:
    >>> metric = evaluate.load("hisr_hf/evaluate_modules/hierarchical_f1")  # doctest: +SKIP
    >>> hierarchy = {"A": None, "B": None, "A.x": "A"}
    >>> result = metric.compute(predictions=[[0.9, 0.1, 0.8]], references=[[1, 0, 1]], hierarchy=hierarchy)  # doctest: +SKIP
    >>> result["micro_f1"]  # doctest: +SKIP
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HierarchicalF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
            reference_urls=["https://aclanthology.org/2025.coling-main.378/"],
        )

    def _compute(self, predictions, references, hierarchy=None, threshold=0.5):
        if hierarchy is None:
            raise ValueError("hierarchical_f1 needs the label hierarchy: compute(..., hierarchy=LabelHierarchy or dict).")
        if not isinstance(hierarchy, LabelHierarchy):
            hierarchy = _hierarchy_from(hierarchy)
        return hierarchical_f1(predictions, references, hierarchy, threshold=threshold)


def _hierarchy_from(value) -> LabelHierarchy:
    """A `LabelHierarchy` from its `to_dict()` form or a `{label: parent or [parents] or None}` mapping."""
    if isinstance(value, dict) and "labels" in value:
        return LabelHierarchy.from_dict(value)
    if isinstance(value, dict):
        return LabelHierarchy.from_parents(value)
    raise TypeError(
        f"hierarchy must be a LabelHierarchy, its to_dict() form or a {{label: parent}} dict, got {type(value).__name__}."
    )

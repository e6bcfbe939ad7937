"""The non-neural peer of `benchmarks/quality.py`: hiclass's local classifier per parent node over TF-IDF.

`hiclass.LocalClassifierPerParentNode` with a `LogisticRegression` at every parent label, on TF-IDF features of the
same training documents as the neural runs. Its predictions (label paths) are mapped onto the same multi-hot label
space and scored by the same `hisr_hf.metrics.hierarchical_f1`.

hiclass takes one label path per row, padded with `""` to the depth of the hierarchy (20ng has leaves at depths 2
and 3). hiclass 5 has no multi-label classifiers: the `MultiLabelLocalClassifierPerParentNode` of hiclass 4.x was
dropped in 5.0, and hiclass 4.x requires scikit-learn < 1.5 and scipy < 1.13. So a document with several gold
branches (aapd) becomes one training row per branch, and the prediction is hiclass's top path plus every label whose
score (the local probabilities multiplied down its path) is above a threshold chosen on dev, or the top path alone
when dev prefers it.

Everything that is chosen (`C`, the threshold) is chosen on dev Micro-F1; test is scored once.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from hisr_hf import LabelHierarchy
from hisr_hf.metrics import hierarchical_f1

# Multi-path data: the score a label beyond hiclass's top path needs to be added; None: the top path alone (where
# every extra label costs more precision than it brings recall, as on tibkat's dev set).
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, None)
LABEL = "hiclass LCPPN (TF-IDF + LogReg)"
FEATURES = "TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=100000)"
CLASSIFIER = "LocalClassifierPerParentNode(local_classifier=LogisticRegression(C, max_iter=1000))"


def decoding(multi_path: bool) -> str:
    """How predictions are made, as recorded in (and compared by `quality.py --skip_existing` against) a record."""
    if not multi_path:
        return "hiclass predict(): one path per document (padding '' dropped), closed under ancestors"
    return (
        "one training row per gold branch (path padded with ''); prediction = hiclass's top path plus every label "
        "whose score (the local probabilities multiplied down its path) exceeds a dev-tuned threshold (None: the top "
        "path alone), closed under ancestors"
    )


def leaf_paths(labels: set[str], hierarchy: LabelHierarchy) -> list[list[str]]:
    """The top-down paths to the deepest labels of an ancestor-closed set: one per gold branch.

    Example: `{"cs", "cs.it", "math", "math.it"}` gives `[["cs", "cs.it"], ["math", "math.it"]]`.
    """
    ends = sorted(label for label in labels if not any(child in labels for child in hierarchy.children(label)))
    return [sorted(hierarchy.sequence(label), key=hierarchy.depth) for label in ends]


def hiclass_rows(
    texts: list[str], gold: list[set[str]], hierarchy: LabelHierarchy
) -> tuple[list[str], list[list[str]]]:
    """One `(text, padded path)` row per gold branch of every document."""
    rows_x, rows_y = [], []
    for text, labels in zip(texts, gold):
        for path in leaf_paths(labels, hierarchy):
            rows_x.append(text)
            rows_y.append(path + [""] * (hierarchy.max_depth - len(path)))
    return rows_x, rows_y


def _label_sets(predictions: np.ndarray) -> list[set[str]]:
    return [{str(label) for label in row if str(label)} for row in np.atleast_2d(predictions)]


def _scores(classifier, features, hierarchy: LabelHierarchy) -> np.ndarray:
    """`(N, L)` label scores in our label order: every parent's local probabilities multiplied down the path
    (`P(label) = P(label | parent) · P(parent)`), from hiclass's fitted local classifiers.

    Not hiclass's own `predict_proba`: in hiclass 5.0.8 it runs each parent's classifier on the rows of *every*
    label predicted at the level above, and the last parent visited (in set order, which Python's string hashing
    changes from process to process) decides which labels feed the next level; at depth 3 and more its scores, and
    a threshold chosen on them, change from run to run (tibkat DDC dev Micro-F1 0.41 in one process, 0.47 in
    another, for the same C and threshold). Two-level data (aapd) was not affected.
    """
    graph, separator = classifier.hierarchy_, classifier.separator_
    label2id = hierarchy.label2id
    scores = np.zeros((features.shape[0], hierarchy.num_labels))
    reached = {classifier.root_: np.ones(features.shape[0])}
    frontier = [classifier.root_]
    while frontier:
        node = frontier.pop()
        local = graph.nodes[node].get("classifier")
        if local is None:  # a leaf: hiclass fits classifiers at parent nodes only
            continue
        probabilities = np.asarray(local.predict_proba(features), dtype=float).reshape(features.shape[0], -1)
        for column, child in enumerate(local.classes_):
            score = reached[node] * probabilities[:, column]
            name = str(child).split(separator)[-1]
            if name in label2id:  # "" is hiclass's padding class
                scores[:, label2id[name]] = score
            if str(child) in graph:
                reached[str(child)] = score
                frontier.append(str(child))
    return scores


def _predict(classifier, features, hierarchy: LabelHierarchy, multi_path: bool):
    """hiclass's top path of every document as a label set, and the `(N, L)` label scores when the decoding needs
    them (multi-path data; None otherwise): computed once, then decoded at every threshold."""
    top = _label_sets(classifier.predict(features))
    return top, _scores(classifier, features, hierarchy) if multi_path else None


def _decode(top: list[set[str]], scores: np.ndarray | None, hierarchy: LabelHierarchy, threshold: float | None):
    """`(N, L)` bool, ancestor-closed: the top path, plus every label scored above `threshold` (if given)."""
    sets = [set(labels) for labels in top]
    if threshold is not None:
        labels = hierarchy.labels
        for row, extra in enumerate(scores > threshold):
            sets[row] |= {labels[i] for i in np.flatnonzero(extra)}
    return hierarchy.encode([hierarchy.close(s) for s in sets]).astype(bool)


def fit_and_test(
    train: tuple[list[str], list[set[str]]],
    dev: tuple[list[str], list[set[str]]],
    test: tuple[list[str], list[set[str]]],
    hierarchy: LabelHierarchy,
    c_grid: list[float],
    n_jobs: int = 1,
) -> tuple[dict, np.ndarray]:
    """Fit one classifier per `C`, keep the best on dev (and, for multi-path data, the best threshold), test once.

    Args:
        train, dev, test (`(texts, gold label sets)`): gold sets are ancestor-closed label names.
        hierarchy (`LabelHierarchy`): the label space of the predictions.
        c_grid (`list[float]`): `LogisticRegression` `C` values to try.
        n_jobs (`int`, defaults to 1): hiclass's parallel local classifiers.

    Returns:
        `(record, predicted)`: a JSON-able record (`setup`, `dev` and `test` metrics of `hierarchical_f1`, timings)
        and the `(N_test, L)` boolean prediction matrix.
    """
    import hiclass
    from hiclass import LocalClassifierPerParentNode
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    rows_x, rows_y = hiclass_rows(*train, hierarchy)
    multi_path = len(rows_x) > len(train[0])
    vectorizer = TfidfVectorizer(
        sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=100_000, dtype=np.float32
    )
    vectorizer.fit(train[0])
    x_train, x_dev, x_test = (vectorizer.transform(texts) for texts in (rows_x, dev[0], test[0]))
    gold_dev, gold_test = hierarchy.encode(dev[1]), hierarchy.encode(test[1])

    grid, best, convergence_warnings = [], None, 0
    for c in c_grid:
        fit_started = time.perf_counter()
        classifier = LocalClassifierPerParentNode(
            local_classifier=LogisticRegression(C=c, max_iter=1000), n_jobs=n_jobs
        )
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always", ConvergenceWarning)
            classifier.fit(x_train, rows_y)
        convergence_warnings += sum(issubclass(w.category, ConvergenceWarning) for w in recorded)
        fit_time = time.perf_counter() - fit_started
        top, scores = _predict(classifier, x_dev, hierarchy, multi_path)
        for threshold in THRESHOLDS if multi_path else (None,):
            metrics = hierarchical_f1(_decode(top, scores, hierarchy, threshold), gold_dev, hierarchy)
            grid.append(
                {
                    "C": c,
                    "threshold": threshold,
                    "dev_micro_f1": metrics["micro_f1"],
                    "dev_macro_f1": metrics["macro_f1"],
                    "fit_time_s": round(fit_time, 2),
                }
            )
            if best is None or metrics["micro_f1"] > best[0]["micro_f1"]:
                best = (metrics, c, threshold, classifier)
    dev_metrics, c, threshold, classifier = best
    predict_started = time.perf_counter()
    predicted = _decode(*_predict(classifier, x_test, hierarchy, threshold is not None), hierarchy, threshold)
    predict_time = time.perf_counter() - predict_started
    record = {
        "label": LABEL,
        "deterministic": True,
        "setup": {
            "hiclass_version": hiclass.__version__,
            "classifier": CLASSIFIER,
            "features": f"{FEATURES}, fit on the training documents",
            "training_rows": len(rows_x),
            "training_documents": len(train[0]),
            "multi_path": multi_path,
            "decoding": decoding(multi_path),
            "c_grid": list(c_grid),
            "threshold_grid": list(THRESHOLDS) if multi_path else None,
            "chosen_on_dev": {"C": c, "threshold": threshold},
            "dev_grid": grid,
            "convergence_warnings": convergence_warnings,
        },
        "dev": dev_metrics,
        "test": hierarchical_f1(predicted, gold_test, hierarchy),
        "wall_time_s": round(time.perf_counter() - started, 2),
        "test_predict_time_s": round(predict_time, 2),
    }
    return record, predicted

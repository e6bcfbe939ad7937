"""Tests of hisr_hf.metrics: sklearn agreement, hand-computed C-/P- examples, a loop oracle, Trainer hook."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch
from scipy.special import expit
from sklearn.metrics import f1_score, precision_score, recall_score
from transformers import EvalPrediction

from hisr_hf import LabelHierarchy
from hisr_hf.metrics import (
    compute_metrics_fn,
    format_metrics_table,
    hierarchical_f1,
    per_label_f1,
)

from .conftest import DEMO_20NG, REPO, read_lines

# Columns in id order: A, B, A.x, A.y, B.z
TREE = {"A": None, "B": None, "A.x": "A", "A.y": "A", "B.z": "B"}
DEEP_TREE = {
    "A": None, "B": None, "C": None,
    "A.x": "A", "A.y": "A", "B.z": "B", "C.u": "C",
    "A.x.1": "A.x", "A.x.2": "A.x", "A.y.1": "A.y", "B.z.1": "B.z", "B.z.2": "B.z", "B.z.3": "B.z",
}  # fmt: skip
# "AB" and "AB.2" have two parents; the leaves are AB.1, AB.2 (path {A, B, AB, A.x, AB.2}) and B.w.
DAG = {"A": None, "B": None, "AB": ["A", "B"], "A.x": "A", "B.w": "B", "AB.1": "AB", "AB.2": ["AB", "A.x"]}


@pytest.fixture(scope="module")
def tree():
    return LabelHierarchy.from_parents(TREE)


@pytest.fixture(scope="module")
def deep_tree():
    return LabelHierarchy.from_parents(DEEP_TREE)


@pytest.fixture(scope="module")
def dag():
    return LabelHierarchy.from_parents(DAG)


def rows(hierarchy: LabelHierarchy, *label_sets: list[str]) -> np.ndarray:
    """Exact (not ancestor-closed) 0/1 rows, for predictions and hand-written gold."""
    matrix = np.zeros((len(label_sets), hierarchy.num_labels), dtype=bool)
    for n, labels in enumerate(label_sets):
        for label in labels:
            matrix[n, hierarchy.label2id[label]] = True
    return matrix


def random_case(hierarchy: LabelHierarchy, num_documents: int, seed: int, leaves_only: bool = False):
    """Random ancestor-closed gold and probabilities correlated with it (so scores are neither 0 nor 1)."""
    rng = np.random.default_rng(seed)
    pool = hierarchy.leaves() if leaves_only else hierarchy.labels
    label_sets = [list(rng.choice(pool, size=rng.integers(0, 3), replace=False)) for _ in range(num_documents)]
    gold = hierarchy.encode(label_sets)
    probs = np.clip(0.35 * gold + 0.6 * rng.random(gold.shape), 0.0, 1.0)
    return probs, gold


# ------------------------------------------------------------------ slow, obviously correct oracle
def loop_oracle(predicted: np.ndarray, gold: np.ndarray, hierarchy: LabelHierarchy) -> dict[str, float]:
    """C- and P- metrics with Python loops over documents, labels and leaf paths, straight from the spec."""
    labels, index = hierarchy.labels, hierarchy.label2id

    def f1(tp, n_pred, n_gold):
        return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0

    def micro_macro(tp, n_pred, n_gold):
        micro = f1(sum(tp), sum(n_pred), sum(n_gold))
        return micro, sum(f1(*c) for c in zip(tp, n_pred, n_gold)) / len(tp)

    result = {}
    right = [0] * len(labels)
    for n in range(len(gold)):
        for j, label in enumerate(labels):
            if all(predicted[n, index[a]] and gold[n, index[a]] for a in hierarchy.sequence(label)):
                right[j] += 1
    n_pred = [int(predicted[:, j].sum()) for j in range(len(labels))]
    n_gold = [int(gold[:, j].sum()) for j in range(len(labels))]
    result["c_micro_f1"], result["c_macro_f1"] = micro_macro(right, n_pred, n_gold)

    paths = [[index[a] for a in hierarchy.sequence(leaf)] for leaf in hierarchy.leaves()]
    p_tp, p_pred, p_gold = [0] * len(paths), [0] * len(paths), [0] * len(paths)
    for n in range(len(gold)):
        for k, path in enumerate(paths):
            is_gold = all(gold[n, i] for i in path)
            is_pred = all(predicted[n, i] for i in path)
            p_gold[k] += is_gold
            p_pred[k] += is_pred
            p_tp[k] += is_gold and is_pred
    result["p_micro_f1"], result["p_macro_f1"] = micro_macro(p_tp, p_pred, p_gold)
    return result


# ------------------------------------------------------------------ agreement with sklearn
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_and_level_scores_match_sklearn(deep_tree, seed):
    probs, gold = random_case(deep_tree, num_documents=60, seed=seed)
    # One label with neither gold nor predictions, so the zero convention of Macro-F1 is exercised.
    unused = deep_tree.label2id["C.u"]
    gold[:, unused] = 0
    probs[:, unused] = 0.0
    metrics = hierarchical_f1(probs, gold, deep_tree)
    predicted = probs > 0.5
    columns = list(range(deep_tree.num_labels))

    assert metrics["micro_f1"] == pytest.approx(f1_score(gold, predicted, average="micro", zero_division=0))
    assert metrics["macro_f1"] == pytest.approx(
        f1_score(gold, predicted, average="macro", labels=columns, zero_division=0)
    )
    assert metrics["micro_precision"] == pytest.approx(
        precision_score(gold, predicted, average="micro", zero_division=0)
    )
    assert metrics["micro_recall"] == pytest.approx(recall_score(gold, predicted, average="micro", zero_division=0))
    depths = np.asarray(deep_tree.depths())
    for depth in (1, 2, 3):
        level = depths == depth
        level_columns = list(range(int(level.sum())))
        assert metrics[f"level_{depth}_micro_f1"] == pytest.approx(
            f1_score(gold[:, level], predicted[:, level], average="micro", zero_division=0)
        )
        assert metrics[f"level_{depth}_macro_f1"] == pytest.approx(
            f1_score(gold[:, level], predicted[:, level], average="macro", labels=level_columns, zero_division=0)
        )
    assert "level_4_micro_f1" not in metrics
    per_label = per_label_f1(probs, gold, deep_tree)
    assert list(per_label) == deep_tree.labels
    np.testing.assert_allclose(list(per_label.values()), f1_score(gold, predicted, average=None, zero_division=0))


@pytest.mark.parametrize("name", ["deep_tree", "dag"])
@pytest.mark.parametrize("seed", [0, 1])
def test_c_and_p_scores_match_loop_oracle(request, name, seed):
    hierarchy = request.getfixturevalue(name)
    probs, gold = random_case(hierarchy, num_documents=40, seed=seed, leaves_only=True)
    metrics = hierarchical_f1(probs, gold, hierarchy)
    expected = loop_oracle(probs > 0.5, gold.astype(bool), hierarchy)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value), key
    assert metrics["c_micro_f1"] <= metrics["micro_f1"]


# ------------------------------------------------------------------ hand-computed examples
def test_right_label_with_missing_parent_lowers_c_scores(tree):
    gold = rows(tree, ["A", "A.x"], ["B", "B.z"])
    predicted = rows(tree, ["A.x"], ["B", "B.z"])  # doc 0: A.x is correct, but its parent A is not predicted
    metrics = hierarchical_f1(predicted, gold, tree)
    # Plain: tp = A.x(d0) + B(d1) + B.z(d1) = 3, predicted 3, gold 4 -> 2*3/7.
    assert metrics["micro_f1"] == pytest.approx(6 / 7)
    assert metrics["micro_precision"] == pytest.approx(1.0)
    assert metrics["micro_recall"] == pytest.approx(3 / 4)
    # Per label (tp, pred, gold): A (0,0,1)->0, B (1,1,1)->1, A.x (1,1,1)->1, A.y (0,0,0)->0, B.z (1,1,1)->1.
    assert metrics["macro_f1"] == pytest.approx(3 / 5)
    # C: A.x in d0 is not right (A missing) -> right = 2, predicted 3, gold 4 -> 2*2/7; A.x now (0,1,1)->0.
    assert metrics["c_micro_f1"] == pytest.approx(4 / 7)
    assert metrics["c_macro_f1"] == pytest.approx(2 / 5)
    # P: paths A.x={A,A.x}, A.y={A,A.y}, B.z={B,B.z}. Gold paths: d0 A.x, d1 B.z. Predicted: d1 B.z only.
    # Micro tp 1, pred 1, gold 2 -> 2/3. Macro: A.x (0,0,1)->0, A.y (0,0,0)->0, B.z (1,1,1)->1 -> 1/3.
    assert metrics["p_micro_f1"] == pytest.approx(2 / 3)
    assert metrics["p_macro_f1"] == pytest.approx(1 / 3)
    # Level 1: A (0,0,1), B (1,1,1) -> micro 2*1/3, macro (0+1)/2. Level 2: all correct, A.y unsupported.
    assert metrics["level_1_micro_f1"] == pytest.approx(2 / 3)
    assert metrics["level_1_macro_f1"] == pytest.approx(1 / 2)
    assert metrics["level_2_micro_f1"] == pytest.approx(1.0)
    assert metrics["level_2_macro_f1"] == pytest.approx(2 / 3)
    assert metrics["num_labels_without_support"] == 1  # A.y


def test_wrong_sibling_counts_for_c_but_not_p(tree):
    gold = rows(tree, ["A", "A.x"])
    predicted = rows(tree, ["A", "A.x", "A.y"])
    metrics = hierarchical_f1(predicted, gold, tree)
    # Labels: tp 2 (A, A.x), predicted 3, gold 2 -> 4/5 both plain and C (A.x's ancestor A is correct).
    assert metrics["micro_f1"] == pytest.approx(4 / 5)
    assert metrics["c_micro_f1"] == pytest.approx(4 / 5)
    # Paths: gold {A.x}; predicted {A.x, A.y}; tp 1 -> 2*1/(2+1).
    assert metrics["p_micro_f1"] == pytest.approx(2 / 3)
    # Macro over all three paths: A.x 1, A.y (0,1,0)->0, B.z (0,0,0)->0.
    assert metrics["p_macro_f1"] == pytest.approx(1 / 3)


def test_dag_paths_need_every_parent(dag):
    assert dag.depth("AB") == 2 and dag.depth("AB.2") == 3
    assert sorted(dag.leaves()) == ["AB.1", "AB.2", "B.w"]  # A.x has the child AB.2
    gold = rows(dag, ["A", "B", "AB", "AB.1"], ["B", "B.w"])
    predicted = rows(dag, ["A", "AB", "AB.1"], ["A", "B", "B.w"])  # d0 misses B, the second parent of AB
    metrics = hierarchical_f1(predicted, gold, dag)
    # Plain: d0 tp A, AB, AB.1 (3) pred 3 gold 4; d1 tp B, B.w (2) pred 3 gold 2 -> tp 5, pred 6, gold 6 -> 10/12.
    assert metrics["micro_f1"] == pytest.approx(5 / 6)
    # Per label (tp, pred, gold): A (1,2,1) 2/3, B (1,1,2) 2/3, AB 1, A.x 0, B.w 1, AB.1 1, AB.2 0 -> (13/3)/7.
    assert metrics["macro_f1"] == pytest.approx(13 / 21)
    # C: AB and AB.1 in d0 need B -> not right; right = A(d0), B(d1), B.w(d1) = 3 -> 6/12.
    assert metrics["c_micro_f1"] == pytest.approx(0.5)
    # C per label (right, pred, gold): A 2/3, B 2/3, AB (0,1,1) 0, AB.1 (0,1,1) 0, B.w 1, others 0 -> (7/3)/7.
    assert metrics["c_macro_f1"] == pytest.approx(1 / 3)
    # P: paths AB.1 {A,B,AB,AB.1}, AB.2 {A,B,AB,A.x,AB.2}, B.w {B,B.w}. Gold: AB.1 (d0), B.w (d1).
    # Predicted: B.w (d1) only. tp 1, pred 1, gold 2 -> 2/3; macro AB.1 0, AB.2 0, B.w 1 -> 1/3.
    assert metrics["p_micro_f1"] == pytest.approx(2 / 3)
    assert metrics["p_macro_f1"] == pytest.approx(1 / 3)
    assert metrics["level_2_micro_f1"] == pytest.approx(2 * 2 / (2 + 2))  # AB (1,1,1), B.w (1,1,1)
    # AB.2's path is the union of both parents' ancestors: {A, B, AB, A.x, AB.2}.
    gold = dag.encode([["AB.2"]])
    assert gold.sum() == 5
    assert hierarchical_f1(gold.astype(bool), gold, dag)["p_micro_f1"] == 1.0
    metrics = hierarchical_f1(rows(dag, ["A", "B", "AB", "AB.2"]), gold, dag)  # A.x missing
    assert metrics["micro_f1"] == pytest.approx(8 / 9)
    assert metrics["c_micro_f1"] == pytest.approx(2 * 3 / 9)  # A, B, AB right; AB.2 needs A.x
    assert metrics["p_micro_f1"] == 0.0
    # Gold that stops at the inner label AB (or at A.x, which has the child AB.2) has no P- scores.
    assert "p_micro_f1" not in hierarchical_f1(gold, dag.encode([["AB"]]), dag)
    assert "p_micro_f1" not in hierarchical_f1(gold, dag.encode([["A.x"]]), dag)


def test_p_scores_omitted_when_gold_stops_at_inner_label(tree):
    predicted = rows(tree, ["A"], ["B", "B.z"])
    assert "p_micro_f1" not in hierarchical_f1(predicted, rows(tree, ["A"], ["B", "B.z"]), tree)
    # A gold label off every fully gold leaf path: A is gold but neither A.x nor A.y is.
    metrics = hierarchical_f1(predicted, rows(tree, ["A", "B", "B.z"], ["B", "B.z"]), tree)
    assert "p_micro_f1" not in metrics and "p_macro_f1" not in metrics
    assert "c_micro_f1" in metrics
    # Several complete paths, and documents without any gold label, are fine.
    metrics = hierarchical_f1(predicted, rows(tree, ["A", "A.x", "A.y", "B", "B.z"], []), tree)
    assert "p_micro_f1" in metrics and "p_macro_f1" in metrics


# ------------------------------------------------------------------ inputs
def test_threshold_is_strict(tree):
    gold = rows(tree, ["A", "A.x"])
    probs = np.array([[0.5, 0.0, 0.5000001, 0.0, 0.0]])
    metrics = hierarchical_f1(probs, gold, tree)
    # A at exactly 0.5 is not predicted: tp 1 (A.x), predicted 1, gold 2.
    assert metrics["micro_f1"] == pytest.approx(2 / 3)
    assert metrics["c_micro_f1"] == 0.0
    assert hierarchical_f1(probs, gold, tree, threshold=0.4)["micro_f1"] == 1.0
    assert hierarchical_f1(probs, gold, tree, threshold=0.5000001)["micro_f1"] == 0.0
    # A boolean prediction matrix ignores the threshold.
    assert hierarchical_f1(probs >= 0.5, gold, tree, threshold=0.99)["micro_f1"] == 1.0


def test_torch_inputs_match_numpy(deep_tree):
    probs, gold = random_case(deep_tree, num_documents=20, seed=3)
    expected = hierarchical_f1(probs, gold, deep_tree)
    as_tensor = torch.tensor(probs, dtype=torch.float32, requires_grad=True)
    assert hierarchical_f1(as_tensor, torch.from_numpy(gold), deep_tree) == pytest.approx(expected)
    assert hierarchical_f1(as_tensor > 0.5, torch.from_numpy(gold).bool(), deep_tree) == pytest.approx(expected)


def test_num_labels_without_support(deep_tree):
    gold = deep_tree.encode([["A.x.1"], ["B.z.2"]])
    metrics = hierarchical_f1(gold, gold, deep_tree)
    # Supported: A, A.x, A.x.1, B, B.z, B.z.2 -> 13 - 6 = 7 without support, each F1 0 in the macro average.
    assert metrics["num_labels_without_support"] == 7
    assert metrics["micro_f1"] == 1.0
    assert metrics["macro_f1"] == pytest.approx(6 / 13)
    assert metrics["p_macro_f1"] == pytest.approx(2 / len(deep_tree.leaves()))


def test_invalid_inputs_are_reported(tree):
    with pytest.raises(ValueError, match=r"document 1 has label 'B.z' without its ancestor\(s\) \['B'\]"):
        hierarchical_f1(rows(tree, [], ["B.z"]), rows(tree, ["A"], ["B.z"]), tree)
    with pytest.raises(ValueError, match=r"must be 0/1, got .*document 0, label 'B'"):
        hierarchical_f1(np.zeros((1, 5)), np.array([[0, 2, 0, 0, 0]]), tree)
    with pytest.raises(ValueError, match=r"has 5 labels"):
        hierarchical_f1(np.zeros((2, 4)), np.zeros((2, 4)), tree)
    with pytest.raises(ValueError, match=r"2-D"):
        hierarchical_f1(np.zeros(5), np.zeros(5), tree)
    with pytest.raises(ValueError, match=r"3 rows but labels has 2"):
        hierarchical_f1(np.zeros((3, 5)), np.zeros((2, 5)), tree)


# ------------------------------------------------------------------ Trainer hook
def test_compute_metrics_fn_takes_logits(deep_tree):
    probs, gold = random_case(deep_tree, num_documents=30, seed=4)
    logits = np.log(probs + 1e-9) - np.log1p(-probs + 1e-9)
    logits[0, :] = 0.0  # sigmoid(0) = 0.5 exactly: not predicted
    logits[1, :] = 1000.0  # no overflow warning
    logits[2, :] = -1000.0
    expected = hierarchical_f1(expit(logits), gold, deep_tree)
    compute_metrics = compute_metrics_fn(deep_tree)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = compute_metrics(EvalPrediction(predictions=logits, label_ids=gold))
    assert metrics == pytest.approx(expected)
    assert metrics.keys() == expected.keys()
    # Models with extra outputs hand the Trainer a tuple whose first element is the logits.
    hidden = np.zeros((30, 7))
    assert compute_metrics(EvalPrediction(predictions=(logits, hidden), label_ids=gold)) == pytest.approx(expected)
    prefixed = compute_metrics_fn(deep_tree, prefix="test_")(EvalPrediction(predictions=logits, label_ids=gold))
    assert prefixed["test_micro_f1"] == pytest.approx(expected["micro_f1"])
    assert all(key.startswith("test_") for key in prefixed)


def test_compute_metrics_fn_threshold(tree):
    compute_metrics = compute_metrics_fn(tree, threshold=0.9)
    gold = rows(tree, ["A", "A.x"]).astype(np.float32)
    logits = np.array([[3.0, -3.0, 2.0, -3.0, -3.0]])  # sigmoid: 0.953, 0.047, 0.881, ...
    assert compute_metrics(EvalPrediction(predictions=logits, label_ids=gold))["micro_f1"] == pytest.approx(2 / 3)


# ------------------------------------------------------------------ real taxonomy
def test_20ng_gold_scored_against_itself_is_perfect():
    hierarchy = LabelHierarchy.from_taxonomy_file(DEMO_20NG / "20ng.taxonomy")
    first_per_leaf: dict[str, list[str]] = {}
    for line in read_lines(DEMO_20NG / "dev.jsonl.gz", 500):
        labels = json.loads(line)["labels"]
        first_per_leaf.setdefault(max(labels, key=hierarchy.depth), labels)
    gold = hierarchy.encode(first_per_leaf.values())
    assert len(gold) == 20 and (gold.sum(0) > 0).all()
    metrics = hierarchical_f1(gold, gold, hierarchy)
    assert metrics.pop("num_labels_without_support") == 0
    assert {"p_micro_f1", "p_macro_f1", "level_3_macro_f1"} <= metrics.keys()
    assert metrics == pytest.approx(dict.fromkeys(metrics, 1.0))


# ------------------------------------------------------------------ table
def test_format_metrics_table(tree):
    metrics = hierarchical_f1(rows(tree, ["A.x"], ["B", "B.z"]), rows(tree, ["A", "A.x"], ["B", "B.z"]), tree)
    table = format_metrics_table({f"eval_{key}": value for key, value in metrics.items()})
    lines = table.splitlines()
    assert lines[0] == "| Metric | Micro-F1 | Macro-F1 |"
    assert lines[2] == "| Overall | 85.71 | 60.00 |"
    assert [line.split(" | ")[0] for line in lines[2:6]] == [
        "| Overall", "| Path-constrained (C-)", "| Path-based (P-)", "| Level 1",
    ]  # fmt: skip
    assert lines[6].startswith("| Level 2 |")
    assert re.search(r"^1 label\(s\) have no gold document", table, flags=re.M)

    without_p = format_metrics_table({"micro_f1": (0.9, 0.01), "macro_f1": (0.8, 0.02), "c_micro_f1": 0.5})
    assert "Path-based" not in without_p
    assert "| Overall | 90.00 ± 1.00 | 80.00 ± 2.00 |" in without_p
    assert "| Path-constrained (C-) | 50.00 | – |" in without_p
    with pytest.raises(ValueError, match="micro_f1"):
        format_metrics_table({"accuracy": 1.0})


# ------------------------------------------------------------------ evaluate module
def test_evaluate_module_returns_what_hierarchical_f1_returns(tmp_path, monkeypatch):
    import evaluate

    from hisr_hf.metrics import EVALUATE_MODULE

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    hierarchy = LabelHierarchy.from_taxonomy_file(DEMO_20NG / "20ng.taxonomy")
    gold = hierarchy.encode([json.loads(line)["labels"] for line in read_lines(DEMO_20NG / "dev.jsonl.gz", 120)])
    probs = np.clip(gold * 0.6 + np.random.default_rng(0).random(gold.shape) * 0.5, 0, 1).astype(np.float32)
    expected = hierarchical_f1(probs, gold, hierarchy)
    metric = evaluate.load(EVALUATE_MODULE)
    for start in range(0, len(gold), 50):  # as in an evaluation loop
        metric.add_batch(predictions=probs[start : start + 50], references=gold[start : start + 50])
    assert metric.compute(hierarchy=hierarchy) == pytest.approx(expected)
    parents = {label: list(hierarchy.parents(label)) or None for label in hierarchy.labels}
    for form in (hierarchy.to_dict(), parents):
        result = metric.compute(predictions=probs, references=gold, hierarchy=form, threshold=0.3)
        assert result == pytest.approx(hierarchical_f1(probs, gold, hierarchy, threshold=0.3))
    with pytest.raises(ValueError, match="needs the label hierarchy"):
        metric.compute(predictions=probs, references=gold)
    monkeypatch.chdir(REPO)  # the folder in the repository loads the same way
    assert evaluate.load("hisr_hf/evaluate_modules/hierarchical_f1").compute(
        predictions=probs, references=gold, hierarchy=hierarchy
    ) == pytest.approx(expected)

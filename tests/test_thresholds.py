"""Thresholds tuned on dev: global, per level, per label; the errors users meet."""

from __future__ import annotations

import numpy as np
import pytest

from hisr_hf import LabelHierarchy
from hisr_hf.metrics import hierarchical_f1
from hisr_hf.thresholds import tune_thresholds

from .conftest import TREE_PARENTS


@pytest.fixture(scope="module")
def tree():
    return LabelHierarchy.from_parents(TREE_PARENTS)


def _data(tree, positive: dict[int, float], negative: float = 0.1, documents: int = 60):
    """Gold: random leaves (ancestor-closed); probabilities: `positive[depth]` on gold labels, `negative` elsewhere,
    with a little noise."""
    rng = np.random.default_rng(0)
    leaves = tree.leaves()
    gold = tree.encode([[leaves[i % len(leaves)]] for i in range(documents)])
    depth = np.array([tree.depth(label) for label in tree.labels])
    level_positive = np.array([positive[d] for d in depth])
    probs = np.where(gold > 0, level_positive, negative) + rng.uniform(-0.02, 0.02, gold.shape)
    return probs, gold


def test_global_threshold_is_the_best_on_dev(tree):
    probs, gold = _data(tree, {1: 0.3, 2: 0.3, 3: 0.3})
    thresholds = tune_thresholds(probs, gold, tree, mode="global")
    assert len(set(thresholds.values())) == 1 and set(thresholds) == set(tree.labels)
    value = next(iter(thresholds.values()))
    assert 0.1 < value < 0.3 and value == 0.25  # every value in (0.12, 0.28) is perfect; ties go towards 0.5
    assert hierarchical_f1(probs, gold, tree, threshold=value)["micro_f1"] == 1.0
    assert hierarchical_f1(probs, gold, tree)["micro_f1"] == 0.0  # nothing passes 0.5


def test_level_thresholds_follow_each_level(tree):
    probs, gold = _data(tree, {1: 0.9, 2: 0.45, 3: 0.2}, negative=0.05)
    thresholds = tune_thresholds(probs, gold, tree, mode="level")
    by_depth = {tree.depth(label): value for label, value in thresholds.items()}
    assert by_depth[1] == 0.5 and 0.05 < by_depth[2] < 0.45 and 0.05 < by_depth[3] < 0.2
    tuned = np.array([thresholds[label] for label in tree.labels])
    assert hierarchical_f1(probs, gold, tree, threshold=tuned)["micro_f1"] == 1.0
    assert tune_thresholds(probs, gold, tree, mode="global") != thresholds  # one value cannot fit all three


def test_label_thresholds_and_unsupported_labels(tree):
    probs, gold = _data(tree, {1: 0.8, 2: 0.35, 3: 0.35})
    gold[:, tree.label2id["B.z.1"]] = 0  # no dev support: B.z.1 keeps 0.5 (and B.z loses its gold child)
    gold[:, tree.label2id["B.z"]] = 0
    gold[:, tree.label2id["B"]] = 0
    thresholds = tune_thresholds(probs, gold, tree, mode="label")
    assert thresholds["B.z.1"] == 0.5 and thresholds["A"] == 0.5 and 0.1 < thresholds["A.x.1"] < 0.35


def test_errors_name_what_is_wrong(tree):
    probs, gold = _data(tree, {1: 0.5, 2: 0.5, 3: 0.5})
    with pytest.raises(ValueError, match=r"mode must be one of \['global', 'level', 'label'\], got 'leaf'"):
        tune_thresholds(probs, gold, tree, mode="leaf")
    with pytest.raises(ValueError, match=r"must both be \(documents, 8 labels\)"):
        tune_thresholds(probs[:, :3], gold[:, :3], tree)
    with pytest.raises(ValueError, match=r"grid values must lie in \(0, 1\)"):
        tune_thresholds(probs, gold, tree, grid=(0.0, 0.5))

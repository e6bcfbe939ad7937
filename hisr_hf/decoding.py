"""Hierarchy-aware decoding: label probabilities -> consistent label sets and root-to-label paths.

This file travels with every checkpoint (``trust_remote_code``): it imports only ``torch`` and its siblings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .hierarchy import LabelHierarchy

DECODING_STRATEGIES = ("consistent", "top_down")


@dataclass
class LabelPathPrediction:
    """Decoded prediction for one document.

    Attributes:
        labels (`list[str]`): predicted labels in id order. With `strategy="consistent"` every label comes with all
            of its ancestors; with `"top_down"` the labels are one chain of parent links (in a DAG, through one
            parent of each label).
        paths (`list[list[str]]`): the maximal predicted paths, each a chain of parent links from a top-level label
            down to a predicted label none of whose children is predicted.
        scores (`dict[str, float]`): probability of every predicted label.
    """

    labels: list[str] = field(default_factory=list)
    paths: list[list[str]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"labels": self.labels, "paths": self.paths, "scores": self.scores}


def label_thresholds(config, hierarchy: LabelHierarchy) -> float | torch.Tensor:
    """The decision thresholds a model's config stores: a ``(L,)`` tensor in label-id order from `config.thresholds`
    (`{label: threshold}`, labels it does not list at 0.5), or 0.5 when it stores none."""
    stored = getattr(config, "thresholds", None)
    if not stored:
        return 0.5
    return torch.tensor([float(stored.get(label, 0.5)) for label in hierarchy.labels])


def _threshold_vector(threshold: float | torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """``threshold`` as a ``(L,)`` tensor on ``probs``' device: one value for every label, or one per label."""
    vector = torch.as_tensor(threshold, dtype=probs.dtype, device=probs.device)
    if vector.dim() == 0:
        return vector.expand(probs.shape[-1])
    if vector.shape != (probs.shape[-1],):
        raise ValueError(
            f"threshold must be one float or one value per label ({probs.shape[-1]}), got shape {tuple(vector.shape)}."
        )
    return vector


def consistent_mask(
    probs: torch.Tensor, hierarchy: LabelHierarchy, threshold: float | torch.Tensor = 0.5
) -> torch.Tensor:
    """Labels above ``threshold`` (one float, or a ``(L,)`` tensor of per-label thresholds) whose ancestors are all
    above theirs too: ``(B, L)`` bool.

    A label whose parent falls under the threshold is dropped rather than its parent added, so decoding can
    only remove predictions, never invent them. Works from the hierarchy's sequence index: ``O(B * L * depth)``.
    """
    index, _ = hierarchy.sequence_index()
    index = index.to(probs.device)
    # Labels on the first axis: each step gathers whole rows (one per label) instead of B * L scattered elements.
    above = (probs > _threshold_vector(threshold, probs)).T.contiguous()
    padded = torch.cat([above, torch.ones_like(above[:1])], dim=0)  # the padding id L reads as "present"
    keep = above.clone()
    for position in range(index.shape[1]):  # one step per member of the longest sequence (the depth, in a tree)
        keep &= padded.index_select(0, index[:, position])
    return keep.T


def top_down_mask(
    probs: torch.Tensor, hierarchy: LabelHierarchy, threshold: float | torch.Tensor = 0.5
) -> torch.Tensor:
    """Greedy single-path decoding: from the top, follow the most probable child while it is above its
    ``threshold`` (one float, or a ``(L,)`` tensor of per-label thresholds). Returns ``(B, L)`` bool with one
    (possibly empty) chain of parent links per document; in a DAG the chain passes through one parent of each label, not all of them."""
    num_labels = hierarchy.num_labels
    table = hierarchy.children_index().to(probs.device)  # (L + 1, W); row L is the implicit root
    padded = torch.cat([probs, torch.full_like(probs[:, :1], float("-inf"))], dim=1)
    thresholds = _threshold_vector(threshold, probs)
    thresholds = torch.cat([thresholds, thresholds.new_full((1,), float("inf"))])  # the padding id never passes
    batch = torch.arange(probs.shape[0], device=probs.device)
    mask = torch.zeros(probs.shape[0], num_labels + 1, dtype=torch.bool, device=probs.device)
    node = torch.full((probs.shape[0],), num_labels, dtype=torch.long, device=probs.device)
    alive = torch.ones(probs.shape[0], dtype=torch.bool, device=probs.device)
    for _ in range(hierarchy.max_depth):  # one step per level, vectorised over the batch
        candidates = table[node]
        best_prob, best = padded.gather(1, candidates).max(dim=1)
        chosen = candidates[batch, best]
        alive = alive & (best_prob > thresholds[chosen]) & (chosen < num_labels)
        mask[batch[alive], chosen[alive]] = True
        node = torch.where(alive, chosen, torch.full_like(chosen, num_labels))
    return mask[:, :num_labels]


def decode_label_paths(
    probs: torch.Tensor,
    hierarchy: LabelHierarchy,
    threshold: float | torch.Tensor = 0.5,
    strategy: str = "consistent",
) -> list[LabelPathPrediction]:
    """Decode ``(B, L)`` probabilities into label sets that respect the hierarchy.

    Args:
        probs (`torch.Tensor` of shape `(batch_size, num_labels)`): sigmoid scores.
        hierarchy (`LabelHierarchy`): the model's hierarchy (`model.config.get_hierarchy()`).
        threshold (`float` or `torch.Tensor` of shape `(num_labels,)`, defaults to 0.5): a label is a candidate when
            its probability is above it (or above its own entry; `label_thresholds(model.config, hierarchy)` gives
            the thresholds a model stores).
        strategy (`str`, defaults to `"consistent"`): `"consistent"` keeps every candidate whose ancestors are all
            candidates (multi-path); `"top_down"` follows the single most probable child from the top while it is
            above the threshold (single-path data).
    """
    if strategy not in DECODING_STRATEGIES:
        raise ValueError(f"strategy must be one of {list(DECODING_STRATEGIES)}, got {strategy!r}.")
    probs = probs.detach().float()
    if strategy == "consistent":
        mask = consistent_mask(probs, hierarchy, threshold)
    else:
        mask = top_down_mask(probs, hierarchy, threshold)
    return predictions_from_mask(mask, probs, hierarchy)


def decode_pipeline_outputs(
    outputs: list[dict] | list[list[dict]],
    hierarchy: LabelHierarchy,
    threshold: float = 0.5,
    strategy: str = "consistent",
) -> list[LabelPathPrediction]:
    """Decode the output of `pipeline("text-classification", ..., top_k=None)` into consistent label paths.

    The pipeline scores every label independently (a sigmoid per label, since the config says
    `problem_type="multi_label_classification"`); this turns those scores into label sets that respect the
    hierarchy, exactly as `decode_label_paths` does with the model's probabilities.

    Args:
        outputs (`list[dict]` or `list[list[dict]]`): the pipeline's `[{"label": ..., "score": ...}, ...]` for one
            text, or one such list per text. Every label of the hierarchy must be there (`top_k=None`).
        hierarchy (`LabelHierarchy`): the model's hierarchy (`LabelHierarchy.from_dict(model.config.hierarchy)`).
        threshold, strategy: as for `decode_label_paths`.

    Example:

    ```python
    >>> classifier = pipeline("text-classification", model="org/hisr-model", trust_remote_code=True, top_k=None)  # doctest: +SKIP
    >>> hierarchy = LabelHierarchy.from_dict(classifier.model.config.hierarchy)  # doctest: +SKIP
    >>> decode_pipeline_outputs(classifier(["new GPU drivers for linux"]), hierarchy)[0].paths  # doctest: +SKIP
    [['comp', 'comp.os']]
    ```
    """
    if outputs and isinstance(outputs[0], dict):
        outputs = [outputs]
    label2id = hierarchy.label2id
    probs = torch.full((len(outputs), hierarchy.num_labels), float("nan"))
    for row, scores in enumerate(outputs):
        for item in scores:
            if item["label"] not in label2id:
                raise ValueError(
                    f"The pipeline returned label {item['label']!r}, which the hierarchy does not have "
                    f"(it has {hierarchy.labels[:5]}...). Decode with the model's own hierarchy."
                )
            probs[row, label2id[item["label"]]] = float(item["score"])
    missing = torch.isnan(probs).any(dim=1).nonzero().flatten().tolist()
    if missing:
        raise ValueError(
            f"Text(s) {missing[:5]} lack scores for some labels: call the pipeline with top_k=None so that it returns "
            "every label."
        )
    return decode_label_paths(probs, hierarchy, threshold=threshold, strategy=strategy)


def predictions_from_mask(mask: torch.Tensor, probs: torch.Tensor, hierarchy: LabelHierarchy) -> list[LabelPathPrediction]:
    """Turn a ``(B, L)`` prediction mask into `LabelPathPrediction`s.

    Every path is a real chain of parent links made of predicted labels, from a top-level label down to a
    predicted label none of whose children is predicted. In a DAG a label reached through two predicted parents
    ends two paths. The work is proportional to the number of predicted labels, not to ``L``.
    """
    labels = hierarchy.labels
    parents = hierarchy.parent_ids()
    mask = mask.bool()
    rows, columns = mask.nonzero(as_tuple=True)
    values = probs[rows, columns].float().tolist()
    predicted: list[list[int]] = [[] for _ in range(mask.shape[0])]
    scores: list[list[float]] = [[] for _ in range(mask.shape[0])]
    for row, column, value in zip(rows.tolist(), columns.tolist(), values):
        predicted[row].append(column)
        scores[row].append(value)
    results = []
    for ids, row_scores in zip(predicted, scores):
        chosen = set(ids)
        has_child = {p for i in ids for p in parents[i] if p in chosen}
        chains: dict[int, list[list[int]]] = {}
        paths = [[labels[i] for i in chain] for end in ids if end not in has_child for chain in _chains(end, chosen, parents, chains)]
        results.append(
            LabelPathPrediction(
                labels=[labels[i] for i in ids], paths=paths, scores={labels[i]: v for i, v in zip(ids, row_scores)}
            )
        )
    return results


def _chains(label: int, chosen: set[int], parents: list[tuple[int, ...]], memo: dict[int, list[list[int]]]) -> list[list[int]]:
    """Every chain of parent links through ``chosen`` labels that ends at ``label`` and starts at a top-level label
    (or, in a mask that is not ancestor-closed, at the highest chosen label above it)."""
    if label not in memo:
        above = [chain for p in parents[label] if p in chosen for chain in _chains(p, chosen, parents, memo)]
        memo[label] = [[*chain, label] for chain in above] if above else [[label]]
    return memo[label]

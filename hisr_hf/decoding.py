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
        labels (`list[str]`): predicted labels in id order; every label comes with all of its ancestors.
        paths (`list[list[str]]`): the maximal predicted paths, each from a top-level label down to a
            predicted label none of whose children is predicted.
        scores (`dict[str, float]`): probability of every predicted label.
    """

    labels: list[str] = field(default_factory=list)
    paths: list[list[str]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"labels": self.labels, "paths": self.paths, "scores": self.scores}


def consistent_mask(probs: torch.Tensor, path_matrix: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Labels above ``threshold`` whose ancestors are all above it too: ``(B, L)`` bool.

    A label whose parent falls under the threshold is dropped rather than its parent added, so decoding can
    only remove predictions, never invent them.
    """
    above = probs > threshold
    # A label survives when no member of its sequence is under the threshold.
    missing = (~above).to(probs.dtype) @ path_matrix.to(probs.dtype).T
    return above & (missing == 0)


def top_down_mask(probs: torch.Tensor, hierarchy: LabelHierarchy, threshold: float = 0.5) -> torch.Tensor:
    """Greedy single-path decoding: from the top, follow the most probable child while it is above
    ``threshold``. Returns ``(B, L)`` bool with one (possibly empty) path per document."""
    num_labels = hierarchy.num_labels
    # children[p] padded with L; the top level is row L (the implicit Root).
    children = [[] for _ in range(num_labels + 1)]
    for parent, child in hierarchy.edges():
        children[parent].append(child)
    label2id = hierarchy.label2id
    children[num_labels] = [label2id[label] for label in hierarchy.children(None)]
    width = max(len(c) for c in children)
    table = torch.full((num_labels + 1, max(width, 1)), num_labels, dtype=torch.long)
    for row, ids in enumerate(children):
        table[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    table = table.to(probs.device)
    padded = torch.cat([probs, torch.full_like(probs[:, :1], float("-inf"))], dim=1)
    batch = torch.arange(probs.shape[0], device=probs.device)
    mask = torch.zeros(probs.shape[0], num_labels + 1, dtype=torch.bool, device=probs.device)
    node = torch.full((probs.shape[0],), num_labels, dtype=torch.long, device=probs.device)
    alive = torch.ones(probs.shape[0], dtype=torch.bool, device=probs.device)
    for _ in range(hierarchy.max_depth):  # one step per level, vectorised over the batch
        candidates = table[node]
        best_prob, best = padded.gather(1, candidates).max(dim=1)
        chosen = candidates[batch, best]
        alive = alive & (best_prob > threshold) & (chosen < num_labels)
        mask[batch[alive], chosen[alive]] = True
        node = torch.where(alive, chosen, torch.full_like(chosen, num_labels))
    return mask[:, :num_labels]


def decode_label_paths(
    probs: torch.Tensor,
    hierarchy: LabelHierarchy,
    threshold: float = 0.5,
    strategy: str = "consistent",
) -> list[LabelPathPrediction]:
    """Decode ``(B, L)`` probabilities into label sets that respect the hierarchy.

    Args:
        probs (`torch.Tensor` of shape `(batch_size, num_labels)`): sigmoid scores.
        hierarchy (`LabelHierarchy`): the model's hierarchy (`model.config.get_hierarchy()`).
        threshold (`float`, defaults to 0.5): a label is a candidate when its probability is above it.
        strategy (`str`, defaults to `"consistent"`): `"consistent"` keeps every candidate whose ancestors are all
            candidates (multi-path); `"top_down"` follows the single most probable child from the top while it is
            above the threshold (single-path data).
    """
    if strategy not in DECODING_STRATEGIES:
        raise ValueError(f"strategy must be one of {list(DECODING_STRATEGIES)}, got {strategy!r}.")
    probs = probs.detach().float()
    if strategy == "consistent":
        mask = consistent_mask(probs, hierarchy.path_matrix().to(probs.device), threshold)
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
    """Turn an ancestor-closed ``(B, L)`` prediction mask into `LabelPathPrediction`s."""
    labels = hierarchy.labels
    edges = torch.tensor(hierarchy.edges(), dtype=torch.long).reshape(-1, 2).to(mask.device)
    # A predicted label ends a path when none of its children is predicted.
    child_count = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    if len(edges):
        child_count.index_add_(1, edges[:, 0], mask[:, edges[:, 1]].float())
    has_child = child_count > 0
    ends = mask & ~has_child
    mask_rows, ends_rows, prob_rows = mask.cpu().tolist(), ends.cpu().tolist(), probs.cpu().tolist()
    results = []
    for on, end, row in zip(mask_rows, ends_rows, prob_rows):
        chosen = [labels[i] for i, flag in enumerate(on) if flag]
        paths = [hierarchy.sequence(labels[i]) for i, flag in enumerate(end) if flag]
        results.append(
            LabelPathPrediction(labels=chosen, paths=paths, scores={labels[i]: row[i] for i, f in enumerate(on) if f})
        )
    return results

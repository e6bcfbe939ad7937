"""Slow loop oracles of the HiSR losses, written straight from spec section 3.

One document, one group and one sequence at a time, with exact F1 values (`Fraction`) and one torch op per
sequence: slow on purpose, and simple enough to check by reading. `tests/test_loss.py` checks the vectorised
losses against them; `benchmarks/speed_loss.py` times `reference_hisr_loss` as the per-document loop that the
vectorised loss replaces.
"""

from __future__ import annotations

from fractions import Fraction

import torch

from hisr_hf import LabelHierarchy


def reference_hisr_loss(
    probs: torch.Tensor,
    labels: torch.Tensor,
    hierarchy_or_path_matrix: LabelHierarchy | torch.Tensor,
    pos_margin: float = 0.5,
    neg_margin: float = 0.15,
    negatives: str = "not_subset_of_gold",
) -> torch.Tensor:
    """The HiSR sequence-ranking loss of `probs` (`(B, L)`) against the multi-hot `labels` (`(B, L)`).

    `hierarchy_or_path_matrix` is a `LabelHierarchy` or its `(L, L)` path matrix (row `j`: the labels of the
    sequence of label `j`, on any device). Documents without gold labels contribute nothing; a batch without any
    negative gives a zero that keeps the graph.
    """
    if negatives not in ("not_subset_of_gold", "f1_below_one"):
        raise ValueError(f"negatives must be 'not_subset_of_gold' or 'f1_below_one', got {negatives!r}.")
    if isinstance(hierarchy_or_path_matrix, LabelHierarchy):
        path_matrix = hierarchy_or_path_matrix.path_matrix()
    else:
        path_matrix = hierarchy_or_path_matrix
    if tuple(path_matrix.shape) != (probs.shape[1], probs.shape[1]):
        raise ValueError(
            f"the path matrix must be (L, L) with L = probs.shape[1] = {probs.shape[1]}, got {tuple(path_matrix.shape)}."
        )
    sequences = [row.nonzero().flatten().tolist() for row in path_matrix.bool().cpu()]

    document_losses = []
    for b in range(probs.shape[0]):
        gold = {i for i, value in enumerate(labels[b].tolist()) if value > 0.5}
        if not gold:
            continue
        gold_score = probs[b, sorted(gold)].mean()
        groups: dict[Fraction, list[int]] = {}
        for j, sequence in enumerate(sequences):
            f1 = Fraction(2 * len(set(sequence) & gold), len(sequence) + len(gold))
            if negatives == "not_subset_of_gold":
                is_negative = not set(sequence) <= gold
            else:
                is_negative = f1 < 1
            if is_negative:
                groups.setdefault(f1, []).append(j)
        if not groups:
            continue
        ordered = sorted(groups, reverse=True)  # highest F1 first
        k = len(ordered)
        hardest = [torch.stack([probs[b, sequences[j]].mean() for j in groups[f1]]).amax() for f1 in ordered]
        loss_pn = sum(torch.relu(h - gold_score + pos_margin) for h in hardest) / k
        loss_nn = 0
        for d in range(1, k):
            loss_nn = loss_nn + sum(torch.relu(hardest[r + d] - hardest[r] + d * neg_margin) for r in range(k - d)) / (
                k - d
            )
        document_losses.append((loss_pn + loss_nn) / k)
    if not document_losses:
        return probs.sum() * 0
    return torch.stack(document_losses).mean()


def reference_node_loss(probs: torch.Tensor, labels: torch.Tensor, top_k: int = 10, margin: float = 0.5) -> torch.Tensor:
    """The node term: every document's `top_k` highest-scoring non-gold labels against its lowest gold label."""
    terms = []
    for b in range(probs.shape[0]):
        gold = [i for i in range(probs.shape[1]) if float(labels[b, i]) > 0.5]
        if not gold:
            continue
        lowest_gold = probs[b, gold].min()
        non_gold = sorted((i for i in range(probs.shape[1]) if i not in gold), key=lambda i: -float(probs[b, i].detach()))
        terms.extend(torch.relu(probs[b, i] - lowest_gold + margin) for i in non_gold[:top_k])
    if not terms:
        return probs.sum() * 0
    return torch.stack(terms).mean()

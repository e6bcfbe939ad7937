"""The HiSR contrastive ranking loss (spec section 3), vectorised over batch, labels and groups.

This file travels with every checkpoint (``trust_remote_code``): it imports only ``torch``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NEGATIVE_MODES = ("not_subset_of_gold", "f1_below_one")
# F1 values are ratios of small integers; two sequences are in one group when their F1 agrees to 1e-6.
_F1_SCALE = 10**6
# Above this many possible groups the group axis is sized from the batch instead of the hierarchy.
_STATIC_GROUP_LIMIT = 64


def sequence_index_from_path_matrix(path_matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded form of a path matrix: label ids ``(L, D)`` padded with ``L``, and lengths ``(L,)``."""
    if path_matrix.dim() != 2 or path_matrix.shape[0] != path_matrix.shape[1]:
        raise ValueError(f"path_matrix must have shape (L, L), got {tuple(path_matrix.shape)}.")
    matrix = path_matrix.bool()
    num_labels = matrix.shape[0]
    # nonzero is row-major, so each row's ids come out ascending; no (L, L) int64 copy is made.
    rows, cols = matrix.nonzero(as_tuple=True)
    lengths = torch.bincount(rows, minlength=num_labels)
    if bool((lengths == 0).any()):
        empty = torch.nonzero(lengths == 0).flatten()[:10].tolist()
        raise ValueError(f"path_matrix rows {empty} are empty: every sequence holds at least its own label.")
    width = int(lengths.max())
    position = torch.arange(rows.numel(), device=matrix.device) - (lengths.cumsum(0) - lengths)[rows]
    index = torch.full((num_labels, width), num_labels, dtype=torch.long, device=matrix.device)
    index[rows, position] = cols
    return index, lengths


def hisr_loss(
    probs: torch.Tensor,
    labels: torch.Tensor,
    path_matrix: torch.Tensor,
    pos_margin: float = 0.5,
    neg_margin: float = 0.15,
    negatives: str = "not_subset_of_gold",
) -> torch.Tensor:
    """HiSR sequence-ranking loss (spec section 3).

    Every label j defines a sequence (j and its ancestors). Negative sequences are grouped by their F1
    with the gold set; the hardest sequence of each group (highest mean probability) must score below
    the gold set by ``pos_margin``, and a group closer to the gold set must score above a farther one by
    ``d * neg_margin`` where d is their rank distance.

    Args:
        probs (`torch.Tensor` of shape `(batch_size, num_labels)`): label probabilities (sigmoid of logits).
        labels (`torch.Tensor` of shape `(batch_size, num_labels)`): ancestor-closed 0/1 gold labels.
        path_matrix (`torch.Tensor` of shape `(num_labels, num_labels)`): `M[j, i]` true iff label i is in
            the sequence of label j (see `LabelHierarchy.path_matrix`).
        pos_margin (`float`, defaults to 0.5): gold-vs-negative margin.
        neg_margin (`float`, defaults to 0.15): negative-vs-negative margin per rank step.
        negatives (`str`, defaults to `"not_subset_of_gold"`): which sequences are negatives:
            `"not_subset_of_gold"` (at least one label outside the gold set) or `"f1_below_one"` (the
            paper's literal reading: every sequence whose F1 with the gold set is below 1).

    Returns:
        `torch.Tensor`: scalar, the mean over documents that have at least one negative group (0 if none).

    Example:

    ```python
    >>> import torch
    >>> from hisr_hf import LabelHierarchy, hisr_loss
    >>> h = LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A", "A.y": "A"})
    >>> gold = torch.tensor(h.encode([{"A.x"}]))
    >>> hisr_loss(torch.full((1, 4), 0.5), gold, h.path_matrix())
    tensor(0.3250)
    ```
    """
    seq_index, seq_len = sequence_index_from_path_matrix(path_matrix.to(probs.device))
    return hisr_loss_from_sequences(probs, labels, seq_index, seq_len, pos_margin, neg_margin, negatives)


def hisr_loss_from_sequences(
    probs: torch.Tensor,
    labels: torch.Tensor,
    seq_index: torch.Tensor,
    seq_len: torch.Tensor,
    pos_margin: float = 0.5,
    neg_margin: float = 0.15,
    negatives: str = "not_subset_of_gold",
) -> torch.Tensor:
    """:func:`hisr_loss` on the padded sequence form (``seq_index`` ``(L, D)`` padded with ``L``, ``seq_len``
    ``(L,)``), which costs ``O(B * L * D)`` instead of ``O(B * L^2)``. The model keeps this form as buffers."""
    if negatives not in NEGATIVE_MODES:
        raise ValueError(f"negatives must be one of {NEGATIVE_MODES}, got {negatives!r}.")
    if probs.dim() != 2 or labels.shape != probs.shape:
        raise ValueError(
            f"probs and labels must both have shape (batch_size, num_labels); got {tuple(probs.shape)} and "
            f"{tuple(labels.shape)}."
        )
    if seq_index.shape[0] != probs.shape[1]:
        raise ValueError(f"The hierarchy has {seq_index.shape[0]} labels but probs has {probs.shape[1]} columns.")
    batch_size = probs.shape[0]
    dtype = probs.dtype
    gold = labels > 0.5 if labels.is_floating_point() else labels.bool()

    # Mean probability and gold overlap of every sequence: gather over the padded ancestor ids.
    padded_probs = F.pad(probs, (0, 1))
    padded_gold = F.pad(gold.long(), (0, 1))
    lengths = seq_len.to(probs.device)
    # index_select on the flat index: its backward is a plain index_add, cheaper on CPU than the
    # accumulating index_put that advanced indexing (`padded_probs[:, seq_index]`) differentiates into.
    flat_index = seq_index.reshape(-1)
    scores = padded_probs.index_select(1, flat_index).view(batch_size, *seq_index.shape).sum(dim=-1)
    scores = scores / lengths.to(dtype)  # (B, L)
    overlap = padded_gold.index_select(1, flat_index).view(batch_size, *seq_index.shape).sum(dim=-1)  # |seq(j) ∩ G|
    return hisr_loss_from_sequence_stats(
        probs, gold, scores, overlap, lengths, seq_index.shape[1], pos_margin, neg_margin, negatives
    )


def hisr_loss_from_sequence_stats(
    probs: torch.Tensor,
    gold: torch.Tensor,
    scores: torch.Tensor,
    overlap: torch.Tensor,
    lengths: torch.Tensor,
    width: int,
    pos_margin: float = 0.5,
    neg_margin: float = 0.15,
    negatives: str = "not_subset_of_gold",
) -> torch.Tensor:
    """The ranking part of :func:`hisr_loss`, from per-sequence statistics however they were computed.

    Args:
        probs (`(B, L)`): label probabilities. gold (`(B, L)` bool): the gold sets.
        scores (`(B, L)`): mean probability of every sequence. overlap (`(B, L)` long): `|seq(j) ∩ G|`.
        lengths (`(L,)` long): `|seq(j)|`. width (`int`): the longest sequence (bounds the number of groups).
    """
    batch_size, num_labels = probs.shape
    dtype = probs.dtype
    gold_size = gold.sum(dim=1)  # (B,)
    gold_score = (probs * gold.to(dtype)).sum(dim=1) / gold_size.clamp(min=1).to(dtype)  # (B,)

    denominator = lengths.unsqueeze(0) + gold_size.unsqueeze(1)  # |seq(j)| + |G|
    if negatives == "not_subset_of_gold":
        is_negative = overlap < lengths.unsqueeze(0)
    else:
        is_negative = 2 * overlap < denominator
    is_negative = is_negative & (gold_size > 0).unsqueeze(1)

    # F1 as an integer key rounded to 1e-6 (exact grouping, any device, no float64 needed); -1 = not negative.
    f1_key = torch.div(2 * overlap * _F1_SCALE + denominator // 2, denominator, rounding_mode="floor")
    f1_key = torch.where(is_negative, f1_key, torch.full_like(f1_key, -1))
    sorted_key, order = f1_key.sort(dim=1, descending=True)
    starts_group = torch.ones_like(sorted_key, dtype=torch.bool)
    starts_group[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
    sorted_rank = starts_group.long().cumsum(dim=1) - 1
    num_groups = torch.where(sorted_key >= 0, sorted_rank + 1, torch.zeros_like(sorted_rank)).amax(dim=1)  # K
    rank = torch.empty_like(sorted_rank).scatter_(1, order, sorted_rank)  # group rank of every sequence

    max_groups = _group_capacity(width, negatives, num_labels, num_groups)
    slot = torch.where(is_negative, rank, torch.full_like(rank, max_groups))  # non-negatives go to a spare slot
    hardest = torch.zeros(batch_size, max_groups + 1, dtype=dtype, device=probs.device)
    hardest = hardest.scatter_reduce(1, slot, scores, reduce="amax", include_self=False)[:, :max_groups]

    group_ids = torch.arange(max_groups, device=probs.device)
    valid = group_ids.unsqueeze(0) < num_groups.unsqueeze(1)  # (B, Kmax)
    groups = num_groups.clamp(min=1).to(dtype)

    positive = F.relu(hardest - gold_score.unsqueeze(1) + pos_margin)
    loss_pn = (positive * valid).sum(dim=1) / groups

    # Pairs (r, r + d): the closer group r must beat group r + d by d * neg_margin, weighted 1 / (K - d).
    distance = (group_ids.unsqueeze(0) - group_ids.unsqueeze(1)).unsqueeze(0)  # [., r, r'] = r' - r
    pair_valid = (distance >= 1) & valid.unsqueeze(1) & valid.unsqueeze(2)
    pair_terms = F.relu(hardest.unsqueeze(1) - hardest.unsqueeze(2) + distance.to(dtype) * neg_margin)
    pair_weight = 1.0 / (num_groups.view(-1, 1, 1) - distance).clamp(min=1).to(dtype)
    loss_nn = (pair_terms * pair_weight * pair_valid).sum(dim=(1, 2))

    per_document = (loss_pn + loss_nn) / groups
    has_groups = num_groups > 0
    return (per_document * has_groups).sum() / has_groups.sum().clamp(min=1).to(dtype)


def _group_capacity(width: int, negatives: str, num_labels: int, num_groups: torch.Tensor) -> int:
    """Size of the group axis. The number of distinct F1 values is bounded by the number of (overlap, length)
    pairs, which depends only on the longest sequence; past a small bound we size from the batch instead."""
    if negatives == "not_subset_of_gold":
        bound = width * (width + 1) // 2  # overlap in [0, length - 1]
    else:
        bound = (width + 1) * (width + 2) // 2 - 1  # overlap in [0, length]
    bound = min(bound, num_labels)
    if bound <= _STATIC_GROUP_LIMIT:
        return max(bound, 1)
    return max(int(num_groups.max()), 1)


def node_loss(
    probs: torch.Tensor, labels: torch.Tensor, top_k: int = 10, margin: float = 0.5
) -> torch.Tensor:
    """Optional node-level term of the authors' released code (spec section 3, default weight 0).

    The ``top_k`` highest-probability non-gold labels of each document against its lowest-probability
    gold label: ``mean max(0, P_neg - min_gold P + margin)`` over all (document, negative) pairs.
    """
    gold = labels > 0.5 if labels.is_floating_point() else labels.bool()
    k = min(top_k, probs.shape[1])
    negative_probs = probs.masked_fill(gold, float("-inf"))
    top, _ = negative_probs.topk(k, dim=1)
    has_gold = gold.any(dim=1, keepdim=True)
    valid = torch.isfinite(top) & has_gold
    lowest_gold = probs.masked_fill(~gold, float("inf")).amin(dim=1, keepdim=True)
    safe_top = torch.where(valid, top, torch.zeros_like(top))
    safe_gold = torch.where(has_gold, lowest_gold, torch.zeros_like(lowest_gold))
    terms = F.relu(safe_top - safe_gold + margin) * valid
    return terms.sum() / valid.sum().clamp(min=1).to(probs.dtype)

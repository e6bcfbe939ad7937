"""Other ways to compute the HiSR loss, for `speed.py` to race against `hisr_hf.loss`.

* :func:`loop_hisr_loss` -- what the authors' released code does: a Python loop per document and per
  sequence, Python sets and lists for the gold set and the groups, and one torch op per element.
  It follows spec section 3 (default negatives, ``"not_subset_of_gold"``) and is checked against the
  vectorised loss in `speed.py` before it is timed.
* :func:`dense_hisr_loss` -- the vectorised loss with the sequence scores and gold overlaps computed
  as ``(B, L) @ (L, L)`` products with the float path matrix instead of a gather over the padded
  ancestor ids. Everything after the scores is the library's code, copied.
* :func:`index_select_hisr_loss` -- the library's loss with one change: the gather over the padded
  ancestor ids is ``index_select`` on the flattened index instead of advanced indexing (the candidate fix,
  since adopted by the library: the two now agree).
* :func:`sequence_index_sort` -- the library's former sequence-index build (a sort of an ``(L, L)`` int64
  copy), against the ``nonzero`` build `hisr_hf.loss.sequence_index_from_path_matrix` uses now.
"""

from __future__ import annotations

import torch

from hisr_hf.loss import hisr_loss_from_sequence_stats, hisr_loss_from_sequences


def loop_hisr_loss(
    probs: torch.Tensor,
    labels: torch.Tensor,
    sequences: list[list[int]],
    pos_margin: float = 0.5,
    neg_margin: float = 0.15,
) -> torch.Tensor:
    """Per-document, per-sequence loop (``sequences[j]``: label ids of the sequence of label j)."""
    document_losses = []
    for b in range(probs.shape[0]):
        gold = [i for i, y in enumerate(labels[b].tolist()) if y > 0.5]
        if not gold:
            continue
        gold_set = set(gold)
        gold_score = sum(probs[b, i] for i in gold) / len(gold)
        groups: dict[float, list[torch.Tensor]] = {}
        for sequence in sequences:
            members = set(sequence)
            if members <= gold_set:
                continue  # only gold labels: not a negative
            f1 = round(2 * len(members & gold_set) / (len(sequence) + len(gold)), 6)
            score = sum(probs[b, i] for i in sequence) / len(sequence)
            groups.setdefault(f1, []).append(score)
        if not groups:
            continue
        ordered = sorted(groups, reverse=True)
        k = len(ordered)
        hardest = [torch.max(torch.stack(groups[f1])) for f1 in ordered]
        loss_pn = 0.0
        for h in hardest:
            loss_pn = loss_pn + torch.clamp(h - gold_score + pos_margin, min=0)
        loss_pn = loss_pn / k
        loss_nn = 0.0
        for d in range(1, k):
            pair_sum = 0.0
            for r in range(k - d):
                pair_sum = pair_sum + torch.clamp(hardest[r + d] - hardest[r] + d * neg_margin, min=0)
            loss_nn = loss_nn + pair_sum / (k - d)
        document_losses.append((loss_pn + loss_nn) / k)
    if not document_losses:
        return probs.sum() * 0
    return torch.stack(document_losses).mean()


def dense_hisr_loss(
    probs: torch.Tensor,
    labels: torch.Tensor,
    path_matrix_t: torch.Tensor,
    seq_len: torch.Tensor,
    max_width: int,
    pos_margin: float = 0.5,
    neg_margin: float = 0.15,
) -> torch.Tensor:
    """Default-negatives HiSR loss with ``scores = P @ M^T / len`` (``path_matrix_t``: float ``M^T``, ``(L, L)``)."""
    gold = labels > 0.5
    scores = (probs @ path_matrix_t) / seq_len.to(probs.dtype)  # (B, L)
    overlap = (gold.to(probs.dtype) @ path_matrix_t).round().long()  # exact: small integers
    return hisr_loss_from_sequence_stats(probs, gold, scores, overlap, seq_len, max_width, pos_margin, neg_margin)


def index_select_hisr_loss(
    probs: torch.Tensor,
    labels: torch.Tensor,
    seq_index: torch.Tensor,
    seq_len: torch.Tensor,
    pos_margin: float = 0.5,
    neg_margin: float = 0.15,
) -> torch.Tensor:
    """The ``index_select`` gather over the flattened index (backward: ``index_add`` instead of
    ``index_put_(accumulate=True)``). The library adopted it, so this is `hisr_loss_from_sequences` itself."""
    return hisr_loss_from_sequences(probs, labels, seq_index, seq_len, pos_margin, neg_margin)


def sequence_index_sort(path_matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sequence-index build the library used before: sort an ``(L, L)`` int64 copy of the ids (the library now
    builds the same index from ``nonzero``; this is kept to measure the difference)."""
    matrix = path_matrix.bool()
    num_labels = matrix.shape[0]
    lengths = matrix.sum(dim=1)
    ids = torch.arange(num_labels, device=matrix.device).expand(num_labels, -1)
    padded = torch.where(matrix, ids, torch.full_like(ids, num_labels))
    return padded.sort(dim=1).values[:, : int(lengths.max())].contiguous(), lengths

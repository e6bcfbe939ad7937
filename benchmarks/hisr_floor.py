"""Where the HiSR ranking term pulls a perfect classifier: its value and gradient at P = Y, per data set and margins.

A sequence's score is the mean probability of its labels, so a negative sequence that shares gold ancestors keeps
their share of the score even when the classifier is perfect (gold 1, everything else 0): the sibling of a depth-D
gold leaf scores (D - 1) / D against the gold set's 1, and an ``m_pos`` above 1 / D leaves its hinge active. The
negative-negative term asks groups d rank steps apart to score ``d * m_neg`` apart, which a perfect prediction's
scores need not be; where that hinge is active at P = Y, its gradient raises the closer group's hardest sequence,
and with it labels that are not gold. This script measures both on the gold label sets of the first 1,000 dev
documents of each data set (no model, no test document), at the paper's margins and at those a margin sweep
would try:

    python benchmarks/hisr_floor.py            # results/hisr_floor.{md,json}; ~1 min on 2 cores

Per margin pair: the mean ranking loss over documents at P = Y; the share of documents whose loss is above zero;
the share whose gradient step would raise at least one non-gold label's probability (a direction BCE never takes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from bench_utils import DATA, RESULTS
from quality import DATASETS, dataset_source, read_split

from hisr_hf import LabelHierarchy
from hisr_hf.loss import hisr_loss_from_sequences, sequence_index_from_path_matrix

# (m_pos, m_neg): the paper's, then each margin halved, doubled and the negative-negative term off.
MARGINS = ((0.5, 0.15), (0.25, 0.15), (1.0, 0.15), (0.5, 0.0), (0.5, 0.3), (0.25, 0.0))


def gold_matrix(name: str, max_documents: int) -> tuple[LabelHierarchy, torch.Tensor]:
    """The hierarchy of data set `name` and the multi-hot gold sets of its first `max_documents` dev documents."""
    source, taxonomy, label_column = dataset_source(name, DATA)
    hierarchy = LabelHierarchy.from_taxonomy_file(taxonomy)
    gold = read_split(source / "dev.jsonl", taxonomy, hierarchy, label_column)[3][:max_documents]
    return hierarchy, torch.as_tensor(hierarchy.encode(gold), dtype=torch.float32)


def floor(
    gold: torch.Tensor, sequences: tuple[torch.Tensor, torch.Tensor], pos_margin: float, neg_margin: float
) -> dict:
    """Per-document loss at P = Y and the sign of its gradient on non-gold labels."""
    probs = gold.clone().requires_grad_(True)
    # One document at a time: the loss is a mean over documents, and each one's value is wanted.
    losses = torch.stack(
        [
            hisr_loss_from_sequences(probs[b : b + 1], gold[b : b + 1], *sequences, pos_margin, neg_margin)
            for b in range(gold.shape[0])
        ]
    )
    losses.sum().backward()
    # A negative gradient on a non-gold label: gradient descent raises that label's probability.
    raised = ((probs.grad < 0) & (gold == 0)).any(dim=1)
    loss = losses.detach()
    return {
        "pos_margin": pos_margin,
        "neg_margin": neg_margin,
        "mean_loss": float(loss.mean()),
        "share_loss_above_zero": float((loss > 1e-9).float().mean()),
        "share_raising_non_gold": float(raised.float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--max_documents", type=int, default=1000, help="The first N dev documents of each data set.")
    parser.add_argument("--output", default=str(RESULTS / "hisr_floor"), help="Stem of the .json and .md files.")
    args = parser.parse_args()
    results = {}
    for name in args.datasets:
        hierarchy, gold = gold_matrix(name, args.max_documents)
        sequences = sequence_index_from_path_matrix(hierarchy.path_matrix())
        results[name] = {
            "labels": hierarchy.num_labels,
            "depth": hierarchy.max_depth,
            "dev_documents": gold.shape[0],
            "margins": [floor(gold, sequences, m_pos, m_neg) for m_pos, m_neg in MARGINS],
        }
        print(name, json.dumps(results[name]["margins"][0]), flush=True)
    stem = Path(args.output)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# The HiSR ranking term at a perfect prediction (P = Y)",
        "",
        f"The first {args.max_documents} dev gold label sets of each data set; command: `python benchmarks/hisr_floor.py`. Per margin pair (m_pos / m_neg): mean loss at "
        "P = Y, % of documents with a loss above zero, % of documents whose gradient step raises a non-gold label.",
        "",
        "| data set | labels | depth | dev docs | " + " | ".join(f"{p:g} / {n:g}" for p, n in MARGINS) + " |",
        "|---|---:|---:|---:|" + "---|" * len(MARGINS),
    ]
    for name, result in results.items():
        cells = [
            f"{m['mean_loss']:.3f}, {100 * m['share_loss_above_zero']:.0f} %, {100 * m['share_raising_non_gold']:.0f} %"
            for m in result["margins"]
        ]
        lines.append(
            f"| {name} | {result['labels']} | {result['depth']} | {result['dev_documents']} | "
            + " | ".join(cells)
            + " |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

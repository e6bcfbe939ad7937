"""Where the HiSR ranking term pulls a perfect classifier: its value and gradient at P = Y, per data set and margins.

A sequence's score is the mean probability of its labels, so a negative sequence that shares gold ancestors keeps
their share of the score even when the classifier is perfect (gold 1, everything else 0): the sibling of a depth-D
gold leaf scores (D - 1) / D against the gold set's 1, and an ``m_pos`` above 1 / D leaves its hinge active. The
negative-negative term asks groups d rank steps apart to score ``d * m_neg`` apart, which a perfect prediction's
scores need not be; where that hinge is active at P = Y, its gradient raises the closer group's hardest sequence,
and with it labels that are not gold. This script measures both on the gold label sets of the first 1,000 dev
documents of each data set (no model, no test document), at the paper's margins and at those a margin sweep
would try:

    python benchmarks/hisr_floor.py            # results/hisr_floor.{md,json}; ~10 min on 2 cores (tibkat: most)

Per margin pair: the mean ranking loss over documents at P = Y; the share of documents whose loss is above zero;
the share whose gradient step would raise at least one non-gold label's probability (a direction BCE never takes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from bench_utils import DATA, RESULTS

from hisr_hf import LabelHierarchy, hisr_loss
from hisr_hf.data import normalise_labels, resolve_columns

# name -> (folder, taxonomy file, label column or None to resolve it from the file's columns)
DATASETS = {
    "20ng": ("20ng", "20ng.taxonomy", None),
    "aapd": ("aapd", "aapd.taxonomy", None),
    "wos1k": ("wos1k", None, None),
    "tibkat-ddc": ("tibkat", "ddc.taxonomy", "ddc"),
    "tibkat-bk": ("tibkat", "bk.taxonomy", "bk"),
}
# (m_pos, m_neg): the paper's, then each margin halved, doubled and the negative-negative term off.
MARGINS = ((0.5, 0.15), (0.25, 0.15), (1.0, 0.15), (0.5, 0.0), (0.5, 0.3), (0.25, 0.0))


def gold_matrix(name: str, max_documents: int) -> tuple[LabelHierarchy, torch.Tensor]:
    folder, taxonomy, label_column = DATASETS[name]
    root = DATA / folder
    taxonomy_path = root / taxonomy if taxonomy else next(root.glob("*.taxonomy"))
    hierarchy = LabelHierarchy.from_taxonomy_file(taxonomy_path)
    lines = [line for line in (root / "dev.jsonl").read_text().splitlines() if line.strip()]
    rows = [json.loads(line) for line in lines[:max_documents]]
    _, label_column = resolve_columns(list(rows[0]), label_column=label_column)
    label_sets = []
    for row in rows:
        known, unknown = normalise_labels(row[label_column], hierarchy)
        if unknown:
            raise ValueError(f"{name}: dev labels {unknown[:5]} are not in {taxonomy_path}.")
        label_sets.append(known)
    return hierarchy, torch.as_tensor(hierarchy.encode(label_sets), dtype=torch.float32)


def floor(gold: torch.Tensor, path_matrix: torch.Tensor, pos_margin: float, neg_margin: float) -> dict:
    """Per-document loss at P = Y and the sign of its gradient on non-gold labels, in batches of 256."""
    losses, raises = [], []
    for start in range(0, gold.shape[0], 256):
        y = gold[start : start + 256]
        per_doc = []
        probs = y.clone().requires_grad_(True)
        for b in range(y.shape[0]):  # one document at a time: the loss is a mean over documents
            loss = hisr_loss(probs[b : b + 1], y[b : b + 1], path_matrix, pos_margin, neg_margin)
            per_doc.append(loss)
        torch.stack(per_doc).sum().backward()
        losses.append(torch.stack(per_doc).detach())
        # A negative gradient on a non-gold label: gradient descent raises that label's probability.
        raises.append(((probs.grad < 0) & (y == 0)).any(dim=1))
    loss = torch.cat(losses)
    raised = torch.cat(raises)
    return {
        "pos_margin": pos_margin,
        "neg_margin": neg_margin,
        "mean_loss": float(loss.mean()),
        "share_loss_above_zero": float((loss > 1e-9).float().mean()),
        "share_raising_non_gold": float(raised.float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--max_documents", type=int, default=1000, help="The first N dev documents of each data set.")
    parser.add_argument("--output", default=str(RESULTS / "hisr_floor"), help="Stem of the .json and .md files.")
    args = parser.parse_args()
    results = {}
    for name in args.datasets:
        hierarchy, gold = gold_matrix(name, args.max_documents)
        path_matrix = torch.as_tensor(hierarchy.path_matrix(), dtype=torch.bool)
        results[name] = {
            "labels": len(hierarchy.labels),
            "depth": int(path_matrix.sum(dim=1).max()),
            "dev_documents": gold.shape[0],
            "margins": [floor(gold, path_matrix, m_pos, m_neg) for m_pos, m_neg in MARGINS],
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

#!/usr/bin/env python
"""The quickstart against the hiclass peer on the same documents.

    bash examples/quickstart.sh                                # writes outputs/quickstart-20ng
    python benchmarks/quickstart_peer.py outputs/quickstart-20ng

Reads the demo data (`examples/data/20ng`) with the quickstart's own sampling (`--max_train_samples N
--sample_seed 0`: the first N of the seed-0 permutation of the training file; all 500 dev and 2,000 test
documents), fits `hiclass_peer` (TF-IDF + LogisticRegression per parent node, `C` chosen on dev) on the same
training documents, and writes both test results side by side to `benchmarks/results/quickstart_20ng.{md,json}`.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import hiclass_peer
import numpy as np

from hisr_hf import LabelHierarchy

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "data" / "20ng"
RESULTS = ROOT / "benchmarks" / "results"


def split(name: str) -> tuple[list[str], list[set[str]]]:
    with gzip.open(DEMO / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    return [r["text"] for r in records], [set(r["labels"]) for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="The quickstart's output folder (all_results.json, trainer_state.json).")
    args = parser.parse_args()
    results = json.loads((args.run_dir / "all_results.json").read_text(encoding="utf-8"))
    train_size = int(results["train_samples"])
    hierarchy = LabelHierarchy.from_taxonomy_file(DEMO / "20ng.taxonomy")
    texts, labels = split("train")
    rows = np.random.default_rng(0).permutation(len(texts))[:train_size]  # what run_htc --sample_seed 0 keeps
    train = ([texts[i] for i in rows], [labels[i] for i in rows])
    record, _ = hiclass_peer.fit_and_test(train, split("dev"), split("test"), hierarchy, c_grid=[1.0, 10.0])
    report = {
        "train_documents": train_size,
        "hisr": {key[len("test_"):]: value for key, value in results.items() if key.startswith("test_")},
        "hisr_train_runtime_s": results.get("train_runtime"),
        "hiclass": record,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quickstart_20ng.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    hisr, peer = report["hisr"], record["test"]
    lines = [
        "# Quickstart (20ng demo data) against hiclass on the same documents", "",
        f"{train_size} training documents (seeded sample of `examples/data/20ng/train.jsonl.gz`), 500 dev, "
        "2,000 test; test F1 in %.", "",
        "| model | Micro-F1 | Macro-F1 | C-Micro | C-Macro | level 3 Macro |", "|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for name, metrics in (("HiSR quickstart (`bash examples/quickstart.sh`)", hisr), (hiclass_peer.LABEL, peer)):
        cells = [metrics.get(key) for key in ("micro_f1", "macro_f1", "c_micro_f1", "c_macro_f1", "level_3_macro_f1")]
        lines.append(f"| {name} | " + " | ".join(f"{100 * v:.2f}" if v is not None else "–" for v in cells) + " |")
    (RESULTS / "quickstart_20ng.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Reload a trained HiSR model with `trust_remote_code` (no hisr_hf import needed), print its test metrics (the table
run_htc.py wrote) and the label paths it predicts for a few test documents.

    python examples/show_predictions.py outputs/quickstart-20ng --test_file examples/data/20ng/test.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import os

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

TEXT_COLUMNS = ("text", "token", "doc_token")
LABEL_COLUMNS = ("labels", "label", "doc_label")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="A directory written by examples/run_htc.py (or any HiSR checkpoint).")
    parser.add_argument("--test_file", help="JSON lines (.jsonl or .jsonl.gz) with the documents to show.")
    parser.add_argument("--num_examples", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--strategy", default="consistent", choices=("consistent", "top_down"))
    args = parser.parse_args()

    table_file = os.path.join(args.model_dir, "test_metrics.md")  # written by run_htc.py --do_predict
    if os.path.exists(table_file):
        with open(table_file, encoding="utf-8") as handle:
            print("Test metrics (%):\n" + handle.read())

    model = AutoModelForSequenceClassification.from_pretrained(args.model_dir, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir, trust_remote_code=True)
    print(f"\nReloaded {type(model).__name__} from {args.model_dir} with trust_remote_code "
          f"({model.config.num_labels} labels, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters).")
    if not args.test_file:
        return
    with (gzip.open if args.test_file.endswith(".gz") else open)(args.test_file, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    # Evenly spaced documents: test files are often sorted by label.
    step = max(len(records) // max(args.num_examples, 1), 1)
    documents = []
    for record in records[::step][: args.num_examples]:
        text = next(record[c] for c in TEXT_COLUMNS if c in record)
        gold = next((record[c] for c in LABEL_COLUMNS if c in record), [])
        documents.append((text if isinstance(text, str) else " ".join(text), gold))
    with torch.no_grad():
        predictions = model.predict_label_paths(
            [text for text, _ in documents], tokenizer, threshold=args.threshold, strategy=args.strategy, max_length=128
        )
    for (text, gold), prediction in zip(documents, predictions):
        snippet = " ".join(text.split())[:90]
        print(f"\n{snippet}...")
        print(f"  predicted: {' | '.join(' > '.join(path) for path in prediction.paths) or '(nothing above the threshold)'}")
        print(f"  gold:      {gold}")


if __name__ == "__main__":
    main()

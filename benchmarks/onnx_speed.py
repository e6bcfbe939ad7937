#!/usr/bin/env python
"""ONNX Runtime against PyTorch on CPU for a trained HiSR model: throughput and what int8 costs in F1.

    python benchmarks/onnx_speed.py outputs/quickstart-20ng --test_file examples/data/20ng/test.jsonl.gz

One process, one torch / ONNX Runtime thread count (`--threads`, default all cores), the same tokenised batches
for every backend: PyTorch fp32 (`torch.no_grad`), ONNX Runtime fp32 (`model.onnx`, the default fused export),
ONNX Runtime int8 (`model_quantized.onnx`, dynamic quantisation) and the unfused `optimize=False` graph, timed interleaved (one pass of every backend per round, `--rounds`
rounds, the median of each) so that load on the machine affects all alike. Quality: test Micro/Macro-F1 of each
backend's predictions at the 0.5 threshold (the same `hierarchical_f1`).

Results: `benchmarks/results/onnx_<tag>.{md,json}`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from transformers import AutoTokenizer

from hisr_hf import HiSRForHierarchicalClassification
from hisr_hf.metrics import hierarchical_f1
from hisr_hf.onnx import QUANTIZED_NAME, export_onnx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def read_documents(path: Path, text_column: str, label_column: str, limit: int | None) -> tuple[list[str], list]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    if limit and limit < len(records):  # evenly spaced: test files are often sorted by label
        records = [records[i * len(records) // limit] for i in range(limit)]
    return [r[text_column] for r in records], [r[label_column] for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="A trained HiSR model folder with its tokenizer.")
    parser.add_argument("--test_file", type=Path, required=True)
    parser.add_argument("--text_column", default="text")
    parser.add_argument("--label_column", default="labels")
    parser.add_argument("--max_documents", type=int, default=None, help="Evenly spaced test documents.")
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--tag", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = HiSRForHierarchicalClassification.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    hierarchy = model.hierarchy
    texts, gold_lists = read_documents(args.test_file, args.text_column, args.label_column, args.max_documents)
    gold = hierarchy.encode(gold_lists)
    batches = [
        tokenizer(texts[i : i + args.batch_size], padding=True, truncation=True, max_length=args.max_length, return_tensors="np")
        for i in range(0, len(texts), args.batch_size)
    ]

    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as plain_folder:
        export_started = time.perf_counter()
        export_onnx(model, folder, tokenizer=tokenizer, quantize=True)
        export_s = time.perf_counter() - export_started
        export_onnx(model, plain_folder, tokenizer=tokenizer, optimize=False)  # the unfused graph, for comparison
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        files = {
            "onnxruntime fp32": Path(folder) / "model.onnx",
            "onnxruntime int8": Path(folder) / QUANTIZED_NAME,
            "onnxruntime fp32, unfused (optimize=False)": Path(plain_folder) / "model.onnx",
        }
        sessions = {name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                    for name, path in files.items()}  # fmt: skip
        sizes_mb = {name: round(os.path.getsize(path) / 1e6, 1) for name, path in files.items()}
        input_names = [node.name for node in sessions["onnxruntime fp32"].get_inputs()]

        def run_torch() -> np.ndarray:
            with torch.no_grad():
                return np.concatenate([model(**{k: torch.from_numpy(b[k]) for k in input_names}).logits.numpy() for b in batches])

        def run_session(session) -> np.ndarray:
            return np.concatenate([session.run(["logits"], {k: b[k] for k in input_names})[0] for b in batches])

        backends = {"pytorch fp32": run_torch, **{name: (lambda s=s: run_session(s)) for name, s in sessions.items()}}
        times: dict[str, list[float]] = {name: [] for name in backends}
        logits: dict[str, np.ndarray] = {}
        for name, run in backends.items():  # warm-up, and the logits the scores come from
            logits[name] = run()
        for _ in range(args.rounds):
            for name, run in backends.items():
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)

    rows = {}
    for name in backends:
        seconds = statistics.median(times[name])
        scores = hierarchical_f1(1 / (1 + np.exp(-logits[name])), gold, hierarchy)
        rows[name] = {
            "docs_per_s": round(len(texts) / seconds, 1),
            "speedup_vs_pytorch": None,
            "micro_f1": scores["micro_f1"],
            "macro_f1": scores["macro_f1"],
            "max_abs_logit_diff_vs_pytorch": float(np.abs(logits[name] - logits["pytorch fp32"]).max()),
            "file_mb": sizes_mb.get(name),
        }
    for name, row in rows.items():
        row["speedup_vs_pytorch"] = round(row["docs_per_s"] / rows["pytorch fp32"]["docs_per_s"], 2)
    report = {
        "model": str(args.model), "test_file": str(args.test_file), "documents": len(texts),
        "max_length": args.max_length, "batch_size": args.batch_size, "rounds": args.rounds, "threads": args.threads,
        "export_s": round(export_s, 1), "rows": rows,
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "onnxruntime": ort.__version__,
                        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"onnx_{args.tag}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    base = rows["pytorch fp32"]
    lines = [
        f"# ONNX Runtime against PyTorch on CPU ({args.tag})", "",
        f"Model `{args.model}`, {len(texts)} test documents of `{args.test_file}`, length {args.max_length}, batch "
        f"{args.batch_size}, {args.threads} thread(s), median of {args.rounds} interleaved rounds. Export took "
        f"{export_s:.0f} s.", "",
        "| backend | docs/s | speed-up | test Micro-F1 | test Macro-F1 | Δ Micro | Δ Macro | max |Δ logit| | file MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['docs_per_s']:.1f} | {row['speedup_vs_pytorch']:.2f}× | {100 * row['micro_f1']:.2f} | "
            f"{100 * row['macro_f1']:.2f} | {100 * (row['micro_f1'] - base['micro_f1']):+.2f} | "
            f"{100 * (row['macro_f1'] - base['macro_f1']):+.2f} | {row['max_abs_logit_diff_vs_pytorch']:.1e} | "
            f"{row['file_mb'] if row['file_mb'] is not None else '–'} |"
        )
    (RESULTS / f"onnx_{args.tag}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

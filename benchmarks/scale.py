#!/usr/bin/env python
"""Scale benchmark: the HiSR model at hundreds to thousands of labels against a stock classifier.

For each taxonomy (a 385-label 3-level tree, tibkat's 3,244 DDC labels, a synthetic 10,000-label 4-level tree) and a
MiniLM-sized encoder with random weights (hidden 384, 6 layers; weights do not change the cost):

- head parameters (`model.head_parameters()`) against the encoder's, and the safetensors checkpoint size against a
  stock `AutoModelForSequenceClassification` (BERT, `num_labels` outputs) — for every head that fits in memory;
  HiAGM-TP's count is given by formula where it does not;
- training step time (forward + backward + fused AdamW step, batch 16, length 128) and inference time (no grad,
  batch 32) of the full model (GCN + HiSR, the config's default `node_dim`) with each linear-size head
  (`--heads`, default `factorized` and `label_attention`) against the stock classifier, measured interleaved in one
  process (A, B, C, A, B, C, ...; the median of each) so that load on the machine affects all alike;
- peak resident memory (VmHWM) of three training steps of each, one fresh process per model;
- decoding 32 documents at each label count (consistent and top-down).

    python benchmarks/scale.py                      # all taxonomies, 1 torch thread
    python benchmarks/scale.py --threads 2 --tag threads2
    python benchmarks/scale.py --quick              # smoke run: 2 timed steps, no memory processes
    python benchmarks/scale.py --heads factorized   # one head

Results: `benchmarks/results/scale_<tag>.{md,json}`.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_utils import DATA, RESULTS, machine_info, round_robin
from transformers import BertConfig, BertForSequenceClassification

from hisr_hf import HiSRConfig, HiSRForHierarchicalClassification, LabelHierarchy
from hisr_hf.configuration_hisr import LINEAR_SIZE_HEADS
from hisr_hf.decoding import decode_label_paths

CPU = torch.device("cpu")
MINILM = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
          "vocab_size": 30522, "max_position_embeddings": 512}  # fmt: skip


# ---------------------------------------------------------------------------------------------- taxonomies
def tree(sizes: list[int]) -> LabelHierarchy:
    """A tree with `sizes[d]` labels at depth d + 1, children spread evenly over the labels one level up."""
    parents: dict[str, str | None] = {}
    above: list[str] = []
    for depth, size in enumerate(sizes):
        level = [f"d{depth + 1}_{i}" for i in range(size)]
        for i, label in enumerate(level):
            parents[label] = above[i * len(above) // size] if above else None
        above = level
    return LabelHierarchy.from_parents(parents)


def taxonomies() -> dict[str, LabelHierarchy]:
    out = {"tree-385 (3 levels)": tree([7, 49, 329])}
    ddc = DATA / "tibkat" / "ddc.taxonomy"
    if ddc.is_file():
        out["tibkat DDC (3,244, 4 levels)"] = LabelHierarchy.from_taxonomy_file(ddc)
    out["tree-10k (4 levels)"] = tree([10, 100, 1000, 8890])
    return out


# ---------------------------------------------------------------------------------------------- models
def hisr_model(hierarchy: LabelHierarchy, head: str = "factorized") -> HiSRForHierarchicalClassification:
    config = HiSRConfig(text_encoder=BertConfig(**MINILM), hierarchy=hierarchy, head=head)
    return HiSRForHierarchicalClassification(config)


def stock_model(num_labels: int) -> BertForSequenceClassification:
    return BertForSequenceClassification(
        BertConfig(**MINILM, num_labels=num_labels, problem_type="multi_label_classification")
    )


def hiagm_tp_head_parameters(hidden: int, num_labels: int, node_dim: int, num_edges: int) -> int:
    propagation = hidden * num_labels * node_dim + num_labels * node_dim
    classifier = num_labels * node_dim * num_labels + num_labels
    gcn = 2 * num_edges + 2 * num_labels * node_dim + 3 * node_dim + 2 * num_labels
    return propagation + classifier + gcn


def batch(hierarchy: LabelHierarchy, size: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    leaves = hierarchy.leaves()
    labels = hierarchy.encode([{leaves[i]} for i in rng.integers(0, len(leaves), size)])
    return {
        "input_ids": torch.from_numpy(rng.integers(1000, MINILM["vocab_size"], (size, length))),
        "attention_mask": torch.ones(size, length, dtype=torch.long),
        "labels": torch.from_numpy(labels),
    }


def checkpoint_megabytes(model) -> float:
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        return sum(f.stat().st_size for f in Path(directory).glob("*.safetensors")) / 2**20


def train_step_fn(model, inputs):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(**inputs).loss.backward()
        optimizer.step()

    return step


def infer_fn(model, inputs):
    features = {k: v for k, v in inputs.items() if k != "labels"}

    def infer():
        model.eval()
        with torch.no_grad():
            model(**features)

    return infer


def interleaved(functions: dict[str, callable], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, calling them in turn (A, B, A, B, ...)."""
    times = round_robin(functions, CPU, warmup, rounds)
    return {name: statistics.median(values) for name, values in times.items()}


# ---------------------------------------------------------------------------------------------- memory
MEMORY_CHILD = """
import sys, torch
sys.path.insert(0, {benchmarks!r})
import scale
torch.set_num_threads({threads})
hierarchy = scale.taxonomies()[{name!r}]
model = scale.stock_model(hierarchy.num_labels) if {kind!r} == "stock" else scale.hisr_model(hierarchy, {kind!r})
inputs = scale.batch(hierarchy, 16, 128)
step = scale.train_step_fn(model, inputs)
for _ in range(3):
    step()
# VmHWM, not ru_maxrss: the latter survives fork + exec and would report the parent's peak.
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024)
"""


def peak_memory_mb(name: str, kind: str, threads: int) -> float:
    script = MEMORY_CHILD.format(benchmarks=str(Path(__file__).parent), threads=threads, name=name, kind=kind)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return float(completed.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- decoding
def realistic_probs(hierarchy: LabelHierarchy, size: int, seed: int = 0) -> torch.Tensor:
    """Scores of a model that has learned: the gold path near 0.9, a few distractors near 0.6, the rest under 0.3."""
    rng = np.random.default_rng(seed)
    leaves = hierarchy.leaves()
    gold = hierarchy.encode([{leaves[i]} for i in rng.integers(0, len(leaves), size)])
    probs = rng.random(gold.shape) * 0.3
    probs[gold > 0] = 0.85 + rng.random(int(gold.sum())) * 0.1
    rows = np.repeat(np.arange(size), 3)
    probs[rows, rng.integers(0, hierarchy.num_labels, rows.size)] = 0.6
    return torch.from_numpy(probs.astype(np.float32))


def decoding_ms(hierarchy: LabelHierarchy, repeats: int) -> dict[str, float]:
    """Median milliseconds of decoding 32 documents, per strategy (consistent, top-down), timed in turn."""
    probs = realistic_probs(hierarchy, 32)
    decoders = {
        strategy: lambda strategy=strategy: decode_label_paths(probs, hierarchy, strategy=strategy)
        for strategy in ("consistent", "top_down")
    }
    return {strategy: 1000 * seconds for strategy, seconds in interleaved(decoders, repeats).items()}


# ---------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds per model (default 6)")
    parser.add_argument("--quick", action="store_true", help="2 rounds, no memory processes")
    parser.add_argument("--only", nargs="*", help="taxonomy names to run (default: all)")
    parser.add_argument(
        "--heads",
        nargs="+",
        default=list(LINEAR_SIZE_HEADS),
        choices=LINEAR_SIZE_HEADS,
        help="linear-size heads to measure (default: all of them)",
    )
    parser.add_argument("--tag", default=None, help="results file suffix (default cpu_threads<N>)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rounds = 2 if args.quick else args.rounds
    tag = args.tag or f"cpu_threads{args.threads}"
    rows = []
    for name, hierarchy in taxonomies().items():
        if args.only and not any(part in name for part in args.only):
            continue
        print(f"{name}: {hierarchy}", flush=True)
        num_labels = hierarchy.num_labels
        models = {head: hisr_model(hierarchy, head) for head in args.heads}
        stock = stock_model(num_labels)
        encoder = sum(p.numel() for p in next(iter(models.values())).text_encoder.parameters())
        row = {
            "taxonomy": name,
            "num_labels": num_labels,
            "depth": hierarchy.max_depth,
            "encoder_parameters": encoder,
            "node_dim": {head: model.config.node_dim for head, model in models.items()},
            "head_parameters": {
                head: sum(p.numel() for _, p in model.head_parameters()) for head, model in models.items()
            },
            "hiagm_tp_head_parameters": hiagm_tp_head_parameters(384, num_labels, 384, len(hierarchy.edges())),
            "stock_head_parameters": sum(p.numel() for p in stock.classifier.parameters()),
            "checkpoint_mb": {"stock": checkpoint_megabytes(stock)}
            | {head: checkpoint_megabytes(model) for head, model in models.items()},
        }
        if num_labels <= 400:  # HiAGM-TP fits in memory here; at thousands of labels it needs billions of weights
            row["checkpoint_mb"]["hiagm_tp"] = checkpoint_megabytes(hisr_model(hierarchy, "hiagm_tp"))
        everything = {**models, "stock": stock}
        train_inputs, infer_inputs = batch(hierarchy, 16, 128), batch(hierarchy, 32, 128)
        train = interleaved({kind: train_step_fn(model, train_inputs) for kind, model in everything.items()}, rounds)
        infer = interleaved({kind: infer_fn(model, infer_inputs) for kind, model in everything.items()}, rounds)
        row["train_step_s"] = train
        row["train_step_ratio"] = {head: train[head] / train["stock"] for head in models}
        row["inference_s"] = infer
        row["inference_throughput_ratio"] = {head: infer["stock"] / infer[head] for head in models}
        row["decoding_32_docs_ms"] = decoding_ms(hierarchy, repeats=20)
        if not args.quick:
            row["peak_rss_mb"] = {kind: peak_memory_mb(name, kind, args.threads) for kind in everything}
        print(json.dumps(row, indent=1), flush=True)
        rows.append(row)
        del models, stock, everything
    write(rows, args, tag)


def write(rows: list[dict], args, tag: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    environment = {
        **machine_info("cpu"),
        "threads": args.threads,
        "command": " ".join(["python", "benchmarks/scale.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "max_rss_mb_parent": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    (RESULTS / f"scale_{tag}.json").write_text(json.dumps({"environment": environment, "rows": rows}, indent=1))
    lines = [
        f"# Scale: `{environment['command']}`",
        "",
        f"torch {environment['torch']}, {args.threads} thread(s), {environment['cpus_available']} cores "
        f"({environment['cpu_model']}), {environment['date']}. "
        "MiniLM-sized BERT (hidden 384, 6 layers, random weights), batch 16 x length 128 for training (fused AdamW), "
        "32 x 128 for inference; full model = GCN + HiSR with the head named in the row at the config's default "
        "`node_dim`; stock = `BertForSequenceClassification` with one output per label. Ratios from interleaved runs "
        "in one process.",
        "",
        "| taxonomy | labels | head | node_dim | head params / encoder | HiAGM-TP head / encoder | checkpoint MB (head / stock / HiAGM-TP) | train step s (HiSR / stock) | step ratio | inference throughput ratio | peak RSS MB (HiSR / stock) | decode 32 docs ms (consistent / top-down) |",
        "|---|---:|---|---:|---:|---:|---|---|---:|---:|---|---|",
    ]
    for row in rows:
        ckpt = row["checkpoint_mb"]
        hiagm_ckpt = f" / {ckpt['hiagm_tp']:.0f}" if "hiagm_tp" in ckpt else " / –"
        memory = row.get("peak_rss_mb")
        decoding = row["decoding_32_docs_ms"]
        for head in row["head_parameters"]:
            memory_cell = f"{memory[head]:.0f} / {memory['stock']:.0f}" if memory else "–"
            lines.append(
                f"| {row['taxonomy']} | {row['num_labels']:,} | `{head}` | {row['node_dim'][head]} | "
                f"{row['head_parameters'][head] / row['encoder_parameters']:.3f} | "
                f"{row['hiagm_tp_head_parameters'] / row['encoder_parameters']:.1f} | "
                f"{ckpt[head]:.1f} / {ckpt['stock']:.1f}{hiagm_ckpt} | "
                f"{row['train_step_s'][head]:.2f} / {row['train_step_s']['stock']:.2f} | "
                f"{row['train_step_ratio'][head]:.2f} | {row['inference_throughput_ratio'][head]:.2f} | {memory_cell} | "
                f"{decoding['consistent']:.1f} / {decoding['top_down']:.1f} |"
            )
    (RESULTS / f"scale_{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Speed benchmarks for `hisr_hf`: the HiSR loss, the full model's optimizer step and inference, head sizes.

Every figure is measured in the same run as the figure it is compared with, and ratios are reported
rather than absolute times alone (absolute times depend on the machine and on whoever else uses it).

1. Loss: `hisr_loss` (functional API: rebuilds the sequence index from the path matrix at every call),
   `hisr_loss_from_sequences` (the model's path, precomputed buffers), a dense `(B, L) @ (L, L)` formulation,
   and a per-document Python loop as in the authors' released code (`benchmarks/loss_variants.py`), forward +
   backward on `sigmoid(logits)`, on the real taxonomies and on synthetic trees of 1,000 and 10,000 labels.
   All implementations are checked to give the same value and gradient before they are timed.
   Peak memory: on CPU, the rise of the resident set (VmHWM after resetting it via /proc/self/clear_refs,
   minus VmRSS before) during one forward+backward, in a fresh subprocess per hierarchy with glibc's
   mmap threshold fixed at 64 KiB so that freed tensors go back to the OS; on CUDA, max_memory_allocated
   minus memory_allocated before the step.
2. Model: one AdamW step (forward + backward + step) of `BertForHierarchicalClassification` against a stock
   `BertForSequenceClassification` with the same encoder config on the same batch, and eval-mode inference
   throughput; the models of one (size, taxonomy) are timed round-robin (ABCD..., ABCD...) so that load
   drift hits all of them alike. Then the extra cost is broken down: head forward+backward, head AdamW
   update, HiSR loss forward+backward.
3. Text-propagation head size as a function of L and node_dim, from model instances built on the meta device,
   checked against the closed-form count.

Usage:

    python benchmarks/speed.py --quick                  # smoke run, < 1 minute
    python benchmarks/speed.py                          # full run, ~15 minutes on 2 CPU cores
    python benchmarks/speed.py --device cuda
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import transformers  # noqa: E402
from loss_variants import dense_hisr_loss, index_select_hisr_loss, loop_hisr_loss, sequence_index_sort  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

from hisr_hf import BertForHierarchicalClassification, HiSRConfig, LabelHierarchy  # noqa: E402
from hisr_hf.loss import hisr_loss, hisr_loss_from_sequences, sequence_index_from_path_matrix  # noqa: E402

DATA = Path(os.environ.get("HISR_SHARED_DATA", REPO.parent / "shared" / "data"))  # as in scale.py
TAXONOMY_DIR = DATA / "taxonomies"
TWENTY_NG_TAXONOMY = DATA / "20ng" / "20ng.taxonomy"
ENCODER_SIZES = {
    "MiniLM": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    # --quick only: exercises every code path in seconds.
    "tiny": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512},
}
LOSS_IMPLS = ("loop", "functional", "fast", "dense", "index_select")
IMPL_DOC = {
    "loop": "per-document/per-sequence Python loop, torch op per element (authors' released code style)",
    "functional": "hisr_loss(probs, labels, path_matrix): rebuilds the sequence index (sort of an (L, L) int64 copy) every call",
    "fast": "hisr_loss_from_sequences with precomputed (L, D) sequence index: what the model runs",
    "dense": "same loss with scores = P @ M^T (dense (B, L) @ (L, L) matmul with the float path matrix)",
    "index_select": "fast with the gather written as index_select on the flattened (L*D,) index (candidate fix)",
}


# ============================================================================================ hierarchies and data
def synthetic_hierarchy(num_labels: int, seed: int = 0) -> LabelHierarchy:
    """A tree shaped like the field's taxonomies: few top-level labels, more per level below, parents with a
    heavy-tailed number of children (log-normal "fertility"), some childless, so leaves sit at several depths."""
    rng = random.Random(seed)
    if num_labels <= 2000:
        shares = [0.02, 0.08, 0.25, 0.35, 0.30]  # depth 5
    else:
        shares = [0.004, 0.03, 0.10, 0.22, 0.33, 0.316]  # depth 6
    counts = [max(1, round(share * num_labels)) for share in shares]
    counts[-1] += num_labels - sum(counts)
    parents: dict[str, str | None] = {}
    previous: list[str] = []
    for depth, count in enumerate(counts, start=1):
        names = [f"d{depth}_{k}" for k in range(count)]
        if not previous:
            parents.update({name: None for name in names})
        else:
            fertility = [rng.lognormvariate(0.0, 1.0) for _ in previous]
            for name, parent in zip(names, rng.choices(previous, weights=fertility, k=count)):
                parents[name] = parent
        previous = names
    return LabelHierarchy.from_parents(parents)


def hierarchy_specs(names: list[str]) -> list[dict]:
    """``rcv1``/``bgc``/``nyt``/``wos`` (real taxonomies) or ``synthetic-N`` (N labels)."""
    specs = []
    for name in names:
        if name.startswith("synthetic-"):
            specs.append({"name": name, "synthetic": int(name.split("-", 1)[1]), "seed": 0})
        else:
            specs.append({"name": name, "taxonomy": str(TAXONOMY_DIR / f"{name}.taxonomy")})
    return specs


def build_hierarchy(spec: dict) -> LabelHierarchy:
    if "taxonomy" in spec:
        return LabelHierarchy.from_taxonomy_file(spec["taxonomy"])
    return synthetic_hierarchy(spec["synthetic"], seed=spec["seed"])


def hierarchy_stats(hierarchy: LabelHierarchy) -> dict:
    children = [len(hierarchy.children(label)) for label in hierarchy.labels]
    inner = [c for c in children if c]
    depths = hierarchy.depths()
    leaves = hierarchy.leaves()
    return {
        "num_labels": hierarchy.num_labels,
        "max_depth": hierarchy.max_depth,
        "num_leaves": len(leaves),
        "leaf_depths": sorted(set(hierarchy.depth(leaf) for leaf in leaves)),
        "top_level": sum(1 for d in depths if d == 1),
        "branching_median": statistics.median(inner) if inner else 0,
        "branching_max": max(inner) if inner else 0,
    }


def random_gold(hierarchy: LabelHierarchy, batch_size: int, rng: random.Random) -> torch.Tensor:
    """1-3 random root-to-leaf gold paths per document, ancestor-closed."""
    leaves = hierarchy.leaves()
    label_sets = [rng.sample(leaves, rng.randint(1, min(3, len(leaves)))) for _ in range(batch_size)]
    return torch.tensor(hierarchy.encode(label_sets))


# ============================================================================================ timing helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def median_ms(times: list[float]) -> float | None:
    return round(1000 * statistics.median(times), 4) if times else None


def min_ms(times: list[float]) -> float | None:
    return round(1000 * min(times), 4) if times else None


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ============================================================================================ machine
def machine_info(args) -> dict:
    cpu_model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and cpu_model == "unknown":
                    cpu_model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    info = {
        "cpu_model": cpu_model,
        "cpu_flags": sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "fma"}),
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "device": args.device,
    }
    try:
        with open("/proc/meminfo") as handle:
            info["mem_total_gib"] = round(int(handle.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


# ============================================================================================ 3. head sizes
def head_size_table(quick: bool) -> dict:
    hierarchies = {
        30: LabelHierarchy.from_taxonomy_file(TWENTY_NG_TAXONOMY) if TWENTY_NG_TAXONOMY.exists() else synthetic_hierarchy(30),
        103: LabelHierarchy.from_taxonomy_file(TAXONOMY_DIR / "rcv1.taxonomy"),
        141: LabelHierarchy.from_taxonomy_file(TAXONOMY_DIR / "wos.taxonomy"),
        166: LabelHierarchy.from_taxonomy_file(TAXONOMY_DIR / "nyt.taxonomy"),
        1000: synthetic_hierarchy(1000),
    }
    if quick:
        hierarchies = {k: v for k, v in hierarchies.items() if k in (30, 166)}
    rows = []
    for hidden, size in ((384, "MiniLM"), (768, "bert-base")):
        encoder = ENCODER_SIZES[size]
        for num_labels, hierarchy in hierarchies.items():
            assert hierarchy.num_labels == num_labels, (num_labels, hierarchy.num_labels)
            config_base = HiSRConfig(hierarchy=hierarchy, **encoder)
            for node_dim in (128, 300, 384, 768):
                config = HiSRConfig(**{**config_base.to_dict(), "node_dim": node_dim})
                with torch.device("meta"):
                    model = BertForHierarchicalClassification(config)
                count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
                text_propagation = count(model.text_propagation)
                classifier = count(model.classifier)
                gcn = count(model.structure_encoder)
                encoder_params = count(model.bert)
                edges = len(hierarchy.edges())
                formula_tp = hidden * num_labels * node_dim + num_labels * node_dim
                formula_cls = num_labels * node_dim * num_labels + num_labels
                formula_gcn = 2 * edges + 2 * num_labels * node_dim + 3 * node_dim + 2 * num_labels
                assert text_propagation == formula_tp, (text_propagation, formula_tp)
                assert classifier == formula_cls, (classifier, formula_cls)
                assert gcn == formula_gcn, (gcn, formula_gcn)
                rows.append(
                    {
                        "hidden": hidden,
                        "L": num_labels,
                        "node_dim": node_dim,
                        "text_propagation": text_propagation,
                        "gcn": gcn,
                        "classifier": classifier,
                        "head_total": text_propagation + gcn + classifier,
                        "encoder": encoder_params,
                        "head_over_encoder": round((text_propagation + gcn + classifier) / encoder_params, 3),
                        "formula_matches": True,
                    }
                )
                del model
    return {
        "formula": "text_propagation = hidden*L*node_dim + L*node_dim; classifier = L*node_dim*L + L; "
        "gcn = 2*E + 2*L*node_dim + 3*node_dim + 2*L (E = parent links)",
        "encoder_note": "encoder = BertModel without pooler, vocab 30522, 512 positions",
        "rows": rows,
    }


# ============================================================================================ 1. loss
class LossCase:
    """One hierarchy with everything each implementation precomputes."""

    def __init__(self, spec: dict, device: torch.device):
        self.spec = spec
        self.hierarchy = build_hierarchy(spec)
        self.device = device
        self.path_matrix = self.hierarchy.path_matrix().to(device)
        index, lengths = self.hierarchy.sequence_index()
        self.seq_index, self.seq_len = index.to(device), lengths.to(device)
        self.width = int(index.shape[1])
        self.sequences = [row[:n].tolist() for row, n in zip(index, lengths.tolist())]
        self.path_matrix_t = self.path_matrix.t().float().contiguous()

    def inputs(self, batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        labels = random_gold(self.hierarchy, batch_size, random.Random(seed)).to(self.device)
        generator = torch.Generator().manual_seed(seed)
        logits = (2 * torch.randn(batch_size, self.hierarchy.num_labels, generator=generator)).to(self.device)
        return logits.requires_grad_(True), labels

    def loss_fn(self, impl: str, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        if impl == "fast":
            return lambda probs: hisr_loss_from_sequences(probs, labels, self.seq_index, self.seq_len)
        if impl == "functional":
            return lambda probs: hisr_loss(probs, labels, self.path_matrix)
        if impl == "dense":
            return lambda probs: dense_hisr_loss(probs, labels, self.path_matrix_t, self.seq_len, self.width)
        if impl == "index_select":
            return lambda probs: index_select_hisr_loss(probs, labels, self.seq_index, self.seq_len)
        if impl == "loop":
            return lambda probs: loop_hisr_loss(probs, labels, self.sequences)
        raise ValueError(impl)


def loss_step(fn: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor) -> Callable[[], float]:
    def step():
        logits.grad = None
        loss = fn(torch.sigmoid(logits))
        loss.backward()
        return loss

    return step


def value_and_grad(fn, logits: torch.Tensor) -> tuple[float, torch.Tensor]:
    logits = logits.detach().clone().requires_grad_(True)
    loss = fn(torch.sigmoid(logits))
    loss.backward()
    return loss.item(), logits.grad.detach()


def loss_benchmarks(args, device: torch.device) -> dict:
    results = {"implementations": IMPL_DOC, "cases": [], "sequence_index_build": []}
    for spec in hierarchy_specs(args.loss_hierarchies):
        log(f"loss: {spec['name']}")
        case = LossCase(spec, device)
        stats = hierarchy_stats(case.hierarchy)
        num_labels = stats["num_labels"]
        run_loop = num_labels <= args.loop_max_labels

        # The functional API's sequence-index build, and a sort-free alternative with identical output.
        sort_index = sequence_index_sort(case.path_matrix)
        nonzero_index = sequence_index_from_path_matrix(case.path_matrix)
        assert torch.equal(sort_index[0], case.seq_index) and torch.equal(sort_index[1], case.seq_len)
        assert torch.equal(nonzero_index[0], case.seq_index) and torch.equal(nonzero_index[1], case.seq_len)
        build = interleaved(
            {
                "sort": lambda: sequence_index_sort(case.path_matrix),
                "nonzero": lambda: sequence_index_from_path_matrix(case.path_matrix),
            },
            device,
            warmup=1,
            rounds=args.loss_rounds,
            budget_s=args.impl_budget_s,
        )
        results["sequence_index_build"].append(
            {"hierarchy": spec["name"], "L": num_labels, **{f"{k}_ms": median_ms(v) for k, v in build.items()}}
        )

        for batch_size in args.loss_batches:
            logits, labels = case.inputs(batch_size, seed=batch_size)
            impls = [impl for impl in LOSS_IMPLS if impl != "loop" or run_loop]
            reference_value, reference_grad = value_and_grad(case.loss_fn("fast", labels), logits)
            checks = {}
            for impl in impls:
                if impl == "fast":
                    continue
                value, grad = value_and_grad(case.loss_fn(impl, labels), logits)
                assert math.isclose(value, reference_value, rel_tol=1e-5, abs_tol=1e-6), (spec["name"], impl, value, reference_value)
                assert torch.allclose(grad, reference_grad, rtol=1e-4, atol=1e-7), (spec["name"], impl)
                checks[impl] = {"value": value, "max_abs_grad_diff": float((grad - reference_grad).abs().max())}
            if not run_loop:
                # Too slow to time here; still check it on the first two documents.
                sub_logits, sub_labels = logits[:2].detach(), labels[:2]
                value, grad = value_and_grad(case.loss_fn("loop", sub_labels), sub_logits)
                ref_value, ref_grad = value_and_grad(case.loss_fn("fast", sub_labels), sub_logits)
                assert math.isclose(value, ref_value, rel_tol=1e-5, abs_tol=1e-6), (spec["name"], "loop", value, ref_value)
                assert torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-7)
                checks["loop"] = {"value": value, "checked_on": "first 2 documents only (not timed)"}
            steps = {impl: loss_step(case.loss_fn(impl, labels), logits) for impl in impls}
            times = interleaved(steps, device, warmup=1, rounds=args.loss_rounds, budget_s=args.impl_budget_s)
            row = {
                "hierarchy": spec["name"],
                **stats,
                "batch_size": batch_size,
                "loss_value": reference_value,
                "checks": checks,
                "ms": {impl: median_ms(times.get(impl, [])) for impl in LOSS_IMPLS},
                "min_ms": {impl: min_ms(times.get(impl, [])) for impl in LOSS_IMPLS},
                "repeats": {impl: len(times.get(impl, [])) for impl in LOSS_IMPLS},
                "loadavg": loadavg(),
                "loop_skipped": None if run_loop else f"loop not timed at L={num_labels} > --loop-max-labels {args.loop_max_labels} (seconds per step)",
            }
            fast = row["ms"]["fast"]
            row["speedup_vs_loop"] = round(row["ms"]["loop"] / fast, 1) if row["ms"]["loop"] else None
            row["functional_over_fast"] = round(row["ms"]["functional"] / fast, 2)
            row["dense_over_fast"] = round(row["ms"]["dense"] / fast, 2)
            row["index_select_over_fast"] = round(row["ms"]["index_select"] / fast, 2)
            if device.type == "cuda":
                row["peak_mib"] = {impl: cuda_peak_mib(steps[impl], device) for impl in impls}
            results["cases"].append(row)
            log(f"  B={batch_size}: " + ", ".join(f"{k}={v}" for k, v in row["ms"].items()))
        if device.type == "cpu" and not args.no_memory:
            memory = memory_in_subprocess(spec, args, run_loop)
            for row in results["cases"]:
                if row["hierarchy"] == spec["name"]:
                    row["peak_mib"] = memory.get(str(row["batch_size"]), {})
        case = steps = None  # free the (L, L) tensors before the next hierarchy
        gc.collect()
    results["memory_method"] = (
        "CUDA: torch.cuda.max_memory_allocated() - memory_allocated() before one forward+backward."
        if device.type == "cuda"
        else "CPU: rise of the process's peak resident set during one forward+backward (after one warm-up step), "
        "in a fresh subprocess per hierarchy: VmHWM is reset through /proc/self/clear_refs, then VmHWM - VmRSS. "
        "MALLOC_MMAP_THRESHOLD_=65536 and malloc_trim(0) before each measurement make glibc return freed memory "
        "to the OS, so the figure counts the step's own tensors, autograd graph and temporaries, not memory "
        "cached from earlier steps. "
        "Resolution ~0.1 MiB; small figures are dominated by allocator granularity."
    )
    return results


def interleaved(
    fns: dict[str, Callable[[], object]], device: torch.device, warmup: int, rounds: int, budget_s: float
) -> dict[str, list[float]]:
    """Round-robin timing. Fast functions run several times per round (so each round lasts ~0.1 s for them),
    slow ones drop out after `budget_s` seconds (at least 3 rounds)."""
    estimate = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            estimate[name] = timed(fn, device)
    calls = {name: max(1, min(25, int(0.1 / max(t, 1e-6)))) for name, t in estimate.items()}
    max_rounds = {name: max(3, min(rounds, int(budget_s / max(t, 1e-6)))) for name, t in estimate.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            if r >= max_rounds[name]:
                continue
            for _ in range(calls[name]):
                times[name].append(timed(fn, device))
    return times


def cuda_peak_mib(step: Callable[[], object], device: torch.device) -> float:
    step()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return round((torch.cuda.max_memory_allocated(device) - base) / 2**20, 2)


def _proc_status() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(("VmHWM", "VmRSS")):
                key, value = line.split(":")
                values[key] = int(value.split()[0])  # KiB
    return values


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def memory_worker(payload: str) -> None:
    """Runs in a subprocess: peak RSS rise of one forward+backward per (batch, implementation)."""
    options = json.loads(payload)
    torch.set_num_threads(options["threads"])
    case = LossCase(options["spec"], torch.device("cpu"))
    out: dict[str, dict[str, float]] = {}
    for batch_size in options["batches"]:
        logits, labels = case.inputs(batch_size, seed=batch_size)
        out[str(batch_size)] = {}
        for impl in options["impls"]:
            step = loss_step(case.loss_fn(impl, labels), logits)
            step()  # warm-up: one-time initialisation is not the step's memory
            logits.grad = None
            gc.collect()
            _malloc_trim()  # freed heap pages go back to the OS, so reusing them counts again
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # reset VmHWM to the current RSS
            before = _proc_status()["VmRSS"]
            step()
            out[str(batch_size)][impl] = round((_proc_status()["VmHWM"] - before) / 1024, 2)
            logits.grad = None
            gc.collect()
    print("MEMORY_JSON " + json.dumps(out), flush=True)


def memory_in_subprocess(spec: dict, args, run_loop: bool) -> dict:
    impls = [impl for impl in LOSS_IMPLS if impl != "loop" or run_loop]
    payload = json.dumps({"spec": spec, "batches": args.loss_batches, "impls": impls, "threads": args.threads})
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}
    proc = subprocess.run(
        [sys.executable, __file__, "--_memory-worker", payload], env=env, capture_output=True, text=True, timeout=900
    )
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY_JSON "):
            return json.loads(line[len("MEMORY_JSON ") :])
    log(f"memory subprocess failed for {spec['name']}: {proc.stderr[-2000:]}")
    return {}


# ============================================================================================ 2. model
def build_models(size: str, hierarchy: LabelHierarchy, node_dims: list[int], device: torch.device) -> dict:
    encoder = ENCODER_SIZES[size]
    models = {}
    torch.manual_seed(0)
    stock_config = BertConfig(
        **encoder, num_labels=hierarchy.num_labels, problem_type="multi_label_classification"
    )
    models["stock"] = BertForSequenceClassification(stock_config)
    for node_dim in node_dims:
        torch.manual_seed(0)
        config = HiSRConfig(hierarchy=hierarchy, **encoder, node_dim=node_dim, structure_encoder="gcn", hisr_weight=0.01)
        models[f"gcn@{node_dim}"] = BertForHierarchicalClassification(config)
    torch.manual_seed(0)
    config = HiSRConfig(hierarchy=hierarchy, **encoder, structure_encoder="none", hisr_weight=0.01)
    models["none+hisr"] = BertForHierarchicalClassification(config)
    return {name: model.to(device) for name, model in models.items()}


def model_batch(hierarchy: LabelHierarchy, vocab_size: int, batch_size: int, seq_len: int, device, seed=0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(1000, vocab_size, (batch_size, seq_len), generator=generator).to(device),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long, device=device),
        "token_type_ids": torch.zeros(batch_size, seq_len, dtype=torch.long, device=device),
        "labels": random_gold(hierarchy, batch_size, random.Random(seed)).to(device),
    }


def make_adamw(params, implementation: str) -> torch.optim.AdamW:
    """AdamW as `Trainer` builds it by default in transformers 5 (`optim="adamw_torch_fused"`), or torch's
    multi-tensor (`foreach`) or per-parameter loop (`for-loop`, torch's own default on CPU)."""
    kwargs = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}[implementation]
    return torch.optim.AdamW(params, lr=1e-5, **kwargs)


def head_modules(model) -> list[torch.nn.Module]:
    if isinstance(model, BertForSequenceClassification):
        return [model.bert.pooler, model.classifier]
    if model.structure_encoder is not None:
        return [model.text_propagation, model.structure_encoder, model.classifier]
    return [model.classifier]


def head_forward(model, feature: torch.Tensor) -> torch.Tensor:
    """Everything between the encoder's last hidden state and the logits."""
    if isinstance(model, BertForSequenceClassification):
        pooled = model.bert.pooler(feature.unsqueeze(1))
        return model.classifier(model.dropout(pooled))
    if model.structure_encoder is not None:
        nodes = model.text_propagation(feature).view(feature.shape[0], model.num_labels, model.config.node_dim)
        nodes = model.structure_encoder(nodes)
        return model.classifier(model.dropout(nodes.flatten(1)))
    return model.classifier(model.dropout(feature))


def model_benchmarks(args, device: torch.device) -> dict:
    results = {"train": [], "inference": [], "breakdown": []}
    plan = [(size, name) for size, names in args.model_plan for name in names]
    for size, taxonomy in plan:
        hierarchy = LabelHierarchy.from_taxonomy_file(TAXONOMY_DIR / f"{taxonomy}.taxonomy")
        hidden = ENCODER_SIZES[size]["hidden_size"]
        node_dims = list(dict.fromkeys([hidden, *args.node_dims]))
        load_start = loadavg()
        log(f"model: {size} / {taxonomy} (L={hierarchy.num_labels}), node_dims {node_dims}")
        models = build_models(size, hierarchy, node_dims, device)
        params = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
        vocab = models["stock"].config.vocab_size

        # ---- optimizer step, round-robin
        batch = model_batch(hierarchy, vocab, args.train_batch, args.seq_len, device)
        optimizers = {name: make_adamw(model.parameters(), args.adamw) for name, model in models.items()}

        def train_step(name):
            model, optimizer = models[name], optimizers[name]

            def step():
                optimizer.zero_grad(set_to_none=True)
                model(**batch).loss.backward()
                optimizer.step()

            return step

        for model in models.values():
            model.train()
        steps = {name: train_step(name) for name in models}
        warmup, repeats = args.train_warmup, args.train_repeats
        if size == "bert-base":
            repeats = args.base_train_repeats
        train_times = round_robin(steps, device, warmup, repeats)
        stock = statistics.median(train_times["stock"])
        for name, times in train_times.items():
            results["train"].append(
                {
                    "size": size,
                    "taxonomy": taxonomy,
                    "L": hierarchy.num_labels,
                    "variant": name,
                    "node_dim": models[name].config.node_dim if name != "stock" else None,
                    "params": params[name],
                    "ms": median_ms(times),
                    "times_ms": [round(1000 * t, 2) for t in times],
                    "repeats": len(times),
                    "ratio_to_stock": round(statistics.median(times) / stock, 3),
                    "paired_ratio_median": round(
                        statistics.median(t / s for t, s in zip(times, train_times["stock"])), 3
                    ),
                }
            )
        log("  train ms: " + ", ".join(f"{k}={median_ms(v)}" for k, v in train_times.items()))
        load_end = loadavg()
        for entry in results["train"]:
            if entry["size"] == size and entry["taxonomy"] == taxonomy:
                entry["loadavg_start"], entry["loadavg_end"] = load_start, load_end

        # ---- breakdown of the extra time, on the same batch, after freeing the AdamW states
        steps.clear()  # the step closures hold the optimizers too
        optimizers.clear()
        gc.collect()
        results["breakdown"].extend(breakdown(models, batch, size, taxonomy, hierarchy, device, args))

        # ---- inference throughput, round-robin
        if size == "bert-base" and taxonomy not in args.base_infer_taxonomies:
            models.clear()
            gc.collect()
            continue
        infer_batch = model_batch(hierarchy, vocab, args.infer_batch, args.seq_len, device, seed=1)
        infer_batch.pop("labels")
        for model in models.values():
            model.eval()

        def infer_step(name):
            model = models[name]

            def step():
                with torch.no_grad():
                    model(**infer_batch)

            return step

        infer_warmup, infer_repeats = args.infer_warmup, args.infer_repeats
        if size == "bert-base":
            infer_warmup, infer_repeats = args.base_infer_warmup, args.base_infer_repeats
        infer_times = round_robin({name: infer_step(name) for name in models}, device, infer_warmup, infer_repeats)
        stock_docs = args.infer_batch / statistics.median(infer_times["stock"])
        for name, times in infer_times.items():
            docs = args.infer_batch / statistics.median(times)
            results["inference"].append(
                {
                    "size": size,
                    "taxonomy": taxonomy,
                    "L": hierarchy.num_labels,
                    "variant": name,
                    "ms_per_batch": median_ms(times),
                    "times_ms": [round(1000 * t, 2) for t in times],
                    "docs_per_s": round(docs, 2),
                    "repeats": len(times),
                    "ratio_to_stock": round(docs / stock_docs, 3),
                }
            )
        log("  infer ms/batch: " + ", ".join(f"{k}={median_ms(v)}" for k, v in infer_times.items()))
        for entry in results["inference"]:
            if entry["size"] == size and entry["taxonomy"] == taxonomy:
                entry["loadavg_start"], entry["loadavg_end"] = load_end, loadavg()
        models.clear()
        gc.collect()
    return results


def round_robin(steps: dict[str, Callable[[], None]], device, warmup: int, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(warmup + repeats):
        for name, step in steps.items():
            elapsed = timed(step, device)
            if r >= warmup:
                times[name].append(elapsed)
    return times


def breakdown(models, batch, size, taxonomy, hierarchy, device, args) -> list[dict]:
    """Where the full model's extra time goes: the head (everything after the encoder) forward+backward, the
    AdamW update of the head's parameters, the HiSR loss forward+backward; each against the stock head."""
    rows = []
    labels = batch["labels"].float()
    hidden = ENCODER_SIZES[size]["hidden_size"]
    generator = torch.Generator().manual_seed(0)
    feature = torch.randn(args.train_batch, hidden, generator=generator).to(device).requires_grad_(True)
    fns, optimizers = {}, {}
    for name, model in models.items():
        model.train()
        params = [p for module in head_modules(model) for p in module.parameters()]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        optimizers[name] = make_adamw(params, args.adamw)

        def head_fwd_bwd(model=model, params=params):
            for p in params:
                p.grad = None
            feature.grad = None
            logits = head_forward(model, feature)
            F.binary_cross_entropy_with_logits(logits, labels).backward()

        fns[f"{name}/head_fwd_bwd"] = head_fwd_bwd
        fns[f"{name}/head_adamw"] = lambda optimizer=optimizers[name]: optimizer.step()
        if name != "stock":
            with torch.no_grad():
                logits = head_forward(model, feature)
            hisr_logits = logits.detach().clone().requires_grad_(True)

            def hisr_fwd_bwd(model=model, hisr_logits=hisr_logits):
                hisr_logits.grad = None
                model.hisr(torch.sigmoid(hisr_logits), labels).backward()

            fns[f"{name}/hisr_fwd_bwd"] = hisr_fwd_bwd
    times = interleaved(fns, device, warmup=2, rounds=args.breakdown_rounds, budget_s=args.impl_budget_s)
    med = {key: statistics.median(v) for key, v in times.items()}
    for name in models:
        if name == "stock":
            continue
        head = med[f"{name}/head_fwd_bwd"] - med["stock/head_fwd_bwd"]
        adamw = med[f"{name}/head_adamw"] - med["stock/head_adamw"]
        hisr = med[f"{name}/hisr_fwd_bwd"]
        rows.append(
            {
                "size": size,
                "taxonomy": taxonomy,
                "L": hierarchy.num_labels,
                "variant": name,
                "head_fwd_bwd_ms": round(1000 * med[f"{name}/head_fwd_bwd"], 3),
                "stock_head_fwd_bwd_ms": round(1000 * med["stock/head_fwd_bwd"], 3),
                "head_adamw_ms": round(1000 * med[f"{name}/head_adamw"], 3),
                "stock_head_adamw_ms": round(1000 * med["stock/head_adamw"], 3),
                "hisr_fwd_bwd_ms": round(1000 * hisr, 3),
                "predicted_extra_ms": round(1000 * (head + adamw + hisr), 2),
            }
        )
    del optimizers
    for model in models.values():
        model.zero_grad(set_to_none=True)
    return rows


# ============================================================================================ summary + markdown
def summarize(results: dict) -> dict:
    summary = {}
    loss_rows = results.get("loss", {}).get("cases", [])
    train = results.get("model", {}).get("train", [])
    infer = results.get("model", {}).get("inference", [])

    nyt32 = next((r for r in loss_rows if r["hierarchy"] == "nyt" and r["batch_size"] == 32), None)
    if nyt32 and nyt32["speedup_vs_loop"]:
        summary["speedup_vs_loop_nyt_b32"] = {
            "value": nyt32["speedup_vs_loop"],
            "target": ">= 100x",
            "met": nyt32["speedup_vs_loop"] >= 100,
        }
    big = next((r for r in loss_rows if r["num_labels"] >= 10000 and r["batch_size"] == 32), None)
    if big:
        summary["fast_ms_10k_b32"] = {"value": big["ms"]["fast"], "target": "< 50 ms", "met": big["ms"]["fast"] < 50}
        summary["functional_ms_10k_b32"] = {"value": big["ms"]["functional"], "note": "hisr_loss (rebuilds the index)"}
    stock_minilm = next((r for r in train if r["size"] == "MiniLM" and r["taxonomy"] == "nyt" and r["variant"] == "stock"), None)
    nyt8 = next((r for r in loss_rows if r["hierarchy"] == "nyt" and r["batch_size"] == 8), None)
    if stock_minilm and nyt8:
        share = nyt8["ms"]["fast"] / stock_minilm["ms"]
        summary["hisr_share_of_minilm_step_nyt_b8"] = {
            "value_percent": round(100 * share, 3),
            "target": "< 1 %",
            "met": share < 0.01,
            "note": "hisr_loss_from_sequences fwd+bwd at batch 8 / stock MiniLM AdamW step at batch 8 (same run)",
        }
        share_functional = nyt8["ms"]["functional"] / stock_minilm["ms"]
        summary["hisr_functional_share_of_minilm_step_nyt_b8"] = {"value_percent": round(100 * share_functional, 3)}
    choices = {}
    for size in sorted({r["size"] for r in train}):
        for variant in sorted({r["variant"] for r in train if r["size"] == size and r["variant"] != "stock"}):
            t = [r["ratio_to_stock"] for r in train if r["size"] == size and r["variant"] == variant]
            i = [r["ratio_to_stock"] for r in infer if r["size"] == size and r["variant"] == variant]
            choices[f"{size}/{variant}"] = {
                "worst_train_ratio": max(t) if t else None,
                "worst_infer_ratio": min(i) if i else None,
                "train_within_1.15x": bool(t) and max(t) <= 1.15,
                "infer_at_least_0.9x": bool(i) and min(i) >= 0.9,
            }
    summary["node_dim_targets"] = choices
    return summary


def fmt(value, digits=2):
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render_markdown(results: dict) -> str:
    m = results["machine"]
    out = [f"# Speed benchmark ({m['device']})", ""]
    out += [
        f"Command: `{results['command']}`",
        "",
        f"Machine: {m['cpu_model']} ({m['cpus_available']} CPUs available, {m.get('mem_total_gib', '?')} GiB), "
        f"torch {m['torch']} ({m['torch_cpu_capability']}), transformers {m['transformers']}, "
        f"Python {m['python']}, {m['torch_threads']} torch threads"
        + (f", GPU {m['gpu']}" if "gpu" in m else "")
        + ".",
        f"Load average (1/5/15 min) before: {results['loadavg_before']}, after: {results['loadavg_after']}; "
        f"wall time {results['wall_s']:.0f} s.",
        "",
    ]
    busy = max([results["loadavg_before"][0], results["loadavg_after"][0]] + [r["loadavg"][0] for r in results.get("loss", {}).get("cases", [])])
    if busy - 1 + m["torch_threads"] > m["cpus_available"] + 0.5:
        out += [
            f"**Shared machine:** the 1-minute load average reached {busy} (this benchmark itself counts about 1) on "
            f"{m['cpus_available']} CPUs with {m['torch_threads']} torch threads, so other processes competed for the "
            "cores during part of the run. Ratios between interleaved measurements stay meaningful; absolute times "
            "are pessimistic.",
            "",
        ]
    if "summary" in results:
        out += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
        s = results["summary"]
        if "speedup_vs_loop_nyt_b32" in s:
            out.append(f"| hisr_loss ≥ 100× faster than the loop, NYT, batch 32 | {s['speedup_vs_loop_nyt_b32']['value']}× | {'yes' if s['speedup_vs_loop_nyt_b32']['met'] else 'no'} |")
        if "hisr_share_of_minilm_step_nyt_b8" in s:
            v = s["hisr_share_of_minilm_step_nyt_b8"]
            out.append(f"| HiSR loss fwd+bwd < 1 % of a MiniLM AdamW step (NYT, batch 8) | {v['value_percent']} % (functional API: {s['hisr_functional_share_of_minilm_step_nyt_b8']['value_percent']} %) | {'yes' if v['met'] else 'no'} |")
        if "fast_ms_10k_b32" in s:
            v = s["fast_ms_10k_b32"]
            out.append(f"| < 50 ms fwd+bwd, 10,000 labels, batch 32 (model path) | {v['value']} ms (functional API: {s['functional_ms_10k_b32']['value']} ms) | {'yes' if v['met'] else 'no'} |")
        for key, v in s.get("node_dim_targets", {}).items():
            out.append(
                f"| {key}: step ≤ 1.15× stock / inference ≥ 0.9× stock (worst taxonomy) | {fmt(v['worst_train_ratio'], 3)}× / {fmt(v['worst_infer_ratio'], 3)}× | "
                f"{'yes' if v['train_within_1.15x'] else 'no'} / {'yes' if v['infer_at_least_0.9x'] else 'no'} |"
            )
        out.append("")

    if "loss" in results:
        loss = results["loss"]
        out += ["## 1. HiSR loss, forward + backward", ""]
        out += [f"- `{k}`: {v}" for k, v in loss["implementations"].items()]
        out += ["", f"Memory: {loss['memory_method']}", ""]
        out += [
            "| hierarchy | L | depth | leaves | B | loop ms | functional ms | fast ms (min) | dense ms | index_select ms (min) | loop / fast | functional / fast | dense / fast | index_select / fast | load |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in loss["cases"]:
            ms = r["ms"]
            out.append(
                f"| {r['hierarchy']} | {r['num_labels']:,} | {r['max_depth']} | {r['num_leaves']:,} | {r['batch_size']} | "
                f"{fmt(ms['loop'], 1) if ms['loop'] else 'skipped'} | {fmt(ms['functional'], 3)} | "
                f"{fmt(ms['fast'], 3)} ({fmt(r['min_ms']['fast'], 3)}) | {fmt(ms['dense'], 3)} | "
                f"{fmt(ms['index_select'], 3)} ({fmt(r['min_ms']['index_select'], 3)}) | "
                f"{fmt(r['speedup_vs_loop'], 0) + '×' if r['speedup_vs_loop'] else '—'} | {fmt(r['functional_over_fast'])}× | "
                f"{fmt(r['dense_over_fast'])}× | {fmt(r['index_select_over_fast'])}× | {r['loadavg'][0]} |"
            )
        out += ["", "Peak memory of one forward+backward, MiB (see the method above; `<0.1` = below resolution):", ""]
        out += ["| hierarchy | B | " + " | ".join(LOSS_IMPLS) + " |", "|---|---:|" + "---:|" * len(LOSS_IMPLS)]
        for r in loss["cases"]:
            peak = r.get("peak_mib", {})
            cells = [("—" if i not in peak else ("<0.1" if peak[i] < 0.1 else fmt(peak[i], 1))) for i in LOSS_IMPLS]
            out.append(f"| {r['hierarchy']} | {r['batch_size']} | " + " | ".join(cells) + " |")
        skipped = [r["loop_skipped"] for r in loss["cases"] if r["loop_skipped"]]
        if skipped:
            out += ["", f"Loop skipped: {skipped[0]}; it was checked against the fast path on the first two documents."]
        out += ["", "Sequence-index build (what `hisr_loss` redoes at every call) vs a sort-free build with identical output:", ""]
        out += ["| hierarchy | L | sort (former) ms | nonzero (current) ms |", "|---|---:|---:|---:|"]
        for r in loss["sequence_index_build"]:
            out.append(f"| {r['hierarchy']} | {r['L']:,} | {fmt(r['sort_ms'], 3)} | {fmt(r['nonzero_ms'], 3)} |")
        out.append("")

    if "model" in results:
        model = results["model"]
        out += ["## 2. Full model vs stock `BertForSequenceClassification`", ""]
        out += [
            f"AdamW ({results['settings']['adamw']}) step (forward + backward + step), batch {results['settings']['train_batch']}, sequence length "
            f"{results['settings']['seq_len']}; models of one size/taxonomy timed round-robin; median after warm-up. "
            "`gcn@d`: HiAGM-TP head with node_dim d + HiSR (weight 0.01); `none+hisr`: [CLS] → linear + HiSR.",
            "",
            "| size | taxonomy | L | variant | params | ms / step | × stock | paired × stock | load at start |",
            "|---|---|---:|---|---:|---:|---:|---:|---|",
        ]
        for r in model["train"]:
            out.append(
                f"| {r['size']} | {r['taxonomy']} | {r['L']} | {r['variant']} | {r['params'] / 1e6:.1f} M | {fmt(r['ms'], 1)} | "
                f"{fmt(r['ratio_to_stock'], 3)} | {fmt(r['paired_ratio_median'], 3)} | {r['loadavg_start'][0]} |"
            )
        out += [
            "",
            f"Inference (eval, no_grad), batch {results['settings']['infer_batch']}, sequence length {results['settings']['seq_len']}:",
            "",
            "| size | taxonomy | variant | ms / batch | docs/s | × stock | load at start |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        for r in model["inference"]:
            out.append(
                f"| {r['size']} | {r['taxonomy']} | {r['variant']} | {fmt(r['ms_per_batch'], 1)} | {fmt(r['docs_per_s'], 1)} | "
                f"{fmt(r['ratio_to_stock'], 3)} | {r['loadavg_start'][0]} |"
            )
        out += [
            "",
            "Where the extra training time goes (same batch; head = everything between the encoder output and the "
            "logits, stock head = pooler + classifier): ",
            "",
            "| size | taxonomy | variant | head fwd+bwd ms (stock) | head AdamW ms (stock) | HiSR fwd+bwd ms | predicted extra ms | measured extra ms |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in model["breakdown"]:
            measured = next(
                (
                    t["ms"] - s["ms"]
                    for t in model["train"]
                    for s in model["train"]
                    if t["size"] == r["size"] and t["taxonomy"] == r["taxonomy"] and t["variant"] == r["variant"]
                    and s["size"] == r["size"] and s["taxonomy"] == r["taxonomy"] and s["variant"] == "stock"
                ),
                None,
            )
            out.append(
                f"| {r['size']} | {r['taxonomy']} | {r['variant']} | {fmt(r['head_fwd_bwd_ms'])} ({fmt(r['stock_head_fwd_bwd_ms'])}) | "
                f"{fmt(r['head_adamw_ms'])} ({fmt(r['stock_head_adamw_ms'])}) | {fmt(r['hisr_fwd_bwd_ms'], 3)} | {fmt(r['predicted_extra_ms'], 1)} | {fmt(measured, 1)} |"
            )
        out.append("")

    if "params" in results:
        params = results["params"]
        out += ["## 3. Head parameters (from meta-device model instances)", "", f"Formula: {params['formula']} — matches every row.", ""]
        node_dims = sorted({r["node_dim"] for r in params["rows"]})
        out += [
            "| hidden | L | " + " | ".join(f"text-prop. @ {d}" for d in node_dims) + " | " + " | ".join(f"head total @ {d} (× encoder)" for d in node_dims) + " |",
            "|---:|---:|" + "---:|" * (2 * len(node_dims)),
        ]
        for hidden in sorted({r["hidden"] for r in params["rows"]}):
            for num_labels in sorted({r["L"] for r in params["rows"]}):
                rows = {r["node_dim"]: r for r in params["rows"] if r["hidden"] == hidden and r["L"] == num_labels}
                out.append(
                    f"| {hidden} | {num_labels:,} | "
                    + " | ".join(f"{rows[d]['text_propagation'] / 1e6:.2f} M" for d in node_dims)
                    + " | "
                    + " | ".join(f"{rows[d]['head_total'] / 1e6:.2f} M ({rows[d]['head_over_encoder']:.2f})" for d in node_dims)
                    + " |"
                )
        encoders = {r["hidden"]: r["encoder"] for r in params["rows"]}
        out += ["", "Encoder parameters: " + ", ".join(f"hidden {h}: {n / 1e6:.1f} M" for h, n in sorted(encoders.items())), ""]
    return "\n".join(out) + "\n"


# ============================================================================================ main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run (< 1 minute): small hierarchies, tiny encoder")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--output", default=None, help="JSON path (default benchmarks/results/speed_<device>[_quick].json)")
    parser.add_argument("--markdown", default=None, help="Markdown path (default: the JSON path with .md)")
    parser.add_argument("--sections", default="params,loss,model", help="comma-separated subset of params,loss,model")
    parser.add_argument(
        "--loss-hierarchies", nargs="+", default=["rcv1", "bgc", "nyt", "wos", "synthetic-1000", "synthetic-10000"]
    )
    parser.add_argument("--loop-max-labels", type=int, default=2000, help="time the loop loss only up to this many labels")
    parser.add_argument("--loss-rounds", type=int, default=7)
    parser.add_argument("--impl-budget-s", type=float, default=8.0, help="per implementation and case, after 3 rounds")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-hierarchy memory subprocesses")
    parser.add_argument("--node-dims", type=int, nargs="+", default=[300, 128], help="besides node_dim = hidden")
    parser.add_argument("--minilm-taxonomies", nargs="*", default=["nyt", "rcv1", "bgc", "wos"])
    parser.add_argument("--base-taxonomies", nargs="*", default=["nyt", "rcv1"])
    parser.add_argument(
        "--base-infer-taxonomies", nargs="*", default=["nyt"], help="bert-base inference is slow: only these"
    )
    parser.add_argument(
        "--adamw",
        choices=["fused", "foreach", "for-loop"],
        default="fused",
        help="AdamW implementation; 'fused' is what Trainer uses by default (optim='adamw_torch_fused')",
    )
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--infer-batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--train-warmup", type=int, default=2)
    parser.add_argument("--train-repeats", type=int, default=5)
    parser.add_argument("--base-train-repeats", type=int, default=5)
    parser.add_argument("--infer-warmup", type=int, default=2)
    parser.add_argument("--infer-repeats", type=int, default=5)
    parser.add_argument("--base-infer-warmup", type=int, default=1)
    parser.add_argument("--base-infer-repeats", type=int, default=3)
    parser.add_argument("--breakdown-rounds", type=int, default=5)
    parser.add_argument("--_memory-worker", dest="memory_worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.loss_batches = [8, 32]
    args.model_plan = [("MiniLM", args.minilm_taxonomies), ("bert-base", args.base_taxonomies)]
    if args.quick:
        args.loss_batches = [8]
        args.loss_hierarchies = ["rcv1", "synthetic-300"]
        args.loss_rounds = 3
        args.impl_budget_s = 2.0
        args.model_plan = [("tiny", ["rcv1"])]
        args.seq_len = 64
        args.train_warmup, args.train_repeats = 1, 2
        args.infer_warmup, args.infer_repeats = 1, 2
        args.breakdown_rounds = 2
    suffix = "_quick" if args.quick else ""
    if args.output is None:
        args.output = f"benchmarks/results/speed_{args.device}{suffix}.json"
    if args.markdown is None:
        args.markdown = str(Path(args.output).with_suffix(".md"))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.memory_worker is not None:
        memory_worker(args.memory_worker)
        return {}
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    sections = set(args.sections.split(","))
    start = time.time()
    results = {
        "command": "python " + " ".join([os.path.relpath(__file__, REPO), *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine_info(args),
        "loadavg_before": loadavg(),
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("memory_worker", "output", "markdown")
        },
    }
    if "params" in sections:
        log("head size table")
        results["params"] = head_size_table(args.quick)
    if "loss" in sections:
        results["loss"] = loss_benchmarks(args, device)
        results["loadavg_after_loss"] = loadavg()
    if "model" in sections:
        results["model"] = model_benchmarks(args, device)
    results["loadavg_after"] = loadavg()
    results["wall_s"] = round(time.time() - start, 1)
    results["summary"] = summarize(results)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    Path(args.markdown).write_text(render_markdown(results))
    log(f"wrote {output} and {args.markdown} in {results['wall_s']:.0f} s")
    return results


if __name__ == "__main__":
    main()

"""Speed and memory of the HiSR loss, forward + backward: the library against a per-document loop and a dense form.

Implementations, each on `sigmoid(logits)` with the default margins and negatives:

- `loop`: `reference_hisr_loss` from `tests/oracles.py`, the loop oracle the tests check the library against: one
  document, one F1 group and one sequence at a time (the per-document style of the authors' released code);
- `functional`: `hisr_loss(probs, labels, path_matrix)`, the functional API, which derives the `(L, depth)` sequence
  index from the `(L, L)` path matrix at every call;
- `fast`: `hisr_loss_from_sequences` with the sequence index computed once: what the model runs;
- `dense`: the same loss with the sequence scores and gold overlaps computed as `(B, L) @ (L, L)` products with the
  float path matrix (`dense_hisr_loss` below) instead of gathers over the sequence index.

On the real taxonomies (RCV1, BGC, NYT, WOS) and synthetic trees of 1,000 and 10,000 labels (`--hierarchies`), at
batch 8 and 32. Before anything is timed, every implementation is checked to give the fast path's value and gradient.
Then the implementations of one (hierarchy, batch) are timed interleaved in the same process (round-robin, several
calls per round for the fast ones, see `bench_utils.interleaved`) and reported as medians and as ratios to the fast
path, so that load on the machine affects all of them alike. The loop is timed only up to `--loop-max-labels` labels
(it takes seconds per step beyond); above that it is checked on the first two documents.

Peak memory of one forward+backward: on CPU, the rise of the resident set (VmHWM after resetting it through
/proc/self/clear_refs, minus VmRSS before), in a fresh subprocess per hierarchy with glibc's mmap threshold fixed at
64 KiB so that freed tensors go back to the OS; on CUDA, max_memory_allocated minus memory_allocated before the step.

Targets: the fast path at least 100x faster than the loop (NYT, batch 32); under 50 ms at 10,000 labels, batch 32.

Usage:

    python benchmarks/speed_loss.py --quick                  # smoke run, < 1 minute
    python benchmarks/speed_loss.py                          # full run, ~3 minutes on 2 CPU cores
    python benchmarks/speed_loss.py --device cuda

Results: `benchmarks/results/speed_loss_<device>[_quick].{json,md}` (`--output`, `--markdown`).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from bench_utils import (
    add_run_arguments,
    build_hierarchy,
    finish_arguments,
    finish_run,
    fmt,
    hierarchy_specs,
    hierarchy_stats,
    interleaved,
    loadavg,
    log,
    median_ms,
    min_ms,
    random_gold,
    report_header,
    start_run,
    targets_table,
    yes_no,
)

from hisr_hf.loss import hisr_loss, hisr_loss_from_sequence_stats, hisr_loss_from_sequences
from tests.oracles import reference_hisr_loss

NAME = "speed_loss"
LOSS_IMPLS = ("loop", "functional", "fast", "dense")
IMPL_DOC = {
    "loop": "reference_hisr_loss (tests/oracles.py): per-document, per-sequence Python loop, one torch op per "
    "sequence; it also reads the sequences off the path matrix at every call",
    "functional": "hisr_loss(probs, labels, path_matrix): derives the sequence index from the (L, L) path matrix "
    "at every call",
    "fast": "hisr_loss_from_sequences with the (L, depth) sequence index computed once: what the model runs",
    "dense": "the same loss with scores = P @ M^T (dense (B, L) @ (L, L) matmul with the float path matrix)",
}
MEMORY_MARKER = "MEMORY_JSON "
QUICK_SETTINGS = {"hierarchies": ["rcv1", "synthetic-300"], "batch_sizes": [8], "rounds": 3, "impl_budget_s": 2.0}


# ============================================================================================ implementations
def dense_hisr_loss(
    probs: torch.Tensor,
    labels: torch.Tensor,
    path_matrix_t: torch.Tensor,
    seq_len: torch.Tensor,
    max_width: int,
    pos_margin: float = 0.5,
    neg_margin: float = 0.15,
) -> torch.Tensor:
    """Default-negatives HiSR loss with ``scores = P @ M^T / len`` (``path_matrix_t``: float ``M^T``, ``(L, L)``).

    Only the sequence scores and gold overlaps differ from `hisr_loss_from_sequences` (products with the dense path
    matrix instead of gathers over the padded ancestor ids); the ranking after them is the library's."""
    gold = labels > 0.5
    scores = (probs @ path_matrix_t) / seq_len.to(probs.dtype)  # (B, L)
    overlap = (gold.to(probs.dtype) @ path_matrix_t).round().long()  # exact: small integers
    return hisr_loss_from_sequence_stats(probs, gold, scores, overlap, seq_len, max_width, pos_margin, neg_margin)


class LossCase:
    """One hierarchy with what each implementation precomputes, and its benchmark inputs."""

    def __init__(self, spec: dict, device: torch.device):
        self.spec = spec
        self.hierarchy = build_hierarchy(spec)
        self.device = device
        self.path_matrix = self.hierarchy.path_matrix().to(device)
        index, lengths = self.hierarchy.sequence_index()
        self.seq_index, self.seq_len = index.to(device), lengths.to(device)
        self.width = int(index.shape[1])
        self.path_matrix_t = self.path_matrix.t().float().contiguous()

    def inputs(self, batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (``2 * N(0, 1)``, a leaf tensor that requires grad) and 1-3 gold paths per document."""
        labels = random_gold(self.hierarchy, batch_size, random.Random(seed)).to(self.device)
        generator = torch.Generator().manual_seed(seed)
        logits = (2 * torch.randn(batch_size, self.hierarchy.num_labels, generator=generator)).to(self.device)
        return logits.requires_grad_(True), labels

    def loss_fn(self, impl: str, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """`probs -> loss` for one implementation of `LOSS_IMPLS`."""
        if impl == "fast":
            return lambda probs: hisr_loss_from_sequences(probs, labels, self.seq_index, self.seq_len)
        if impl == "functional":
            return lambda probs: hisr_loss(probs, labels, self.path_matrix)
        if impl == "dense":
            return lambda probs: dense_hisr_loss(probs, labels, self.path_matrix_t, self.seq_len, self.width)
        if impl == "loop":
            return lambda probs: reference_hisr_loss(probs, labels, self.path_matrix)
        raise ValueError(f"unknown loss implementation {impl!r}; expected one of {LOSS_IMPLS}")


def loss_step(fn: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor) -> Callable[[], torch.Tensor]:
    """One timed step: forward on `sigmoid(logits)` and backward to `logits`."""

    def step():
        logits.grad = None
        loss = fn(torch.sigmoid(logits))
        loss.backward()
        return loss

    return step


def value_and_grad(fn: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor) -> tuple[float, torch.Tensor]:
    logits = logits.detach().clone().requires_grad_(True)
    loss = fn(torch.sigmoid(logits))
    loss.backward()
    return loss.item(), logits.grad.detach()


def check_against_fast(case: LossCase, impl: str, logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Raise unless `impl` gives the fast path's value and gradient on these inputs; return the comparison."""
    value, grad = value_and_grad(case.loss_fn(impl, labels), logits)
    expected_value, expected_grad = value_and_grad(case.loss_fn("fast", labels), logits)
    difference = float((grad - expected_grad).abs().max())
    name = case.spec["name"]
    if not math.isclose(value, expected_value, rel_tol=1e-5, abs_tol=1e-6):
        raise AssertionError(f"{impl} loss on {name} is {value}, the fast path's {expected_value}")
    if not torch.allclose(grad, expected_grad, rtol=1e-4, atol=1e-7):
        raise AssertionError(f"{impl} gradient on {name} differs from the fast path's by up to {difference}")
    return {"value": value, "max_abs_grad_diff": difference}


# ============================================================================================ benchmark
def loss_benchmarks(args, device: torch.device) -> dict:
    results = {"implementations": IMPL_DOC, "cases": []}
    for spec in hierarchy_specs(args.hierarchies):
        log(f"loss: {spec['name']}")
        case = LossCase(spec, device)
        stats = hierarchy_stats(case.hierarchy)
        num_labels = stats["num_labels"]
        run_loop = num_labels <= args.loop_max_labels
        impls = [impl for impl in LOSS_IMPLS if impl != "loop" or run_loop]
        for batch_size in args.batch_sizes:
            logits, labels = case.inputs(batch_size, seed=batch_size)
            checks = {impl: check_against_fast(case, impl, logits, labels) for impl in impls if impl != "fast"}
            if not run_loop:
                # Too slow to time here; still check it on the first two documents.
                checks["loop"] = check_against_fast(case, "loop", logits[:2].detach(), labels[:2])
                checks["loop"]["checked_on"] = "first 2 documents only (not timed)"
            steps = {impl: loss_step(case.loss_fn(impl, labels), logits) for impl in impls}
            times = interleaved(steps, device, warmup=1, rounds=args.rounds, budget_s=args.impl_budget_s)
            row = {
                "hierarchy": spec["name"],
                **stats,
                "batch_size": batch_size,
                "loss_value": value_and_grad(case.loss_fn("fast", labels), logits)[0],
                "checks": checks,
                "ms": {impl: median_ms(times.get(impl, [])) for impl in LOSS_IMPLS},
                "min_ms": {impl: min_ms(times.get(impl, [])) for impl in LOSS_IMPLS},
                "repeats": {impl: len(times.get(impl, [])) for impl in LOSS_IMPLS},
                "loadavg": loadavg(),
                "loop_skipped": None
                if run_loop
                else f"loop not timed at L={num_labels} > --loop-max-labels {args.loop_max_labels} (seconds per step)",
            }
            fast = row["ms"]["fast"]
            row["over_fast"] = {impl: round(row["ms"][impl] / fast, 2) if row["ms"][impl] else None for impl in impls}
            if device.type == "cuda":
                row["peak_mib"] = {impl: cuda_peak_mib(steps[impl], device) for impl in impls}
            results["cases"].append(row)
            log(f"  B={batch_size}: " + ", ".join(f"{k}={v}" for k, v in row["ms"].items()))
        if device.type == "cpu" and not args.no_memory:
            memory = memory_in_subprocess(spec, args, impls)
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


# ============================================================================================ peak memory
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
    print(MEMORY_MARKER + json.dumps(out), flush=True)


def memory_in_subprocess(spec: dict, args, impls: list[str]) -> dict:
    """`{batch size: {implementation: MiB}}` from `memory_worker` in a fresh process ({} when it fails)."""
    payload = json.dumps({"spec": spec, "batches": args.batch_sizes, "impls": impls, "threads": args.threads})
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}
    proc = subprocess.run(
        [sys.executable, __file__, "--_memory-worker", payload], env=env, capture_output=True, text=True, timeout=900
    )
    for line in proc.stdout.splitlines():
        if line.startswith(MEMORY_MARKER):
            return json.loads(line[len(MEMORY_MARKER) :])
    log(f"memory subprocess failed for {spec['name']} (exit status {proc.returncode}): {proc.stderr[-2000:]}")
    return {}


# ============================================================================================ summary + markdown
def summarize(results: dict) -> dict:
    """The targets: loop / fast at NYT, batch 32 (>= 100x) and the fast path at 10,000 labels, batch 32 (< 50 ms)."""
    summary = {}
    rows = results["loss"]["cases"]
    nyt32 = next((r for r in rows if r["hierarchy"] == "nyt" and r["batch_size"] == 32), None)
    if nyt32 and nyt32["over_fast"].get("loop"):
        speedup = nyt32["over_fast"]["loop"]
        summary["speedup_vs_loop_nyt_b32"] = {"value": speedup, "target": ">= 100x", "met": speedup >= 100}
    big = next((r for r in rows if r["num_labels"] >= 10000 and r["batch_size"] == 32), None)
    if big:
        summary["fast_ms_10k_b32"] = {"value": big["ms"]["fast"], "target": "< 50 ms", "met": big["ms"]["fast"] < 50}
        summary["functional_ms_10k_b32"] = {"value": big["ms"]["functional"], "note": "hisr_loss (derives the index)"}
    return summary


def render_markdown(results: dict) -> str:
    loss = results["loss"]
    out = report_header(results, "HiSR loss speed", [r["loadavg"][0] for r in loss["cases"]])
    s = results["summary"]
    speedup, fast_10k = s.get("speedup_vs_loop_nyt_b32"), s.get("fast_ms_10k_b32")
    out += targets_table(
        [
            (
                "fast path ≥ 100× faster than the loop, NYT, batch 32",
                f"{fmt(speedup['value'], 0)}×" if speedup else "not measured (needs nyt, batch 32)",
                yes_no(speedup["met"]) if speedup else "—",
            ),
            (
                "< 50 ms fwd+bwd, 10,000 labels, batch 32 (model path)",
                f"{fmt(fast_10k['value'])} ms (functional API: {fmt(s['functional_ms_10k_b32']['value'])} ms)"
                if fast_10k
                else "not measured (needs synthetic-10000, batch 32)",
                yes_no(fast_10k["met"]) if fast_10k else "—",
            ),
        ]
    )
    out += ["## HiSR loss, forward + backward", ""]
    out += [f"- `{k}`: {v}" for k, v in loss["implementations"].items()]
    out += ["", f"Memory: {loss['memory_method']}", ""]
    out += [
        "| hierarchy | L | depth | leaves | B | loop ms | functional ms | fast ms (min) | dense ms | loop / fast | "
        "functional / fast | dense / fast | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in loss["cases"]:
        ms, ratio = r["ms"], r["over_fast"]
        out.append(
            f"| {r['hierarchy']} | {r['num_labels']:,} | {r['max_depth']} | {r['num_leaves']:,} | {r['batch_size']} | "
            f"{fmt(ms['loop'], 1) if ms['loop'] else 'skipped'} | {fmt(ms['functional'], 3)} | "
            f"{fmt(ms['fast'], 3)} ({fmt(r['min_ms']['fast'], 3)}) | {fmt(ms['dense'], 3)} | "
            f"{fmt(ratio['loop'], 0) + '×' if ratio.get('loop') else '—'} | {fmt(ratio['functional'])}× | "
            f"{fmt(ratio['dense'])}× | {r['loadavg'][0]} |"
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
    return "\n".join(out) + "\n"


# ============================================================================================ main
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser, NAME, "RCV1 and a 300-label tree, batch 8, 3 rounds")
    parser.add_argument(
        "--hierarchies",
        nargs="+",
        default=["rcv1", "bgc", "nyt", "wos", "synthetic-1000", "synthetic-10000"],
        help="taxonomies of the shared data, or synthetic-N for a synthetic tree of N labels",
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--loop-max-labels", type=int, default=2000, help="time the loop only up to this many labels")
    parser.add_argument("--rounds", type=int, default=7, help="timing rounds per (hierarchy, batch)")
    parser.add_argument("--impl-budget-s", type=float, default=8.0, help="per implementation and case, after 3 rounds")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-hierarchy memory subprocesses")
    parser.add_argument("--_memory-worker", dest="_memory_worker", default=None, help=argparse.SUPPRESS)
    return finish_arguments(parser.parse_args(argv), NAME, QUICK_SETTINGS)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args._memory_worker is not None:
        memory_worker(args._memory_worker)
        return {}
    start = time.time()
    results, device = start_run(args, __file__, argv)
    results["loss"] = loss_benchmarks(args, device)
    finish_run(results, args, start, summarize, render_markdown)
    return results


if __name__ == "__main__":
    main()

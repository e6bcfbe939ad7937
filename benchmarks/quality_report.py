"""Aggregation and reporting of `benchmarks/quality.py`: mean ± std over seeds, the Markdown table, the chart."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from hisr_hf.metrics import f1_rows, format_metrics_table


def mean_std(values: list[float]) -> dict[str, Any]:
    """`{"mean", "std" (sample std, 0 for one value), "n", "values"}`."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "values": values,
    }


def aggregate(results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per variant: every numeric test and dev metric, wall time, docs/s and parameters over its successful runs."""
    summary = {}
    for variant, runs in results.items():
        ok = [r for r in runs if r.get("status") == "ok"]
        entry: dict[str, Any] = {
            "label": next((r["label"] for r in runs if r.get("label")), variant),
            "runs": len(runs),
            "succeeded": len(ok),
            "seeds": [r.get("seed") for r in ok],
            "failed_seeds": [r.get("seed") for r in runs if r.get("status") == "failed"],
            "deterministic": bool(ok and ok[0].get("deterministic")),
        }
        if ok:
            for part in ("test", "dev"):
                keys = sorted({k for r in ok for k, v in r.get(part, {}).items() if isinstance(v, (int, float))})
                entry[part] = {k: mean_std([r[part][k] for r in ok if k in r.get(part, {})]) for k in keys}
            entry["wall_time_s"] = mean_std([r["wall_time_s"] for r in ok])
            entry["wall_time_total_s"] = round(sum(r["wall_time_s"] for r in ok), 1)
            rates = [r["train"].get("train_samples_per_second") for r in ok if r.get("train")]
            if rates and None not in rates:
                entry["train_samples_per_second"] = mean_std(rates)
            rates = [r["test"]["samples_per_second"] for r in ok if "samples_per_second" in r.get("test", {})]
            if rates:
                entry["test_samples_per_second"] = mean_std(rates)
            curves = [r["dev_curve"] for r in ok if r.get("dev_curve")]
            if curves:
                length = min(len(c) for c in curves)
                entry["dev_curve"] = [
                    {"epoch": curves[0][i][0], "micro_f1": mean_std([c[i][1] for c in curves]),
                     "macro_f1": mean_std([c[i][2] for c in curves])}
                    for i in range(length)
                ]  # fmt: skip
            params = next((r.get("parameters") for r in ok if r.get("parameters")), None)
            if params:
                entry["parameters"] = params
            if ok[0].get("setup"):
                entry["setup"] = ok[0]["setup"]
        summary[variant] = entry
    return summary


def _pct(stat: dict | None, digits: int = 2) -> str:
    if not stat:
        return "–"
    if stat["n"] > 1:
        return f"{100 * stat['mean']:.{digits}f} ± {100 * stat['std']:.{digits}f}"
    return f"{100 * stat['mean']:.{digits}f}"


def markdown_report(
    summary: dict,
    *,
    dataset: str,
    budget_name: str,
    seeds: list[int] | None,
    encoder: str,
    num_labels: int,
    depth: int,
    manifest: dict,
    manifest_path: str,
    budget: dict,
    wall_time_s: float,
    extra_flags: list[str] | None = None,
) -> str:
    """The comparison table (test F1 in %, mean ± std), notes on data, budget and the peer, and one
    `format_metrics_table` per variant."""
    reported: dict[str, Any] = {}
    for entry in summary.values():
        reported.update(entry.get("test", {}))
    rows = f1_rows(reported)  # the F1 pairs some variant reports, in hisr_hf's table order
    families = [row for row in rows if not row[0].startswith("Level ")]
    columns = [f"{short or ''}{kind}{'-F1' if not short else ''}" for _, short, _, _ in families for kind in ("Micro", "Macro")]
    keys = [key for _, _, micro, macro in families for key in (micro, macro)]
    columns += [f"L{d} Macro" for d in range(1, depth + 1)]
    keys += [f"level_{d}_macro_f1" for d in range(1, depth + 1)]
    if "tuned_micro_f1" in reported:
        columns += ["Micro (dev thr.)", "Macro (dev thr.)"]
        keys += ["tuned_micro_f1", "tuned_macro_f1"]
    split = manifest["splits"]
    over_seeds = f" as mean ± std over seeds {seeds}" if seeds else ""
    lines = [
        f"# Quality on {dataset} ({budget_name})",
        "",
        f"Test split, F1 in %{over_seeds} (neural runs: one checkpoint per run, chosen by dev Micro-F1). "
        f"Encoder `{encoder}`; {num_labels} labels, depth {depth}.",
        "",
        "| Variant | runs | " + " | ".join(columns) + " | dev Micro | s / run | train docs/s | head params |",
        "|---|---:|" + "---:|" * len(columns) + "---:|---:|---:|---:|",
    ]
    for entry in summary.values():
        test, dev = entry.get("test", {}), entry.get("dev", {})
        runs = f"{entry['succeeded']}/{entry['runs']}" + (" (det.)" if entry.get("deterministic") else "")
        wall_time = entry.get("wall_time_s")
        rate = entry.get("train_samples_per_second")
        params = entry.get("parameters")
        cells = [_pct(test.get(k)) for k in keys]
        cells.append(_pct(dev.get("micro_f1")))
        cells.append(f"{wall_time['mean']:.0f}" if wall_time else "–")
        cells.append(f"{rate['mean']:.1f}" if rate else "–")
        cells.append(f"{params['head'] / 1e6:.2f} M" if params else "–")
        lines.append(f"| {entry['label']} | {runs} | " + " | ".join(cells) + " |")
    unsupported = next(
        (
            v["test"]["num_labels_without_support"]["mean"]
            for v in summary.values()
            if "num_labels_without_support" in v.get("test", {})
        ),
        0,
    )
    test_sampling = split["test"]["sampling"] if split["test"]["documents"] < split["test"]["of"] else "whole split"
    lines += [
        "",
        f"- Data: train {split['train']['documents']}/{split['train']['of']}, dev "
        f"{split['validation']['documents']}/{split['validation']['of']}, test {split['test']['documents']}/"
        f"{split['test']['of']} documents (test: {test_sampling}); the same files for every variant, listed in "
        f"`{manifest_path}`.",
        f"- Budget: max length {budget['max_seq_length']}, batch {budget['batch_size']}, lr "
        f"{budget['learning_rate']:g} (linear decay, warmup {budget['warmup']:g}), up to "
        f"{budget['num_train_epochs']:g} epochs, early stopping patience {budget['early_stopping_patience']} "
        "(dev Micro- and Macro-F1)." + (f" Extra run_htc flags: `{' '.join(extra_flags)}`." if extra_flags else ""),
        (
            f"- Macro-F1 averages over all labels of the hierarchy; {unsupported:g} label(s) have no gold document "
            "in this test set and count as F1 = 0."
            if unsupported
            else "- Macro-F1 averages over all labels of the hierarchy."
        ),
        *(
            ["- (dev thr.): test F1 at the one decision threshold chosen on dev (`--tune_thresholds global`); the "
             "other columns use 0.5."]
            if "tuned_micro_f1" in reported
            else []
        ),
        "- C-: path-constrained (HiMatch); P-: path-based (HierVerb), only for data whose gold sets end at leaves.",
        "- s / run: wall time of one run (process start, training with per-epoch dev evaluation, test); train "
        "docs/s: `train_samples_per_second` of the Trainer (per-epoch dev evaluation and checkpoint saves "
        "included); head params: parameters outside the encoder.",
    ]
    for entry in summary.values():
        setup = entry.get("setup")
        if setup and "hiclass_version" in setup:
            lines.append(
                f"- hiclass {setup['hiclass_version']}: {setup['classifier']} over {setup['features']}; "
                f"{setup['decoding']}; chosen on dev: {setup['chosen_on_dev']}. Deterministic, so run once (det.)."
            )
    failed = {v: e["failed_seeds"] for v, e in summary.items() if e.get("failed_seeds")}
    if failed:
        lines.append(f"- **Failed runs** (seeds): {failed}; see their `log.txt`.")
    lines.append(f"- Wall time of this invocation: {wall_time_s / 60:.1f} min.")
    curves = {entry["label"]: entry["dev_curve"] for entry in summary.values() if entry.get("dev_curve")}
    if curves:
        lines += ["", "## Dev curves", "", "Dev Micro-F1 / Macro-F1 (%) after each epoch, mean over seeds.", "",
                  "| Variant | " + " | ".join(f"epoch {point['epoch']:g}" for point in max(curves.values(), key=len)) + " |",
                  "|---|" + "---:|" * max(len(c) for c in curves.values())]  # fmt: skip
        for label, curve in curves.items():
            cells = [f"{100 * p['micro_f1']['mean']:.1f} / {100 * p['macro_f1']['mean']:.1f}" for p in curve]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Per variant (test)", ""]
    for entry in summary.values():
        if entry.get("test"):
            table = {k: (v["mean"], v["std"]) if v["n"] > 1 else v["mean"] for k, v in entry["test"].items()}
            lines += [f"### {entry['label']}", "", format_metrics_table(table), ""]
    return "\n".join(lines) + "\n"


def plot_levels(summary: dict, dataset: str, depth: int, path: Path) -> None:
    """Grouped bars: test Macro-F1 over all labels and per level, one bar per variant, std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = ["all labels"] + [f"level {d}" for d in range(1, depth + 1)]
    keys = ["macro_f1"] + [f"level_{d}_macro_f1" for d in range(1, depth + 1)]
    variants = [v for v, e in summary.items() if e.get("test")]
    if not variants:
        return
    width = 0.8 / len(variants)
    positions = np.arange(len(groups))
    figure, axis = plt.subplots(figsize=(2.0 + 1.6 * len(groups) + 0.3 * len(variants), 4.0))
    for index, variant in enumerate(variants):
        test = summary[variant]["test"]
        means = [100 * test[k]["mean"] if k in test else 0.0 for k in keys]
        stds = [100 * test[k]["std"] if k in test else 0.0 for k in keys]
        offsets = positions - 0.4 + width * (index + 0.5)
        axis.bar(offsets, means, width=width, yerr=stds, capsize=2, label=summary[variant]["label"])
    axis.set_xticks(positions, groups)
    axis.set_ylim(0, 100)
    axis.set_ylabel("Macro-F1 (%)")
    axis.set_title(f"{dataset}: test Macro-F1 per level (mean ± std over seeds)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_dev_curves(summary: dict, dataset: str, path: Path) -> bool:
    """Dev Micro- and Macro-F1 after every epoch, one line per variant (`aggregate`'s mean over its seeds, the
    seeds' range shaded): the evidence that a budget is long enough for the baseline to have learned. False if no
    variant has a curve."""
    curves = {entry["label"]: entry["dev_curve"] for entry in summary.values() if entry.get("dev_curve")}
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10.0, 3.8), sharex=True)
    for label, curve in curves.items():
        epochs = [point["epoch"] for point in curve]
        for axis, key in zip(axes, ("micro_f1", "macro_f1")):
            values = 100 * np.array([point[key]["values"] for point in curve])  # (evaluations, seeds)
            (line,) = axis.plot(epochs, values.mean(axis=1), marker="o", label=label)
            if values.shape[1] > 1:
                axis.fill_between(epochs, values.min(axis=1), values.max(axis=1), color=line.get_color(), alpha=0.15)
    for axis, name in zip(axes, ("Micro-F1", "Macro-F1")):
        axis.set_xlabel("epoch")
        axis.set_ylabel(f"dev {name} (%)")
        axis.grid(alpha=0.3)
    axes[0].set_title(f"{dataset}: dev Micro-F1 per epoch")
    axes[1].set_title(f"{dataset}: dev Macro-F1 per epoch")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True

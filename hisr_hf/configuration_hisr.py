"""Configuration of `BertForHierarchicalClassification`.

This file travels with every checkpoint (``trust_remote_code``).
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import BertConfig

from .hierarchy import LabelHierarchy
from .loss import NEGATIVE_MODES

STRUCTURE_ENCODERS = ("gcn", "none")
TEXT_FEATURES = ("cls", "pooler", "mean")
AUTO_MAP = {
    "AutoConfig": "configuration_hisr.HiSRConfig",
    "AutoModel": "modeling_hisr.BertForHierarchicalClassification",
    "AutoModelForSequenceClassification": "modeling_hisr.BertForHierarchicalClassification",
}


@strict(accept_kwargs=True)
class HiSRConfig(BertConfig):
    r"""
    Configuration of [`BertForHierarchicalClassification`]: every field of [`BertConfig`] plus the label
    hierarchy and the HiSR hyper-parameters. Everything needed to rebuild the model is here, so a saved
    `config.json` is enough to load it anywhere.

    Args:
        hierarchy (`LabelHierarchy` or `dict`, *optional*):
            The label hierarchy (`LabelHierarchy.to_dict()` form once stored). Sets `id2label`, `label2id` and
            `problem_type="multi_label_classification"`.
        hierarchy_prior (`dict[str, dict[str, float]]`, *optional*):
            `{parent: {child: P(child | parent)}}` from the training labels (`LabelHierarchy.prior`); it
            initialises the top-down GCN edge weights. `None` means `1 / number of children` until a trainer
            fills it from the training set.
        structure_encoder (`str`, defaults to `"gcn"`):
            `"gcn"` (HiAGM-TP: text propagation + hierarchy GCN) or `"none"` (`[CLS]` -> linear, the "- GCN"
            ablation).
        text_feature (`str`, defaults to `"cls"`):
            `"cls"`: the final hidden state of `[CLS]` (the paper); `"pooler"`: BERT's pooler (dense + tanh
            over `[CLS]`), which with `structure_encoder="none"` is exactly `BertForSequenceClassification`;
            `"mean"`: the mean of the final hidden states over the attended tokens (padding excluded), the
            feature of mean-pooling sentence encoders such as all-MiniLM-L6-v2.
        node_dim (`int`, *optional*):
            Size of each label node vector. Defaults to `hidden_size` (the paper's released code).
        gcn_dropout (`float`, defaults to 0.05): dropout on the GCN messages (HiAGM's node dropout).
        hisr_weight (`float`, defaults to 0.01): alpha, the weight of the HiSR loss; 0 is the "- HiSR" ablation.
        hisr_pos_margin (`float`, defaults to 0.5): gold-vs-negative margin.
        hisr_neg_margin (`float`, defaults to 0.15): negative-vs-negative margin per rank step.
        hisr_negatives (`str`, defaults to `"not_subset_of_gold"`): `"not_subset_of_gold"` or `"f1_below_one"`.
        hisr_node_weight (`float`, defaults to 0.0): weight of the optional node-level term.
        hisr_node_top_k (`int`, defaults to 10): number of non-gold labels the node-level term uses.

    Example:

    ```python
    >>> from hisr_hf import HiSRConfig, LabelHierarchy
    >>> hierarchy = LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A"})
    >>> config = HiSRConfig(hierarchy=hierarchy, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    >>> config.num_labels, config.node_dim
    (3, 32)
    ```
    """

    model_type = "hisr"
    # Loss parts are scalars; the Trainer must not gather them as predictions.
    keys_to_ignore_at_inference = ["bce_loss", "hisr_loss", "node_loss"]

    hierarchy: Any = None
    hierarchy_prior: Any = None
    structure_encoder: str = "gcn"
    text_feature: str = "cls"
    node_dim: int | None = None
    gcn_dropout: float | int = 0.05
    hisr_weight: float | int = 0.01
    hisr_pos_margin: float | int = 0.5
    hisr_neg_margin: float | int = 0.15
    hisr_negatives: str = "not_subset_of_gold"
    hisr_node_weight: float | int = 0.0
    hisr_node_top_k: int = 10

    def __post_init__(self, **kwargs):
        kwargs.pop("num_labels", None)  # the hierarchy decides the number of labels
        super().__post_init__(**kwargs)
        _check_choice("structure_encoder", self.structure_encoder, STRUCTURE_ENCODERS)
        _check_choice("text_feature", self.text_feature, TEXT_FEATURES)
        _check_choice("hisr_negatives", self.hisr_negatives, NEGATIVE_MODES)
        for name in ("hisr_weight", "hisr_pos_margin", "hisr_neg_margin", "hisr_node_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if not 0 <= self.gcn_dropout < 1:
            raise ValueError(f"gcn_dropout must be in [0, 1), got {self.gcn_dropout}.")
        if self.hisr_node_top_k < 1:
            raise ValueError(f"hisr_node_top_k must be >= 1, got {self.hisr_node_top_k}.")
        if self.node_dim is None:
            self.node_dim = self.hidden_size
        elif self.node_dim < 1:
            raise ValueError(f"node_dim must be a positive int, got {self.node_dim}.")
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(AUTO_MAP)
        if self.hierarchy is not None:
            self._set_hierarchy(self.hierarchy)

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

    def edge_prior(self) -> list[float]:
        """Prior weight of every parent link, in `LabelHierarchy.edges()` order."""
        hierarchy = self.get_hierarchy()
        prior = self.hierarchy_prior if self.hierarchy_prior is not None else hierarchy.uniform_prior()
        labels = hierarchy.labels
        return [float(prior.get(labels[p], {}).get(labels[c], 0.0)) for p, c in hierarchy.edges()]


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")


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

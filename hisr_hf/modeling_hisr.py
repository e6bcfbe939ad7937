"""HiSR hierarchical classifiers: any Transformers text encoder, a hierarchy head (HiAGM-TP, factorized or label
attention) with the hierarchy GCN, and the HiSR loss.

This file travels with every checkpoint (``trust_remote_code``): it imports only ``torch``, ``transformers``
and its sibling files.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, logging

from .configuration_hisr import LINEAR_SIZE_HEADS, TESTED_ENCODERS, HiSRConfig
from .decoding import LabelPathPrediction, decode_label_paths, label_thresholds
from .hierarchy import LabelHierarchy
from .loss import hisr_loss_from_sequences, node_loss
from .pipeline_hisr import HierarchicalTextClassificationPipeline

logger = logging.get_logger(__name__)


@dataclass
class HierarchicalClassifierOutput(ModelOutput):
    r"""
    Output of [`HiSRForHierarchicalClassification`].

    Args:
        loss (`torch.Tensor`, *optional*, returned when `labels` is given):
            `bce_loss + hisr_weight * hisr_loss + hisr_node_weight * node_loss`.
        logits (`torch.Tensor` of shape `(batch_size, num_labels)`): one logit per label (sigmoid for probabilities).
        bce_loss (`torch.Tensor`, *optional*): binary cross-entropy averaged over all `batch_size * num_labels` entries.
        hisr_loss (`torch.Tensor`, *optional*): the unweighted HiSR sequence-ranking loss.
        node_loss (`torch.Tensor`, *optional*): the unweighted node-level term (only when `hisr_node_weight > 0`).
        hidden_states, attentions: as returned by the encoder when requested.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    bce_loss: torch.Tensor | None = None
    hisr_loss: torch.Tensor | None = None
    node_loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class HierarchyGCN(nn.Module):
    """One HiAGM hierarchy-GCN layer over label node vectors (spec section 2.3).

    Three kinds of edges: top-down (parent -> child, weight initialised from the prior `P(child | parent)`),
    bottom-up (child -> parent, weight initialised to 1) and a self-loop. Each message is gated by
    `sigmoid(h_node . w + b_node)` of the receiving node; messages are summed and a ReLU follows. Edge weights are
    trainable and exist only on the hierarchy's links, so the layer costs O(edges * node_dim) per document.

    Input and output: `(batch_size, num_labels, node_dim)`.
    """

    def __init__(self, config: HiSRConfig, hierarchy: LabelHierarchy | None = None):
        super().__init__()
        hierarchy = hierarchy if hierarchy is not None else config.get_hierarchy()
        num_labels, node_dim = hierarchy.num_labels, config.node_dim
        num_edges = len(hierarchy.edges())
        self.register_buffer("edge_parent", torch.zeros(num_edges, dtype=torch.long), persistent=False)
        self.register_buffer("edge_child", torch.zeros(num_edges, dtype=torch.long), persistent=False)
        # For graph export: the edges split into rounds in which no two edges share a receiving label (see _add_at).
        edges = hierarchy.edges()
        self.rounds_to_child = _distinct_target_rounds([child for _, child in edges])
        self.rounds_to_parent = _distinct_target_rounds([parent for parent, _ in edges])
        self.top_down_weight = nn.Parameter(torch.empty(num_edges))
        self.bottom_up_weight = nn.Parameter(torch.empty(num_edges))
        self.top_down_bias = nn.Parameter(torch.empty(num_labels, node_dim))
        self.bottom_up_bias = nn.Parameter(torch.empty(num_labels, node_dim))
        self.top_down_gate = nn.Parameter(torch.empty(node_dim))
        self.bottom_up_gate = nn.Parameter(torch.empty(node_dim))
        self.loop_gate = nn.Parameter(torch.empty(node_dim))
        self.top_down_gate_bias = nn.Parameter(torch.empty(num_labels))
        self.bottom_up_gate_bias = nn.Parameter(torch.empty(num_labels))
        self.dropout = nn.Dropout(config.gcn_dropout)
        # HiAGM-TP drops message elements (the paper's model); the linear-size heads drop whole node messages, which
        # needs one random number per node instead of one per element (the CPU's random numbers are the cost here).
        self.drop_whole_nodes = config.head in LINEAR_SIZE_HEADS

    def _propagate(self, nodes, source, target, weight, rounds):
        # index_select (not nodes[:, source]): its backward is an index_add instead of an accumulating index_put.
        messages = nodes.index_select(1, source) * weight.to(nodes.dtype).unsqueeze(-1)  # (B, E, d)
        return _add_at(torch.zeros_like(nodes), 1, target, messages, rounds)

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        top_down = self._propagate(nodes, self.edge_parent, self.edge_child, self.top_down_weight, self.rounds_to_child)
        bottom_up = self._propagate(
            nodes, self.edge_child, self.edge_parent, self.bottom_up_weight, self.rounds_to_parent
        )
        top_down = (top_down + self.top_down_bias) * torch.sigmoid(nodes @ self.top_down_gate + self.top_down_gate_bias).unsqueeze(-1)
        bottom_up = (bottom_up + self.bottom_up_bias) * torch.sigmoid(
            nodes @ self.bottom_up_gate + self.bottom_up_gate_bias
        ).unsqueeze(-1)
        loop = nodes * torch.sigmoid(nodes @ self.loop_gate).unsqueeze(-1)
        return F.relu(self._drop(top_down) + self._drop(bottom_up) + self._drop(loop))

    def _drop(self, messages: torch.Tensor) -> torch.Tensor:
        if not self.drop_whole_nodes or not self.training or self.dropout.p == 0:
            return self.dropout(messages)
        return messages * self.dropout(messages.new_ones(*messages.shape[:-1], 1))


class HiSRLoss(nn.Module):
    """Holds the hierarchy's label sequences as buffers and computes the HiSR and node-level terms."""

    def __init__(self, config: HiSRConfig, hierarchy: LabelHierarchy | None = None):
        super().__init__()
        hierarchy = hierarchy if hierarchy is not None else config.get_hierarchy()
        index, lengths = hierarchy.sequence_index()
        self.register_buffer("sequence_index", torch.zeros_like(index), persistent=False)
        self.register_buffer("sequence_length", torch.zeros_like(lengths), persistent=False)
        self.config = config  # margins are read at every call, so editing the config takes effect

    def forward(self, probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        config = self.config
        return hisr_loss_from_sequences(
            probs,
            labels,
            self.sequence_index,
            self.sequence_length,
            config.hisr_pos_margin,
            config.hisr_neg_margin,
            config.hisr_negatives,
        )

    def node_term(self, probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return node_loss(probs, labels, top_k=self.config.hisr_node_top_k, margin=self.config.hisr_pos_margin)


class FactorizedLabelNodes(nn.Module):
    """Label node vectors of the factorized head: one projection of the text feature shared by all labels,
    modulated by a learned vector and shifted by a learned bias per label.

    `nodes[b, l] = (W f_b + c) * scale_l + shift_l`, so the parameters are `hidden * node_dim + 2 * L * node_dim`
    instead of HiAGM-TP's `hidden * L * node_dim`. Input `(batch_size, hidden_size)`, output
    `(batch_size, num_labels, node_dim)`.
    """

    def __init__(self, config: HiSRConfig):
        super().__init__()
        self.projection = nn.Linear(config.hidden_size, config.node_dim)
        self.scale = nn.Parameter(torch.empty(config.num_labels, config.node_dim))
        self.shift = nn.Parameter(torch.empty(config.num_labels, config.node_dim))

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, self.projection(feature).unsqueeze(1), self.scale)


class LabelAttentionNodes(nn.Module):
    """Label node vectors of the label-attention head: each label pools the token states with its own attention.

    `keys = tanh(K h_t)`, `scores[b, l, t] = keys[b, t] . query_l / sqrt(node_dim)` over the attended tokens,
    `nodes[b, l] = sum_t softmax_t(scores)[b, l, t] * (V h_t)`: HiAGM-LA's label-wise attention with shared `K`, `V`
    of width `node_dim`, so the parameters are `2 * (hidden + 1) * node_dim + L * node_dim` and the cost per
    document `O(tokens * L * node_dim)`. Input `(batch_size, tokens, hidden_size)` and the attention mask, output
    `(batch_size, num_labels, node_dim)`.
    """

    def __init__(self, config: HiSRConfig):
        super().__init__()
        self.key = nn.Linear(config.hidden_size, config.node_dim)
        self.value = nn.Linear(config.hidden_size, config.node_dim)
        self.query = nn.Parameter(torch.empty(config.num_labels, config.node_dim))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        keys = torch.tanh(self.key(hidden_states))  # (B, T, d)
        scores = (self.query / self.query.shape[-1] ** 0.5) @ keys.transpose(1, 2)  # (B, L, T)
        if attention_mask is not None:
            padding = attention_mask[:, None, :] == 0
            scores = scores.masked_fill(padding, torch.finfo(scores.dtype).min)
        return torch.softmax(scores, dim=-1) @ self.value(hidden_states)  # (B, L, d)


class LabelScorer(nn.Module):
    """One scoring vector and bias per label: `logits[b, l] = nodes[b, l] . weight_l + bias_l`.

    Input `(batch_size, num_labels, node_dim)`, output `(batch_size, num_labels)`; `L * (node_dim + 1)` parameters
    where HiAGM-TP's flattened classifier has `L * node_dim * L`.
    """

    def __init__(self, config: HiSRConfig):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(config.num_labels, config.node_dim))
        self.bias = nn.Parameter(torch.empty(config.num_labels))

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        return (nodes * self.weight).sum(dim=-1) + self.bias


class HiSRPreTrainedModel(PreTrainedModel):
    config_class = HiSRConfig
    base_model_prefix = "text_encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    # The attention layers are the encoder's: requests for sdpa / flash / flex pass through to it.
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # The loss is a per-batch mean; the Trainer handles gradient accumulation by dividing it.
    accepts_loss_kwargs = False
    # Encoders with a pooler (BERT, RoBERTa) carry it in plain checkpoints; only `text_feature="pooler"` uses it.
    _keys_to_ignore_on_load_unexpected = [r"pooler\."]
    # Extension points that `hisr_hf` fills when it is imported (hisr_hf/hub.py): "save" (`hook(model, directory)`,
    # writes the model card and handler.py after `save_pretrained`) and "push" (replaces `push_to_hub` so the card
    # survives it and a failed push names the repo and the HTTP status). This file travels with checkpoints and
    # cannot import that code; where the model comes from `trust_remote_code` alone the dict is empty and saving and
    # pushing work as for any transformers model.
    _hub_hooks: ClassVar[dict[str, Callable]] = {}
    # The `hierarchical-text-classification` pipeline (config.custom_pipelines). Importing it here is also what makes
    # pipeline_hisr.py travel with every saved checkpoint, like the other files this one imports.
    pipeline_class: ClassVar[type] = HierarchicalTextClassificationPipeline

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; with `hisr_hf` imported it also writes README.md (the model card) and
        handler.py (an Inference Endpoints handler) into `save_directory`, and `push_to_hub=True` uploads the folder
        once they are there (the model card, handler.py and the code in one commit)."""
        # Both auto classes load the class that was saved (a BertForHierarchicalClassification stays one).
        auto_map = dict(self.config.auto_map or {})
        for auto_class in ("AutoModel", "AutoModelForSequenceClassification"):
            auto_map[auto_class] = f"modeling_hisr.{type(self).__name__}"
        self.config.auto_map = auto_map
        hook = self._hub_hooks.get("save")
        push = hook is not None and kwargs.pop("push_to_hub", False)
        push_kwargs = {name: kwargs.pop(name) for name in _FOLDER_PUSH_ARGUMENTS if name in kwargs} if push else {}
        super().save_pretrained(save_directory, *args, **kwargs)
        is_main_process = kwargs.get("is_main_process", args[0] if args else True)
        if hook is not None and is_main_process:
            hook(self, save_directory)
            if push:
                repo_id = push_kwargs.pop("repo_id", None) or os.path.basename(os.path.normpath(save_directory))
                self._hub_hooks["push_folder"](save_directory, repo_id, **push_kwargs)

    def push_to_hub(self, repo_id: str, *args, **kwargs):
        """`PreTrainedModel.push_to_hub`; with `hisr_hf` imported it is `hisr_hf.hub.push_to_hub` (one commit with the
        code, the model card, handler.py and, given `tokenizer=`, the tokenizer)."""
        hook = self._hub_hooks.get("push")
        if hook is None:
            return super().push_to_hub(repo_id, *args, **kwargs)
        return hook(self, repo_id, *args, **kwargs)

    def _init_weights(self, module):
        # The encoder is a PreTrainedModel of its own and initialises itself; these are the head's modules.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, FactorizedLabelNodes):
            init.ones_(module.scale)
            init.zeros_(module.shift)
        elif isinstance(module, LabelAttentionNodes):
            init.normal_(module.query, mean=0.0, std=std)
        elif isinstance(module, LabelScorer):
            init.normal_(module.weight, mean=0.0, std=std)
            init.zeros_(module.bias)
        elif isinstance(module, HierarchyGCN):
            hierarchy = self.hierarchy
            edges = torch.tensor(hierarchy.edges(), dtype=torch.long).reshape(-1, 2)
            init.copy_(module.edge_parent, edges[:, 0])
            init.copy_(module.edge_child, edges[:, 1])
            init.copy_(module.top_down_weight, torch.tensor(self.config.edge_prior(hierarchy), dtype=torch.float32))
            init.ones_(module.bottom_up_weight)
            for bias in (module.top_down_bias, module.bottom_up_bias, module.top_down_gate_bias, module.bottom_up_gate_bias):
                init.zeros_(bias)
            for gate in (module.top_down_gate, module.bottom_up_gate, module.loop_gate):
                init.normal_(gate, mean=0.0, std=std)
        elif isinstance(module, HiSRLoss):
            index, lengths = self.hierarchy.sequence_index()
            init.copy_(module.sequence_index, index)
            init.copy_(module.sequence_length, lengths)

    @property
    def hierarchy(self) -> LabelHierarchy:
        """The label hierarchy (built once from `config.hierarchy` and kept while that entry is unchanged)."""
        cached = self.__dict__.get("_hierarchy_cache")
        if cached is None or cached[0] is not self.config.hierarchy:
            cached = (self.config.hierarchy, self.config.get_hierarchy())
            self.__dict__["_hierarchy_cache"] = cached
        return cached[1]


class HiSRForHierarchicalClassification(HiSRPreTrainedModel):
    r"""
    A text encoder (whatever `AutoModel` builds from `config.text_encoder`: BERT, RoBERTa, XLM-R, DeBERTa-v2/v3,
    DistilBERT, ELECTRA, ModernBERT, ...) with a hierarchy head, trained with BCE plus the HiSR sequence-ranking loss.

    - `head="hiagm_tp"` (the paper): text feature -> linear map to `num_labels * node_dim` -> hierarchy GCN -> dropout
      -> linear from the flattened nodes to `num_labels` logits.
    - `head="factorized"`: text feature -> dropout -> shared projection modulated per label ([`FactorizedLabelNodes`])
      -> hierarchy GCN (dropping whole node messages) -> one scoring vector per label ([`LabelScorer`]); parameters
      grow as `num_labels`.
    - `head="label_attention"`: token states -> dropout -> one attention query per label ([`LabelAttentionNodes`])
      -> hierarchy GCN -> one scoring vector per label; parameters grow as `num_labels`.
    - `structure_encoder="none"`: text feature -> dropout -> linear.

    Start from any plain encoder checkpoint with a hierarchy; the encoder is `AutoModel.from_pretrained` of that
    checkpoint (its own class and weights) and the head is new:

    ```python
    >>> from hisr_hf import HiSRForHierarchicalClassification, LabelHierarchy
    >>> hierarchy = LabelHierarchy.from_taxonomy_file("20ng.taxonomy")  # doctest: +SKIP
    >>> model = HiSRForHierarchicalClassification.from_pretrained(
    ...     "FacebookAI/roberta-base", hierarchy=hierarchy, head="factorized")  # doctest: +SKIP
    ```
    """

    def __init__(self, config: HiSRConfig, text_encoder: PreTrainedModel | None = None):
        super().__init__(config)
        hierarchy = self.hierarchy  # a clear error when the config has no hierarchy
        self.num_labels = config.num_labels
        check_text_encoder(config.text_encoder)
        if text_encoder is None:
            # The dtype in effect (from_pretrained(..., dtype=...) sets it), not the one stored in the sub-config.
            text_encoder = AutoModel.from_config(config.text_encoder, dtype=torch.get_default_dtype())
        elif type(text_encoder.config) is not type(config.text_encoder):
            raise ValueError(
                f"text_encoder is a {type(text_encoder).__name__} but config.text_encoder is a "
                f"{type(config.text_encoder).__name__}; pass the encoder whose config the HiSRConfig holds."
            )
        has_pooler = getattr(text_encoder, "pooler", None) is not None
        if config.text_feature == "pooler" and not has_pooler:
            raise ValueError(
                f"text_feature='pooler' needs an encoder with a pooler; {type(text_encoder).__name__} "
                f"({config.text_encoder.model_type}) has none. Use text_feature='cls' or 'mean'."
            )
        if has_pooler and config.text_feature != "pooler":
            text_encoder.pooler = None  # unused: no weights to train, save or load
        setattr(self, self.base_model_prefix, text_encoder)
        self._encoder_inputs = _accepted_inputs(text_encoder)
        self.dropout = nn.Dropout(config.head_dropout())
        if config.structure_encoder == "none":
            self.text_propagation = None
            self.structure_encoder = None
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        elif config.head == "hiagm_tp":
            head_size = config.hiagm_tp_parameters()
            encoder_size = sum(p.numel() for p in text_encoder.parameters())
            if head_size > encoder_size:
                logger.warning(
                    "The HiAGM-TP head over %d labels has %.1fM parameters, %.1fx the encoder's (it grows as labels^2); "
                    "head='factorized' keeps the structure with parameters that grow as labels.",
                    config.num_labels, head_size / 1e6, head_size / encoder_size,
                )
            self.text_propagation = nn.Linear(config.hidden_size, config.num_labels * config.node_dim)
            self.structure_encoder = HierarchyGCN(config, hierarchy)
            self.classifier = nn.Linear(config.num_labels * config.node_dim, config.num_labels)
        else:
            nodes = FactorizedLabelNodes if config.head == "factorized" else LabelAttentionNodes
            self.text_propagation = nodes(config)
            self.structure_encoder = HierarchyGCN(config, hierarchy)
            self.classifier = LabelScorer(config)
        # A direct linear score of the text feature next to the GCN head's (config.feature_skip).
        self.feature_scorer = None
        if config.structure_encoder == "gcn" and config.feature_skip:
            self.feature_scorer = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.hisr = HiSRLoss(config, hierarchy)
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, hierarchy=None, **kwargs):
        """Load a saved model, or start one from a plain encoder checkpoint by passing `hierarchy`.

        With `hierarchy` (a `LabelHierarchy`): the encoder is `AutoModel.from_pretrained(pretrained_model_name_or_path)`
        (keyword arguments such as `dtype`, `attn_implementation`, `revision` go to it), keyword arguments that are
        `HiSRConfig` fields (`head="factorized"`, `hisr_weight=0.05`, `structure_encoder="none"`, ...) go to the
        config, and the hierarchy head is freshly initialised. A checkpoint whose type cannot serve as a text encoder
        is refused with an error naming the type.
        """
        if hierarchy is not None and "config" not in kwargs:
            return cls._from_encoder_checkpoint(pretrained_model_name_or_path, hierarchy, *model_args, **kwargs)
        config = kwargs.get("config")
        hub_kwargs = _hub_kwargs(kwargs)
        if not isinstance(config, PreTrainedConfig):
            config_dict, _ = PreTrainedConfig.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)
            if config_dict.get("model_type") != HiSRConfig.model_type:
                raise ValueError(
                    f"{pretrained_model_name_or_path} is a plain {config_dict.get('model_type')!r} checkpoint, not a "
                    f"saved HiSR model: pass hierarchy=LabelHierarchy(...) to start a {cls.__name__} from it."
                )
            architectures = config_dict.get("architectures") or []
        else:
            architectures = config.architectures or []
        # A checkpoint saved by BertForHierarchicalClassification (every hisr_hf 0.1 checkpoint) keeps its class.
        if cls is HiSRForHierarchicalClassification and "BertForHierarchicalClassification" in architectures:
            return BertForHierarchicalClassification.from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        if cls is not HiSRForHierarchicalClassification and "HiSRForHierarchicalClassification" in architectures:
            # Saved by the generic class, whose encoder weights are named text_encoder.*: load it as such, then move
            # the encoder and the head into this class.
            generic = HiSRForHierarchicalClassification.from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
            model = cls(generic.config, text_encoder=generic.text_encoder)
            prefix = f"{generic.base_model_prefix}."
            model.load_state_dict({k: v for k, v in generic.state_dict().items() if not k.startswith(prefix)}, strict=False)
            return model.to(device=generic.device, dtype=generic.dtype).eval()
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    @classmethod
    def _from_encoder_checkpoint(cls, name_or_path, hierarchy: LabelHierarchy, *model_args, **kwargs):
        # HiSRConfig's own fields; the generic ones (dtype, ...) are loading options for the encoder.
        config_fields = set(HiSRConfig.__dataclass_fields__) - set(PreTrainedConfig.__dataclass_fields__)
        config_fields -= {"text_encoder", "hierarchy"}
        config_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in config_fields}
        hub_kwargs = _hub_kwargs(kwargs)
        encoder_config = AutoConfig.from_pretrained(name_or_path, **hub_kwargs)
        if isinstance(encoder_config, HiSRConfig):
            raise ValueError(
                f"{name_or_path} is already a HiSR model; load it without hierarchy= (its config holds the hierarchy)."
            )
        check_text_encoder(encoder_config, name_or_path)
        text_encoder = AutoModel.from_pretrained(name_or_path, *model_args, config=encoder_config, **kwargs)
        attention = text_encoder.config._attn_implementation
        config = HiSRConfig(text_encoder=text_encoder.config, hierarchy=hierarchy, **config_kwargs)
        config.dtype = text_encoder.dtype
        config._attn_implementation = attention  # building the config reset the sub-config's choice
        model = cls(config, text_encoder=text_encoder)
        return model.to(device=text_encoder.device, dtype=text_encoder.dtype).eval()

    def set_prior(self, prior: dict[str, dict[str, float]] | None) -> None:
        """Store a new hierarchy prior in the config and reset the top-down GCN edge weights to it."""
        self.config.set_prior(prior)
        if self.structure_encoder is not None:
            weight = self.structure_encoder.top_down_weight
            with torch.no_grad():
                weight.copy_(torch.tensor(self.config.edge_prior(self.hierarchy), dtype=weight.dtype, device=weight.device))

    @torch.no_grad()
    def init_classifier_bias(self, labels: torch.Tensor, smoothing: float = 0.5) -> torch.Tensor:
        """Set each label's classifier bias to the log-odds of its frequency in `labels`.

        A fresh head then starts from the training prior instead of p = 0.5 for every label, so the first steps are
        not spent learning to say "no" to the rare labels. Call it before training.

        Args:
            labels (`torch.Tensor` of shape `(num_documents, num_labels)`):
                The training set's ancestor-closed multi-hot labels.
            smoothing (`float`, *optional*, defaults to 0.5):
                Added to every label's count and to its complement, so unseen labels get a finite bias.

        Returns:
            `torch.Tensor` of shape `(num_labels,)`: the new bias.
        """
        labels = torch.as_tensor(labels)
        if labels.ndim != 2 or labels.shape[1] != self.num_labels:
            raise ValueError(
                f"labels must be multi-hot with shape (num_documents, num_labels={self.num_labels}), got {tuple(labels.shape)}."
            )
        if smoothing <= 0:
            raise ValueError(f"smoothing must be > 0 (it keeps the log-odds finite), got {smoothing}.")
        positives = labels.to(torch.float64).sum(dim=0)
        bias = torch.log((positives + smoothing) / (labels.shape[0] - positives + smoothing))
        self.classifier.bias.copy_(bias.to(self.classifier.bias))
        return self.classifier.bias.detach().clone()

    def head_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """`(name, parameter)` of everything outside the encoder: the head, the GCN (own learning rate in HiSRTrainer)."""
        prefix = f"{self.base_model_prefix}."
        return [(name, p) for name, p in self.named_parameters() if not name.startswith(prefix)]

    @torch.no_grad()
    def predict_label_paths(
        self,
        texts: str | list[str],
        tokenizer,
        threshold: float | None = None,
        strategy: str = "consistent",
        max_length: int | None = None,
        batch_size: int = 32,
    ) -> list[LabelPathPrediction]:
        """Predict consistent label paths for raw texts.

        Args:
            texts (`str` or `list[str]`): documents.
            tokenizer: the checkpoint's tokenizer (`AutoTokenizer.from_pretrained(...)`).
            threshold (`float`, *optional*): probability above which a label is a candidate; defaults to the per-label
                thresholds of `config.thresholds` when the model stores them, else 0.5.
            strategy (`str`, defaults to `"consistent"`): `"consistent"` (a label only with all of its ancestors,
                multi-path) or `"top_down"` (greedy single path that stops where the best child falls under the
                threshold). See `hisr_hf.decoding.decode_label_paths`.

        Example:

        ```python
        >>> predictions = model.predict_label_paths(["new GPU drivers for linux"], tokenizer)  # doctest: +SKIP
        >>> predictions[0].paths  # doctest: +SKIP
        [['comp', 'comp.os', 'comp.os.ms-windows.misc']]
        ```
        """
        if isinstance(texts, str):
            texts = [texts]
        was_training = self.training
        self.eval()
        hierarchy = self.hierarchy
        if threshold is None:
            threshold = label_thresholds(self.config, hierarchy)
        results: list[LabelPathPrediction] = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(self.device)
            probs = torch.sigmoid(self(**batch).logits.float())
            results.extend(decode_label_paths(probs, hierarchy, threshold=threshold, strategy=strategy))
        self.train(was_training)
        return results

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> HierarchicalClassifierOutput | tuple:
        r"""
        Args:
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds: as for the encoder; inputs the
                encoder does not take (`token_type_ids` for DistilBERT or ModernBERT) are an error, not ignored.
            labels (`torch.Tensor` of shape `(batch_size, num_labels)`, *optional*):
                Ancestor-closed multi-hot gold labels. When given, the output carries the combined `loss` and its parts.
        """
        given = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "position_ids": position_ids,
            "inputs_embeds": inputs_embeds,
            "output_attentions": output_attentions,
            "output_hidden_states": output_hidden_states,
        }
        encoder_inputs = {name: value for name, value in given.items() if value is not None}
        refused = sorted(set(encoder_inputs) - self._encoder_inputs)
        if refused:
            raise ValueError(
                f"{type(self.base_model).__name__} does not take {refused}; it takes {sorted(self._encoder_inputs)}. "
                "Tokenize with the checkpoint's own tokenizer (it returns only what the encoder takes)."
            )
        outputs = self.base_model(**encoder_inputs, return_dict=True, **kwargs)
        if self.config.text_feature == "pooler":
            feature = outputs.pooler_output
        elif self.config.text_feature == "mean":
            feature = _masked_mean(outputs.last_hidden_state, attention_mask)
        else:
            feature = outputs.last_hidden_state[:, 0]
        if self.structure_encoder is None:
            logits = self.classifier(self.dropout(feature))
        elif self.config.head == "hiagm_tp":
            nodes = self.text_propagation(feature).view(feature.shape[0], self.num_labels, self.config.node_dim)
            logits = self.classifier(self.dropout(self.structure_encoder(nodes).flatten(1)))
        elif self.config.head == "label_attention":
            nodes = self.text_propagation(self.dropout(outputs.last_hidden_state), attention_mask)
            logits = self.classifier(self.structure_encoder(nodes))
        else:
            # Dropout on the shared text feature: the same regularisation point as HiAGM-TP's at a (B, hidden) cost.
            feature = self.dropout(feature)
            logits = factorized_gcn_logits(self.text_propagation, self.structure_encoder, self.classifier, feature)
        if self.feature_scorer is not None:
            # The factorized head's feature has had its dropout above; the skip scores that same dropped feature.
            logits = logits + self.feature_scorer(feature if self.config.head == "factorized" else self.dropout(feature))

        loss = bce = ranking = node = None
        if labels is not None:
            if labels.shape != logits.shape:
                raise ValueError(
                    f"labels must be multi-hot with shape (batch_size, num_labels) = {tuple(logits.shape)}, got "
                    f"{tuple(labels.shape)}."
                )
            labels = labels.to(logits.dtype)
            bce = F.binary_cross_entropy_with_logits(logits, labels)
            loss = bce
            probs = torch.sigmoid(logits)
            if self.config.hisr_weight > 0:
                ranking = self.hisr(probs, labels)
                loss = loss + self.config.hisr_weight * ranking
            if self.config.hisr_node_weight > 0:
                node = self.hisr.node_term(probs, labels)
                loss = loss + self.config.hisr_node_weight * node

        output = HierarchicalClassifierOutput(
            loss=loss,
            logits=logits,
            bce_loss=bce,
            hisr_loss=ranking,
            node_loss=node,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )
        if return_dict is False:
            return output.to_tuple()
        return output


def factorized_gcn_logits(
    nodes: FactorizedLabelNodes, gcn: HierarchyGCN, scorer: LabelScorer, feature: torch.Tensor
) -> torch.Tensor:
    """`scorer(gcn(nodes(feature)))` computed without the GCN's `(batch, labels, node_dim)` intermediates.

    Every node vector is `u_b * scale_l + shift_l` with `u = projection(feature)`, so the GCN's linear parts factor:
    the messages along the hierarchy's links are `u_b * S_l + C_l` with `S`, `C` of shape `(labels, node_dim)`
    computed once per call (not per document), and each gate `sigmoid(node . g + b)` is one `(batch, node_dim) x
    (node_dim, labels)` product. What remains per document is the ReLU over the gated sum and the per-label score:
    two batched matmuls, one `addcmul` and the ReLU instead of some twenty passes over a `(batch, labels,
    node_dim)` tensor. The result equals the composition of the three modules (tests/test_encoders.py); in training
    the node-message dropout scales each gate, as it scales each message there.

    Args:
        feature (`torch.Tensor` of shape `(batch_size, hidden_size)`): the (dropped-out) text feature.

    Returns:
        `torch.Tensor` of shape `(batch_size, num_labels)`: the logits.
    """
    u = nodes.projection(feature)  # (B, d)
    scale, shift = nodes.scale, nodes.shift  # (L, d)
    parent, child = gcn.edge_parent, gcn.edge_child
    top_down = gcn.top_down_weight.to(u.dtype).unsqueeze(-1)
    bottom_up = gcn.bottom_up_weight.to(u.dtype).unsqueeze(-1)
    # Messages in factored form: sum over links of weight * (u * scale + shift) = u * S + C, per receiving label.
    to_child, to_parent = gcn.rounds_to_child, gcn.rounds_to_parent
    s_down = _add_at(torch.zeros_like(scale), 0, child, scale.index_select(0, parent) * top_down, to_child)
    c_down = _add_at(torch.zeros_like(shift), 0, child, shift.index_select(0, parent) * top_down, to_child)
    c_down = c_down + gcn.top_down_bias
    s_up = _add_at(torch.zeros_like(scale), 0, parent, scale.index_select(0, child) * bottom_up, to_parent)
    c_up = _add_at(torch.zeros_like(shift), 0, parent, shift.index_select(0, child) * bottom_up, to_parent)
    c_up = c_up + gcn.bottom_up_bias
    # Gates of the receiving nodes: sigmoid(u . (scale * g) + shift . g + b), one matmul for all three.
    gates = torch.stack([gcn.top_down_gate, gcn.bottom_up_gate, gcn.loop_gate])  # (3, d)
    gate_weight = (scale.unsqueeze(0) * gates.unsqueeze(1)).flatten(0, 1)  # (3L, d)
    gate_bias = shift @ gates.T + torch.stack(
        [gcn.top_down_gate_bias, gcn.bottom_up_gate_bias, torch.zeros_like(gcn.top_down_gate_bias)], dim=1
    )  # (L, 3)
    num_labels = scale.shape[0]
    coefficients = torch.sigmoid((u @ gate_weight.T).view(-1, 3, num_labels) + gate_bias.T)  # (B, 3, L)
    if gcn.training and gcn.drop_whole_nodes and gcn.dropout.p > 0:
        coefficients = gcn.dropout(coefficients)  # drops whole node messages, rescaling the kept ones
    coefficients = coefficients.permute(2, 0, 1)  # (L, B, 3)
    slopes = torch.bmm(coefficients, torch.stack([s_down, s_up, scale], dim=1))  # (L, B, d)
    offsets = torch.bmm(coefficients, torch.stack([c_down, c_up, shift], dim=1))  # (L, B, d)
    # In place: neither bmm needs its output for the backward pass, nor addcmul its result, and writing into fresh
    # (L, B, d) memory costs more than the arithmetic on CPU.
    hidden = offsets.addcmul_(slopes, u.unsqueeze(0)).relu_()
    return torch.bmm(hidden, scorer.weight.unsqueeze(-1)).squeeze(-1).T + scorer.bias


class BertForHierarchicalClassification(HiSRForHierarchicalClassification):
    r"""
    [`HiSRForHierarchicalClassification`] with a BERT encoder held as `model.bert`: the paper's model and the class
    of every hisr_hf 0.1 checkpoint (their weights are named `bert.*`), which it loads with identical logits.

    ```python
    >>> from hisr_hf import BertForHierarchicalClassification, LabelHierarchy
    >>> hierarchy = LabelHierarchy.from_taxonomy_file("20ng.taxonomy")  # doctest: +SKIP
    >>> model = BertForHierarchicalClassification.from_pretrained("bert-base-uncased", hierarchy=hierarchy)  # doctest: +SKIP
    ```
    """

    base_model_prefix = "bert"

    def __init__(self, config: HiSRConfig, text_encoder: PreTrainedModel | None = None):
        if config.text_encoder.model_type != "bert":
            raise ValueError(
                f"BertForHierarchicalClassification needs a BERT encoder; config.text_encoder is "
                f"{config.text_encoder.model_type!r}. Use HiSRForHierarchicalClassification for other encoders."
            )
        super().__init__(config, text_encoder)


def check_text_encoder(encoder_config: PreTrainedConfig, source: str = "The encoder configuration") -> None:
    """Raise a `ValueError` naming the model type when `encoder_config` cannot serve as HiSR's text encoder.

    Text encoders are the model types with a masked-language-model head, minus the encoder-decoders (BART, mBART)
    that also have one."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_type = getattr(encoder_config, "model_type", None)
    if model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or getattr(encoder_config, "is_encoder_decoder", False):
        raise ValueError(
            f"{source} is a {model_type!r} model, which cannot serve as the text encoder: HiSR needs a bidirectional "
            f"text encoder (a model type with a masked-LM head), e.g. {list(TESTED_ENCODERS)}."
        )


def _accepted_inputs(text_encoder: nn.Module) -> set[str]:
    parameters = inspect.signature(text_encoder.forward).parameters
    names = {"input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds"}
    accepted = {name for name in names if name in parameters}
    # transformers 5 encoders take output_attentions / output_hidden_states through **kwargs.
    return accepted | {"output_attentions", "output_hidden_states"}


# What `save_pretrained(..., push_to_hub=True, **kwargs)` passes on to the upload (hisr_hf.hub.push_folder).
_FOLDER_PUSH_ARGUMENTS = ("repo_id", "commit_message", "commit_description", "private", "token", "revision", "create_pr")


def _hub_kwargs(kwargs: dict) -> dict:
    keys = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "trust_remote_code")
    return {k: kwargs[k] for k in keys if k in kwargs}


def _distinct_target_rounds(targets: list[int]) -> list[list[int]]:
    """Edge positions grouped so that within a group every edge has another target: the r-th group holds, for
    every target, the r-th edge that reaches it (as many groups as the largest number of edges into one label)."""
    seen: dict[int, int] = {}
    rounds: list[list[int]] = []
    for position, target in enumerate(targets):
        rank = seen.get(target, 0)
        seen[target] = rank + 1
        if rank == len(rounds):
            rounds.append([])
        rounds[rank].append(position)
    return rounds


def _add_at(base: torch.Tensor, dim: int, index: torch.Tensor, values: torch.Tensor, rounds: list[list[int]]):
    """`base.index_add(dim, index, values)`. In a graph export (ONNX) it is one index_add per round of edges with
    distinct targets: ONNX Runtime runs a ScatterND-add over repeated indices on several threads without ordering
    them, which makes its sums differ from run to run; with distinct indices there is nothing to race over."""
    if not (torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()):
        return base.index_add(dim, index, values)
    for edges in rounds:
        positions = torch.tensor(edges, dtype=torch.long, device=index.device)
        base = base.index_add(dim, index.index_select(0, positions), values.index_select(dim, positions))
    return base


def _masked_mean(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of `hidden_states` (B, T, H) over the positions `attention_mask` (B, T) marks (all when `None`)."""
    if attention_mask is None:
        return hidden_states.mean(dim=1)
    mask = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


__all__ = [
    "BertForHierarchicalClassification",
    "FactorizedLabelNodes",
    "HiSRForHierarchicalClassification",
    "HiSRPreTrainedModel",
    "HierarchyGCN",
    "HierarchicalClassifierOutput",
    "LabelAttentionNodes",
    "LabelScorer",
    "check_text_encoder",
    "factorized_gcn_logits",
]

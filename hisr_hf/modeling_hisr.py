"""`BertForHierarchicalClassification`: a BERT encoder, the HiAGM-TP hierarchy GCN and the HiSR loss.

This file travels with every checkpoint (``trust_remote_code``): it imports only ``torch``, ``transformers``
and its sibling files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, BertConfig, BertModel, BertPreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_hisr import HiSRConfig
from .decoding import LabelPathPrediction, decode_label_paths
from .hierarchy import LabelHierarchy
from .loss import hisr_loss_from_sequences, node_loss


@dataclass
class HierarchicalClassifierOutput(ModelOutput):
    r"""
    Output of [`BertForHierarchicalClassification`].

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

    def __init__(self, config: HiSRConfig):
        super().__init__()
        hierarchy = config.get_hierarchy()
        num_labels, node_dim = hierarchy.num_labels, config.node_dim
        num_edges = len(hierarchy.edges())
        self.register_buffer("edge_parent", torch.zeros(num_edges, dtype=torch.long), persistent=False)
        self.register_buffer("edge_child", torch.zeros(num_edges, dtype=torch.long), persistent=False)
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

    def _propagate(self, nodes: torch.Tensor, source: torch.Tensor, target: torch.Tensor, weight: torch.Tensor):
        # index_select (not nodes[:, source]): its backward is an index_add instead of an accumulating index_put.
        messages = nodes.index_select(1, source) * weight.to(nodes.dtype).unsqueeze(-1)  # (B, E, d)
        return torch.zeros_like(nodes).index_add(1, target, messages)

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        top_down = self._propagate(nodes, self.edge_parent, self.edge_child, self.top_down_weight)
        bottom_up = self._propagate(nodes, self.edge_child, self.edge_parent, self.bottom_up_weight)
        top_down = (top_down + self.top_down_bias) * torch.sigmoid(nodes @ self.top_down_gate + self.top_down_gate_bias).unsqueeze(-1)
        bottom_up = (bottom_up + self.bottom_up_bias) * torch.sigmoid(
            nodes @ self.bottom_up_gate + self.bottom_up_gate_bias
        ).unsqueeze(-1)
        loop = nodes * torch.sigmoid(nodes @ self.loop_gate).unsqueeze(-1)
        return F.relu(self.dropout(top_down) + self.dropout(bottom_up) + self.dropout(loop))


class HiSRLoss(nn.Module):
    """Holds the hierarchy's label sequences as buffers and computes the HiSR and node-level terms."""

    def __init__(self, config: HiSRConfig):
        super().__init__()
        index, lengths = config.get_hierarchy().sequence_index()
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


class HiSRPreTrainedModel(BertPreTrainedModel):
    config_class = HiSRConfig
    base_model_prefix = "bert"
    # The loss is a per-batch mean; the Trainer handles gradient accumulation by dividing it.
    accepts_loss_kwargs = False
    # Plain BERT checkpoints carry a pooler that the default `text_feature="cls"` does not use.
    _keys_to_ignore_on_load_unexpected = [r"pooler\."]
    # Extension points that `hisr_hf` fills when it is imported (hisr_hf/hub.py): "save" (`hook(model, directory)`,
    # writes the model card and handler.py after `save_pretrained`) and "push" (replaces `push_to_hub` so the card
    # survives it and a failed push names the repo and the HTTP status). This file travels with checkpoints and
    # cannot import that code; where the model comes from `trust_remote_code` alone the dict is empty and saving and
    # pushing work as for any transformers model.
    _hub_hooks: ClassVar[dict[str, Callable]] = {}

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; with `hisr_hf` imported it also writes README.md (the model card) and
        handler.py (an Inference Endpoints handler) into `save_directory`."""
        super().save_pretrained(save_directory, *args, **kwargs)
        hook = self._hub_hooks.get("save")
        is_main_process = kwargs.get("is_main_process", args[0] if args else True)
        if hook is not None and is_main_process:
            hook(self, save_directory)

    def push_to_hub(self, repo_id: str, *args, **kwargs):
        """`PreTrainedModel.push_to_hub`; with `hisr_hf` imported it is `hisr_hf.hub.push_to_hub` (one commit with the
        code, the model card, handler.py and, given `tokenizer=`, the tokenizer)."""
        hook = self._hub_hooks.get("push")
        if hook is None:
            return super().push_to_hub(repo_id, *args, **kwargs)
        return hook(self, repo_id, *args, **kwargs)

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, HierarchyGCN):
            hierarchy = self.config.get_hierarchy()
            edges = torch.tensor(hierarchy.edges(), dtype=torch.long).reshape(-1, 2)
            init.copy_(module.edge_parent, edges[:, 0])
            init.copy_(module.edge_child, edges[:, 1])
            init.copy_(module.top_down_weight, torch.tensor(self.config.edge_prior(), dtype=torch.float32))
            init.ones_(module.bottom_up_weight)
            for bias in (module.top_down_bias, module.bottom_up_bias, module.top_down_gate_bias, module.bottom_up_gate_bias):
                init.zeros_(bias)
            for gate in (module.top_down_gate, module.bottom_up_gate, module.loop_gate):
                init.normal_(gate, mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, HiSRLoss):
            index, lengths = self.config.get_hierarchy().sequence_index()
            init.copy_(module.sequence_index, index)
            init.copy_(module.sequence_length, lengths)


class BertForHierarchicalClassification(HiSRPreTrainedModel):
    r"""
    BERT with a HiAGM-TP hierarchy head, trained with BCE plus the HiSR sequence-ranking loss.

    `structure_encoder="gcn"`: `[CLS]` -> linear map to `num_labels * node_dim` -> hierarchy GCN -> dropout ->
    linear to `num_labels` logits. `structure_encoder="none"`: `[CLS]` -> dropout -> linear.

    Start from any plain BERT checkpoint with a hierarchy; the encoder weights load and the head is new:

    ```python
    >>> from hisr_hf import BertForHierarchicalClassification, LabelHierarchy
    >>> hierarchy = LabelHierarchy.from_taxonomy_file("20ng.taxonomy")  # doctest: +SKIP
    >>> model = BertForHierarchicalClassification.from_pretrained("bert-base-uncased", hierarchy=hierarchy)  # doctest: +SKIP
    ```
    """

    def __init__(self, config: HiSRConfig):
        super().__init__(config)
        config.get_hierarchy()  # a clear error when the config has no hierarchy
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=config.text_feature == "pooler")
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        if config.structure_encoder == "gcn":
            self.text_propagation = nn.Linear(config.hidden_size, config.num_labels * config.node_dim)
            self.structure_encoder = HierarchyGCN(config)
            self.classifier = nn.Linear(config.num_labels * config.node_dim, config.num_labels)
        else:
            self.text_propagation = None
            self.structure_encoder = None
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.hisr = HiSRLoss(config)
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, hierarchy=None, **kwargs):
        """Load a saved model, or start one from a plain BERT checkpoint by passing `hierarchy`.

        With `hierarchy` (a `LabelHierarchy`), the checkpoint's `BertConfig` is turned into a `HiSRConfig`
        (extra keyword arguments such as `hisr_weight=0.05` or `structure_encoder="none"` go to the config), the
        encoder weights load and the hierarchy head is freshly initialised.
        """
        if hierarchy is not None and "config" not in kwargs:
            config_fields = {f for f in HiSRConfig.__dataclass_fields__ if f not in ("hierarchy",)}
            config_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in config_fields}
            hub_kwargs = {
                k: kwargs[k]
                for k in ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
                if k in kwargs
            }
            base = _encoder_config_fields(pretrained_model_name_or_path, **hub_kwargs)
            kwargs["config"] = HiSRConfig(**{**base, **config_kwargs, "hierarchy": hierarchy})
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    def set_prior(self, prior: dict[str, dict[str, float]] | None) -> None:
        """Store a new hierarchy prior in the config and reset the top-down GCN edge weights to it."""
        self.config.set_prior(prior)
        if self.structure_encoder is not None:
            weight = self.structure_encoder.top_down_weight
            with torch.no_grad():
                weight.copy_(torch.tensor(self.config.edge_prior(), dtype=weight.dtype, device=weight.device))

    @property
    def hierarchy(self) -> LabelHierarchy:
        return self.config.get_hierarchy()

    @torch.no_grad()
    def predict_label_paths(
        self,
        texts: str | list[str],
        tokenizer,
        threshold: float = 0.5,
        strategy: str = "consistent",
        max_length: int | None = None,
        batch_size: int = 32,
    ) -> list[LabelPathPrediction]:
        """Predict consistent label paths for raw texts.

        Args:
            texts (`str` or `list[str]`): documents.
            tokenizer: the checkpoint's tokenizer (`AutoTokenizer.from_pretrained(...)`).
            threshold (`float`, defaults to 0.5): probability above which a label is a candidate.
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
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds: as for `BertModel`.
            labels (`torch.Tensor` of shape `(batch_size, num_labels)`, *optional*):
                Ancestor-closed multi-hot gold labels. When given, the output carries the combined `loss` and its parts.
        """
        outputs = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            **kwargs,
        )
        if self.config.text_feature == "pooler":
            feature = outputs.pooler_output
        elif self.config.text_feature == "mean":
            feature = _masked_mean(outputs.last_hidden_state, attention_mask)
        else:
            feature = outputs.last_hidden_state[:, 0]
        if self.structure_encoder is not None:
            nodes = self.text_propagation(feature).view(feature.shape[0], self.num_labels, self.config.node_dim)
            nodes = self.structure_encoder(nodes)
            logits = self.classifier(self.dropout(nodes.flatten(1)))
        else:
            logits = self.classifier(self.dropout(feature))

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
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        if return_dict is False:
            return output.to_tuple()
        return output


def _masked_mean(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of `hidden_states` (B, T, H) over the positions `attention_mask` (B, T) marks (all when `None`)."""
    if attention_mask is None:
        return hidden_states.mean(dim=1)
    mask = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def _encoder_config_fields(name_or_path, **hub_kwargs) -> dict:
    """The architecture fields of a plain BERT checkpoint's config (its label fields are dropped)."""
    base = AutoConfig.from_pretrained(name_or_path, **hub_kwargs)
    keep = set(BertConfig.__dataclass_fields__) - {"id2label", "label2id", "problem_type"}
    return {k: v for k, v in base.to_dict().items() if k in keep}


__all__ = ["BertForHierarchicalClassification", "HiSRPreTrainedModel", "HierarchyGCN", "HierarchicalClassifierOutput"]

"""The `hierarchical-text-classification` pipeline: texts -> consistent label sets and root-to-label paths.

This file travels with every checkpoint (``trust_remote_code``, registered under `custom_pipelines` in
config.json): it imports only ``torch``, ``transformers`` and its siblings, so

```python
>>> from transformers import pipeline
>>> classifier = pipeline("hierarchical-text-classification", model="org/hisr-model", trust_remote_code=True)  # doctest: +SKIP
>>> classifier("My new Mac won't boot after the RAM upgrade")  # doctest: +SKIP
{'labels': ['comp', 'comp.sys', 'comp.sys.mac.hardware'], 'paths': [['comp', 'comp.sys', 'comp.sys.mac.hardware']],
 'scores': {'comp': 0.98, 'comp.sys': 0.95, 'comp.sys.mac.hardware': 0.91}}
```

works where `hisr_hf` is not installed.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Pipeline

from .decoding import DECODING_STRATEGIES, LabelPathPrediction, decode_label_paths, label_thresholds
from .hierarchy import LabelHierarchy

TASK = "hierarchical-text-classification"  # the key of `CUSTOM_PIPELINES` in configuration_hisr.py
# Tokenizers without a configured limit report this (or more) as their model_max_length.
_NO_LIMIT = 1_000_000


class HierarchicalTextClassificationPipeline(Pipeline):
    """Hierarchical text classification with a HiSR model: every text gets an ancestor-closed label set, its
    root-to-label paths and the probability of each predicted label.

    Call parameters (also accepted by `pipeline(...)` as defaults):

    - `threshold` (`float`, *optional*): a label is a candidate when its probability is above it. Defaults to the
      per-label thresholds stored in the model's config (`config.thresholds`, tuned on dev data) when present,
      else 0.5.
    - `strategy` (`str`, defaults to `"consistent"`): `"consistent"` keeps each candidate whose ancestors are all
      candidates (multi-path data); `"top_down"` follows the most probable child from the top while it is above
      its threshold (single-path data).
    - `top_k` (`int`, *optional*): keep only the `top_k` most probable paths (a path's probability is its last
      label's); `labels` and `scores` then cover those paths only.
    - `truncation` (`bool`, defaults to `True`) and `max_length` (`int`, *optional*): texts are cut to the model's
      maximum length (the smaller of the tokenizer's `model_max_length` and the encoder's position embeddings).

    Each text gives `{"labels": [...], "paths": [[...], ...], "scores": {label: probability}}`; a list of texts gives
    a list of those. An empty (or whitespace-only) text has no content to classify and gives
    `{"labels": [], "paths": [], "scores": {}}` without running the model; anything that is not a string raises a
    `TypeError`. `batch_size=` batches texts as in every pipeline.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(self, threshold=None, strategy=None, top_k=None, truncation=None, max_length=None, **kwargs):
        if kwargs:
            raise TypeError(
                f"{TASK} got unknown parameter(s) {sorted(kwargs)}; accepted are threshold, strategy, top_k, "
                "truncation, max_length and the pipeline's own (batch_size, device, ...)."
            )
        preprocess: dict[str, Any] = {}
        if truncation is not None:
            preprocess["truncation"] = bool(truncation)
        if max_length is not None:
            if not isinstance(max_length, int) or max_length < 1:
                raise ValueError(f"max_length must be a positive int, got {max_length!r}.")
            preprocess["max_length"] = max_length
        postprocess = check_decoding_parameters(threshold=threshold, strategy=strategy, top_k=top_k)
        return preprocess, {}, postprocess

    def __call__(self, inputs: str | list[str], **kwargs: Any) -> dict[str, Any] | list[dict[str, Any]]:
        """Classify one text (a dict back) or a list of texts (a list of dicts back); see the class docstring."""
        single = isinstance(inputs, str)
        texts = [inputs] if single else inputs
        if not isinstance(texts, (list, tuple)):
            raise TypeError(f"{TASK} takes a string or a list of strings, got {type(inputs).__name__}.")
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"{TASK} takes a string or a list of strings; item {position} is a {type(text).__name__} "
                    f"({text!r:.60})."
                )
        results: list[dict[str, Any] | None] = [None if text.strip() else _empty() for text in texts]
        todo = [position for position, result in enumerate(results) if result is None]
        if todo:
            outputs = super().__call__([texts[position] for position in todo], **kwargs)
            for position, output in zip(todo, outputs):
                results[position] = output
        return results[0] if single else results

    def preprocess(self, text: str, truncation: bool = True, max_length: int | None = None) -> dict[str, torch.Tensor]:
        if truncation and max_length is None:
            max_length = self._model_max_length()
        return self.tokenizer(text, truncation=truncation, max_length=max_length, return_tensors="pt")

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.model(**model_inputs).logits}

    def postprocess(self, model_outputs, threshold: float | None = None, strategy: str = "consistent", top_k=None):
        logits = model_outputs["logits"]
        return decode_logits(logits, self.model.config, self.model.hierarchy, threshold, strategy, top_k)[0]

    def _model_max_length(self) -> int | None:
        return model_max_length(self.tokenizer, self.model.config)


def model_max_length(tokenizer, config) -> int | None:
    """The longest input a model takes: the tokenizer's limit and the encoder's position embeddings, the smaller of
    the two (RoBERTa-style encoders reserve `pad_token_id + 1` positions)."""
    limits = []
    if tokenizer.model_max_length is not None and tokenizer.model_max_length < _NO_LIMIT:
        limits.append(tokenizer.model_max_length)
    encoder = getattr(config, "text_encoder", None) or config  # hisr_hf 0.1 configs are flat
    positions = getattr(encoder, "max_position_embeddings", None)
    if positions:
        offset = (encoder.pad_token_id or 0) + 1 if "roberta" in encoder.model_type else 0
        limits.append(positions - offset)
    return min(limits) if limits else None


def check_decoding_parameters(threshold=None, strategy=None, top_k=None) -> dict[str, Any]:
    """The decoding parameters that were given, checked: `threshold` in [0, 1), a known `strategy`, `top_k` >= 1."""
    checked: dict[str, Any] = {}
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
            raise ValueError(f"threshold must be a probability in [0, 1), got {threshold!r}.")
        checked["threshold"] = float(threshold)
    if strategy is not None:
        if strategy not in DECODING_STRATEGIES:
            raise ValueError(f"strategy must be one of {list(DECODING_STRATEGIES)}, got {strategy!r}.")
        checked["strategy"] = strategy
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int (or None for every path), got {top_k!r}.")
        checked["top_k"] = top_k
    return checked


def decode_logits(
    logits: torch.Tensor,
    config,
    hierarchy: LabelHierarchy,
    threshold: float | None = None,
    strategy: str = "consistent",
    top_k: int | None = None,
) -> list[dict[str, Any]]:
    """`(B, L)` logits -> one `{"labels", "paths", "scores"}` per row, as the pipeline returns them (the endpoint
    handler's ONNX path uses it too). `threshold=None` takes the config's per-label thresholds, else 0.5."""
    probs = torch.sigmoid(torch.as_tensor(logits).float())
    thresholds = threshold if threshold is not None else label_thresholds(config, hierarchy)
    predictions = decode_label_paths(probs, hierarchy, threshold=thresholds, strategy=strategy)
    if top_k is not None:
        predictions = [_keep_top_paths(prediction, top_k) for prediction in predictions]
    return [prediction.to_dict() for prediction in predictions]


def _empty() -> dict[str, Any]:
    return LabelPathPrediction().to_dict()


def _keep_top_paths(prediction: LabelPathPrediction, top_k: int) -> LabelPathPrediction:
    """The `top_k` paths whose last label is most probable, and only the labels on them."""
    paths = sorted(prediction.paths, key=lambda path: -prediction.scores[path[-1]])[:top_k]
    kept = {label for path in paths for label in path}
    labels = [label for label in prediction.labels if label in kept]
    return LabelPathPrediction(labels=labels, paths=paths, scores={label: prediction.scores[label] for label in labels})

"""Custom handler for Hugging Face Inference Endpoints, serving a HiSR hierarchical classifier.

`hisr_hf.hub.write_endpoint_handler` copies this file as `handler.py` into every saved and pushed model folder: the
Hub's serverless widgets refuse models that need custom code, and a dedicated Inference Endpoint runs this handler
instead of the default pipeline. It imports only `torch` and `transformers`; the model code comes from the
repository itself (`trust_remote_code`).

Request: `{"inputs": "a text" | ["text", ...], "parameters": {"threshold": 0.5, "strategy": "consistent"}}`.
Response: one `{"labels": [...], "paths": [[...], ...], "scores": {label: probability}}` per input text, where
`paths` are the predicted root-to-label paths (a label only ever comes with all of its ancestors).
"""

from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

DEFAULT_PARAMETERS = {"threshold": 0.5, "strategy": "consistent"}


class EndpointHandler:
    """Loads the model and tokenizer of the repository once, then decodes label paths for each request.

    Args:
        path (`str`, defaults to `""`): the local copy of the repository (Inference Endpoints passes it).

    Example:

    ```python
    >>> handler = EndpointHandler("path/to/model")  # doctest: +SKIP
    >>> handler({"inputs": "new GPU drivers for linux", "parameters": {"threshold": 0.4}})  # doctest: +SKIP
    [{'labels': ['comp', 'comp.os'], 'paths': [['comp', 'comp.os']], 'scores': {'comp': 0.93, 'comp.os': 0.71}}]
    ```
    """

    def __init__(self, path: str = ""):
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, trust_remote_code=True)
        if not hasattr(self.model, "predict_label_paths"):
            raise ValueError(
                f"{path or 'This repository'} holds a {type(self.model).__name__}, not a HiSR model with "
                "`predict_label_paths`; this handler serves HiSRForHierarchicalClassification checkpoints."
            )
        self.model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        # Tokenizers without a configured limit report a huge model_max_length; the position embeddings decide.
        encoder_config = getattr(self.model.config, "text_encoder", None) or self.model.config  # flat in hisr_hf 0.1
        positions = getattr(encoder_config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        self.max_length = min(self.tokenizer.model_max_length, positions)

    def __call__(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = data.get("inputs")
        if isinstance(inputs, str):
            texts = [inputs]
        elif isinstance(inputs, list) and all(isinstance(text, str) for text in inputs):
            texts = inputs
        else:
            raise ValueError(f'"inputs" must be a string or a list of strings, got {type(inputs).__name__}.')
        parameters = {**DEFAULT_PARAMETERS, **(data.get("parameters") or {})}
        unknown = sorted(set(parameters) - set(DEFAULT_PARAMETERS))
        if unknown:
            raise ValueError(f"Unknown parameter(s) {unknown}; accepted: {sorted(DEFAULT_PARAMETERS)}.")
        predictions = self.model.predict_label_paths(
            texts,
            self.tokenizer,
            threshold=float(parameters["threshold"]),
            strategy=parameters["strategy"],
            max_length=self.max_length,
        )
        return [prediction.to_dict() for prediction in predictions]

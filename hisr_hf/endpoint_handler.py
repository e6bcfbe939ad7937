"""Custom handler for Hugging Face Inference Endpoints, serving a HiSR hierarchical classifier.

`hisr_hf.hub.write_endpoint_handler` copies this file as `handler.py` into every saved and pushed model folder: the
Hub's serverless widgets refuse models that need custom code, and a dedicated Inference Endpoint runs this handler
instead of the default pipeline. It imports only `torch` and `transformers`; the model code and the
`hierarchical-text-classification` pipeline come from the repository itself (`trust_remote_code`).

Request: `{"inputs": "a text" | ["text", ...], "parameters": {"threshold": 0.5, "strategy": "consistent", "top_k": 3}}`
(every parameter optional; without `threshold` the thresholds stored in the model's config, else 0.5).
Response: one `{"labels": [...], "paths": [[...], ...], "scores": {label: probability}}` per input text, where
`paths` are the predicted root-to-label paths (a label only ever comes with all of its ancestors).
"""

from typing import Any

import torch
from transformers import pipeline

TASK = "hierarchical-text-classification"
PARAMETERS = ("threshold", "strategy", "top_k")


class EndpointHandler:
    """Loads the repository's `hierarchical-text-classification` pipeline once, then answers each request with it.

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
        try:
            self.pipeline = pipeline(TASK, model=path or ".", trust_remote_code=True, device=0 if torch.cuda.is_available() else -1)
        except (KeyError, ValueError) as error:
            raise ValueError(
                f"{path or 'This repository'} has no {TASK} pipeline in its config.json ({error}); this handler serves "
                "HiSR checkpoints saved by hisr_hf 0.2 or later (load the model with hisr_hf and save it again)."
            ) from error

    def __call__(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = data.get("inputs")
        if isinstance(inputs, str):
            texts = [inputs]
        elif isinstance(inputs, list) and all(isinstance(text, str) for text in inputs):
            texts = inputs
        else:
            raise ValueError(f'"inputs" must be a string or a list of strings, got {type(inputs).__name__}.')
        parameters = dict(data.get("parameters") or {})
        unknown = sorted(set(parameters) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"Unknown parameter(s) {unknown}; accepted: {list(PARAMETERS)}.")
        return self.pipeline(texts, **parameters)

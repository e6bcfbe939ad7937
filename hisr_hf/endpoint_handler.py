"""Custom handler for Hugging Face Inference Endpoints, serving a HiSR hierarchical classifier.

`hisr_hf.hub.write_endpoint_handler` copies this file as `handler.py` into every saved and pushed model folder: the
Hub's serverless widgets refuse models that need custom code, and a dedicated Inference Endpoint runs this handler
instead of the default pipeline. It imports only `torch` and `transformers`; the model code and the
`hierarchical-text-classification` pipeline come from the repository itself (`trust_remote_code`). A folder written
by `hisr_hf.onnx.export_onnx` is served with ONNX Runtime instead (`model_quantized.onnx` when present, else
`model.onnx`; `onnxruntime` must be installed in the endpoint, e.g. through a requirements.txt).

Request: `{"inputs": "a text" | ["text", ...], "parameters": {"threshold": 0.5, "strategy": "consistent", "top_k": 3}}`
(every parameter optional; without `threshold` the thresholds stored in the model's config, else 0.5).
Response: one `{"labels": [...], "paths": [[...], ...], "scores": {label: probability}}` per input text, where
`paths` are the predicted root-to-label paths (a label only ever comes with all of its ancestors).
"""

import os
from typing import Any

import torch
from transformers import AutoConfig, AutoTokenizer, pipeline
from transformers.dynamic_module_utils import get_class_from_dynamic_module

TASK = "hierarchical-text-classification"
PARAMETERS = ("threshold", "strategy", "top_k")
ONNX_FILES = ("model_quantized.onnx", "model.onnx")  # the first one present is served


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
        path = path or "."
        onnx_file = next((os.path.join(path, name) for name in ONNX_FILES if os.path.isfile(os.path.join(path, name))), None)
        if onnx_file is not None:
            self.pipeline = OnnxLabelPaths(path, onnx_file)
            return
        try:
            self.pipeline = pipeline(TASK, model=path, trust_remote_code=True, device=0 if torch.cuda.is_available() else -1)
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


class OnnxLabelPaths:
    """The pipeline's answers from an ONNX graph run by ONNX Runtime: the repository's tokenizer (truncating to the
    model's maximum length), the graph's logits, and the repository's own decoding (`pipeline_hisr.decode_logits`)."""

    def __init__(self, path: str, onnx_file: str, batch_size: int = 32):
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError(f"{onnx_file} needs onnxruntime: add it to the endpoint's requirements.txt.") from error
        self.session = onnxruntime.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        self.config = AutoConfig.from_pretrained(path, trust_remote_code=True)
        self.hierarchy = get_class_from_dynamic_module("hierarchy.LabelHierarchy", path).from_dict(self.config.hierarchy)
        self.decode_logits = get_class_from_dynamic_module("pipeline_hisr.decode_logits", path)
        self.check_parameters = get_class_from_dynamic_module("pipeline_hisr.check_decoding_parameters", path)
        self.max_length = get_class_from_dynamic_module("pipeline_hisr.model_max_length", path)(self.tokenizer, self.config)
        self.batch_size = batch_size

    def __call__(self, texts: list[str], threshold=None, strategy: str = "consistent", top_k=None) -> list[dict]:
        self.check_parameters(threshold=threshold, strategy=strategy, top_k=top_k)
        results = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            batch = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
            logits = self.session.run(["logits"], {name: batch[name] for name in self.input_names})[0]
            decoded = self.decode_logits(torch.from_numpy(logits), self.config, self.hierarchy, threshold, strategy, top_k)
            results.extend(decoded)
        empty = {"labels": [], "paths": [], "scores": {}}
        return [empty if not text.strip() else result for text, result in zip(texts, results)]

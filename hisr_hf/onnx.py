"""ONNX export of HiSR models for CPU serving (`pip install "hisr_hf[onnx]"`).

```bash
python -m hisr_hf.onnx outputs/quickstart-20ng outputs/quickstart-20ng-onnx --quantize
```

```python
>>> from hisr_hf.onnx import export_onnx
>>> onnx_file = export_onnx("outputs/quickstart-20ng", "outputs/quickstart-20ng-onnx")  # doctest: +SKIP
```

The graph has dynamic batch and sequence axes; its inputs are the encoder's (`input_ids`, `attention_mask` and,
where the encoder takes it, `token_type_ids`), its output the `(batch, num_labels)` logits. With `optimize=True`
(the default) the encoder's attention, LayerNorms and GELUs are fused into ONNX Runtime's CPU kernels
(`Attention`, `SkipLayerNormalization`, `BiasGelu`, ...) by its transformer optimizer. Those fusions match the graph
of torch's TorchScript exporter with eager attention (`dynamo=False`), not the `dynamo=True` graph, so that is
how an optimised export is made; `optimize=False`, or an optimised graph that does not pass the check below, gives
the plain `torch.onnx.export(..., dynamo=True)` graph. Every export is checked before it is returned: ONNX
Runtime's logits must equal PyTorch's (1e-4) on a batch of texts of different lengths. `quantize=True` adds a
dynamically int8-quantised copy (weights int8 with one scale per output channel, activations quantised per
call), which ONNX Runtime runs faster on CPUs.

The output folder serves as a model repository: `model.onnx` (and `model_quantized.onnx`), `config.json` (the
hierarchy, thresholds and label names), the tokenizer, the model code, the model card and `handler.py`, which
an Inference Endpoint runs on ONNX Runtime when it finds `model.onnx` (`hisr_hf/endpoint_handler.py`).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .modeling_hisr import HiSRForHierarchicalClassification, _accepted_inputs

logger = logging.getLogger(__name__)

ONNX_NAME = "model.onnx"
QUANTIZED_NAME = "model_quantized.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Texts of different lengths that every export is checked on.
CHECK_TEXTS = (
    "A short text.",
    "New graphics drivers for linux make the old card fast again, but the fan still runs loud at idle.",
    "Energy",
)
_CHECK_TOLERANCE = 1e-4
# Graphs above 2 GB cannot be one protobuf: their weights go to `model.onnx.data` beside the graph.
_SINGLE_FILE_LIMIT = 2 * 1024**3 - 64 * 1024**2


class _LogitsOnly(nn.Module):
    """The model with positional encoder inputs and the logits as its only output (what the ONNX graph computes)."""

    def __init__(self, model: HiSRForHierarchicalClassification):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return self.model(**inputs).logits


def export_onnx(
    model_or_dir: HiSRForHierarchicalClassification | str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    quantize: bool = False,
    optimize: bool = True,
    opset_version: int | None = None,
) -> Path:
    """Export a HiSR model to ONNX and check ONNX Runtime's logits against PyTorch's.

    Args:
        model_or_dir: a `HiSRForHierarchicalClassification` (or `BertForHierarchicalClassification`), or a folder /
            Hub id it loads from.
        output_dir: the folder to write (created if needed; see the module docstring for what goes in it).
        tokenizer (*optional*): the model's tokenizer; loaded from `model_or_dir` when that is a folder or Hub id.
        quantize (`bool`, defaults to `False`): also write `model_quantized.onnx`, dynamically int8-quantised.
        optimize (`bool`, defaults to `True`): fuse the encoder's attention, LayerNorms and GELUs into ONNX
            Runtime's kernels (see the module docstring); falls back to the plain graph, with a warning, when the
            fused one cannot be made or does not match PyTorch.
        opset_version (`int`, *optional*): the ONNX opset (default: the exporter's; 17 for an optimised export).

    Returns:
        `Path` of `model_quantized.onnx` when `quantize=True`, else of `model.onnx`.

    Raises:
        `ImportError` naming the extra to install when `onnx`, `onnxscript` or `onnxruntime` is missing;
        `TypeError` for a model that is not a HiSR model; `RuntimeError` when ONNX Runtime's logits differ from
        PyTorch's by more than 1e-4.
    """
    ort = _import_runtime()
    if isinstance(model_or_dir, (str, os.PathLike)):
        source = os.fspath(model_or_dir)
        model = HiSRForHierarchicalClassification.from_pretrained(source)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True)
    elif isinstance(model_or_dir, HiSRForHierarchicalClassification):
        model = model_or_dir
    else:
        raise TypeError(
            f"export_onnx takes a HiSRForHierarchicalClassification or the folder / Hub id of one, got "
            f"{type(model_or_dir).__name__}."
        )
    if tokenizer is None:
        raise ValueError("export_onnx needs the model's tokenizer: pass tokenizer= (or a folder that holds one).")
    was_training = model.training
    model.eval()
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    input_names = tuple(name for name in INPUT_NAMES if name in _accepted_inputs(model.text_encoder))
    sample = tokenizer(list(CHECK_TEXTS), padding=True, return_tensors="pt")
    inputs = tuple(sample[name] for name in input_names)
    graph = output / ONNX_NAME
    optimized = False
    if optimize:
        try:
            _export_fused(model, inputs, input_names, graph, opset_version)
            check_onnx(graph, model, tokenizer, session_factory=ort.InferenceSession)
            optimized = True
        except Exception as error:  # noqa: BLE001  (any failure of the optional path falls back to the plain graph)
            logger.warning("The fused ONNX export failed (%s: %s); writing the plain dynamo graph instead.",
                           type(error).__name__, error)  # fmt: skip
    if not optimized:
        _export_dynamo(model, inputs, input_names, graph, opset_version)
    # The folder also serves: config (hierarchy, thresholds, labels), code, card, handler.py, tokenizer.
    model.save_pretrained(output)
    (output / "model.safetensors").unlink(missing_ok=True)
    tokenizer.save_pretrained(output)
    if not optimized:
        check_onnx(graph, model, tokenizer, session_factory=ort.InferenceSession)
    model.train(was_training)
    if not quantize:
        return graph
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = output / QUANTIZED_NAME
    # Per-channel weight scales: on the 20ng quickstart model -0.15 Micro-F1 against fp32, per-tensor scales -0.81.
    # DefaultTensorType: ONNX shape inference cannot type the outputs of the fused (com.microsoft) kernels.
    quantize_dynamic(
        str(graph), str(quantized), weight_type=QuantType.QInt8, per_channel=True,
        nodes_to_exclude=_vector_matmuls(graph),
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
    )  # fmt: skip
    check_onnx(quantized, model, tokenizer, session_factory=ort.InferenceSession, tolerance=float("inf"))  # it runs
    return quantized


def _export_dynamo(model, inputs, input_names, graph: Path, opset_version: int | None) -> None:
    """`torch.onnx.export(dynamo=True)` with dynamic batch and sequence axes, weights beside the graph above 2 GB."""
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    with torch.no_grad():
        program = torch.onnx.export(
            _LogitsOnly(model).eval(),
            inputs,
            input_names=list(input_names),
            output_names=["logits"],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in input_names},
            opset_version=opset_version,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    program.save(str(graph), external_data=weight_bytes > _SINGLE_FILE_LIMIT)


def _export_fused(model, inputs, input_names, graph: Path, opset_version: int | None) -> dict[str, int]:
    """TorchScript export with eager attention, then ONNX Runtime's transformer optimizer (fusions only: no
    hardware-specific rewrites, so the file runs on any CPU). Returns the fused operator counts."""
    import warnings

    from onnxruntime.transformers import optimizer

    encoder = model.text_encoder
    attention = encoder.config._attn_implementation
    raw = graph.with_name(graph.stem + ".unfused.onnx")
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    try:
        encoder.set_attn_implementation("eager")  # the MatMul-Softmax-MatMul pattern the Attention fusion matches
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's tracer warnings about Python values
            torch.onnx.export(
                _LogitsOnly(model).eval(), inputs, str(raw), input_names=list(input_names), output_names=["logits"],
                dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=opset_version or 17, dynamo=False,
            )  # fmt: skip
        config = encoder.config
        fused = optimizer.optimize_model(
            str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
            opt_level=0,
        )  # fmt: skip
        fused.save_model_to_file(str(graph))
    finally:
        encoder.set_attn_implementation(attention)
        raw.unlink(missing_ok=True)
    counts = {op: n for op, n in fused.get_fused_operator_statistics().items() if n}
    logger.info("Fused ONNX graph: %s", counts)
    return counts


def _vector_matmuls(graph: Path) -> list[str]:
    """MatMul nodes whose weight is a vector (the GCN gates, `(B, L, d) @ (d,)`): ONNX Runtime's int8 MatMul fuses
    them with the per-label bias that follows into a kernel that refuses that broadcast, and they cost nothing."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    shapes = {tensor.name: list(tensor.dims) for tensor in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul" and len(node.input) > 1 and len(shapes.get(node.input[1], [0, 0])) < 2
    ]


def check_onnx(graph: str | os.PathLike, model, tokenizer, session_factory=None, tolerance: float = _CHECK_TOLERANCE):
    """Raise `RuntimeError` unless ONNX Runtime's logits for `CHECK_TEXTS` equal `model`'s within `tolerance`."""
    if session_factory is None:
        session_factory = _import_runtime().InferenceSession
    session = session_factory(os.fspath(graph), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]
    # Another batch size and length than the export's: the axes must really be dynamic.
    texts = [*CHECK_TEXTS, " ".join(CHECK_TEXTS)]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    got = session.run(["logits"], {name: batch[name].numpy() for name in names})[0]
    with torch.no_grad():
        want = model(**{name: batch[name] for name in names}).logits.float().numpy()
    difference = float(np.abs(got - want).max())
    if not difference <= tolerance:  # (NaN fails too)
        raise RuntimeError(f"ONNX Runtime's logits differ from PyTorch's by {difference:.2e} (> {tolerance:g}) in {graph}.")
    return difference


def _import_runtime():
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx.export(dynamo=True) needs it)
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs onnx, onnxscript and onnxruntime ({error.name} is missing): "
            'pip install "hisr_hf[onnx]"'
        ) from error
    return onnxruntime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hisr_hf.onnx", description="Export a HiSR model to ONNX.")
    parser.add_argument("model", help="A saved HiSR model (folder or Hub id) with its tokenizer.")
    parser.add_argument("output_dir", help="Folder to write model.onnx (and model_quantized.onnx) into.")
    parser.add_argument("--quantize", action="store_true", help="Also write a dynamically int8-quantised copy.")
    parser.add_argument("--no_optimize", action="store_true", help="The plain dynamo graph, without ONNX Runtime's fusions.")
    parser.add_argument("--opset_version", type=int, default=None, help="ONNX opset (default: the exporter's).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = export_onnx(
        args.model, args.output_dir, quantize=args.quantize, optimize=not args.no_optimize, opset_version=args.opset_version
    )
    print(f"Wrote {path} (ONNX Runtime logits checked against PyTorch's).")


if __name__ == "__main__":
    main()

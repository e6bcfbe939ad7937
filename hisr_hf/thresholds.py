"""Decision thresholds chosen on dev data: one for every label, one per hierarchy level, or one per label.

```python
>>> from hisr_hf.thresholds import tune_thresholds
>>> thresholds = tune_thresholds(dev_probs, dev_gold, hierarchy, mode="level")  # doctest: +SKIP
>>> model.config.thresholds = thresholds  # used by predict_label_paths, the pipeline and handler.py  # doctest: +SKIP
```

`global` and `level` pick the value of `GRID` that maximises dev Micro-F1 (per level: one level at a time, the
others at their current value, two sweeps); `label` picks, for every label with gold documents in dev, the value
that maximises that label's F1 (ties: the one closest to 0.5), which favours Macro-F1 but overfits small dev sets;
labels without dev support keep 0.5. Run `examples/run_htc.py --tune_thresholds MODE` to tune after training.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .hierarchy import LabelHierarchy
from .metrics import hierarchical_f1

TUNING_MODES = ("global", "level", "label")
GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05, 0.10, ..., 0.95


def tune_thresholds(
    probs: Any, gold: Any, hierarchy: LabelHierarchy, mode: str = "global", grid: tuple[float, ...] = GRID
) -> dict[str, float]:
    """Thresholds `{label: value}` for every label of `hierarchy`, chosen on `(probs, gold)` (dev data).

    Args:
        probs (`(N, L)` array): dev probabilities (sigmoid of the logits), columns in label-id order.
        gold (`(N, L)` array): ancestor-closed 0/1 dev labels.
        hierarchy (`LabelHierarchy`): the label order and levels.
        mode (`str`, defaults to `"global"`): `"global"`, `"level"` or `"label"` (see the module docstring).
        grid (`tuple[float, ...]`): the candidate values, each in (0, 1).
    """
    if mode not in TUNING_MODES:
        raise ValueError(f"mode must be one of {list(TUNING_MODES)}, got {mode!r}.")
    probs, gold = np.asarray(probs, dtype=np.float64), np.asarray(gold) > 0.5
    if probs.shape != gold.shape or probs.ndim != 2 or probs.shape[1] != hierarchy.num_labels:
        raise ValueError(
            f"probs {probs.shape} and gold {gold.shape} must both be (documents, {hierarchy.num_labels} labels)."
        )
    if not grid or not all(0 < value < 1 for value in grid):
        raise ValueError(f"grid values must lie in (0, 1), got {grid}.")
    if mode == "label":
        return _per_label(probs, gold, hierarchy, grid)
    depths = np.array([hierarchy.depth(label) for label in hierarchy.labels])
    groups = [np.ones_like(depths, dtype=bool)] if mode == "global" else [depths == d for d in np.unique(depths)]
    current = np.full(hierarchy.num_labels, 0.5)
    for _ in range(1 if mode == "global" else 2):
        for group in groups:
            scores = []
            for value in grid:
                trial = np.where(group, value, current)
                scores.append(hierarchical_f1(probs, gold, hierarchy, threshold=trial)["micro_f1"])
            current = np.where(group, grid[_best(scores, grid)], current)
    return {label: float(value) for label, value in zip(hierarchy.labels, current)}


def _per_label(probs: np.ndarray, gold: np.ndarray, hierarchy: LabelHierarchy, grid) -> dict[str, float]:
    values = np.asarray(grid)
    predicted = probs[:, :, None] > values[None, None, :]  # (N, L, G)
    true_positive = (predicted & gold[:, :, None]).sum(0)
    f1 = 2 * true_positive / np.maximum(predicted.sum(0) + gold.sum(0)[:, None], 1)  # (L, G)
    chosen = {}
    for column, label in enumerate(hierarchy.labels):
        chosen[label] = float(grid[_best(f1[column], grid)]) if gold[:, column].any() else 0.5
    return chosen


def _best(scores, grid) -> int:
    """Index of the best score; ties go to the value closest to 0.5."""
    scores = np.asarray(scores)
    candidates = np.flatnonzero(scores >= scores.max() - 1e-12)
    return int(min(candidates, key=lambda i: abs(grid[i] - 0.5)))

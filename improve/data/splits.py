from dataclasses import dataclass
from typing import List

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from improve.data.cache import Cached


def stratified_split(labels: np.ndarray, fraction: float, seed: int):
    """(kept, held-out) index arrays; stratified when every class has at least two members."""
    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 and round(fraction * len(labels)) >= len(counts) else None
    kept, held = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(kept), np.sort(held)


def fold_split(labels: np.ndarray, folds: int, fold: int, seed: int):
    """(train, validation) index arrays of fold `fold` of a seeded, stratified `folds`-fold split: the validation
    parts of folds 0..folds-1 partition the images, so their predictions together score every image once."""
    if not 0 <= fold < folds:
        raise ValueError(f"dataset.fold={fold} is not a fold of dataset.folds={folds}; use 0 to {folds - 1}")
    smallest = np.bincount(labels)[np.bincount(labels) > 0].min()
    if smallest < folds:
        raise ValueError(f"dataset.folds={folds}: the smallest class has only {smallest} training images, fewer than "
                         f"the folds; use " + (f"loop.folds={smallest} or fewer" if smallest >= 2 else "loop.folds=0"))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    train, val = list(split)[fold]
    return np.sort(train), np.sort(val)


@dataclass
class Splits:
    cached: Cached
    train: np.ndarray  # indices into the cached "train" arrays
    val: np.ndarray
    test: np.ndarray  # indices into the "test" arrays when the dataset has its own, else into "train"
    test_split: str  # which cached arrays `test` indexes

    @property
    def class_names(self) -> List[str]:
        return self.cached.class_names


def make_splits(ds, cached: Cached) -> Splits:
    _, labels = cached.arrays("train")
    if cached.has_test:
        rest, test, test_split = np.arange(len(labels)), np.arange(len(cached.arrays("test")[1])), "test"
    else:
        rest, test = stratified_split(labels, ds.test_fraction, ds.seed)
        test_split = "train"
    folds = ds.get("folds", 0)
    if folds >= 2:
        train_pos, val_pos = fold_split(labels[rest], folds, ds.get("fold", 0), ds.seed + 1)
    else:
        train_pos, val_pos = stratified_split(labels[rest], ds.val_fraction, ds.seed + 1)
    train, val = rest[train_pos], rest[val_pos]
    if ds.max_train and len(train) > ds.max_train:
        keep, _ = stratified_split(labels[train], 1 - ds.max_train / len(train), ds.seed + 2)
        train = train[keep]
    if ds.get("refit"):  # loop.refit: the final model learns from the validation images too
        train = np.sort(np.concatenate([train, val]))
    return Splits(cached, train, val, test, test_split)

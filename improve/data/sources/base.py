"""What every dataset source returns: a Source whose load() gives Raw train (and maybe test) Items."""
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np


class DatasetMissingError(FileNotFoundError):
    """The dataset's files are not where the config says; the message says what to put where."""


@dataclass
class Items:
    """One split of raw data: `files` (paths) or `images` (N,H,W[,C] uint8), plus integer labels."""

    labels: np.ndarray
    files: Optional[List[str]] = None
    images: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Raw:
    train: Items
    test: Optional[Items] = None  # None: the dataset has no labelled test set; data.py carves one


@dataclass
class Source:
    key: Dict  # cheap identity of the content (file stats, generator parameters): part of the cache key
    class_names: List[str]
    load: Callable[[], Raw]
    native_channels: Optional[int] = None  # known channel count, when the source knows it without decoding


def file_stats(files: Sequence[str]) -> str:
    """A digest of names, sizes and modification times: changes when any file does."""
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def missing(ds, root: Path, what: str) -> DatasetMissingError:
    where = str(root.resolve()) if ds.path else "(dataset.path is not set)"
    msg = f"dataset '{ds.name}': {what} (looked in {where})."
    if ds.kaggle:
        msg += (f" Download the Kaggle competition '{ds.kaggle}' (kaggle competitions download -c {ds.kaggle}),"
                f" unzip it into {where}, or point dataset.path=... at the folder that holds it.")
    return DatasetMissingError(msg)

"""Dataset sources: where the images and labels of each `dataset.source` come from.

A source answers two questions cheaply — what is the content's identity (for the cache
key) and what are the classes — and defers the expensive part, producing the raw images,
to `load()`, which runs only on a cache miss. Raw images are either a list of files
(decoded later by `cache.py`, which skips unreadable ones) or an in-memory uint8 array.
"""
import json
from pathlib import Path
from typing import Callable, Dict, Union

from improve.data.sources.base import DatasetMissingError, Items, Raw, Source
from improve.data.sources.files import csv_source, folder_source, image_file_name
from improve.data.sources.generated import digits_source, render_shape, shapes_source
from improve.data.sources.published import (
    DSPRITES_FILE,
    cifar10_source,
    cifar10c_source,
    dsprites_source,
    svhn_source,
    tinyimagenet_source,
)

SOURCES: Dict[str, Callable] = {
    "digits": digits_source,
    "shapes": shapes_source,
    "folder": folder_source,
    "csv": csv_source,
    "cifar10": cifar10_source,
    "cifar10c": cifar10c_source,
    "svhn": svhn_source,
    "tinyimagenet": tinyimagenet_source,
    "dsprites": dsprites_source,
}


def open_source(ds, root: Union[str, Path, None]) -> Source:
    """The Source for a `dataset` config; `root` is its resolved `path` (None for built-in data)."""
    if ds.source not in SOURCES:
        raise ValueError(f"dataset.source={ds.source!r} is unknown; use one of {sorted(SOURCES)}")
    return SOURCES[ds.source](ds, Path(root) if root else Path("."))


def source_key(ds, source: Source) -> str:
    return json.dumps({"source": ds.source, **source.key}, sort_keys=True)


__all__ = ["Items", "Raw", "Source", "open_source", "source_key", "DatasetMissingError", "render_shape",
           "image_file_name", "DSPRITES_FILE"]

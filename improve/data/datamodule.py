"""Splits and the LightningDataModule over the cached uint8 arrays.

Splits are index arrays over the cache: the test split is the dataset's own, else a seeded,
stratified `dataset.test_fraction` of everything; validation is a seeded, stratified
`dataset.val_fraction` of what is left. Only validation is ever used for selection.
Batches are uint8 N,C,H,W tensors; the module normalises them on the device.
"""
import logging
from pathlib import Path
from typing import List, Optional

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from improve.data.cache import Cached, load_cached
from improve.data.sources import open_source
from improve.data.splits import Splits, make_splits

log = logging.getLogger(__name__)


class CachedImages(Dataset):
    """Images of one split, read from the memory-mapped cache, optionally augmented.

    Fetches whole batches at once (`__getitems__`), so an unaugmented batch is a single
    slice of the memory map. Items are (uint8 C,H,W tensor, label).
    """

    def __init__(self, images_path: Path, labels: np.ndarray, indices: np.ndarray, transform=None):
        self.images_path, self.labels, self.indices, self.transform = images_path, labels, indices, transform
        self._images = None  # opened lazily in each process (DataLoader workers, DDP ranks)

    def __getstate__(self):
        return {**self.__dict__, "_images": None}

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.images_path, mmap_mode="r")
        return self._images

    def __getitems__(self, positions: List[int]):
        rows = self.indices[np.asarray(positions)]
        order = np.argsort(rows)
        batch = np.empty((len(rows),) + self.images.shape[1:], np.uint8)
        batch[order] = self.images[rows[order]]  # sorted reads are sequential on disk
        if self.transform is not None:  # its output may be smaller than the cached images (a crop margin)
            views = [self.transform(image=img)["image"] for img in batch]
            batch = np.stack([v.reshape(v.shape[:2] + batch.shape[3:]) for v in views])
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
        return x, torch.from_numpy(self.labels[rows])

    def __getitem__(self, position: int):
        x, y = self.__getitems__([position])
        return x[0], y[0]


def _batch_as_is(batch):
    return batch


class ImageDataModule(L.LightningDataModule):
    def __init__(self, ds, image_size: int, cache_dir: Path, data_root: Optional[Path], batch_size: int,
                 num_workers: int = 0, train_transform=None, drop_last: bool = True, balance: str = "none",
                 train_size: Optional[int] = None):
        super().__init__()
        self.train_size = train_size or image_size  # > image_size: training images cached with a crop margin
        self.train_cached: Optional[Cached] = None
        self.balance = balance  # trainer.balance=sampler: training batches draw every class equally often
        self.ds, self.image_size, self.cache_dir, self.data_root = ds, image_size, cache_dir, data_root
        self.batch_size, self.num_workers, self.train_transform = batch_size, num_workers, train_transform
        self.drop_last = drop_last
        self.splits: Optional[Splits] = None

    def prepare(self) -> Splits:
        """Decode (or memory-map) the data and make the splits; idempotent and cheap once cached."""
        if self.splits is None:
            source = open_source(self.ds, self.data_root)
            cached = load_cached(self.ds, source, self.image_size, self.cache_dir)
            self.splits = make_splits(self.ds, cached)
            self.train_cached = cached
            if self.train_size != self.image_size:
                self.train_cached = load_cached(self.ds, source, self.train_size, self.cache_dir)
                if not np.array_equal(self.train_cached.arrays("train")[1], cached.arrays("train")[1]):
                    raise ValueError(f"dataset {self.ds.name!r}: the {self.train_size}px training cache "
                                     f"({self.train_cached.dir}) does not hold the same images as the "
                                     f"{self.image_size}px one; delete both cache folders and run again")
        return self.splits

    def setup(self, stage: Optional[str] = None) -> None:
        self.prepare()

    @property
    def num_classes(self) -> int:
        return len(self.prepare().class_names)

    @property
    def channels(self) -> int:
        return self.prepare().cached.channels

    def dataset(self, split: str, transform=None) -> CachedImages:
        s = self.prepare()
        array = s.test_split if split == "test" else "train"
        cached = self.train_cached if split == "train" else s.cached  # training reads the crop-margin cache
        _, labels = cached.arrays(array)
        return CachedImages(cached.images_path(array), labels, getattr(s, split), transform)

    def _loader(self, split: str, shuffle: bool, transform=None, drop_last: bool = False) -> DataLoader:
        data = self.dataset(split, transform)
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          collate_fn=_batch_as_is, drop_last=drop_last and len(data) > self.batch_size,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available())

    def class_counts(self, split: str = "train") -> List[int]:
        """Images per class in a split."""
        s = self.prepare()
        _, labels = s.cached.arrays(s.test_split if split == "test" else "train")
        return np.bincount(labels[getattr(s, split)], minlength=len(s.class_names)).tolist()

    def train_dataloader(self) -> DataLoader:
        if self.balance != "sampler":
            return self._loader("train", True, self.train_transform, self.drop_last)
        data = self.dataset("train", self.train_transform)
        counts = np.asarray(self.class_counts("train"), np.float64)
        weights = 1.0 / counts[data.labels[data.indices]]  # each class drawn equally often, with replacement
        sampler = WeightedRandomSampler(torch.as_tensor(weights), num_samples=len(data), replacement=True)
        return DataLoader(data, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          collate_fn=_batch_as_is, drop_last=self.drop_last and len(data) > self.batch_size,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

"""Decode-once image cache: every image resized/centre-cropped to a square uint8 array on disk.

The cache entry of a dataset is keyed by its source identity (file names, sizes and
modification times, or generator parameters), the image size and the channel count, so a
second run memory-maps the arrays instead of decoding again, and any change to the data
makes a new entry. Unreadable files are skipped and listed (`dataset.strict=true`: an error).
"""
import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageOps

from improve.data.sources import Items, Source, source_key

log = logging.getLogger(__name__)
CACHE_VERSION = 2
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass
class Cached:
    """Paths of one cached dataset, memory-mappable, plus what was learnt while decoding it."""

    dir: Path
    class_names: List[str]
    channels: int
    has_test: bool
    skipped: List[str]
    native_size: Dict[str, List[int]]  # min/median/max [width, height] of the source images

    def arrays(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        return (np.load(self.dir / f"{split}_x.npy", mmap_mode="r"), np.load(self.dir / f"{split}_y.npy"))

    def images_path(self, split: str) -> Path:
        return self.dir / f"{split}_x.npy"


def fit_square(img: Image.Image, size: int, channels: int) -> np.ndarray:
    """The eval-time geometry: scale the shorter side to `size`, centre-crop a square, as HxWxC uint8."""
    img = ImageOps.exif_transpose(img) if hasattr(img, "getexif") else img
    if img.mode in ("P", "PA", "RGBA", "LA"):  # transparency: composite onto black
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (size, size):
        img = ImageOps.fit(img, (size, size), method=Image.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def _decode_file(path: str, size: int, channels: int) -> Optional[Tuple[np.ndarray, Tuple[int, int]]]:
    try:
        with Image.open(path) as img:
            native = img.size
            img.draft("RGB" if channels == 3 else "L", (size, size))  # JPEG: decode at reduced size, much faster
            return fit_square(img, size, channels), native
    except Exception:  # truncated, corrupt, not an image: reported by the caller
        return None


def _infer_channels(files: List[str]) -> int:
    """1 when every readable file is grayscale, else 3 (reads headers only)."""
    for path in files:
        try:
            with Image.open(path) as img:
                if img.mode not in GRAY_MODES:
                    return 3
        except Exception:
            continue
    return 1


def _write_split(out: Path, split: str, items: Items, size: int, channels: int,
                 workers: int) -> Tuple[List[str], List[Tuple[int, int]]]:
    """Decode one split into out/{split}_x.npy and out/{split}_y.npy; returns skipped files and native sizes."""
    n = len(items)
    if items.images is not None:
        x = np.lib.format.open_memmap(out / f"{split}_x.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, channels))
        for i, img in enumerate(items.images):
            pil = Image.fromarray(img if img.ndim == 2 or img.shape[2] > 1 else img[:, :, 0])
            x[i] = fit_square(pil, size, channels)
        x.flush()
        np.save(out / f"{split}_y.npy", items.labels)
        return [], [(items.images.shape[2], items.images.shape[1])] * n
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes and resizes without holding the GIL
        decoded = list(pool.map(lambda p: _decode_file(p, size, channels), items.files))
    keep = [i for i, a in enumerate(decoded) if a is not None]
    skipped = [items.files[i] for i, a in enumerate(decoded) if a is None]
    x = np.lib.format.open_memmap(out / f"{split}_x.npy", mode="w+", dtype=np.uint8,
                                  shape=(len(keep), size, size, channels))
    for j, i in enumerate(keep):
        x[j] = decoded[i][0]
    x.flush()
    np.save(out / f"{split}_y.npy", items.labels[keep])
    return skipped, [decoded[i][1] for i in keep]


def _size_summary(sizes: List[Tuple[int, int]]) -> Dict[str, List[int]]:
    if not sizes:
        return {"min": [0, 0], "median": [0, 0], "max": [0, 0]}
    arr = np.asarray(sizes)
    return {"min": arr.min(0).tolist(), "median": np.median(arr, 0).astype(int).tolist(), "max": arr.max(0).tolist()}


def cache_key(ds, source: Source, size: int, channels: int) -> str:
    raw = json.dumps({"v": CACHE_VERSION, "src": source_key(ds, source), "size": size, "channels": channels},
                     sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def load_cached(ds, source: Source, size: int, cache_dir: Path, workers: int = 0) -> Cached:
    """Return the cached arrays for this source and size, decoding them first on a miss."""
    requested = ds.channels or source.native_channels or 0  # 0: infer, keyed as such, resolved in meta.json
    entry = cache_dir / f"{ds.name}-{size}px-{cache_key(ds, source, size, requested)}"
    meta_file = entry / "meta.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
    else:
        raw = source.load()
        channels = requested or (_infer_channels(raw.train.files) if raw.train.files else 3)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
        try:
            workers = workers or min(8, os.cpu_count() or 1)
            skipped, sizes = _write_split(tmp, "train", raw.train, size, channels, workers)
            if raw.test is not None:
                test_skipped, test_sizes = _write_split(tmp, "test", raw.test, size, channels, workers)
                skipped, sizes = skipped + test_skipped, sizes + test_sizes
            meta = {"class_names": source.class_names, "channels": channels, "has_test": raw.test is not None,
                    "skipped": skipped, "native_size": _size_summary(sizes), "size": size,
                    "source": source_key(ds, source)}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            try:
                os.replace(tmp, entry)  # atomic: a half-written entry is never visible
            except OSError:  # another process wrote the same entry first: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        meta = json.loads(meta_file.read_text())
    cached = Cached(entry, meta["class_names"], meta["channels"], meta["has_test"], meta["skipped"],
                    meta["native_size"])
    if cached.skipped:
        listing = "\n  ".join(cached.skipped)
        if ds.strict:
            raise ValueError(f"dataset.strict=true and {len(cached.skipped)} file(s) could not be read as images:\n  "
                             f"{listing}\nRemove or fix them, or set dataset.strict=false to skip them.")
        msg = f"dataset '{ds.name}': skipped {len(cached.skipped)} unreadable file(s):\n  {listing}"
        log.warning(msg)
    return cached

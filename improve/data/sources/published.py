"""Published research datasets in the layouts they ship in: CIFAR-10(-C), SVHN, Tiny ImageNet, dSprites."""
import zipfile
from pathlib import Path
from typing import Callable, List

import numpy as np

from improve.data.sources.base import Items, Raw, Source, file_stats, missing


# ---------------------------------------------------------------- torchvision: CIFAR-10, SVHN
def _torchvision_source(ds, root: Path, expected: str, make: Callable[[bool, bool], object], classes: List[str]):
    def open_split(train: bool):
        try:
            return make(train, False)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
            if not ds.download:
                raise missing(ds, root, f"{err} Expected {expected}; set dataset.download=true to fetch them") from None
        try:
            return make(train, True)
        except Exception as err:  # no internet: urllib/ssl/socket errors of every kind
            raise missing(ds, root, f"could not download ({type(err).__name__}: {err}); this machine may be offline. "
                               f"Put {expected} there by hand") from None

    def load() -> Raw:
        parts = []
        for train in (True, False):
            d = open_split(train)
            images = np.asarray(d.data, np.uint8)
            if images.ndim == 4 and images.shape[1] == 3:  # SVHN stores N,C,H,W
                images = images.transpose(0, 2, 3, 1)
            labels = np.asarray(d.targets if hasattr(d, "targets") else d.labels, np.int64)
            parts.append(Items(labels=labels, images=np.ascontiguousarray(images)))
        return Raw(train=parts[0], test=parts[1])

    files = sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    return Source(key={"files": file_stats(files)}, class_names=classes, load=load, native_channels=3)


def cifar10_source(ds, root: Path) -> Source:
    from torchvision.datasets import CIFAR10

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return _torchvision_source(
        ds, root, "cifar-10-batches-py/ with data_batch_1..5, test_batch and batches.meta",
        lambda train, download: CIFAR10(str(root), train=train, download=download), classes)


def svhn_source(ds, root: Path) -> Source:
    from torchvision.datasets import SVHN

    return _torchvision_source(
        ds, root, "train_32x32.mat and test_32x32.mat",
        lambda train, download: SVHN(str(root), split="train" if train else "test", download=download),
        [str(i) for i in range(10)])


# ---------------------------------------------------------------- Tiny ImageNet
def tinyimagenet_source(ds, root: Path) -> Source:
    wnids_file, annotations = root / "wnids.txt", root / "val" / "val_annotations.txt"
    if not wnids_file.is_file() or not annotations.is_file():
        raise missing(ds, root, "expected tiny-imagenet-200/ with wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG "
                           "and val/val_annotations.txt (download tiny-imagenet-200.zip and unzip it)")
    wnids = wnids_file.read_text().split()
    names = dict(line.split("\t", 1) for line in (root / "words.txt").read_text().splitlines()) \
        if (root / "words.txt").is_file() else {}
    index = {w: i for i, w in enumerate(wnids)}
    files, labels = [], []
    for w in wnids:
        for p in sorted((root / "train" / w / "images").glob("*")):
            if p.is_file():
                files.append(str(p))
                labels.append(index[w])
    test_files, test_labels = [], []
    for line in annotations.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1] in index:
            test_files.append(str(root / "val" / "images" / parts[0]))
            test_labels.append(index[parts[1]])

    def load() -> Raw:
        return Raw(train=Items(labels=np.asarray(labels, np.int64), files=files),
                   test=Items(labels=np.asarray(test_labels, np.int64), files=test_files))

    classes = [names.get(w, w).split(",")[0].strip() or w for w in wnids]
    return Source(key={"files": file_stats(files + [str(annotations)])}, class_names=classes, load=load,
                  native_channels=3)


# ---------------------------------------------------------------- dSprites orientation
DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
SPRITES = {"square": 0, "ellipse": 1, "heart": 2}  # latents_classes[:, 1]
ROWS_PER_READ = 4096  # images decompressed at a time while streaming the npz's imgs array


def read_rows(npz: Path, name: str, rows: np.ndarray) -> np.ndarray:
    """Rows `rows` (sorted) of array `name` in an .npz, streamed: only one chunk is decompressed in memory at a time,
    never the whole array (dSprites' imgs is about 3 GB unpacked)."""
    with zipfile.ZipFile(npz) as zf, zf.open(f"{name}.npy") as fh:
        major, _ = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        if fortran:
            raise ValueError(f"{npz}: {name} is stored in Fortran order; expected C order as published")
        row_shape = shape[1:]
        row_bytes = int(np.prod(row_shape)) * dtype.itemsize
        out = np.empty((len(rows),) + row_shape, dtype)
        done, start = 0, 0
        while done < len(rows):
            count = min(ROWS_PER_READ, shape[0] - start)
            chunk = np.frombuffer(fh.read(count * row_bytes), dtype).reshape((count,) + row_shape)
            wanted = rows[done:][rows[done:] < start + count]
            out[done:done + len(wanted)] = chunk[wanted - start]
            done += len(wanted)
            start += count
    return out


def dsprites_source(ds, root: Path) -> Source:
    """dSprites orientation: VTAB's task by default (all three shapes, `classes` bins of the 40 orientations:
    label = floor(orientation * classes / 40), i.e. floor(index / 2.5) for 16), `dataset.sprites=heart` for hearts
    only; `samples_per_class` images sampled per class, and only those are decompressed."""
    npz = root / DSPRITES_FILE
    if not npz.is_file():
        raise missing(ds, root, f"expected {DSPRITES_FILE} (from the deepmind/dsprites-dataset repository)")
    k, n, seed, sprites = ds.classes, ds.samples_per_class, ds.seed, ds.get("sprites") or "all"

    def load() -> Raw:
        with np.load(npz, allow_pickle=False) as z:
            latents = z["latents_classes"]
        pool = np.flatnonzero(latents[:, 1] == SPRITES["heart"]) if sprites == "heart" else np.arange(len(latents))
        n_orient = int(latents[:, 3].max()) + 1
        label = (latents[pool, 3] * k) // n_orient
        rng = np.random.default_rng(seed)
        chosen = np.concatenate([rng.choice(pool[label == c], size=min(n, int((label == c).sum())), replace=False)
                                 for c in range(k)])
        chosen.sort()
        images = read_rows(npz, "imgs", chosen).astype(np.uint8) * 255
        labels = (latents[chosen, 3] * k) // n_orient
        return Raw(train=Items(labels=labels.astype(np.int64), images=images))

    names = [f"{round(i * 360 / k)}deg" for i in range(k)]
    return Source(key={"npz": file_stats([str(npz)]), "k": k, "n": n, "seed": seed, "sprites": sprites},
                  class_names=names, load=load, native_channels=1)


# ---------------------------------------------------------------- CIFAR-10-C
CIFAR10C_CORRUPTIONS = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
                        "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform",
                        "pixelate", "jpeg_compression"]  # the 15 standard ones; the 4 extras are not used
CIFAR10C_SOURCE = "https://zenodo.org/record/2535967 (CIFAR-10-C.tar, Hendrycks & Dietterich 2019)"


def cifar10c_source(ds, root: Path) -> Source:
    """The IMPROVE paper's CIFAR-10-C-<severity>: train on CIFAR-10's training set (`path`, torchvision's layout),
    test on CIFAR-10's test images each corrupted by one of the 15 standard corruptions, drawn uniformly (seeded),
    at `severity`, read from CIFAR-10-C's <corruption>.npy files (severities 1-5 in blocks of 10,000 rows)."""
    base = cifar10_source(ds, root)
    corrupted = Path(ds.corrupted_path).expanduser() if ds.get("corrupted_path") else root / "CIFAR-10-C"
    needed = [f"{c}.npy" for c in CIFAR10C_CORRUPTIONS] + ["labels.npy"]
    absent = [f for f in needed if not (corrupted / f).is_file()]
    if absent:
        raise missing(ds, corrupted, f"CIFAR-10-C is incomplete in {corrupted}: missing {', '.join(absent)}. It comes "
                                     f"from {CIFAR10C_SOURCE}; unpack it there or set dataset.corrupted_path")
    severity, seed = ds.severity, ds.seed

    def load() -> Raw:
        raw = base.load()
        labels = np.load(corrupted / "labels.npy")
        if len(labels) % 5:
            raise ValueError(f"{corrupted / 'labels.npy'} has {len(labels)} rows; CIFAR-10-C has 5 severity blocks")
        block = len(labels) // 5
        rows = (severity - 1) * block + np.arange(block)
        which = np.random.default_rng(seed).integers(0, len(CIFAR10C_CORRUPTIONS), block)
        images = np.empty((block, 32, 32, 3), np.uint8)
        for c, name in enumerate(CIFAR10C_CORRUPTIONS):
            pick = np.flatnonzero(which == c)
            images[pick] = np.load(corrupted / f"{name}.npy", mmap_mode="r")[rows[pick]]
        return Raw(train=raw.train, test=Items(labels=labels[rows].astype(np.int64), images=images))

    files = [str(corrupted / f) for f in needed]
    return Source(key={**base.key, "c": file_stats(files), "severity": severity, "seed": seed},
                  class_names=base.class_names, load=load, native_channels=3)

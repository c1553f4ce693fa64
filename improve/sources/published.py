"""Published research datasets in the layouts they ship in: CIFAR-10, SVHN, Tiny ImageNet, dSprites."""
from pathlib import Path
from typing import Callable, List

import numpy as np

from .base import Items, Raw, Source, file_stats, missing


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
HEART = 2  # latents_classes[:, 1]: 0 square, 1 ellipse, 2 heart


def dsprites_source(ds, root: Path) -> Source:
    npz = root / DSPRITES_FILE
    if not npz.is_file():
        raise missing(ds, root, f"expected {DSPRITES_FILE} (from the deepmind/dsprites-dataset repository)")
    k, n, seed = ds.classes, ds.samples_per_class, ds.seed

    def load() -> Raw:
        with np.load(npz, allow_pickle=False) as z:
            latents = z["latents_classes"]
            hearts = np.flatnonzero(latents[:, 1] == HEART)
            orientation = latents[hearts, 3]  # 0..39, i.e. 0..2pi in 40 steps
            n_orient = int(latents[:, 3].max()) + 1
            label = (orientation * k) // n_orient
            rng = np.random.default_rng(seed)
            chosen = np.concatenate([rng.choice(hearts[label == c], size=min(n, int((label == c).sum())), replace=False)
                                     for c in range(k)])
            chosen.sort()
            images = z["imgs"][chosen].astype(np.uint8) * 255
            labels = (latents[chosen, 3] * k) // n_orient
        return Raw(train=Items(labels=labels.astype(np.int64), images=images))

    names = [f"{round(i * 360 / k)}deg" for i in range(k)]
    return Source(key={"npz": file_stats([str(npz)]), "k": k, "n": n, "seed": seed}, class_names=names, load=load,
                  native_channels=1)

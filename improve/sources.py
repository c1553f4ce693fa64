"""Dataset sources: where the images and labels of each `dataset.source` come from.

A source answers two questions cheaply — what is the content's identity (for the cache
key) and what are the classes — and defers the expensive part, producing the raw images,
to `load()`, which runs only on a cache miss. Raw images are either a list of files
(decoded later by `cache.py`, which skips unreadable ones) or an in-memory uint8 array.
"""
import csv
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

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


def _file_stats(files: Sequence[str]) -> str:
    """A digest of names, sizes and modification times: changes when any file does."""
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _missing(ds, root: Path, what: str) -> DatasetMissingError:
    where = str(root.resolve()) if ds.path else "(dataset.path is not set)"
    msg = f"dataset '{ds.name}': {what} (looked in {where})."
    if ds.kaggle:
        msg += (f" Download the Kaggle competition '{ds.kaggle}' (kaggle competitions download -c {ds.kaggle}),"
                f" unzip it into {where}, or point dataset.path=... at the folder that holds it.")
    return DatasetMissingError(msg)


# ---------------------------------------------------------------- digits
def digits_source(ds, root: Path) -> Source:
    import sklearn
    from sklearn.datasets import load_digits

    def load() -> Raw:
        bunch = load_digits()
        images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
        return Raw(train=Items(labels=bunch.target.astype(np.int64), images=images))

    return Source(key={"sklearn": sklearn.__version__}, class_names=[str(i) for i in range(10)], load=load,
                  native_channels=1)


# ---------------------------------------------------------------- shapes (generated)
# Mirror-symmetric shapes with no rotational symmetry: their orientation is defined over 360 degrees,
# and a horizontal flip maps orientation t (0 = up) to -t, i.e. to another class.
_SHAPES = {
    "arrow": [(0.0, 1.0), (0.6, 0.2), (0.22, 0.2), (0.22, -1.0), (-0.22, -1.0), (-0.22, 0.2), (-0.6, 0.2)],
    "triangle": [(0.0, 1.0), (0.5, -0.8), (-0.5, -0.8)],
    "tee": [(-0.8, 1.0), (0.8, 1.0), (0.8, 0.55), (0.2, 0.55), (0.2, -1.0), (-0.2, -1.0), (-0.2, 0.55), (-0.8, 0.55)],
}


def render_shape(shape: str, angle_deg: float, size: int, scale: float, dx: float, dy: float) -> np.ndarray:
    """Draw one white shape on black, pointing at `angle_deg` (0 = up, counter-clockwise), antialiased."""
    from PIL import Image, ImageDraw

    ss = 4  # supersampling factor
    canvas = Image.new("L", (size * ss, size * ss), 0)
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    half = size * ss / 2
    pts = []
    for x, y in _SHAPES[shape]:
        rx, ry = x * c - y * s, x * s + y * c  # rotate counter-clockwise in a y-up frame
        pts.append((half + (rx * scale + dx) * half, half - (ry * scale + dy) * half))
    ImageDraw.Draw(canvas).polygon(pts, fill=255)
    return np.asarray(canvas.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def shapes_source(ds, root: Path) -> Source:
    k, n, size, seed, noise = ds.classes, ds.samples_per_class, ds.native_size, ds.seed, ds.noise
    width = 360.0 / k

    def load() -> Raw:
        rng = np.random.default_rng(seed)
        names = sorted(_SHAPES)
        images = np.empty((k * n, size, size), np.uint8)
        labels = np.repeat(np.arange(k), n)
        for i, label in enumerate(labels):
            angle = label * width + rng.uniform(-0.45, 0.45) * width
            img = render_shape(names[rng.integers(len(names))], angle, size, scale=rng.uniform(0.3, 0.75),
                               dx=rng.uniform(-0.25, 0.25), dy=rng.uniform(-0.25, 0.25)).astype(np.float32)
            img += rng.normal(0.0, 255 * noise, img.shape)
            images[i] = np.clip(img, 0, 255).astype(np.uint8)
        return Raw(train=Items(labels=labels.astype(np.int64), images=images))

    names = [f"{round(i * width) % 360}deg" for i in range(k)]
    return Source(key={"classes": k, "n": n, "size": size, "seed": seed, "noise": noise, "version": 2}, class_names=names,
                  load=load, native_channels=1)


# ---------------------------------------------------------------- folder
def _scan_class_folders(root: Path, classes: Optional[List[str]] = None):
    if classes is None:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        # Every file is tried: ones that are not images (.DS_Store, notes.txt) are skipped and listed by the cache.
        found = sorted(str(p) for p in (root / name).rglob("*") if p.is_file()) if (root / name).is_dir() else []
        files += found
        labels += [label] * len(found)
    return classes, files, np.asarray(labels, np.int64)


def folder_source(ds, root: Path) -> Source:
    if not ds.path or not root.is_dir():
        raise _missing(ds, root, "the image folder does not exist; expected <path>/<class name>/<image files>")
    classes, files, labels = _scan_class_folders(root)
    if not files:
        raise _missing(ds, root, "no class subfolders with files found; expected <path>/<class name>/<image files>")
    test = None
    test_files: List[str] = []
    if ds.test_path:
        troot = Path(ds.test_path).expanduser()
        if not troot.is_dir():
            raise _missing(ds, root, f"dataset.test_path={ds.test_path} does not exist")
        _, test_files, test_labels = _scan_class_folders(troot, classes)
        test = Items(labels=test_labels, files=test_files)

    def load() -> Raw:
        return Raw(train=Items(labels=labels, files=files), test=test)

    return Source(key={"files": _file_stats(files + test_files)}, class_names=classes, load=load)


# ---------------------------------------------------------------- Kaggle csv
def image_file_name(ds, image_id: str) -> str:
    """A CSV id's image file name: `dataset.id_format` applied, `dataset.image_ext` added when it has none."""
    name = (ds.get("id_format") or "{}").format(image_id)
    ext = ds.get("image_ext") or ""
    return name + ext if ext and not Path(name).suffix else name


def csv_source(ds, root: Path) -> Source:
    table = root / ds.csv
    image_dir = root / ds.image_dir
    if not table.is_file() or not image_dir.is_dir():
        raise _missing(ds, root, f"expected {ds.csv} (columns {ds.id_column},{ds.label_column}) and the folder {ds.image_dir}/ "
                           f"holding the images")
    with open(table, newline="") as fh:
        reader = csv.DictReader(fh)
        for col in (ds.id_column, ds.label_column):
            if col not in (reader.fieldnames or []):
                raise ValueError(f"dataset.{'id' if col == ds.id_column else 'label'}_column={col!r} is not a column of "
                                 f"{table} (columns: {reader.fieldnames}); set it to the right column name")
        rows = [(r[ds.id_column], r[ds.label_column]) for r in reader]
    raw_labels = [label for _, label in rows]
    numeric = all(label.lstrip("-").isdigit() for label in raw_labels)
    classes = sorted(set(raw_labels), key=(int if numeric else str))
    index = {c: i for i, c in enumerate(classes)}
    files = [str(image_dir / image_file_name(ds, image_id)) for image_id, _ in rows]
    labels = np.asarray([index[label] for label in raw_labels], np.int64)

    def load() -> Raw:
        return Raw(train=Items(labels=labels, files=files))

    present = [f for f in files if os.path.exists(f)]
    return Source(key={"csv": _file_stats([str(table)]), "files": _file_stats(present)}, class_names=classes, load=load)


# ---------------------------------------------------------------- torchvision: CIFAR-10, SVHN
def _torchvision_source(ds, root: Path, expected: str, make: Callable[[bool, bool], object], classes: List[str]):
    def open_split(train: bool):
        try:
            return make(train, False)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
            if not ds.download:
                raise _missing(ds, root, f"{err} Expected {expected}; set dataset.download=true to fetch them") from None
        try:
            return make(train, True)
        except Exception as err:  # no internet: urllib/ssl/socket errors of every kind
            raise _missing(ds, root, f"could not download ({type(err).__name__}: {err}); this machine may be offline. "
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
    return Source(key={"files": _file_stats(files)}, class_names=classes, load=load, native_channels=3)


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
        raise _missing(ds, root, "expected tiny-imagenet-200/ with wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG "
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
    return Source(key={"files": _file_stats(files + [str(annotations)])}, class_names=classes, load=load,
                  native_channels=3)


# ---------------------------------------------------------------- dSprites orientation
DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
HEART = 2  # latents_classes[:, 1]: 0 square, 1 ellipse, 2 heart


def dsprites_source(ds, root: Path) -> Source:
    npz = root / DSPRITES_FILE
    if not npz.is_file():
        raise _missing(ds, root, f"expected {DSPRITES_FILE} (from the deepmind/dsprites-dataset repository)")
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
    return Source(key={"npz": _file_stats([str(npz)]), "k": k, "n": n, "seed": seed}, class_names=names, load=load,
                  native_channels=1)


SOURCES: Dict[str, Callable] = {
    "digits": digits_source,
    "shapes": shapes_source,
    "folder": folder_source,
    "csv": csv_source,
    "cifar10": cifar10_source,
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


__all__ = ["Items", "Raw", "Source", "open_source", "DatasetMissingError", "render_shape"]

"""The strategy study's suite: generated task kinds, each where a plausible first pipeline is wrong in its own way.

Each task is written once (seeded) in a layout a user would have — class folders with a separate test
folder, or a Kaggle CSV table — and read back through the ordinary `folder` and `csv` dataset sources,
so the study runs the same code a user does. Training sets stay small (a 2-core CPU trains them in
seconds); validation and test splits are large (about 1,000 and 2,000 images), so that one image moves
accuracy by 0.1 % and 0.05 %, below the differences being ranked.

  orientation    the label is the direction a shape points: a flip or a large rotation changes it
  fine_detail    the label is a 1-pixel texture in a 64-px image: shrinking the image erases it
  imbalanced     the rarest class has 20x fewer images than the most common (train, validation, test alike)
  noisy_labels   30 % of the training and validation labels are wrong (uniformly), the test labels are right
  few_shot       12 training images a class: a model that fits them all overfits
  shifted_test   the test images come from a worse camera (noise, blur, low contrast), as CIFAR-10-C
  colour         the label is the hue of the shape: greyscale or hue jitter destroys it
  mirror         four chiral glyphs and their mirror images: a horizontal flip turns a class into its pair

The validation split is carved from the training pool by `dataset.val_fraction` and the training part
capped by `dataset.max_train`, both seeded by `dataset.seed`: seed s of the study draws split s of the
same images, and every strategy of seed s sees that split.
"""
import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from improve.data.sources.generated import draw_outline as draw

GENERATOR_VERSION = 1  # bump when a generator changes: the suite's folders are written again


# ---------------------------------------------------------------------------------------------- drawing
def _regular(n: int, inner: Optional[float] = None) -> List[tuple]:
    """A regular n-gon (a star when `inner` is the radius of its inner corners), pointing up."""
    pts = []
    for i in range(n * (2 if inner else 1)):
        r = inner if inner and i % 2 else 1.0
        t = math.pi / 2 + 2 * math.pi * i / (n * (2 if inner else 1))
        pts.append((r * math.cos(t), r * math.sin(t)))
    return pts


GLYPHS = {  # ten outlines, none a rotation of another
    "triangle": _regular(3), "square": _regular(4), "pentagon": _regular(5), "hexagon": _regular(6),
    "star": _regular(5, inner=0.45),
    "cross": [(-0.3, 1), (0.3, 1), (0.3, 0.3), (1, 0.3), (1, -0.3), (0.3, -0.3), (0.3, -1), (-0.3, -1), (-0.3, -0.3),
              (-1, -0.3), (-1, 0.3), (-0.3, 0.3)],
    "arrow": [(0.0, 1.0), (0.6, 0.2), (0.22, 0.2), (0.22, -1.0), (-0.22, -1.0), (-0.22, 0.2), (-0.6, 0.2)],
    "tee": [(-0.8, 1.0), (0.8, 1.0), (0.8, 0.55), (0.2, 0.55), (0.2, -1.0), (-0.2, -1.0), (-0.2, 0.55), (-0.8, 0.55)],
    "ell": [(-0.6, 1.0), (-0.2, 1.0), (-0.2, -0.6), (0.6, -0.6), (0.6, -1.0), (-0.6, -1.0)],
    "chevron": [(-0.9, 0.7), (0.0, -0.2), (0.9, 0.7), (0.9, 0.1), (0.0, -0.8), (-0.9, 0.1)],
}
NAMES = sorted(GLYPHS)
CHIRAL = {  # four outlines none of which is a rotation of its own mirror image
    "ell": GLYPHS["ell"],
    "eff": [(-0.6, 1.0), (0.6, 1.0), (0.6, 0.6), (-0.2, 0.6), (-0.2, 0.2), (0.4, 0.2), (0.4, -0.2), (-0.2, -0.2),
            (-0.2, -1.0), (-0.6, -1.0)],
    "zed": [(-0.7, 1.0), (0.7, 1.0), (0.7, 0.6), (-0.1, -0.6), (0.7, -0.6), (0.7, -1.0), (-0.7, -1.0), (-0.7, -0.6),
            (0.1, 0.6), (-0.7, 0.6)],
    "flag": [(-0.5, 1.0), (0.6, 0.55), (-0.3, 0.1), (-0.3, -1.0), (-0.5, -1.0)],
}
MIRROR_CLASSES = [f"type{i}" for i in range(1, 9)]  # neutral names: only the images say which are mirror pairs
MIRROR_OF = [("ell", False), ("zed", True), ("flag", False), ("eff", True), ("zed", False), ("ell", True),
             ("eff", False), ("flag", True)]  # class -> (outline, mirrored): pairs (1,6) (2,5) (3,8) (4,7)


def _noisy(img: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    a = np.asarray(img, np.float32)
    return Image.fromarray(np.clip(a + rng.normal(0, 255 * sigma, a.shape), 0, 255).astype(np.uint8))


def glyph(label: int, rng: np.random.Generator, size: int = 32, noise: float = 0.12) -> Image.Image:
    """Glyph class `label` at a random rotation, size and place, with pixel noise."""
    img = draw(GLYPHS[NAMES[label]], size, rng.uniform(0, 360), rng.uniform(0.45, 0.8), rng.uniform(-0.2, 0.2),
               rng.uniform(-0.2, 0.2), fill=int(rng.integers(170, 256)))
    return _noisy(img, rng, noise)


def pointing(label: int, classes: int, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """An arrow, triangle or tee pointing into direction bin `label` of `classes` (0 = up)."""
    width = 360.0 / classes
    shape = ("arrow", "triangle", "tee")[rng.integers(3)]
    img = draw(GLYPHS[shape], size, label * width + rng.uniform(-0.4, 0.4) * width, rng.uniform(0.45, 0.8),
               rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2))
    return _noisy(img, rng, 0.15)


TEXTURES = ("flat", "checker", "horizontal", "vertical")  # all of mean grey 128: only 1-pixel structure differs


def texture(name: str, side: int = 12) -> np.ndarray:
    """A side x side patch of texture `name` (one of TEXTURES), uint8."""
    y, x = np.mgrid[0:side, 0:side]
    return {"flat": np.full((side, side), 128), "checker": ((x + y) % 2) * 255, "horizontal": (y % 2) * 255,
            "vertical": (x % 2) * 255}[name].astype(np.uint8)


def coded(label: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A large distracting glyph and, elsewhere, a 12-px patch of texture `label`: 1-pixel stripes or checks, or
    flat grey of the same mean. Any downscaling averages the textures into the flat grey."""
    img = draw(GLYPHS[NAMES[rng.integers(len(NAMES))]], size, rng.uniform(0, 360), rng.uniform(0.3, 0.5),
               rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), fill=int(rng.integers(90, 200)))
    a = np.array(img, np.uint8)
    top, left = rng.integers(0, size - 12, 2)
    a[top:top + 12, left:left + 12] = texture(TEXTURES[label])
    return _noisy(Image.fromarray(a), rng, 0.03)


def chiral(label: int, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """Class `label` of MIRROR_CLASSES: a chiral outline or its mirror image, in a random colour on a dark
    background, turned up to 30 degrees either way, at a random size and place: a horizontal flip turns each class
    into its pair."""
    outline, mirrored = MIRROR_OF[label]
    points = [(-x, y) for x, y in CHIRAL[outline]] if mirrored else CHIRAL[outline]
    import colorsys

    fill = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.4, 1), rng.uniform(0.6, 1)))
    bg = int(rng.integers(0, 50))
    img = draw(points, size, rng.uniform(-30, 30), rng.uniform(0.55, 0.85), rng.uniform(-0.15, 0.15),
               rng.uniform(-0.15, 0.15), fill=fill, background=(bg, bg, bg), mode="RGB")
    return _noisy(img, rng, 0.04)


HUES = (0, 60, 120, 180, 240, 300)  # red, yellow, green, cyan, blue, magenta


def coloured(label: int, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """A random glyph in hue class `label` (±12°) at a luma (perceived brightness) drawn independently of the class,
    so that in greyscale every class looks alike."""
    hue = (HUES[label] + rng.uniform(-12, 12)) % 360
    fill = tuple(int(round(255 * c)) for c in with_luma(hue, rng.uniform(0.35, 0.65)))
    bg = int(rng.integers(0, 40))
    img = draw(GLYPHS[NAMES[rng.integers(len(NAMES))]], size, rng.uniform(0, 360), rng.uniform(0.45, 0.8),
               rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), fill=fill, background=(bg, bg, bg), mode="RGB")
    return _noisy(img, rng, 0.05)


LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601: what PIL's convert("L") computes


def with_luma(hue_deg: float, luma: float) -> np.ndarray:
    """RGB in [0, 1] of the given hue whose luma is `luma`: the pure hue darkened, or mixed with white."""
    import colorsys

    pure = np.array(colorsys.hsv_to_rgb(hue_deg / 360, 1.0, 1.0))
    y0 = float(pure @ LUMA)
    if luma <= y0:
        return pure * (luma / y0)
    w = (luma - y0) / (1 - y0)
    return w + (1 - w) * pure


CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "contrast")


def corrupt(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One of CIFAR-10-C's corruption kinds at a middle severity: pixel noise, defocus-like blur, low contrast."""
    kind = CORRUPTIONS[rng.integers(len(CORRUPTIONS))]
    if kind == "gaussian_noise":
        return _noisy(img, rng, 0.25)
    if kind == "gaussian_blur":
        return img.filter(ImageFilter.GaussianBlur(1.3))
    return ImageEnhance.Contrast(img).enhance(0.35)


# ---------------------------------------------------------------------------------------------- layouts
@dataclass
class Split:
    """Images of one folder of a task: labels, and how each image is drawn from its label."""

    labels: np.ndarray
    draw: Callable[[int, np.random.Generator], Image.Image]
    label_noise: float = 0.0  # share of the written labels replaced by another class


def _written_labels(split: Split, classes: int, rng: np.random.Generator) -> np.ndarray:
    written = split.labels.copy()
    flip = rng.random(len(written)) < split.label_noise
    written[flip] = (written[flip] + rng.integers(1, classes, flip.sum())) % classes  # never the true class
    return written


def write_folders(root: Path, class_names: List[str], parts: Dict[str, Split], seed: int) -> Dict[str, np.ndarray]:
    """<root>/<part>/<class>/<n>.png for each part (train, test); returns each part's true labels."""
    rng = np.random.default_rng(seed)
    for part, split in parts.items():
        written = _written_labels(split, len(class_names), rng)
        for i, (true, label) in enumerate(zip(split.labels, written)):
            folder = root / part / class_names[label]
            folder.mkdir(parents=True, exist_ok=True)
            split.draw(int(true), rng).save(folder / f"{part}_{i:05d}.png")
    return {part: split.labels for part, split in parts.items()}


def write_csv(root: Path, class_names: List[str], split: Split, seed: int) -> Dict[str, np.ndarray]:
    """Kaggle's layout: <root>/train.csv (id,label) and <root>/images/<id>.png, ids zero-padded like 00042."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    written = _written_labels(split, len(class_names), rng)
    with open(root / "train.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "label"])
        for i, (true, label) in enumerate(zip(split.labels, written)):
            split.draw(int(true), rng).save(root / "images" / f"{i:05d}.png")
            out.writerow([f"{i:05d}", class_names[label]])
    return {"train": split.labels}


def _per_class(counts: List[int]) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(len(counts)).permutation(labels)  # shuffled, so no class fills one id range


# ---------------------------------------------------------------------------------------------- the tasks
@dataclass
class Task:
    """One task kind of the suite: how to write it, and the dataset overrides that read it back."""

    name: str
    wrong: str  # what a plausible first pipeline gets wrong here
    description: str  # what the agents are told (what the images show, never what to do)
    layout: str  # folder or csv
    classes: List[str]
    write: Callable[[Path, int], Dict[str, np.ndarray]]
    dataset: Dict[str, object] = field(default_factory=dict)  # dataset.* overrides besides path and description

    def overrides(self, root: Path, described: bool = True) -> List[str]:
        """The command-line overrides that load this task from `root` (where `prepare` wrote it). `described=False`:
        as a user who says nothing about the images would run it, with no description and a name that tells
        nothing (the agents have only the images, the class names and the errors)."""
        where = root / self.name
        name = self.name if described else f"images{sorted(TASKS).index(self.name)}"
        out = ["dataset=folder", f"dataset.name={name}", f"dataset.path={where}",
               f"dataset.description={json.dumps(self.description if described else '')}"]
        if self.layout == "folder":
            out += ["dataset.class_dir=train", f"dataset.test_path={where / 'test'}"]
        else:
            out += ["dataset.source=csv", "dataset.csv=train.csv", "dataset.image_dir=images", "dataset.image_ext=.png"]
        return out + [f"dataset.{k}={v}" for k, v in self.dataset.items()]


def _folders(classes: List[str], draw_fn, train: List[int], test: List[int], noise: float = 0.0, test_draw=None):
    """A writer of class folders: train/ (the pool validation is carved from; `noise` of its labels wrong) and a
    test/ folder of `test` images a class, drawn by `test_draw` (default: like the training images)."""
    def write(root: Path, seed: int) -> Dict[str, np.ndarray]:
        return write_folders(root, classes, {"train": Split(_per_class(train), draw_fn, noise),
                                             "test": Split(_per_class(test), test_draw or draw_fn)}, seed)
    return write


def _csv(classes: List[str], draw_fn, counts: List[int]):
    """A writer of Kaggle's layout: one labelled table; test and validation are carved from it."""
    def write(root: Path, seed: int) -> Dict[str, np.ndarray]:
        return write_csv(root, classes, Split(_per_class(counts), draw_fn), seed)
    return write


def _imbalanced_counts(classes: int, largest: int, ratio: float) -> List[int]:
    return [int(round(largest * ratio ** (-c / (classes - 1)))) for c in range(classes)]


DIRECTIONS = [f"{d:03d}deg" for d in range(0, 360, 45)]
COLOURS = ["red", "yellow", "green", "cyan", "blue", "magenta"]  # the names of HUES
VAL, TRAIN = 1000, 600  # validation images carved from each training pool; training images kept at most
IMBALANCED = _imbalanced_counts(10, 1080, 20.0)  # 1080 ... 54 images: about 3,600 in all

TASKS: Dict[str, Task] = {t.name: t for t in [
    Task("orientation", "a flip or a large rotation changes the label",
         "white shapes on black; the label is the direction the shape points, in 8 directions of 45 degrees",
         "folder", DIRECTIONS, _folders(DIRECTIONS, lambda y, rng: pointing(y, 8, rng), [200] * 8, [250] * 8),
         {"val_fraction": 0.625, "max_train": TRAIN}),
    Task("fine_detail", "shrinking the 64-px images erases the 1-pixel textures that are the label",
         "64-px grey images of a large shape and a small square patch; the label is the patch's texture",
         "folder", list(TEXTURES), _folders(list(TEXTURES), coded, [400] * 4, [500] * 4),
         {"val_fraction": 0.625, "max_train": TRAIN}),
    Task("imbalanced", "the rare classes get too few updates: without balancing they are rarely predicted",
         "grey glyphs (10 kinds) on black; some kinds are much rarer than others",
         "csv", NAMES, _csv(NAMES, glyph, IMBALANCED),
         {"test_fraction": 0.55, "val_fraction": 0.62, "max_train": TRAIN}),
    Task("noisy_labels", "30% of the training labels are wrong: a model that fits them all memorises noise",
         "grey glyphs (10 kinds) on black, labelled by hand with many mistakes",
         "folder", NAMES, _folders(NAMES, glyph, [160] * 10, [200] * 10, noise=0.3),
         {"val_fraction": 0.625, "max_train": TRAIN}),
    Task("few_shot", "12 images a class: long training and a large model overfit",
         "grey glyphs (10 kinds) on black; very few labelled examples",
         "csv", NAMES, _csv(NAMES, glyph, [312] * 10),
         {"test_fraction": 0.641025641, "val_fraction": 0.892857142, "max_train": 120}),  # 200 and 100 of 312 a class
    Task("shifted_test", "the test images are noisier, blurrier and flatter than the training images",
         "grey glyphs (10 kinds) on black; the deployed camera is worse: noise, blur, low contrast",
         "folder", NAMES, _folders(NAMES, glyph, [160] * 10, [200] * 10,
                                   test_draw=lambda y, rng: corrupt(glyph(y, rng), rng)),
         {"val_fraction": 0.625, "max_train": TRAIN}),
    Task("mirror", "a flip turns each class into another: the flips a first pipeline adds for RGB images destroy the label",
         "coloured glyphs: four shapes and their mirror images, eight classes; a mirror image is another class",
         "folder", MIRROR_CLASSES, _folders(MIRROR_CLASSES, chiral, [200] * 8, [250] * 8),
         {"val_fraction": 0.625, "max_train": TRAIN}),
    Task("colour", "the hue is the label: greyscale or hue jitter destroys it",
         "coloured shapes of random kinds on dark grey; the label is the colour",
         "folder", COLOURS, _folders(COLOURS, coloured, [260] * 6, [330] * 6),
         {"val_fraction": 0.641, "max_train": TRAIN}),
]}


def prepare(name: str, root: Path, seed: int = 0) -> Path:
    """Write task `name` under root/name (once: a matching stamp file means it is there); returns its folder."""
    if name not in TASKS:
        raise ValueError(f"task {name!r} is not in the suite; choose from {sorted(TASKS)}")
    folder = Path(root) / name
    stamp = folder / ".generated.json"
    key = {"task": name, "seed": seed, "version": GENERATOR_VERSION}
    if stamp.is_file() and json.loads(stamp.read_text()) == key:
        return folder
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    truth = TASKS[name].write(folder, seed)
    np.savez_compressed(folder / ".true_labels.npz", **truth)  # the generator's labels, for the tests
    stamp.write_text(json.dumps(key))
    return folder


def fingerprint(folder: Path) -> str:
    """A digest of every file a task wrote: the same seed writes the same bytes."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()

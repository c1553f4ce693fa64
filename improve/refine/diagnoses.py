"""Structural diagnoses: what the incumbent's validation errors say is wrong with its pipeline, measured on images.

The curves say "keep training" or "regularise"; the errors can say more. Each rule looks at the most confused
class pairs of the incumbent (`pipeline/confusion.py`) and tests one explanation on the training images (never
the test split):

  mirror_pairs   a flipped image of class a is nearer to class b's images than to a's: a flip turns one class
                 into the other, so the pipeline's flips destroy the label (augment: drop them)
  colour_pairs   the two classes differ in colour only (apart in colour, alike in greyscale): greyscale, hue or
                 saturation jitter destroy the label (augment: drop them)
  detail_pairs   the two classes are apart at the pipeline's image size and much less so at half of it: they differ in
                 detail a few pixels wide, which a CNN's first strides average away (augment: a larger image size)
  imbalance      the rare classes are the ones the model gets wrong, and training does not balance them
                 (trainer: balance=sampler)

Each finding names the group and the edit, with the evidence as numbers. A finding is `actionable` when the
incumbent still has what it says to remove (or lacks what it says to add); the offline expert's analyst picks its
group over the curves' advice, and the LLM agents read the findings in their prompts.
"""
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from improve.pipeline.augment import FLIPS, changes_colour
from improve.pipeline.confusion import MIN_PAIR_ERRORS, confusion_summary

PER_CLASS = 60  # training images of each class a probe compares
OTHERS = 600  # images of the remaining classes, in all, a mirrored image may also be nearest
MIN_PAIR_RATE = 0.08  # a pair mistaken for each other at least this often (of its images) is worth explaining
MIRROR_CONTRAST = 0.3  # flipped images go to the other class this much more often than unflipped ones
MIRROR_FLIPPED = 0.5  # ... and at least this often
APART, ALIKE = 0.8, 0.7  # two-class nearest-centroid accuracy: apart at or above, alike at or below
DETAIL_DROP = 0.15  # halving the image size loses at least this much of the pair's separability: detail_pairs
MAX_SIZE = 256  # the largest image size a detail finding asks for
RARE_GAP = 0.15  # rare classes' accuracy this far below the common ones': imbalance-driven errors
Images = Callable[[int], "ClassImages"]  # image size -> the training images at that size


@dataclass
class ClassImages:
    """Training images (uint8 N,H,W,C) and their labels at one size, for the probes."""

    images: np.ndarray
    labels: np.ndarray
    class_names: List[str]

    def of(self, name: str) -> np.ndarray:
        if name not in self.class_names:
            return np.zeros((0, 1, 1, 1), np.float32)  # a name cut short in the summary: no images to probe
        idx = np.flatnonzero(self.labels == self.class_names.index(name))[:PER_CLASS]
        return np.asarray(self.images[np.sort(idx)], dtype=np.float32)

    def besides(self, *names: str) -> np.ndarray:
        """Up to OTHERS images of every class but `names`: the references a mirrored image may also be nearest."""
        skip = [self.class_names.index(n) for n in names if n in self.class_names]
        rest = [c for c in range(len(self.class_names)) if c not in skip]
        each = max(4, OTHERS // max(1, len(rest)))
        idx = np.concatenate([np.flatnonzero(self.labels == c)[:each] for c in rest] or [np.zeros(0, int)])
        return np.asarray(self.images[np.sort(idx).astype(int)], dtype=np.float32)


@dataclass
class Finding:
    """One structural diagnosis: the rule, the group and edit it asks for, and the evidence."""

    rule: str  # mirror_pairs, colour_pairs, detail_pairs, imbalance
    group: str
    edit: str  # the edit, in words an engineer acts on
    evidence: str  # what was measured
    pairs: List[List[str]] = field(default_factory=list)  # the class pairs it explains
    share_of_errors: float = 0.0  # of all validation errors, the part those pairs account for
    actionable: bool = True  # the incumbent still has what it says to change
    at_size: Optional[int] = None  # detail_pairs: the image size it was found at

    def journal(self) -> Dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- features
def _grey(x: np.ndarray) -> np.ndarray:
    return x[..., :3].mean(-1) if x.shape[-1] >= 3 else x[..., 0]


def _centred(g: np.ndarray) -> np.ndarray:
    """Each grey image moved so that its brightness centroid (above its median) is at the centre, then
    zero-mean, unit-norm, flattened: nearest neighbours compare shapes, not places."""
    n, h, w = g.shape
    out = np.empty((n, h * w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for i, img in enumerate(g):
        mass = np.clip(img - np.median(img), 0, None)
        total = mass.sum()
        dy = int(round(h / 2 - 0.5 - (mass * yy).sum() / total)) if total > 0 else 0
        dx = int(round(w / 2 - 0.5 - (mass * xx).sum() / total)) if total > 0 else 0
        v = np.roll(img, (dy, dx), axis=(0, 1)).ravel()
        v = v - v.mean()
        out[i] = v / (np.linalg.norm(v) + 1e-6)
    return out


def _nearest_is(queries: np.ndarray, refs: np.ndarray, ref_labels: np.ndarray, label: int,
                exclude: Optional[np.ndarray] = None) -> float:
    """Of the queries, the share whose nearest reference (cosine) has `label`; `exclude[i]` is query i's own
    index among the references (leave-one-out)."""
    sim = queries @ refs.T
    if exclude is not None:
        sim[np.arange(len(queries)), exclude] = -np.inf
    return float((ref_labels[sim.argmax(1)] == label).mean())


def mirror_contrast(a: np.ndarray, b: np.ndarray, others: Optional[np.ndarray] = None) -> Dict[str, float]:
    """How much more often a mirrored image of a (of b) has its nearest neighbour in the other class than the
    image itself does, the references being a's, b's and `others`' images (the rest of the classes): near 0 for
    unrelated classes, near 1 when each class is the other's mirror image."""
    ga, gb = _grey(a), _grey(b)
    parts = [_centred(ga), _centred(gb)] + ([_centred(_grey(others))] if others is not None and len(others) else [])
    refs = np.concatenate(parts)
    labels = np.concatenate([np.full(len(x), i) for i, x in enumerate(parts)])
    ia, ib = np.arange(len(ga)), np.arange(len(ga), len(ga) + len(gb))
    flipped = (_nearest_is(_centred(ga[:, :, ::-1]), refs, labels, 1)
               + _nearest_is(_centred(gb[:, :, ::-1]), refs, labels, 0)) / 2
    plain = (_nearest_is(refs[ia], refs, labels, 1, ia) + _nearest_is(refs[ib], refs, labels, 0, ib)) / 2
    return {"flipped_to_other": round(flipped, 3), "plain_to_other": round(plain, 3),
            "contrast": round(flipped - plain, 3)}


def _centroid_accuracy(fa: np.ndarray, fb: np.ndarray) -> float:
    """Leave-one-out accuracy of a nearest-centroid rule telling a from b on features fa, fb (N, D)."""
    ca, cb = fa.sum(0), fb.sum(0)
    na, nb = len(fa), len(fb)

    def right(f, own_sum, n_own, other_centroid):
        own = (own_sum - f) / max(1, n_own - 1)
        return (np.linalg.norm(f - own, axis=1) < np.linalg.norm(f - other_centroid, axis=1)).sum()
    return float(right(fa, ca, na, cb / nb) + right(fb, cb, nb, ca / na)) / (na + nb)


def _hue_features(x: np.ndarray) -> np.ndarray:
    """Per image, the saturation-weighted histogram of hue (12 bins): colour, whatever the brightness or shape."""
    rgb = x[..., :3] / 255.0
    mx, mn = rgb.max(-1), rgb.min(-1)
    chroma = mx - mn
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.where(chroma > 0, chroma, 1)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    bins = np.minimum((hue * 12).astype(int), 11)
    out = np.zeros((len(x), 12), np.float32)
    for i in range(len(x)):
        out[i] = np.bincount(bins[i].ravel(), weights=chroma[i].ravel(), minlength=12)
    return out / (out.sum(1, keepdims=True) + 1e-6)


def _grey_features(x: np.ndarray) -> np.ndarray:
    """Per image, the brightness histogram (16 bins) and the centred grey shape: all that greyscale keeps."""
    g = _grey(x)
    hist = np.stack([np.histogram(img, bins=16, range=(0, 256))[0] for img in g]).astype(np.float32) / g[0].size
    return np.concatenate([hist * 4, _centred(g)], axis=1)


def colour_separation(a: np.ndarray, b: np.ndarray) -> Dict[str, float]:
    """Nearest-centroid accuracy telling a from b by hue, and by what greyscale keeps (0.5: alike)."""
    return {"colour_acc": round(_centroid_accuracy(_hue_features(a), _hue_features(b)), 3),
            "grey_acc": round(_centroid_accuracy(_grey_features(a), _grey_features(b)), 3)}


def _spectrum(x: np.ndarray) -> np.ndarray:
    """Log power spectrum of each grey image: where its detail is, whatever its place in the image."""
    g = _grey(x)
    f = np.abs(np.fft.rfft2(g - g.mean(axis=(1, 2), keepdims=True)))
    return np.log1p(f).reshape(len(x), -1)


def _downscaled(x: np.ndarray, factor: int) -> np.ndarray:
    """Area downscaling by an integer factor, then nearest upscaling back: what a model fed the small size sees."""
    n, h, w, c = x.shape
    h2, w2 = h // factor, w // factor
    small = x[:, :h2 * factor, :w2 * factor].reshape(n, h2, factor, w2, factor, c).mean((2, 4))
    return small.repeat(factor, 1).repeat(factor, 2)


def detail_separation(a: np.ndarray, b: np.ndarray, factor: int) -> Dict[str, float]:
    """Nearest-centroid accuracy telling a from b by their spectra at full size and at 1/factor of it."""
    return {"full_acc": round(_centroid_accuracy(_spectrum(a), _spectrum(b)), 3),
            "small_acc": round(_centroid_accuracy(_spectrum(_downscaled(a, factor)),
                                                  _spectrum(_downscaled(b, factor))), 3)}


# ---------------------------------------------------------------------------------------------- the rules
def flip_names(transforms: List[Dict[str, Any]]) -> List[str]:
    return [t["name"] for t in transforms if t.get("name") in FLIPS]


def colour_names(transforms: List[Dict[str, Any]]) -> List[str]:
    return [t["name"] for t in transforms if changes_colour(t)]


def _pairs_worth_explaining(summary) -> List:
    return [p for p in summary.pairs if p.rate >= MIN_PAIR_RATE and p.a_as_b + p.b_as_a >= MIN_PAIR_ERRORS]


def _finding(rule, group, edit, evidence, explained, actionable) -> Finding:
    return Finding(rule, group, edit, "; ".join(evidence), [[p.a, p.b] for p in explained],
                   round(sum(p.share_of_errors for p in explained), 4), actionable)


def diagnose(predictions: Dict[str, Any], images: Images, pipeline: Dict[str, Dict[str, Any]],
             channels: int) -> List[Finding]:
    """The findings for an incumbent: its validation predictions ({"classes", "y_true", "y_pred"}), its training
    images at a size (`images(size)`), its pipeline and the images' channels."""
    summary = confusion_summary(predictions)
    if summary is None or not summary.errors:
        return []
    augment, trainer = pipeline["augment"], pipeline["trainer"]
    transforms = augment.get("train_transforms") or []
    size = int(augment["image_size"])
    pairs = _pairs_worth_explaining(summary)
    found: List[Finding] = []
    if pairs:
        at_size = images(size)
        mirrored, coloured, evidence_m, evidence_c = [], [], [], []
        for p in pairs:
            a, b = at_size.of(p.a), at_size.of(p.b)
            if len(a) < 4 or len(b) < 4:
                continue
            m = mirror_contrast(a, b, at_size.besides(p.a, p.b))
            if m["contrast"] >= MIRROR_CONTRAST and m["flipped_to_other"] >= MIRROR_FLIPPED:
                mirrored.append(p)
                evidence_m.append(f"{p.a}/{p.b}: {p.a_as_b + p.b_as_a} of {p.images} confused; a mirrored image "
                                  f"is nearest the other class {m['flipped_to_other']:.0%} of the time "
                                  f"(unmirrored {m['plain_to_other']:.0%})")
            if channels == 3:
                c = colour_separation(a, b)
                if c["colour_acc"] >= APART and c["grey_acc"] <= ALIKE:
                    coloured.append(p)
                    evidence_c.append(f"{p.a}/{p.b}: {p.a_as_b + p.b_as_a} of {p.images} confused; told apart by "
                                      f"hue {c['colour_acc']:.0%}, in greyscale {c['grey_acc']:.0%}")
        if mirrored:
            flips = flip_names(transforms)
            found.append(_finding("mirror_pairs", "augment",
                                  f"remove {', '.join(flips)}: a mirror image is another class here, and add no flip"
                                  if flips else "add no flip: a mirror image is another class here",
                                  evidence_m, mirrored, bool(flips)))
        if coloured:
            hues = colour_names(transforms)
            found.append(_finding("colour_pairs", "augment",
                                  f"remove {', '.join(hues)}: colour is the label here, and add no hue, "
                                  f"saturation or greyscale change" if hues else
                                  "add no hue, saturation or greyscale change: colour is the label here",
                                  evidence_c, coloured, bool(hues)))
        detailed, evidence_d = [], []
        for p in pairs:
            a, b = at_size.of(p.a), at_size.of(p.b)
            if len(a) < 4 or len(b) < 4:
                continue
            d = detail_separation(a, b, 2)
            if d["full_acc"] >= APART and d["full_acc"] - d["small_acc"] >= DETAIL_DROP:
                detailed.append(p)
                evidence_d.append(f"{p.a}/{p.b}: {p.a_as_b + p.b_as_a} of {p.images} confused; told apart "
                                  f"{d['full_acc']:.0%} at {size}px, {d['small_acc']:.0%} at {size // 2}px")
        if detailed:
            bigger = min(2 * size, MAX_SIZE)
            found.append(_finding("detail_pairs", "augment",
                                  f"image_size {size} -> {bigger}: the classes differ in detail a few pixels wide, "
                                  f"which a network's first strides average away" if bigger > size else
                                  "keep the image size: the classes differ in detail a few pixels wide",
                                  evidence_d, detailed, bigger > size))
            found[-1].at_size = size
    found += _imbalance(predictions, trainer)
    return found


def _imbalance(predictions: Dict[str, Any], trainer: Dict[str, Any]) -> List[Finding]:
    y_true = np.asarray(predictions["y_true"])
    y_pred = np.asarray(predictions["y_pred"])
    k = len(predictions["classes"])
    counts = np.bincount(y_true, minlength=k)
    present = counts > 0
    if present.sum() < 2:
        return []
    median = np.median(counts[present])
    rare, common = present & (counts <= median / 3), present & (counts >= median)
    if not rare.any() or not common.any():
        return []
    acc = np.bincount(y_true, weights=(y_true == y_pred), minlength=k) / np.maximum(counts, 1)
    gap = float(acc[common].mean() - acc[rare].mean())
    if gap < RARE_GAP:
        return []
    names = [predictions["classes"][c] for c in np.flatnonzero(rare)][:5]
    balanced = trainer.get("balance", "none") != "none"
    return [Finding("imbalance", "trainer", "balance: sampler (every class drawn equally often in training)",
                    f"the {int(rare.sum())} rare classes ({', '.join(map(str, names))}, at most {int(median // 3)} "
                    f"validation images each) are right {acc[rare].mean():.0%} of the time, the common ones "
                    f"{acc[common].mean():.0%}", [], 0.0, not balanced)]


def actionable(finding: Dict[str, Any], pipeline: Dict[str, Dict[str, Any]]) -> bool:
    """Whether a (journaled) finding still asks something of this pipeline: a flip or colour change to remove, an
    image size not yet raised past the one it was found at, an unbalanced trainer."""
    transforms = pipeline["augment"].get("train_transforms") or []
    rule = finding["rule"]
    if rule == "mirror_pairs":
        return bool(flip_names(transforms))
    if rule == "colour_pairs":
        return bool(colour_names(transforms))
    if rule == "detail_pairs":
        size = int(pipeline["augment"]["image_size"])
        return size <= (finding.get("at_size") or size) and size < MAX_SIZE
    if rule == "imbalance":
        return pipeline["trainer"].get("balance", "none") == "none"
    return False


def training_images(ds, data_root, cache_dir) -> Images:
    """`images(size)`: up to PER_CLASS training images of every class at `size` (from the data cache the rounds
    fill; the validation and test images are never read), remembered per size."""
    from improve.data.datamodule import ImageDataModule

    memo: Dict[int, ClassImages] = {}

    def images(size: int) -> ClassImages:
        if size not in memo:
            splits = ImageDataModule(ds, size, cache_dir, data_root, batch_size=64).prepare()
            array, labels = splits.cached.arrays("train")
            train = np.sort(splits.train)
            pick = np.sort(np.concatenate([train[labels[train] == c][:PER_CLASS]
                                           for c in range(len(splits.class_names))]))
            memo[size] = ClassImages(np.asarray(array[pick]), labels[pick], list(splits.class_names))
        return memo[size]
    return images

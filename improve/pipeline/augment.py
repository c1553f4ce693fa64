"""The `augment` group made real: albumentations train transforms by name, MixUp/CutMix, normalisation.

Eval-time geometry (resize the shorter side, centre-crop) is applied once, when the
cache is built (`cache.fit_square`); normalisation happens on the device batch
(`module.Classifier`), so evaluation needs no per-image work at all.
"""
import difflib
import inspect
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence, Tuple

import albumentations as A
import numpy as np

from improve.config.names import UnknownName
from improve.pipeline.policies import POLICY_PARAMS, build_policy

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FIXED_SIZE_CROPS = ("RandomResizedCrop", "RandomSizedCrop", "RandomCrop", "CenterCrop")  # cut image_size windows
FLIPS = ("HorizontalFlip", "VerticalFlip", "Transpose", "D4", "SquareSymmetry")  # each can make a mirror image
COLOUR_TRANSFORMS = ("ToGray", "HueSaturationValue", "ChannelShuffle", "RGBShift", "ChannelDropout", "ToSepia",
                     "FancyPCA", "PlanckianJitter", "ColorJitter")  # each can move an image's hue or drop it


def changes_colour(t: Dict[str, Any]) -> bool:
    """Whether a transform can change an image's hue or drop its colour (ColorJitter only with hue or saturation)."""
    if t.get("name") == "ColorJitter":
        return bool(t.get("hue") or t.get("saturation"))
    return t.get("name") in COLOUR_TRANSFORMS


@lru_cache(maxsize=1)
def transform_names() -> Tuple[str, ...]:
    """Albumentations image transforms that may be named in `augment.train_transforms`."""
    names = []
    for name in dir(A):
        obj = getattr(A, name)
        if (isinstance(obj, type) and issubclass(obj, (A.ImageOnlyTransform, A.DualTransform))
                and not name.endswith("3D") and obj not in (A.ImageOnlyTransform, A.DualTransform)):
            names.append(name)
    return tuple(sorted(names)) + tuple(POLICY_PARAMS)  # plus the named policies (improve/policies.py)


def _accepted_params(cls) -> Optional[set]:
    sig = inspect.signature(cls.__init__)
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n for n in sig.parameters if n != "self"}


def build_transform(spec: Dict[str, Any], where: str):
    """One albumentations transform from {name: ClassName, param: value, ...}; errors name `where`."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(f"{where}={spec!r}: each transform must be a mapping with a 'name' key, "
                         f"e.g. {{name: HorizontalFlip, p: 0.5}}")
    params = {k: v for k, v in spec.items() if k != "name"}
    name = spec["name"]
    if name not in transform_names():
        close = difflib.get_close_matches(name, transform_names(), n=5, cutoff=0.5)
        raise UnknownName("transform", f"{where}.name={name!r} is not an albumentations image transform"
                          + (f"; did you mean one of {close}?" if close else f"; choose from {list(transform_names())}"))
    if name in POLICY_PARAMS:
        return build_policy(spec, where)
    cls = getattr(A, name)
    accepted = _accepted_params(cls)
    unknown = sorted(set(params) - accepted) if accepted is not None else []
    if unknown:
        raise ValueError(f"{where} ({name}): unknown parameter(s) {unknown}; {name} accepts {sorted(accepted)}")
    try:
        return cls(**params)
    except Exception as err:  # albumentations validates parameters with pydantic
        detail = " ".join(str(err).split())
        raise ValueError(f"{where} ({name}) rejected its parameters {params}: {detail}") from None


def build_train_transform(train_transforms: Optional[Sequence[Dict[str, Any]]]) -> Optional[A.Compose]:
    """The training transform pipeline from `augment.train_transforms`, or None when it is empty."""
    specs = list(train_transforms or [])
    if not specs:
        return None
    return A.Compose([build_transform(dict(s), f"augment.train_transforms[{i}]") for i, s in enumerate(specs)])


@dataclass
class TrainAugment:
    """The training transform and the side of the cached images it reads (image_size, or more with a crop margin)."""

    transform: Optional[A.Compose]
    input_size: int


def train_image_size(augment: Any) -> int:
    """image_size * augment.crop_margin when a transform crops a fixed-size window (crops then cut from more pixels
    than evaluation sees at image_size), else image_size."""
    margin = augment.get("crop_margin", 1.0)
    crops = any(t.get("name") in FIXED_SIZE_CROPS for t in augment.get("train_transforms") or [])
    return int(round(augment["image_size"] * margin)) if crops and margin > 1 else int(augment["image_size"])


class FitMargin(A.ImageOnlyTransform):
    """Last step with a crop margin: an image the crop left at the cached size (its p < 1) is resized to
    image_size; any other size passes unchanged, so a wrong crop size still fails the output check."""

    def __init__(self, input_size: int, size: int):
        super().__init__(p=1.0)
        self.input_size, self.size = input_size, size

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        if img.shape[:2] != (self.input_size, self.input_size):
            return img
        import cv2

        out = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return out.reshape(out.shape[:2] + img.shape[2:])


def train_augment(augment: Any) -> TrainAugment:
    """`augment.train_transforms` built for the images they read: with a crop margin, an image that leaves the
    pipeline uncropped is resized to image_size last."""
    size, input_size = int(augment["image_size"]), train_image_size(augment)
    transform = build_train_transform(augment.get("train_transforms"))
    if transform is not None and input_size != size:
        transform = A.Compose([*transform.transforms, FitMargin(input_size, size)])
    return TrainAugment(transform, input_size)


def check_transform_output(transform, image_size: int, channels: int, seed: int = 0,
                           input_size: Optional[int] = None) -> None:
    """Run the pipeline on a dummy image (of input_size, default image_size): it must output image_size, keeping the
    channel count."""
    if transform is None:
        return
    rng = np.random.default_rng(seed)
    side = input_size or image_size
    img = rng.integers(0, 256, (side, side, channels), dtype=np.uint8)
    try:
        out = transform(image=img)["image"]
    except Exception as err:
        raise ValueError(f"augment.train_transforms fail on a {side}x{side}x{channels} image: "
                         f"{type(err).__name__}: {err}") from None
    if out.shape[:2] != (image_size, image_size) or (out.size != image_size * image_size * channels):
        raise ValueError(f"augment.train_transforms turn a {side}x{side}x{channels} image into "
                         f"{tuple(out.shape)}; size-changing transforms must output augment.image_size "
                         f"(e.g. RandomResizedCrop size: [{image_size}, {image_size}])")


def normalization(mean: Optional[Sequence[float]], std: Optional[Sequence[float]], channels: int,
                  model_mean: Optional[Sequence[float]] = None,
                  model_std: Optional[Sequence[float]] = None) -> Tuple[List[float], List[float]]:
    """Per-channel mean/std: `augment.mean`/`augment.std`, else the model's default (else ImageNet's), averaged for
    grayscale."""
    mean = list(mean) if mean is not None else list(model_mean or IMAGENET_MEAN)
    std = list(std) if std is not None else list(model_std or IMAGENET_STD)
    for key, values in (("augment.mean", mean), ("augment.std", std)):
        if len(values) == 1:
            values *= channels
        if len(values) == 3 and channels == 1:
            values[:] = [sum(values) / 3]
        if len(values) != channels:
            raise ValueError(f"{key}={values} has {len(values)} values but the images have {channels} channel(s)")
    if min(std) <= 0:
        raise ValueError(f"augment.std={std} must be positive")
    return mean, std


def build_mixup(num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, mix_prob: float = 1.0,
                switch_prob: float = 0.5, label_smoothing: float = 0.0):
    """timm's batch-level MixUp/CutMix, or None when both alphas are 0."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, prob=mix_prob, switch_prob=switch_prob,
                 mode="batch", label_smoothing=label_smoothing, num_classes=num_classes)


def flips_are_safe(train_transforms: Optional[Sequence[Dict[str, Any]]]) -> bool:
    """A mirror keeps the label only when training itself flips (orientation and text tasks never do)."""
    return any(t.get("name") == "HorizontalFlip" for t in train_transforms or [])


def tta_views(x, flip_safe: bool) -> list:
    """Label-safe test-time views of a N,C,H,W batch: the batch, plus its mirror when flips are safe, else 2-pixel
    shifts in the four directions."""
    return [x] + ([x.flip(-1)] if flip_safe else [x.roll(s, d) for s in (-2, 2) for d in (-1, -2)])


def tta_probs(model, x, flip_safe: bool):
    """Class probabilities averaged over the label-safe views of a batch (what validation, test and predict use
    when augment.tta is on)."""
    import torch

    return torch.stack([model(v).softmax(-1) for v in tta_views(x, flip_safe)]).mean(0)

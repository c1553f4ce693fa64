"""Named augmentation policies: RandAugment and TrivialAugment as one `augment.train_transforms` entry.

    train_transforms: [{name: RandAugment, num_ops: 2, magnitude: 5}]
    train_transforms: [{name: TrivialAugment, geometric: false}]

Each is albumentations' `SomeOf` over label-safe operations built from albumentations transforms: photometric
ones (auto-contrast, equalise, posterise, solarise, brightness, contrast, sharpness) always, geometric ones
(rotate, shear, translate) unless `geometric: false` (orientation tasks: a rotation would change the label).
No flips: a mirror is its own transform (HorizontalFlip) where it is safe. `magnitude` (0-10) sets the strength
of every operation, sampled within +-magnitude for signed ones; TrivialAugment applies one operation a time at
the full range (its strength is drawn each time), RandAugment `num_ops` of them at `magnitude`.
"""
from typing import Any, Dict, List

import albumentations as A

POLICY_PARAMS = {
    "RandAugment": {"num_ops": 2, "magnitude": 5.0, "geometric": True, "p": 1.0},
    "TrivialAugment": {"magnitude": 10.0, "geometric": True, "p": 1.0},
}


def _ops(m: float, geometric: bool) -> List[A.BasicTransform]:
    """The operations at strength m in [0, 1]."""
    ops: List[A.BasicTransform] = [
        A.NoOp(p=1.0),
        A.AutoContrast(p=1.0),
        A.Equalize(p=1.0),
        A.Posterize(num_bits=(max(1, round(8 - 4 * m)), 8), p=1.0),
        A.Solarize(threshold_range=(1.0 - 0.9 * m, 1.0), p=1.0),
        A.RandomBrightnessContrast(brightness_limit=(-0.9 * m, 0.9 * m), contrast_limit=0.0, p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=(-0.9 * m, 0.9 * m), p=1.0),
        A.Sharpen(alpha=(0.0, max(1e-3, 0.9 * m)), lightness=(1.0, 1.0), p=1.0),
    ]
    if geometric:
        ops += [
            A.Affine(rotate=(-30 * m, 30 * m), p=1.0),
            A.Affine(shear={"x": (-17 * m, 17 * m), "y": (0, 0)}, p=1.0),
            A.Affine(shear={"x": (0, 0), "y": (-17 * m, 17 * m)}, p=1.0),
            A.Affine(translate_percent={"x": (-0.3 * m, 0.3 * m), "y": (0, 0)}, p=1.0),
            A.Affine(translate_percent={"x": (0, 0), "y": (-0.3 * m, 0.3 * m)}, p=1.0),
        ]
    return ops


def build_policy(spec: Dict[str, Any], where: str) -> A.SomeOf:
    """The policy named by spec['name'], its parameters checked; errors name `where` and the accepted values."""
    name = spec["name"]
    defaults = POLICY_PARAMS[name]
    params = {k: v for k, v in spec.items() if k != "name"}
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"{where} ({name}): unknown parameter(s) {unknown}; {name} accepts {sorted(defaults)}")
    v = {**defaults, **params}
    if not isinstance(v["magnitude"], (int, float)) or isinstance(v["magnitude"], bool) \
            or not 0 <= v["magnitude"] <= 10:
        raise ValueError(f"{where}.magnitude={v['magnitude']!r}: the strength must be a number from 0 to 10")
    if not isinstance(v["geometric"], bool):
        raise ValueError(f"{where}.geometric={v['geometric']!r} must be true or false (false for orientation tasks)")
    if not isinstance(v["p"], (int, float)) or not 0 <= v["p"] <= 1:
        raise ValueError(f"{where}.p={v['p']!r}: the probability must be from 0 to 1")
    ops = _ops(v["magnitude"] / 10, v["geometric"])
    n = v.get("num_ops", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(ops):
        raise ValueError(f"{where}.num_ops={n!r}: operations applied per image, 1 to {len(ops)}")
    return A.SomeOf(ops, n=n, replace=False, p=v["p"])

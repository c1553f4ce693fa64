"""The dataset profile the agents start from: counts, classes, balance, sizes, channels, statistics.

It reads only the training part of the train/val/test splits (the test split is never shown
to agents), plus the user's `dataset.description`, the constraints and whether pretrained
weights can be downloaded from here.
"""
import os
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from improve.data.class_names import name_structure
from improve.data.datamodule import ImageDataModule

PROFILE_SIZE = 32  # cache resolution used for the statistics (cheap; the default pipeline's size)


def pretrained_reachable(setting: Any = "auto") -> bool:
    """Whether timm's hub can be reached: `loop.pretrained_reachable` true/false, or auto from the environment."""
    if isinstance(setting, bool):
        return setting
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        return False
    import socket

    try:
        socket.setdefaulttimeout(3)
        socket.getaddrinfo("huggingface.co", 443)
        return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(None)


def dataset_profile(ds, data_root: Optional[Path], cache_dir: Path, constraints: Optional[Dict] = None,
                    reachable: bool = False) -> Dict[str, Any]:
    dm = ImageDataModule(ds, PROFILE_SIZE, cache_dir, data_root, batch_size=64)
    splits = dm.prepare()
    images, labels = splits.cached.arrays("train")
    y = labels[splits.train]
    counts = np.bincount(y, minlength=len(splits.class_names))
    sample = np.asarray(images[np.sort(splits.train[:: max(1, len(splits.train) // 2000)])], dtype=np.float32) / 255
    return {
        "name": ds.name,
        "description": ds.description,
        "num_classes": len(splits.class_names),
        "class_names": splits.class_names[:50],
        "class_structure": name_structure(splits.class_names),  # shared tokens, numbered names, left/right pairs
        "channels": splits.cached.channels,
        "train_images": int(len(splits.train)),
        "val_images": int(len(splits.val)),
        "images_per_class": {"min": int(counts.min()), "median": int(np.median(counts)), "max": int(counts.max())},
        "imbalance_ratio": round(float(counts.max() / max(1, counts.min())), 2),
        "native_size": splits.cached.native_size,
        "pixel_mean": [round(float(v), 3) for v in sample.mean(axis=(0, 1, 2))],
        "pixel_std": [round(float(v), 3) for v in sample.std(axis=(0, 1, 2))],
        "skipped_files": len(splits.cached.skipped),
        "constraints": {k: v for k, v in (constraints or {}).items() if v},
        "pretrained_reachable": reachable,
    }

"""A trained pipeline as a function from images to class scores: what predict, export and the final test use.

Images get exactly the evaluation path of training: shorter side resized and centre-cropped
to `augment.image_size` (`cache.fit_square`), then normalised inside the model.
"""
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from improve.config.paths import CHECKPOINT, project_path
from improve.data.cache import fit_square
from improve.pipeline.augment import flips_are_safe, tta_probs
from improve.pipeline.module import Classifier


def as_tensor(batch: np.ndarray) -> torch.Tensor:
    """uint8 N,H,W,C images as the float N,C,H,W pixels in 0..255 that `Normalised` takes."""
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()


class Normalised(nn.Module):
    """The network with its normalisation: float N,C,H,W pixels in 0..255 -> logits. What gets exported."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        self.net = classifier.net
        self.register_buffer("mean", classifier.mean.clone())
        self.register_buffer("std", classifier.std.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


class Averaged(nn.Module):
    """An ensemble as one module: the members' class probabilities averaged, returned as log-probabilities (their
    softmax is the average, so it reads like logits). What an ensemble exports."""

    def __init__(self, models: List[nn.Module]):
        super().__init__()
        self.models = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x).softmax(-1) for m in self.models]).mean(0).log()


class Predictor:
    def __init__(self, config: DictConfig, checkpoint: Path):
        self.cfg = config
        self.classifier = Classifier.load_from_checkpoint(str(checkpoint), map_location="cpu").eval()
        self.model = Normalised(self.classifier).eval()
        self.class_names: List[str] = list(self.classifier.hparams["class_names"])
        self.channels = int(self.classifier.hparams["in_chans"])
        self.size = int(config.augment.image_size)
        self.flip_safe = flips_are_safe(config.augment.train_transforms)
        self.tta = bool(config.augment.get("tta", False))  # the pipeline validated with TTA: predict uses it too

    @classmethod
    def from_run(cls, run_dir: Path) -> "Predictor":
        """The best pipeline of a refinement run (best/, or its kept ensemble in best/ensemble/), or of a single
        training run (checkpoints/best.ckpt)."""
        run_dir = Path(run_dir)
        ensemble = run_dir / "best" / "ensemble"
        if (ensemble / "ensemble.json").is_file():
            import json

            rounds = json.loads((ensemble / "ensemble.json").read_text())["members"]
            return EnsemblePredictor([cls(OmegaConf.load(ensemble / f"{r:02d}" / "config.yaml"),
                                          ensemble / f"{r:02d}" / "best.ckpt") for r in rounds])
        if (run_dir / "best" / "best.ckpt").is_file():
            return cls(OmegaConf.load(run_dir / "best" / "config.yaml"), run_dir / "best" / "best.ckpt")
        if (run_dir / CHECKPOINT).is_file():
            return cls(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), run_dir / CHECKPOINT)
        raise FileNotFoundError(f"run={run_dir}: no best/best.ckpt (refinement run) or checkpoints/best.ckpt "
                                f"(training run) there; give the directory a run wrote")

    def load_image(self, path: str) -> Optional[np.ndarray]:
        try:
            with Image.open(path) as img:
                return fit_square(img, self.size, self.channels)
        except Exception:  # unreadable: the caller reports it
            return None

    @torch.no_grad()
    def scores(self, batch: np.ndarray, tta: bool = False) -> np.ndarray:
        """Class probabilities for uint8 N,H,W,C images; `tta` averages label-safe variants."""
        x = as_tensor(batch)
        probs = tta_probs(self.model, x, self.flip_safe) if tta or self.tta else self.model(x).softmax(-1)
        return probs.numpy()

    def predict_arrays(self, images: np.ndarray, batch_size: int = 128, tta: bool = False) -> np.ndarray:
        return np.concatenate([self.scores(images[i:i + batch_size], tta) for i in range(0, len(images), batch_size)]) \
            if len(images) else np.zeros((0, len(self.class_names)), np.float32)

    def predict_files(self, files: Iterable[str], batch_size: int = 64, tta: bool = False,
                      progress=None) -> Tuple[Dict[str, np.ndarray], List[str]]:
        """{file: probabilities} for the readable files, and the list of unreadable ones."""
        files = list(files)
        out: Dict[str, np.ndarray] = {}
        bad: List[str] = []
        for i in range(0, len(files), batch_size):
            chunk = files[i:i + batch_size]
            loaded = [(f, self.load_image(f)) for f in chunk]
            bad += [f for f, a in loaded if a is None]
            good = [(f, a) for f, a in loaded if a is not None]
            if good:
                probs = self.scores(np.stack([a for _, a in good]), tta)
                out.update({f: p for (f, _), p in zip(good, probs)})
            if progress is not None:
                progress(len(chunk))
        return out, bad


class EnsemblePredictor(Predictor):
    """Several pipelines of one run (same classes and image size) as one predictor: probabilities averaged, each
    member with its own normalisation and test-time augmentation."""

    def __init__(self, members: List[Predictor]):
        sizes = {(m.size, m.channels, tuple(m.class_names)) for m in members}
        if len(sizes) != 1:
            raise ValueError(f"ensemble members must share image size, channels and classes; got {sorted(sizes)}")
        self.__dict__.update(members[0].__dict__)  # cfg, classes, size, channels: the first member's
        self.members = members
        self.model = Averaged([m.model for m in members]).eval()

    def scores(self, batch: np.ndarray, tta: bool = False) -> np.ndarray:
        return np.mean([m.scores(batch, tta) for m in self.members], axis=0)


def split_images(config: DictConfig, split: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cached images (uint8 N,H,W,C) and labels of the run's `split` (train, val or test) at the pipeline's
    image size, in a fixed order, with their indices in the cache."""
    from improve.data.datamodule import ImageDataModule

    dm = ImageDataModule(config.dataset, config.augment.image_size, project_path(config.paths.cache_dir),
                         project_path(config.dataset.path), batch_size=128)
    splits = dm.prepare()
    images, labels = splits.cached.arrays(splits.test_split if split == "test" else "train")
    order = np.sort({"train": splits.train, "val": splits.val, "test": splits.test}[split])
    return np.asarray(images[order]), labels[order], order


def predict_split(config: DictConfig, checkpoint: Optional[Path], split: str = "test",
                  predictor: Optional[Predictor] = None) -> Dict[str, Any]:
    """Predictions of a checkpoint (or of a ready predictor, e.g. an ensemble) on the run's test or validation
    split, image by image in a fixed order: {"classes", "y_true", "y_pred", "acc"}. Two checkpoints of one run are
    compared on the same images."""
    predictor = predictor or Predictor(config, checkpoint)
    images, y_true, order = split_images(config, "test" if split == "test" else "val")
    y_pred = predictor.predict_arrays(images).argmax(1)
    return {"classes": predictor.class_names, "index": order.tolist(), "y_true": y_true.tolist(),
            "y_pred": y_pred.tolist(),
            "acc": float((y_pred == y_true).mean()) if len(y_true) else None}
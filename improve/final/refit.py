"""`loop.refit`: the final pipeline retrained on the training and validation images together.

Validation chose the pipeline and how long it trains; once chosen, its images are worth more as training data than
as a judge. The refit trains the incumbent's pipeline from scratch (no warm start, no early stopping, no pruning)
on training + validation images for as many epochs as the incumbent's warm-start chain trained in all (round 0's 4
and a final phase's 8: 12), in one schedule, and keeps its last epoch. It becomes the final model: tested once on
the test split, exported, used by predict; the `end` event, the console and report.md show its test accuracy beside
the selected model's. Validation cannot judge it (it has seen those images), so nothing decides between the two:
a user who asks for a refit gets it. A refit whose training fails leaves the selected model as the final one, with
one line saying why.
"""
import copy
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from improve.config.paths import CHECKPOINT, round_dir
from improve.refine.runner import Runner, run_metrics_or_none
from improve.refine.warm_start import parent_round

REFIT_DIR = "refit"  # <run dir>/refit: its training run


@dataclass
class Refit:
    """What the refit did: `status` ok (the final model) or failed (the selected model stays)."""

    status: str
    epochs: int  # the epochs it trained: those of the incumbent's warm-start chain
    train_images: Optional[int]  # training + validation images it learned from
    seconds: float
    error: Optional[str] = None
    test_acc: Optional[float] = None  # set by the end of run, which tests it
    selected_test_acc: Optional[float] = None  # the model validation selected, on the same test split

    def journal(self) -> Dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def chain_epochs(run_dir: Path, r: int) -> int:
    """The epochs round r's weights were trained for in all: its own and those of the rounds it warm-started from."""
    total, seen = 0, set()
    while r is not None and r not in seen:
        seen.add(r)
        metrics = run_metrics_or_none(round_dir(run_dir, r)) or {}
        total += len(metrics.get("epochs") or [])
        r = parent_round(run_dir, r)
    return total


def refit_pipeline(pipeline: Dict[str, Dict[str, Any]], epochs: int) -> Dict[str, Dict[str, Any]]:
    """The pipeline trained from scratch for `epochs` in one schedule, to its end."""
    out = copy.deepcopy(pipeline)
    out["trainer"].update(warm_start=False, epochs=epochs, early_stopping=0, lr_find=False)
    return out


def refit_config(runner: Runner, pipeline: Dict[str, Dict[str, Any]], epochs: int, out: Path) -> Dict[str, Any]:
    """The refit's complete train config, writing into `out`: training + validation images (dataset.refit)."""
    config = runner.config(refit_pipeline(pipeline, epochs), out)
    return {**config, "dataset": {**config["dataset"], "refit": True}}


def train_refit(run_dir: Path, incumbent: Dict[str, Any], runner: Runner) -> Refit:
    """Train the incumbent's pipeline on training + validation images in <run dir>/refit; its checkpoint is
    refit/checkpoints/best.ckpt when the result's status is ok."""
    epochs = max(chain_epochs(run_dir, incumbent["round"]), 1)
    out = run_dir / REFIT_DIR
    shutil.rmtree(out, ignore_errors=True)  # an interrupted refit starts afresh
    start = time.perf_counter()
    metrics = runner.run(refit_config(runner, incumbent["pipeline"], epochs, out), out, folds=0)  # one run, all images
    seconds = round(time.perf_counter() - start, 1)
    ok = metrics.get("status") == "ok" and (out / CHECKPOINT).is_file()
    images = (metrics.get("dataset") or {}).get("train")
    return Refit("ok" if ok else "failed", epochs, images, seconds,
                 None if ok else (metrics.get("error") or f"no checkpoint written in {out / CHECKPOINT}"))


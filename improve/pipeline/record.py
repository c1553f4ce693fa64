"""`metrics.json`: the record of one training run, written atomically as it goes.

The loop, sweeps and people read it; its schema is documented in docs/outputs.md (`metrics.json`).
A Lightning callback on rank zero fills the per-epoch history, so the file is current
after every epoch and survives a crash, whatever strategy ran the epochs.
"""
import json
import math
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only

from improve.files import write_json

SCHEMA_VERSION = 1


def _num(value: Any) -> Optional[float]:
    if value is None:
        return None
    value = float(value.item() if hasattr(value, "item") else value)
    return value if math.isfinite(value) else None


class RunRecord:
    """The content of metrics.json and where it lives."""

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / "metrics.json"
        self.data: Dict[str, Any] = {
            "schema": SCHEMA_VERSION, "status": "running", "error": None, "error_type": None, "traceback": None,
            "epochs": [], "best_val_acc": None, "best_epoch": None, "test_acc": None, "test_loss": None,
            "num_params": None, "dataset": None,
            "timings": {"setup_s": None, "epoch_s": [], "fit_s": None, "test_s": None, "total_s": None},
            "throughput": {"train_images_per_s": None},
            "checkpoint": None, "last_checkpoint": None,
        }
        self.started = time.perf_counter()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def save(self) -> None:
        if rank_zero_only.rank != 0:  # DDP: every rank runs train(); only rank zero keeps the record
            return
        self.data["timings"]["total_s"] = round(time.perf_counter() - self.started, 3)
        write_json(self.path, self.data)

    def reload(self) -> None:
        """Take what is on disk: epochs recorded by another process (ddp_spawn ranks) or before a crash."""
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())

    def add_epoch(self, row: Dict[str, Any]) -> None:
        epochs = [e for e in self.data["epochs"] if e["epoch"] != row["epoch"]] + [row]
        self.data["epochs"] = epochs
        self.data["timings"]["epoch_s"] = [e["seconds"] for e in epochs]
        scored = [e for e in epochs if e.get("val_acc") is not None]
        if scored:
            best = max(scored, key=lambda e: (e["val_acc"], -e["epoch"]))
            self.data["best_val_acc"], self.data["best_epoch"] = best["val_acc"], best["epoch"]
        seconds = sum(e["train_seconds"] for e in epochs)
        images = sum(e["train_images"] for e in epochs)
        self.data["throughput"]["train_images_per_s"] = round(images / seconds, 1) if seconds > 0 else None
        self.save()

    def fail(self, err: BaseException) -> None:
        trace = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        self.data.update(status="failed", error=str(err) or type(err).__name__, error_type=type(err).__name__,
                         traceback=trace[-4000:])
        if isinstance(err, OSError) and err.errno is not None:  # ENOSPC: the machine's fault, not the pipeline's
            self.data["errno"] = err.errno
        self.save()


class EpochHistory(L.Callback):
    """Records loss, accuracy, learning rate, time and images/s of every epoch into the RunRecord."""

    def __init__(self, record: RunRecord):
        self.record = record
        self._start = self._train_end = 0.0
        self._images = 0

    def on_train_epoch_start(self, trainer, pl_module):
        self._start, self._train_end, self._images = time.perf_counter(), 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._images += len(batch[1]) * trainer.world_size

    def on_validation_epoch_start(self, trainer, pl_module):
        if not trainer.sanity_checking and not self._train_end:
            self._train_end = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        now = time.perf_counter()
        m = trainer.callback_metrics
        lrs = [g["lr"] for opt in trainer.optimizers for g in opt.param_groups][:1]
        self.record.add_epoch({
            "epoch": trainer.current_epoch,
            "train_loss": _num(m.get("train/loss")), "train_acc": _num(m.get("train/acc")),
            "val_loss": _num(m.get("val/loss")), "val_acc": _num(m.get("val/acc")),
            "lr": lrs[0] if lrs else None,
            "seconds": round(now - self._start, 3),
            "train_seconds": round((self._train_end or now) - self._start, 3),
            "train_images": self._images,
        })


OVERFIT_GAP = 0.05  # train accuracy above val accuracy by more than this: overfitting


UNDERFIT_TRAIN = 0.9  # train accuracy below this at the end: underfitting


def curve_summary(metrics: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A few numbers that say how training went, and a diagnosis: overfit, underfit, unstable, or ok."""
    if not metrics:
        return {"diagnosis": "failed"}
    epochs = metrics.get("epochs") or []
    if metrics.get("status") != "ok":
        unstable = metrics.get("error_type") == "NonFiniteLossError"
        return {"diagnosis": "unstable" if unstable else "failed", "epochs_run": len(epochs),
                "error": (metrics.get("error") or "")[:300]}
    best = max(epochs, key=lambda e: e["val_acc"] or 0)
    last = epochs[-1]
    gap = (best["train_acc"] or 0) - (best["val_acc"] or 0)
    peaked_late = best["epoch"] >= len(epochs) - 2 and len(epochs) > 2
    if (last["train_acc"] or 0) < UNDERFIT_TRAIN or (peaked_late and gap < OVERFIT_GAP):
        diagnosis = "underfit"
    elif gap > OVERFIT_GAP or (last["val_loss"] or 0) > 1.3 * (best["val_loss"] or 1e9):
        diagnosis = "overfit"
    else:
        diagnosis = "ok"
    return {
        "diagnosis": diagnosis, "best_val_acc": metrics["best_val_acc"], "best_epoch": best["epoch"],
        "epochs_run": len(epochs), "train_acc": round(last["train_acc"] or 0, 4),
        "train_val_gap": round(gap, 4), "val_acc_curve": [round(e["val_acc"] or 0, 3) for e in epochs][-8:],
        "seconds": round(metrics["timings"].get("fit_s") or 0, 1),
        "headroom": headroom(epochs),
        **({"lr_found": metrics["lr_find"]["lr"]} if metrics.get("lr_find") else {}),
    }


FAR_TRAIN = 0.8  # train accuracy below this: far from what the model can fit


RISING = 0.03  # validation gain per epoch over the last epochs above which training stopped too early


NEAR_ERROR = 0.02  # validation error at or below this: near any ceiling, whatever the curves say


def headroom(epochs: List[Dict[str, Any]]) -> str:
    """'far' from the ceiling when training accuracy is low or validation was still climbing fast at the end (a
    decisive step pays), else 'near' (small steps). A validation error of NEAR_ERROR or less is near: no ceiling
    is further away than that (augmentation can hold training accuracy low on an easy task)."""
    last = epochs[-1]
    if 1 - max(e["val_acc"] or 0 for e in epochs) <= NEAR_ERROR:
        return "near"
    if (last["train_acc"] or 0) < FAR_TRAIN:
        return "far"
    vals = [e["val_acc"] or 0 for e in epochs[-3:]]
    rising = (vals[-1] - vals[0]) / max(1, len(vals) - 1)
    return "far" if rising > RISING and vals[-1] >= max(vals) else "near"

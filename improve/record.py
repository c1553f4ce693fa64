"""`metrics.json`: the record of one training run, written atomically as it goes.

The loop, sweeps and people read it; its schema is documented in README ("metrics.json").
A Lightning callback on rank zero fills the per-epoch history, so the file is current
after every epoch and survives a crash, whatever strategy ran the epochs.
"""
import json
import math
import os
import time
import traceback
from pathlib import Path
from typing import Any, Dict, Optional

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only

SCHEMA_VERSION = 1


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename): readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


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

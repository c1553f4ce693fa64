"""A training run stopped early: once it is clearly behind a reference curve (the `prune` key of a train config),
at a rung of successive halving (`stop_epoch`), or before its seconds run out (`deadline_s`).

The refinement loop sets it for a round (`refine/prune.py`): the best validation accuracy the incumbent had
reached at the same point of its training, epoch by epoch of this run, less a noise margin. The decision is
Optuna's `MedianPruner` with the reference as its one completed trial: at an epoch past `start`, this run is
pruned when its best validation accuracy so far is below the reference at that epoch. The run then ends as
EarlyStopping ends one (its best checkpoint, predictions and metrics.json are written as usual), and
metrics.json says `pruned: {epoch, epochs, val_acc, reference}`. A run is never pruned at its last epoch:
nothing would be saved.

A deadline is Lightning's `Timer` (it stops mid-epoch once the seconds are spent), ended sooner at an epoch's end
when the next epoch, as long as the longest so far, would not fit: the run then ends with a validated epoch and its
best checkpoint, and metrics.json says `deadline: {epoch, epochs, deadline_s, elapsed_s, epoch_s}`.
"""
from datetime import timedelta
from typing import Any, Dict, List, Optional

import lightning as L
from lightning.pytorch.callbacks import Timer


class PruneBehind(L.Callback):
    """Stop training when the run's best validation accuracy falls behind `reference` (one value per epoch of this
    run, None where there is nothing to compare with) at an epoch index >= `start`."""

    def __init__(self, reference: List[Optional[float]], start: int, record):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.reference, self.start, self.record = list(reference), int(start), record
        self.study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(
            n_startup_trials=1, n_warmup_steps=self.start, n_min_trials=1))
        self.study.add_trial(optuna.trial.create_trial(
            value=max((v for v in self.reference if v is not None), default=0.0), params={}, distributions={},
            intermediate_values={e: v for e, v in enumerate(self.reference) if v is not None}))
        self.trial = self.study.ask()
        self.best: Optional[float] = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/acc")
        if value is None or trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        value = float(value)
        self.best = value if self.best is None else max(self.best, value)
        self.trial.report(value, epoch)
        last = epoch >= trainer.max_epochs - 1
        if last or not self.trial.should_prune():
            return
        trainer.should_stop = True
        if trainer.is_global_zero:
            self.record.update(pruned={"epoch": epoch + 1, "epochs": trainer.max_epochs,
                                       "val_acc": round(self.best, 4), "reference": round(self.reference[epoch], 4)})


class StopAfter(L.Callback):
    """`stop_epoch`: end the run after this many epochs of its `trainer.epochs` (a rung of successive halving), the
    schedule still planned for all of them; metrics.json says `stopped: {epoch, epochs}`. The run goes on later from
    checkpoints/last.ckpt (`ckpt_path`) as if it had not stopped."""

    def __init__(self, epoch: int, record):
        self.epoch, self.record = int(epoch), record

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epoch and trainer.current_epoch + 1 < trainer.max_epochs:
            trainer.should_stop = True
            if trainer.is_global_zero:
                self.record.update(stopped={"epoch": trainer.current_epoch + 1, "epochs": trainer.max_epochs})


class Deadline(Timer):
    """`deadline_s`: training (its validation and checkpoints included) stops before `seconds` have passed: at the end
    of an epoch when one more as long as the longest so far (end to end) would pass them, mid-epoch (Timer) if an
    epoch runs over."""

    def __init__(self, seconds: float, record):
        super().__init__(duration=timedelta(seconds=float(seconds)), interval="step", verbose=False)
        self.seconds, self.record = float(seconds), record
        self.longest, self.last_end = 0.0, 0.0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        elapsed = self.time_elapsed()
        self.longest, self.last_end = max(self.longest, elapsed - self.last_end), elapsed
        done = trainer.current_epoch + 1
        if done < trainer.max_epochs and elapsed + self.longest > self.seconds:
            trainer.should_stop = True
            self._said(trainer, done, elapsed)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        elapsed = self.time_elapsed()
        if elapsed >= self.seconds and trainer.current_epoch < trainer.max_epochs:  # Timer stopped it mid-epoch
            self._said(trainer, trainer.current_epoch, elapsed)

    def _said(self, trainer: L.Trainer, epoch: int, elapsed: float) -> None:
        if trainer.is_global_zero and "deadline" not in self.record.data:
            self.record.update(deadline={"epoch": epoch, "epochs": trainer.max_epochs, "deadline_s": self.seconds,
                                         "elapsed_s": round(elapsed, 2), "epoch_s": round(self.longest, 2)})


def prune_callbacks(prune: Optional[Dict[str, Any]], record, stop_epoch: Optional[int] = None,
                    deadline_s: Optional[float] = None) -> List[L.Callback]:
    """The callbacks for a train config's `prune` ({reference, start}), `stop_epoch` and `deadline_s`; none when all
    are null."""
    out: List[L.Callback] = []
    if deadline_s:
        out.append(Deadline(deadline_s, record))
    if prune:
        out.append(PruneBehind(prune["reference"], prune["start"], record))
    if stop_epoch:
        out.append(StopAfter(stop_epoch, record))
    return out

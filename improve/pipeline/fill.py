"""A run that fills a small time budget: the `fill` key of a train config ({seconds, below_rounds, max_epochs}).

The refinement loop sets it for round 0 under loop.time_budget (`loop.fill_below`). Before training, nobody knows
what the budget buys; after the first epoch (its validation included) the run does: an epoch's seconds are the first
epoch's less what only a first epoch pays (the wait for the loader's first batch, the first step's excess over a
typical step), which is counted once, with the seconds outside the epochs. If the budget buys fewer than
`below_rounds` runs as planned (the planned epochs at this epoch's pace, plus the run's seconds outside its
epochs), a look at the first pipeline followed by another round cannot pay: the second round's setup and its
restarted schedule cost more than a move can win (the study "third", docs/studies.md). The run then re-plans its
schedule for as many epochs as the budget buys (at most `max_epochs`, at least the one done) and trains
them, one schedule, as one long run of the first pipeline would. After each later epoch the plan is made again
from the median epoch so far and the seconds left (`replanned`): one slow or fast first epoch does not decide the
length alone. metrics.json says `filled: {planned, epochs, seconds, epoch_s, outside_s, replans}`; the loop says so
on one line and starts no other round.

The learning-rate schedule is re-planned by the module (`Classifier.replan`): timm's schedule built again for the new
length at the step reached, so a warm-up in progress goes on and the decay starts later. A one-cycle schedule cannot
be re-planned; such a run keeps its plan and metrics.json says why (`filled.kept`).
"""
import copy
import math
import statistics
import time
from typing import Any, Dict, List, Optional

import lightning as L

OVERHEAD_SLACK = 1.25  # the run's seconds outside its epochs (before training, and the best checkpoint's predictions
# after it, about one validation pass), as measured on its first epoch, times this: they vary from run to run
PARENT_S = 0.5  # the loop's own seconds around a round (start, reading its files, the decision), which the run
# cannot see


class FillBudget(L.Callback):
    """After the first epoch: when `seconds` buy fewer than `below_rounds` runs as planned, train as many epochs as
    they buy (at most `max_epochs`) in one re-planned schedule."""

    def __init__(self, seconds: float, below_rounds: float, max_epochs: int, record):
        self.seconds, self.below_rounds, self.max_epochs, self.record = (float(seconds), float(below_rounds),
                                                                         int(max_epochs), record)
        self.start: Optional[float] = None
        self.val_s = 0.0
        self._val_start: Optional[float] = None
        self._batch_starts: List[float] = []  # when the first epoch's first two steps started
        self._last_end, self._batches = 0.0, 0  # when its last step ended, and how many it took
        self._epochs_s: List[float] = []  # each epoch's seconds (the first's less what only it paid)
        self._epoch_end = 0.0  # when the last epoch ended
        self._plan: Optional[Dict[str, Any]] = None  # the plan while the run fills the budget

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if trainer.current_epoch == 0 and batch_idx < 2:
            self._batch_starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.current_epoch == 0:
            self._last_end, self._batches = time.perf_counter(), batch_idx + 1

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_start is not None and not self.val_s:
            self.val_s = time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.start is None:
            return
        now = time.perf_counter()
        if trainer.current_epoch == 0:
            once = self._one_time_s()
            self._epochs_s.append(now - self.start - once)
            plan = fill_plan(self.seconds, self.below_rounds, self.max_epochs, planned=trainer.max_epochs,
                             epoch_s=self._epochs_s[0], before_s=self._before_s(), val_s=self.val_s, once_s=once)
            if plan is not None:
                self._apply(trainer, pl_module, plan)
        elif self._plan is not None and not self._plan.get("kept"):  # the epochs so far time the rest better
            self._epochs_s.append(now - self._epoch_end)
            epoch_s = statistics.median(self._epochs_s)
            epochs = replanned(self.seconds, trainer.current_epoch + 1, now - self.record.started,
                               after_s(self._before_s(), self.val_s), epoch_s, self.max_epochs)
            if epochs != trainer.max_epochs:
                self._apply(trainer, pl_module, {**self._plan, "epochs": epochs, "epoch_s": round(epoch_s, 2),
                                                 "replans": [*self._plan.get("replans", []),
                                                             [trainer.current_epoch + 1, epochs]]})
        self._epoch_end = now

    def _apply(self, trainer: L.Trainer, pl_module: L.LightningModule, plan: Dict[str, Any]) -> None:
        """The run's schedule and length re-planned for plan["epochs"], and metrics.json's `filled`."""
        if not pl_module.replan(plan["epochs"]):
            plan = {**plan, "epochs": trainer.max_epochs,
                    "kept": "a one-cycle schedule cannot be re-planned mid-run; the run keeps its plan"}
        trainer.fit_loop.max_epochs = plan["epochs"]
        self._plan = plan
        if trainer.is_global_zero:
            self.record.update(filled=plan)

    def _before_s(self) -> float:
        """The run's seconds before training started (its setup, since metrics.json was opened)."""
        return self.start - self.record.started

    def _one_time_s(self) -> float:
        """What only the first epoch paid: the wait for its first step (loader workers starting) and its first step's
        excess over a typical one (first-call setup); 0 when the epoch had fewer than three steps to tell."""
        if len(self._batch_starts) < 2 or self._batches < 3:
            return 0.0
        first, second = self._batch_starts
        typical = (self._last_end - second) / (self._batches - 1)
        return max(first - self.start, 0.0) + max(second - first - typical, 0.0)


def fill_plan(seconds: float, below_rounds: float, max_epochs: int, planned: int, epoch_s: float, before_s: float,
              val_s: float, once_s: float = 0.0) -> Optional[Dict[str, Any]]:
    """What a run of `planned` epochs does after its first, which took `epoch_s` (validation included) and `once_s`
    more that only a first epoch pays, after `before_s` of setup: None when `seconds` buy at least `below_rounds` such
    runs (it goes on as planned, and the loop may explore after it); else its new length, the epochs (`nearest`)
    that `seconds` buy once its seconds outside them (`before_s`, one validation pass for its predictions, PARENT_S, with
    OVERHEAD_SLACK; and `once_s`) are set aside, at least 1 and at most `max_epochs` (a longer plan than the budget
    buys shrinks, so its schedule still ends)."""
    after = after_s(before_s, val_s)
    outside = before_s + once_s + after
    if seconds >= below_rounds * (planned * epoch_s + outside):
        return None
    epochs = replanned(seconds, 1, before_s + once_s + epoch_s, after, epoch_s, max_epochs)
    return {"planned": planned, "epochs": epochs, "seconds": round(seconds, 1), "epoch_s": round(epoch_s, 2),
            "outside_s": round(outside, 2)}


def nearest(epochs: float) -> int:
    """The whole number of epochs nearest to what the seconds buy: the estimate errs both ways (a first epoch slower
    than the rest, a slack on the seconds outside them), and a floor lost an epoch in about half the runs whose
    budget was one long run's own seconds (the study third2); on average the run spends its budget, within half an
    epoch either way, and the deadline (`pipeline/pruning.Deadline`) still stops a run a whole epoch over."""
    return math.floor(epochs + 0.5)


def after_s(before_s: float, val_s: float) -> float:
    """A run's seconds after its last epoch, as the plans count them: one validation pass for its predictions and
    PARENT_S, with OVERHEAD_SLACK, and the slack on its seconds before training (what it spent before its first epoch
    plus this is its seconds outside its epochs, with OVERHEAD_SLACK)."""
    return OVERHEAD_SLACK * val_s + PARENT_S + (OVERHEAD_SLACK - 1.0) * before_s


def replanned(seconds: float, done: int, spent_s: float, after: float, epoch_s: float, max_epochs: int) -> int:
    """A filling run's length after `done` epochs, `spent_s` into `seconds`: the epochs done and as many more as the
    rest buys at `epoch_s` once `after` (its seconds after the last epoch) is set aside (`nearest`); at most
    `max_epochs`. A first epoch slower or faster than the rest is corrected here."""
    more = nearest((seconds - spent_s - after) / max(epoch_s, 1e-6))
    return min(done + max(more, 0), max_epochs)


def fill_callbacks(fill: Optional[Dict[str, Any]], record) -> list:
    """The callback for a train config's `fill` ({seconds, below_rounds, max_epochs}); none when it is null."""
    if not fill:
        return []
    return [FillBudget(fill["seconds"], fill["below_rounds"], fill["max_epochs"], record)]


def fill_reason(filled: Dict[str, Any]) -> str:
    """Round 0's reason when it filled a small budget (metrics.json's `filled`, `pipeline/fill.py`)."""
    if filled.get("kept"):
        return f"the budget buys fewer than loop.fill_below runs of round 0, but {filled['kept']}"
    return (f"loop.time_budget buys fewer than loop.fill_below runs of round 0 ({filled['seconds']:.0f} s left, "
            f"{filled['epoch_s']:.1f} s an epoch, {filled['outside_s']:.1f} s besides): it re-planned its schedule "
            f"for {filled['epochs']} epochs where {filled['planned']} were planned, and no other round starts")


def filled_pipeline(pipeline: Dict[str, Dict[str, Any]], filled: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The pipeline a round that filled the budget trained: its epochs those it trained (`filled`)."""
    out = copy.deepcopy(pipeline)
    out["trainer"]["epochs"] = int(filled["epochs"])
    out["trainer"]["warmup_epochs"] = min(out["trainer"].get("warmup_epochs", 0.0), float(filled["epochs"]))
    return out

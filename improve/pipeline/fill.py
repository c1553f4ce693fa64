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

A budget between `below_rounds` and `look_below` runs (the loop sets look_below where round 0 would leave too
little before the final phase's reserve for exploring rounds, `refine/final_phase.look_below`) buys one long run
with a look: the schedule is re-planned for all the epochs the budget buys, less a second start, and the run stops
after its planned epochs (`filled.look`) with checkpoints/look.ckpt. The loop reads its validation errors there: when
they call for a fix it makes it (a fix is worth more than training longer); when they do not, the next round goes on
from look.ckpt with the same schedule to its end (`continued_pipeline`), which is one long run of the first pipeline
with a look in it, not a look and a restarted schedule (in the study full2 on `imbalanced`, a look and a restarted
schedule trained 11-13 epochs where one long run trained 15 in the same seconds, and ended 0.028 behind it).

The learning-rate schedule is re-planned by the module (`Classifier.replan`): timm's schedule built again for the new
length at the step reached, so a warm-up in progress goes on and the decay starts later. A one-cycle schedule cannot
be re-planned; such a run keeps its plan and metrics.json says why (`filled.kept`).
"""
import copy
import math
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import lightning as L

LOOK_CHECKPOINT = "look.ckpt"  # in the run's checkpoints/: where a look stopped, for its continuation (`ckpt_path`)
OVERHEAD_SLACK = 1.25  # the run's seconds outside its epochs (before training, and the best checkpoint's predictions
# after it, about one validation pass), as measured on its first epoch, times this: they vary from run to run
PARENT_S = 0.5  # the loop's own seconds around a round (start, reading its files, the decision), which the run
# cannot see


class FillBudget(L.Callback):
    """After the first epoch: when `seconds` buy fewer than `below_rounds` runs as planned, train as many epochs as
    they buy (at most `max_epochs`) in one re-planned schedule; fewer than `look_below` runs, re-plan it the same way
    for a run in two parts and stop after the planned epochs (a look)."""

    def __init__(self, seconds: float, below_rounds: float, max_epochs: int, record, look_below: float = 0.0):
        self.seconds, self.below_rounds, self.max_epochs, self.record = (float(seconds), float(below_rounds),
                                                                         int(max_epochs), record)
        self.look_below = float(look_below or 0.0)
        self.start: Optional[float] = None
        self.val_s = 0.0
        self._val_start: Optional[float] = None
        self._batch_starts: List[float] = []  # when the first epoch's first two steps started
        self._last_end, self._batches = 0.0, 0  # when its last step ended, and how many it took
        self._epochs_s: List[float] = []  # each epoch's seconds (the first's less what only it paid)
        self._epoch_end = 0.0  # when the last epoch ended
        self._plan: Optional[Dict[str, Any]] = None  # the plan while the run fills the budget
        self._looked = False  # it stopped for a look

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
                             epoch_s=self._epochs_s[0], before_s=self._before_s(), val_s=self.val_s, once_s=once,
                             look_below=self.look_below)
            if plan is not None:
                self._apply(trainer, pl_module, plan)
        elif self._plan is not None and not self._plan.get("kept"):  # the epochs so far time the rest better
            self._epochs_s.append(now - self._epoch_end)
            epoch_s = statistics.median(self._epochs_s)
            second = self._plan.get("second_s", 0.0)  # a look: the continuation's own seconds outside its epochs
            epochs = replanned(self.seconds - second, trainer.current_epoch + 1, now - self.record.started,
                               after_s(self._before_s(), self.val_s), epoch_s, self.max_epochs)
            if self._plan.get("look"):
                epochs = max(epochs, self._plan["look"] + 1)  # the look stays a look: its continuation trains
            if epochs != trainer.max_epochs:
                self._apply(trainer, pl_module, {**self._plan, "epochs": epochs, "epoch_s": round(epoch_s, 2),
                                                 "replans": [*self._plan.get("replans", []),
                                                             [trainer.current_epoch + 1, epochs]]})
        look = (self._plan or {}).get("look")
        if look and not self._plan.get("kept") and trainer.current_epoch + 1 >= look:
            trainer.should_stop = True  # the look: the loop reads its errors, then goes on from LOOK_CHECKPOINT
            self._looked = True
            if trainer.is_global_zero:
                self.record.update(stopped={"epoch": trainer.current_epoch + 1, "epochs": trainer.max_epochs})
        self._epoch_end = now

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A look's checkpoint, written once its last epoch is complete: a run resumed from it starts the next epoch
        (resumed from last.ckpt, written while the epoch was still open, Lightning goes through that epoch's end once
        more, a second validation pass)."""
        if self._looked and trainer.checkpoint_callback is not None:
            trainer.save_checkpoint(Path(trainer.checkpoint_callback.dirpath) / LOOK_CHECKPOINT)

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
              val_s: float, once_s: float = 0.0, look_below: float = 0.0) -> Optional[Dict[str, Any]]:
    """What a run of `planned` epochs does after its first, which took `epoch_s` (validation included) and `once_s`
    more that only a first epoch pays, after `before_s` of setup: None when `seconds` buy at least `below_rounds` such
    runs, and at least `look_below` (it goes on as planned, and the loop may explore after it). Fewer than
    `below_rounds`: its new length, the epochs (`nearest`) that `seconds` buy once its seconds outside them
    (`before_s`, one validation pass for its predictions, PARENT_S, with OVERHEAD_SLACK; and `once_s`) are set aside,
    at least 1 and at most `max_epochs` (a longer plan than the budget buys shrinks, so its schedule still ends).
    Between the two: a look, the same length once a second run's seconds outside its epochs (`second_s`) are set aside
    too, stopping after the `planned` epochs (`look`); None when that length is no longer than the plan."""
    after = after_s(before_s, val_s)
    outside = before_s + once_s + after
    run_s = planned * epoch_s + outside
    if seconds >= below_rounds * run_s and seconds >= look_below * run_s:
        return None
    plan = {"planned": planned, "seconds": round(seconds, 1), "epoch_s": round(epoch_s, 2),
            "outside_s": round(outside, 2)}
    if seconds < below_rounds * run_s:
        return {**plan, "epochs": replanned(seconds, 1, before_s + once_s + epoch_s, after, epoch_s, max_epochs)}
    second = before_s + once_s + after
    epochs = replanned(seconds - second, 1, before_s + once_s + epoch_s, after, epoch_s, max_epochs)
    if epochs <= planned:
        return None
    return {**plan, "epochs": epochs, "look": planned, "second_s": round(second, 2)}


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
    """The callback for a train config's `fill` ({seconds, below_rounds, max_epochs, look_below}); none when it is
    null."""
    if not fill:
        return []
    return [FillBudget(fill["seconds"], fill["below_rounds"], fill["max_epochs"], record, fill.get("look_below", 0.0))]


def fill_reason(filled: Dict[str, Any]) -> str:
    """Round 0's reason when it filled a small budget (metrics.json's `filled`, `pipeline/fill.py`)."""
    if filled.get("kept"):
        return f"the budget buys fewer than loop.fill_below runs of round 0, but {filled['kept']}"
    if filled.get("look"):
        return (f"loop.time_budget buys too few runs of round 0 for a look and rounds to explore before the final "
                f"phase ({filled['seconds']:.0f} s left, {filled['epoch_s']:.1f} s an epoch, {filled['outside_s']:.1f}"
                f" s besides): its schedule was re-planned for {filled['epochs']} epochs and it stopped after "
                f"{filled['look']}, a look at its errors; unless they call for a fix, the next round goes on with the "
                f"same schedule")
    return (f"loop.time_budget buys fewer than loop.fill_below runs of round 0 ({filled['seconds']:.0f} s left, "
            f"{filled['epoch_s']:.1f} s an epoch, {filled['outside_s']:.1f} s besides): it re-planned its schedule "
            f"for {filled['epochs']} epochs where {filled['planned']} were planned, and no other round starts")


def filled_pipeline(pipeline: Dict[str, Dict[str, Any]], filled: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The pipeline a round that filled the budget trained: its epochs those it trained (`filled`). A look keeps its
    planned epochs (the rounds after it are planned from them); its continuation is `continued_pipeline`."""
    return copy.deepcopy(pipeline) if filled.get("look") else continued_pipeline(pipeline, int(filled["epochs"]))


def continued_pipeline(pipeline: Dict[str, Dict[str, Any]], epochs: int) -> Dict[str, Dict[str, Any]]:
    """The pipeline of a run of `epochs` in one schedule: what a look and its continuation trained together, which
    retrains as one long run (its warm-up no longer than the run)."""
    out = copy.deepcopy(pipeline)
    epochs = int(epochs)
    out["trainer"]["epochs"] = epochs
    out["trainer"]["warmup_epochs"] = min(out["trainer"].get("warmup_epochs", 0.0), float(epochs))
    return out

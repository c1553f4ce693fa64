"""`loop.final_phase`: the last part of loop.time_budget trains the winner long.

A share of the time budget is reserved: the rounds before it plan within the rest (the agents and the cost
check see what is left of the budget less the reserve). Once what is left is the reserve, or less than the
incumbent's round would take on top of it, one round continues the incumbent from its weights
(trainer.warm_start) with one long schedule of as many epochs as the time left buys at the incumbent's pace
(those its deadline, below, leaves time for),
sooner when its curves still climb and the time before the reserve cannot pay for exploring (EXPLORE_ROUNDS),
after a short warm-up: at its learning rate while its curves say it is far from its ceiling, at half of it near.
It is judged on validation like any round, can be pruned like any round, and runs once per run, after which the
run stops; if it cannot buy an epoch it is skipped and the console says so. What the incumbent's errors call for
comes first: when the diagnosis made before a round found a cause the pipeline still has (`refine/diagnoses.py`),
that round acts on it with all the time left, reserve included, and the final phase continues whichever incumbent
results.

Every round under a time budget, this one included, is also stopped by the clock (the train config's `deadline_s`,
`pipeline/pruning.Deadline`): its epochs may take what is left of the budget, less OVERHEAD_SLACK times the
seconds the incumbent's round spent outside its epochs, so a machine slower than the incumbent's pace said ends the
round an epoch early instead of overrunning the budget; the round line says so and its reason is `deadline_reason`.
"""
import copy
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

FINAL = "final phase"  # the author of the final round
LR_SCALE = {"far": 1.0, "near": 0.5}  # its peak learning rate, relative to the incumbent's, by the incumbent's
# headroom (pipeline/record.headroom): far from its ceiling (still climbing) it goes on as if its schedule were
# longer; near it, it fine-tunes
WARMUP_EPOCHS = 0.5  # its warm-up: short, the weights are trained already
EXPLORE_ROUNDS = 2  # while the incumbent's curves still climb (headroom far), a new round starts only if the time
# before the reserve buys this many rounds at its pace (a move and one follow-up); fewer, and training it longer
# now is worth more than one untested move: the final phase starts early, with all the time left


@dataclass
class Pace:
    """What the incumbent's round cost: seconds per epoch of training (validation included) and the rest."""

    epoch_s: float
    overhead_s: float  # the round's seconds beyond its fit: start, predictions, the decision
    round_s: float  # the whole round
    outside_s: Optional[float] = None  # the round's seconds outside its epochs (the fit's own setup too): what a
    # deadline on the epochs must leave; None: overhead_s

    @classmethod
    def of(cls, metrics: Dict[str, Any], round_seconds: float) -> Optional["Pace"]:
        epochs = len(metrics.get("epochs") or [])
        timings = metrics.get("timings") or {}
        fit = timings.get("fit_s")
        if not epochs or not fit:
            return None
        inside = sum(timings.get("epoch_s") or []) or fit
        return cls(epoch_s=fit / epochs, overhead_s=max(round_seconds - fit, 0.0), round_s=max(round_seconds, fit),
                   outside_s=max(round_seconds - min(inside, fit), 0.0))

    def epochs_for(self, seconds: float, max_epochs: int) -> int:
        """The most epochs a round can train when `seconds` of the budget are left (at most max_epochs): the seconds
        its deadline leaves for training (`training_s`) over the incumbent's seconds an epoch. No further margin:
        on a machine slower than this pace the deadline ends the round an epoch early, in its schedule's flat tail
        (with 90 % of the time left as a margin, the study's pay6 left 1-5 s of 12-37 s budgets unused, and the loop
        trained 7.6-10.2 epochs of its kept chain where one long run trained 12)."""
        return min(math.floor(training_s(seconds, self) / self.epoch_s), max_epochs)  # training_s is never < 0


def reserve_s(loop) -> float:
    """Seconds of loop.time_budget kept for the final phase; 0 without a time budget or with final_phase 0."""
    if not loop.time_budget or not loop.final_phase or loop.folds >= 2:
        return 0.0
    return loop.final_phase * loop.time_budget


def due(seconds_left: Optional[float], reserve: float, pace: Optional[Pace], headroom: str = "near") -> Optional[str]:
    """Why the final phase starts now (None: not yet): what is left is the reserve, or a round as costly as the
    incumbent's would eat into it, or the incumbent still climbs and exploring cannot pay (EXPLORE_ROUNDS)."""
    if seconds_left is None or not reserve or pace is None:
        return None
    before = seconds_left - reserve
    if before < pace.round_s:
        return "what is left is its reserve"
    if headroom == "far" and before < EXPLORE_ROUNDS * pace.round_s:
        return (f"the incumbent's curves still climb and the {before:.0f} s before the reserve buy fewer than "
                f"{EXPLORE_ROUNDS} rounds at its pace ({pace.round_s:.0f} s): training it longer now is worth more "
                f"than one untested move")
    return None


def final_pipeline(pipeline: Dict[str, Dict[str, Any]], epochs: int, headroom: str = "near") -> Dict[str, Dict[str, Any]]:
    """The incumbent's pipeline continued from its weights for `epochs`: one cosine schedule from LR_SCALE[headroom]
    of its learning rate."""
    out = copy.deepcopy(pipeline)
    t = out["trainer"]
    lr = float(f"{t['lr'] * LR_SCALE.get(headroom, LR_SCALE['near']):.3g}")
    t.update(warm_start=True, epochs=epochs, lr=lr, warmup_epochs=min(WARMUP_EPOCHS, float(epochs)), lr_find=False,
             min_lr=min(t.get("min_lr", 0.0), lr / 10))
    return out


def rationale(epochs: int, seconds_left: float, pace: Pace, lr: float, why: str = "") -> str:
    return (f"final phase: train the winner long: continue the incumbent from its weights for {epochs} epochs (what "
            f"the {seconds_left:.0f} s left buy at {pace.epoch_s:.1f} s an epoch), one cosine schedule from lr "
            f"{lr:.3g}" + (f"; now because {why}" if why else ""))


MIN_DEADLINE_S = 1.0  # the shortest deadline a round gets: one step and its validation
OVERHEAD_SLACK = 1.25  # a round's seconds outside its epochs, as a multiple of the incumbent's (Pace.outside_s):
# they vary too (with the fit's seconds at 1.0, a round that trained to its deadline overran a 28 s budget by 0.3 s)


def training_s(seconds_left: float, pace: Optional[Pace]) -> float:
    """What `seconds_left` of the budget leave for a round's epochs: less its seconds outside them at the incumbent's
    `pace`, with OVERHEAD_SLACK (nothing known before round 0 is decided); may be 0."""
    outside = (pace.overhead_s if pace.outside_s is None else pace.outside_s) if pace else 0.0
    return max(seconds_left - OVERHEAD_SLACK * outside, 0.0)


def deadline_s(seconds_left: float, pace: Optional[Pace]) -> float:
    """The seconds of training a round's epochs may take when `seconds_left` of the budget are left (`training_s`),
    at least MIN_DEADLINE_S."""
    return round(max(training_s(seconds_left, pace), MIN_DEADLINE_S), 1)


def deadline_reason(cut: Dict[str, Any]) -> str:
    """The round's reason when the clock stopped it (metrics.json's `deadline`)."""
    return (f"stopped by loop.time_budget after {cut['epoch']} of {cut['epochs']} epochs (its training could take "
            f"{cut['deadline_s']:.0f} s)")

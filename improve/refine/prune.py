"""`loop.prune`: the curve a round is pruned against, so a losing round stops early instead of spending its epochs.

The reference is the incumbent's training at the same point. A round that continues from the incumbent's weights
(trainer.warm_start) is compared with the incumbent's own curve; a round that starts from scratch with the curve
of the from-scratch run the incumbent descends from (its warm-start chain's root), the same kind of run. Epoch k
of the round's n is matched with the incumbent's epoch floor(k/n x N) of its N (the same fraction of training;
none before its first epoch), taking the best validation accuracy reached by then (the best checkpoint is what
counts), one epoch of the round earlier (LAG_EPOCHS): the same pipeline trained twice can take off an epoch later,
and on the steep part of a curve that epoch is worth more than any noise margin (seen: 0.15 then 0.29 one epoch
later on 216 images). From that, less the noise margin: `loop.prune_margin`, or by default two standard errors of
the difference of two accuracies on this many validation images, sqrt(2 p (1 - p) / n_val) x 2, at the curve's
lowest point where the round may be pruned (early accuracies sit nearer 0.5, where the noise is largest). No round
is pruned before `loop.prune_after` of its epochs, before its second, nor at its last; round 0, folds and candidates
are never pruned.
`pipeline/pruning.py` applies it during training (Optuna's MedianPruner).
"""
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from improve.config.paths import round_dir
from improve.refine.runner import run_metrics_or_none
from improve.refine.warm_start import parent_round

NOISE_SE = 2.0  # standard errors of a difference of two accuracies that count as noise
LAG_EPOCHS = 1  # a round is compared with where the incumbent was this many of its epochs earlier


@dataclass
class PrunePlan:
    """What the train config's `prune` key holds, and where it came from."""

    reference: List[Optional[float]]  # per epoch of the round: the value it must not fall below
    start: int  # first epoch index (0-based) at which it may be pruned
    against: int  # the round whose curve it is
    margin: float  # the noise subtracted from that curve

    def config(self) -> Dict[str, Any]:
        return {"reference": self.reference, "start": self.start}

    def journal(self) -> Dict[str, Any]:
        return asdict(self)


def noise_margin(val_acc: float, val_images: int) -> float:
    """Two standard errors of the difference of two accuracies near `val_acc` on `val_images` images."""
    p = min(max(val_acc, 0.0), 1.0)
    return round(NOISE_SE * math.sqrt(2 * p * (1 - p) / max(val_images, 1)), 4)


def curve_margin(points: List[Optional[float]], val_images: int) -> float:
    """The default noise margin of a reference curve: the widest noise_margin over the points it prunes at."""
    return max(noise_margin(v, val_images) for v in points if v is not None)


def matched(curve: List[float], epochs: int) -> List[Optional[float]]:
    """The best of `curve` reached by the same fraction of training, for each of `epochs` epochs."""
    best, out = [], []
    for v in curve:
        best.append(max(v, best[-1]) if best else v)
    for k in range(1, epochs + 1):
        i = math.floor(k * len(best) / epochs) - 1
        out.append(best[i] if i >= 0 else None)
    return out


def lagged(curve: List[Optional[float]], lag: int = LAG_EPOCHS) -> List[Optional[float]]:
    """The reference `lag` epochs behind: epoch k is compared with the value at epoch k - lag (none before)."""
    return [None] * min(lag, len(curve)) + curve[:max(len(curve) - lag, 0)]


def _curve(run_dir: Path, r: int) -> Optional[Dict[str, Any]]:
    metrics = run_metrics_or_none(round_dir(run_dir, r)) or {}
    epochs = [e.get("val_acc") for e in metrics.get("epochs") or []]
    if metrics.get("status") != "ok" or not epochs or any(v is None for v in epochs):
        return None
    return {"curve": epochs, "val_images": (metrics.get("dataset") or {}).get("val") or 0}


def root_round(run_dir: Path, r: int) -> int:
    """The from-scratch round that round r's weights descend from through warm starts."""
    seen = {r}
    while (parent := parent_round(run_dir, r)) is not None and parent not in seen:
        seen.add(parent)
        r = parent
    return r


def prune_plan(loop, run_dir: Path, incumbent: Optional[Dict[str, Any]], epochs: int,
               warm: bool) -> Optional[PrunePlan]:
    """The plan for a round of `epochs` epochs (`warm`: it starts from the incumbent's weights); None when pruning
    is off, there is no incumbent, under folds, for one epoch, or without a readable incumbent curve."""
    if not loop.prune or incumbent is None or loop.folds >= 2 or epochs < 2:
        return None
    against = incumbent["round"] if warm else root_round(run_dir, incumbent["round"])
    found = _curve(run_dir, against)
    if found is None:
        return None
    curve = lagged(matched(found["curve"], epochs))
    start = min(max(math.ceil(loop.prune_after * epochs) - 1, 0), epochs - 1)
    prunable = curve[start:-1]  # never at its last epoch
    if all(v is None for v in prunable):
        return None
    margin = (float(loop.prune_margin) if loop.prune_margin is not None
              else curve_margin(prunable, found["val_images"]))
    reference = [None if v is None else round(v - margin, 4) for v in curve]
    return PrunePlan(reference=reference, start=start, against=against, margin=margin)


def pruned_reason(pruned: Dict[str, Any], plan: Optional[Dict[str, Any]]) -> str:
    """The decision's reason for a pruned round: where it stopped and what it was behind."""
    margin = f" less the noise margin {plan['margin']:.3f}" if plan else ""
    against = f"round {plan['against']}'s" if plan else "the incumbent's"
    return (f"pruned at epoch {pruned['epoch']} of {pruned['epochs']}: best val acc {pruned['val_acc']:.4f} below "
            f"{pruned['reference']:.4f}, {against} curve at the same point of training, an epoch earlier{margin}")

"""The loop's two rules, as small pure functions: keep or revert a trained candidate; stop or go on."""
from dataclasses import dataclass
from typing import Optional

from .acceptance import Evidence

RULES = ("greedy", "paired", "confirm")


@dataclass
class Verdict:
    """The decision on a trained candidate, and the rule and evidence it rests on."""

    decision: str  # kept | reverted | failed
    delta: Optional[float]  # candidate - incumbent validation accuracy; None when either is missing
    rule: str = "greedy"
    evidence: Optional[Evidence] = None  # paired, image by image; None without per-image predictions
    unproven: bool = False  # a gain, but not a significant one: under `confirm`, more seeds decide


def decide(val: Optional[float], incumbent_val: Optional[float], min_delta: float = 0.0, rule: str = "greedy",
           evidence: Optional[Evidence] = None, alpha: float = 0.05, pooled: bool = False) -> Verdict:
    """Keep a candidate only when its validation accuracy beats the incumbent's by more than `min_delta`
    (`greedy`, the paper's rule) and, under `paired` and `confirm`, only when that gain is also significant: the
    one-sided exact McNemar p-value on the same validation images is below `alpha`. Under `confirm` a gain that is
    not (yet) significant is `unproven`: the caller pools more seeds and decides again with `pooled=True`, on the
    pooled difference. A candidate without a score (crash, NaN, timeout) is failed; the first score is kept.
    Without per-image evidence `paired` and `confirm` judge greedily and say so."""
    if rule not in RULES:
        raise ValueError(f"loop.accept={rule!r} is not a rule; use one of {list(RULES)}")
    if val is None:
        return Verdict("failed", None, rule)
    if incumbent_val is None:
        return Verdict("kept", None, rule)
    delta = round(val - incumbent_val, 4)
    if rule == "greedy" or evidence is None:
        return Verdict("kept" if val > incumbent_val + min_delta else "reverted", delta, "greedy", evidence)
    better = (evidence.delta if pooled else val - incumbent_val) > min_delta
    significant = evidence.p_value < alpha
    return Verdict("kept" if better and significant else "reverted", delta, rule, evidence,
                   unproven=rule == "confirm" and better and not significant and not pooled)


def stop_reason(next_round: int, rounds: int, incumbent_val: Optional[float] = None, target: float = 0.0,
                spent_s: float = 0.0, time_budget: float = 0.0) -> Optional[str]:
    """Why no further round starts, or None: all rounds done, the target reached, or the time budget spent."""
    if next_round > rounds:
        return f"all {rounds} rounds done"
    if target and incumbent_val is not None and incumbent_val >= target:
        return f"validation accuracy {incumbent_val:.4f} reached loop.target={target}"
    if time_budget and spent_s >= time_budget:
        return f"time budget of {time_budget:.0f} s spent"
    return None

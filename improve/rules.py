"""The loop's two rules, as small pure functions: keep or revert a trained candidate; stop or go on."""
from dataclasses import dataclass
from typing import Optional


@dataclass
class Verdict:
    """The decision on a trained candidate."""

    decision: str  # kept | reverted | failed
    delta: Optional[float]  # candidate - incumbent validation accuracy; None when either is missing


def decide(val: Optional[float], incumbent_val: Optional[float], min_delta: float = 0.0) -> Verdict:
    """Iterative Refinement's rule: keep a candidate only when its validation accuracy beats the incumbent's by more
    than `min_delta`. A candidate without a score (crash, NaN, timeout) is failed; the first score is kept."""
    if val is None:
        return Verdict("failed", None)
    if incumbent_val is None:
        return Verdict("kept", None)
    delta = round(val - incumbent_val, 4)
    return Verdict("kept" if val > incumbent_val + min_delta else "reverted", delta)


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

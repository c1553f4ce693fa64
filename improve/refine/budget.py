"""What a refinement run's budget has left: training runs under loop.rounds (extra seed runs count) and training
seconds under loop.time_budget, for the stop rule, the confirmations and the agents (who plan rounds that fit).

loop.time_budget counts the seconds of the rounds (their training, checks and confirmation runs), the compute a
study compares with one long run; the loop's own work between rounds (the dataset profile, the agents' calls,
the diagnoses) is not charged to it and is reported on its own (`State.spent`'s `between_rounds`)."""
import time
from typing import Optional

from improve.refine.state import State


class Budget:
    """The loop's budget, counted across the sessions of a resumed run."""

    def __init__(self, loop):
        self.loop = loop

    def spent(self, state: State) -> float:
        """Training seconds used so far: those of every decided round, in every session of the run."""
        return state.training_seconds()

    def seconds_left(self, state: State) -> Optional[float]:
        """Seconds loop.time_budget leaves; None without a time budget."""
        return max(self.loop.time_budget - self.spent(state), 0.0) if self.loop.time_budget else None

    def runs_left(self, state: State, r: int, round_start: Optional[float] = None) -> int:
        """Training runs the budget allows after round r: what loop.rounds leaves (extra runs count), and under
        loop.time_budget what the time left buys at the pace of the round that started at `round_start`."""
        left = self.loop.rounds - r - state.extra_runs
        seconds = self.seconds_left(state)
        if seconds is not None and round_start is not None:
            took = max(time.perf_counter() - round_start, 1e-3)
            left = min(left, int(seconds // took))
        return max(left, 0)


def stop_reason(next_round: int, rounds: int, incumbent_val: Optional[float] = None, target: float = 0.0,
                spent_s: float = 0.0, time_budget: float = 0.0) -> Optional[str]:
    """Why no further round starts, or None: all rounds done, the target reached, a perfect validation score (nothing
    can be kept above it), or the time budget spent."""
    if next_round > rounds:
        return f"all {rounds} rounds done"
    if target and incumbent_val is not None and incumbent_val >= target:
        return f"validation accuracy {incumbent_val:.4f} reached loop.target={target}"
    if incumbent_val is not None and incumbent_val >= 1.0:  # a candidate is kept only above it: none can be
        return "validation accuracy 1.0000: no round can beat it on this validation split"
    if time_budget and spent_s >= time_budget:
        return f"time budget of {time_budget:.0f} s spent"
    return None

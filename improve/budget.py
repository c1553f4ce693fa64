"""What a refinement run's budget has left: training runs under loop.rounds (extra seed runs count) and seconds
under loop.time_budget, for the stop rule, the confirmations and the agents (who plan rounds that fit)."""
import time
from typing import Optional

from .journal import State


class Budget:
    """The loop's budget, counted across the sessions of a resumed run."""

    def __init__(self, loop, session_wall: float, session_start: float):
        self.loop, self.session_wall, self.session_start = loop, session_wall, session_start

    def spent(self, state: State) -> float:
        """Seconds used so far: earlier sessions' rounds, plus this session's wall time."""
        return state.seconds_before(self.session_wall) + (time.perf_counter() - self.session_start)

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

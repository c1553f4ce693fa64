"""Paired differences over seeds: the mean difference of two strategies run on the same seeds (same split, same
training seed), with its 95 % Student-t interval, and how many seeds would bring the interval to a given width."""
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass
class Interval:
    """Mean of paired differences with its 95 % interval over n seeds (low = high = mean when n < 2)."""

    mean: float
    low: float
    high: float
    n: int
    sd: float  # standard deviation of the differences (ddof=1)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool:
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    def text(self) -> str:
        if self.n < 2:
            return f"{self.mean:+.4f} (1 seed)"
        star = " *" if self.excludes_zero else ""
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}]{star}"

    def seeds_for(self, half_width: float) -> Optional[int]:
        """Seeds that would bring the interval's half-width to `half_width` at this spread (None: unknown)."""
        if self.n < 2:
            return None
        if self.sd == 0:
            return self.n
        for n in range(2, 100_000):  # the smallest n whose interval t(n-1) * sd / sqrt(n) is that narrow
            if stats.t.ppf((1 + CONFIDENCE) / 2, n - 1) * self.sd / math.sqrt(n) <= half_width:
                return n
        return None


def paired(a: Sequence[Optional[float]], b: Sequence[Optional[float]]) -> Optional[Interval]:
    """a - b over the seeds where both have a value; None when none has."""
    diffs = [x - y for x, y in zip(a, b) if x is not None and y is not None]
    if not diffs:
        return None
    d = np.asarray(diffs, float)
    mean = float(d.mean())
    if len(d) < 2:
        return Interval(mean, mean, mean, 1, 0.0)
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf((1 + CONFIDENCE) / 2, len(d) - 1) * sd / math.sqrt(len(d)))
    return Interval(mean, mean - half, mean + half, len(d), sd)

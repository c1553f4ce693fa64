"""Paired evidence that a candidate beats the incumbent, on the same validation images.

A validation set of a few hundred images moves by one image per 0.3-0.5 %, and the same pipeline
trained twice differs by more than most real gains, so the difference of two accuracies alone says
little. Both models are scored image by image on the SAME images: only the discordant images count
(b: the candidate right where the incumbent was wrong; c: the reverse). The difference in accuracy
is (b - c) / n with a 95% Wald interval for paired proportions, and the one-sided exact McNemar
p-value is P(X >= b) for X ~ Binomial(b + c, 1/2): how likely a gain this large is when the two
models are equally good.
"""
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from scipy.stats import binom, norm


@dataclass
class Evidence:
    n: int  # validation images compared
    wins: int  # candidate right, incumbent wrong
    losses: int  # candidate wrong, incumbent right
    delta: float  # accuracy difference, candidate - incumbent
    interval: Tuple[float, float]  # its confidence interval
    p_value: float  # one-sided exact McNemar: is the candidate better?

    def journal(self) -> dict:
        d = asdict(self)
        d["delta_interval"] = list(d.pop("interval"))
        return d


def paired_evidence(candidate_correct: np.ndarray, incumbent_correct: np.ndarray,
                    confidence: float = 0.95) -> Evidence:
    """Evidence from two boolean arrays over the same images, in the same order."""
    a, b_ = np.asarray(candidate_correct, bool), np.asarray(incumbent_correct, bool)
    if a.shape != b_.shape or a.ndim != 1:
        raise ValueError(f"paired predictions must cover the same images: {a.shape} vs {b_.shape}")
    n = len(a)
    wins, losses = int(np.sum(a & ~b_)), int(np.sum(~a & b_))
    delta = (wins - losses) / n if n else 0.0
    se = math.sqrt(max(0.0, (wins + losses) / n - delta ** 2) / n) if n else 0.0
    z = float(norm.ppf(0.5 + confidence / 2))
    p = float(binom.sf(wins - 1, wins + losses, 0.5)) if wins + losses else 1.0
    return Evidence(n, wins, losses, round(delta, 6), (round(delta - z * se, 6), round(delta + z * se, 6)),
                    round(p, 6))


def load_correct(path: Path) -> Optional[np.ndarray]:
    """Per-image correctness from a round's val_predictions.json, or None when the round wrote none."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return np.asarray(data["y_true"]) == np.asarray(data["y_pred"])


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

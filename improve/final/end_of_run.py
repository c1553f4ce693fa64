"""The end-of-run settings: what the soup and the ensemble may take, and the rule that judges them against the
incumbent alone."""
from dataclasses import dataclass
from typing import Any, Dict, Tuple

from improve.refine.decide import Verdict, decide, paired_evidence


@dataclass
class EndOfRun:
    """How the end of a run combines rounds (averaged weights, averaged predictions) and judges the result."""

    ensemble_top_k: int = 0  # loop.ensemble_top_k: the incumbent and the next best rounds' predictions averaged
    average_top_k: int = 0  # loop.average_top_k: at most this many rounds in the weight soup, made first
    accept: str = "greedy"  # loop.accept: the rule that judges a combination (`confirm` judges as `paired`)
    alpha: float = 0.05  # loop.alpha
    min_delta: float = 0.0  # loop.min_delta

    @classmethod
    def of(cls, loop: Any) -> "EndOfRun":
        """The settings a refinement run's `loop` group gives."""
        return cls(loop.ensemble_top_k, loop.average_top_k, loop.accept, loop.alpha, loop.min_delta)

    def against_single(self, combined: Dict[str, Any], single: Dict[str, Any]) -> Tuple[Verdict, Dict]:
        """A combination of rounds (averaged predictions or weights) against the incumbent alone, on the same
        validation images under the run's rule (`confirm` judges as `paired`: a combination has no seed to retrain).
        Returns the verdict and its journal fields."""
        truth = single["y_true"]
        evidence = paired_evidence([p == t for p, t in zip(combined["y_pred"], truth)],
                                   [p == t for p, t in zip(single["y_pred"], truth)])
        rule = "paired" if self.accept == "confirm" else self.accept
        verdict = decide(combined["acc"], single["acc"], self.min_delta, rule, evidence, self.alpha)
        return verdict, {"val_acc": round(combined["acc"], 4), "single_val_acc": round(single["acc"], 4),
                         "delta": verdict.delta, "rule": verdict.rule, **evidence.journal()}

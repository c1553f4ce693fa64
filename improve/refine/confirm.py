"""More seeds for a verdict the validation set alone cannot give, and the run's noise floor.

`loop.accept=confirm`: a candidate that beats the incumbent, but not significantly, is trained again
with `loop.confirm_seeds` further seeds, and so is the incumbent (once per incumbent: its seed runs are
kept and reused); the decision is then taken on the pooled predictions, seed run against seed run on
the same validation images. `loop.noise_floor`: round 0's pipeline is trained once more with another
seed, and the paired difference between the two runs of the same pipeline is shown as the noise
floor. Every extra run lives in `rounds/NN/seedK/`, is journaled as a `confirmation` event (a finished
one is never trained again) and counts against `loop.rounds` and `loop.time_budget`: a confirmation never
trains more runs than the budget has left (fewer seeds then, said on the console; with none, the
unproven gain is reverted).
"""
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from improve.config.paths import round_dir
from improve.journal.events import Confirmation, ConfirmationCut, NoiseFloor
from improve.journal.log import Journal
from improve.refine.console import LoopConsole
from improve.refine.decide import Evidence, load_correct, paired_evidence
from improve.refine.runner import Runner

SEED_STEP = 1000  # seed of extra run k: the run's seed + k * SEED_STEP


class Confirmer:
    """Trains and reads the extra seed runs of a run's rounds."""

    def __init__(self, run_dir: Path, journal: Journal, console: LoopConsole, seed: int, runner: Runner):
        self.run_dir, self.journal, self.console = Path(run_dir), journal, console
        self.seed, self.runner = seed, runner

    def base(self, r: int) -> Optional[np.ndarray]:
        """Per-image correctness of round r's own run."""
        return load_correct(round_dir(self.run_dir, r) / "val_predictions.json")

    def seed_run(self, now: int, r: int, k: int, pipeline: Dict[str, Dict], why: str) -> Optional[np.ndarray]:
        """Per-image correctness of round r's pipeline trained with extra seed k (trained now if not yet done)."""
        rd = self._seed_dir(r, k)
        found = load_correct(rd / "val_predictions.json")
        if found is not None:
            return found
        seed = self.seed + k * SEED_STEP
        start = time.perf_counter()
        metrics = self.runner.seed(pipeline, rd, seed)
        seconds = round(time.perf_counter() - start, 1)
        val = metrics.get("best_val_acc") if metrics.get("status") == "ok" else None
        self.journal.write(Confirmation(round=now, of_round=r, seed=seed, val_acc=val, seconds=seconds, why=why,
                                        error=None if val is not None else metrics.get("error")))
        shown = f"val {val:.4f}" if val is not None else f"failed: {metrics.get('error')}"
        self.console.say(f"round {now}: {why}: round {r}'s pipeline with seed {seed}: {shown} ({seconds:.1f} s)",
                         "cyan")
        return load_correct(rd / "val_predictions.json")

    def _seed_dir(self, r: int, k: int) -> Path:
        return round_dir(self.run_dir, r) / f"seed{k}"

    def _done(self, r: int, k: int) -> bool:
        return (self._seed_dir(r, k) / "val_predictions.json").is_file()

    def pooled(self, now: int, cand: Dict[str, Any], inc: Dict[str, Any], seeds: int,
               max_runs: Optional[int] = None) -> Optional[Evidence]:
        """Candidate round `now` against the incumbent over their own runs plus `seeds` extra seed runs of each,
        paired seed by seed (seeds=0: their own runs only, no training); None when a base run has no predictions.
        At most `max_runs` runs are trained (None: no limit): a seed whose runs do not fit is left out."""
        first = (self.base(now), self.base(inc["round"]))
        if first[0] is None or first[1] is None or first[0].shape != first[1].shape:
            return None
        pairs: List = [first]
        left = max_runs
        for k in range(1, seeds + 1):
            cost = (not self._done(now, k)) + (not self._done(inc["round"], k))
            if left is not None and cost > left:
                self.console.say(f"round {now}: confirmation cut to {k - 1} of {seeds} seeds: seed {k} needs {cost} "
                                 f"training runs and loop.rounds / loop.time_budget leave {left}", "yellow")
                self.journal.write(ConfirmationCut(round=now, seeds=k - 1, wanted=seeds, runs_left=left))
                break
            left = None if left is None else left - cost
            a = self.seed_run(now, now, k, cand["pipeline"], "confirming the candidate")
            b = self.seed_run(now, inc["round"], k, inc["pipeline"], "confirming the incumbent")
            if a is not None and b is not None and a.shape == first[0].shape == b.shape:
                pairs.append((a, b))  # a failed seed run is left out of the pool (and said on the console)
        return paired_evidence(np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs]))

    def noise_floor(self, pipeline: Dict[str, Dict], max_runs: Optional[int] = None) -> Optional[Evidence]:
        """Round 0's pipeline against itself with another seed: how far chance alone moves the score (not measured
        when `max_runs` is 0 and it is not trained yet)."""
        first = self.base(0)
        if max_runs is not None and max_runs < 1 and not self._done(0, 1):
            self.console.say("noise floor not measured: loop.rounds / loop.time_budget leave no training run for it",
                             "yellow")
            return None
        again = self.seed_run(0, 0, 1, pipeline, "noise floor")
        if first is None or again is None:
            return None
        evidence = paired_evidence(again, first)
        self.journal.write(NoiseFloor(round=0, **evidence.journal()))
        low, high = evidence.interval
        self.console.say(f"noise floor: the same pipeline with another seed moved val acc by {evidence.delta:+.4f} "
                         f"(95% interval [{low:+.4f}, {high:+.4f}], {evidence.wins + evidence.losses} of "
                         f"{evidence.n} images changed)", "cyan")
        return evidence

"""Confirmation seeds and the noise floor, with a stand-in for training (which test_loop runs for real)."""
import io
import json

import numpy as np
from rich.console import Console

from improve.journal.log import Journal
from improve.refine.confirm import SEED_STEP, Confirmer
from improve.refine.console import LoopConsole
from improve.refine.decide import decide, paired_evidence
from improve.refine.state import State

N = 200


def write_predictions(rd, correct):
    rd.mkdir(parents=True, exist_ok=True)
    y_true = np.zeros(N, int)
    (rd / "val_predictions.json").write_text(json.dumps({"y_true": y_true.tolist(),
                                                         "y_pred": np.where(correct, 0, 1).tolist()}))


class FakeTraining:
    """Writes val_predictions.json: the candidate ('better') is right on `extra` more images than the incumbent."""

    def __init__(self, extra):
        self.extra, self.calls = extra, []

    def correct(self, pipeline, seed):
        rng = np.random.default_rng(seed)
        base = rng.random(N) < 0.8
        if pipeline == "better":
            wrong = np.flatnonzero(~base)[: self.extra]
            base[wrong] = True
        return base

    def seed(self, pipeline, rd, seed):  # what Confirmer asks of its Runner
        self.calls.append((rd.parent.name, rd.name, seed))
        write_predictions(rd, self.correct(pipeline, seed))
        return {"status": "ok", "best_val_acc": 0.8}


def confirmer(tmp_path, fake):
    journal, out = Journal(tmp_path / "journal.jsonl"), io.StringIO()
    return Confirmer(tmp_path, journal, LoopConsole(Console(file=out, width=200)), 0, fake), journal, out


def test_an_unproven_gain_is_decided_on_pooled_seeds_and_the_incumbents_seed_runs_are_reused(tmp_path):
    fake = FakeTraining(extra=4)  # 4 more right images of 200 per seed: not significant once, significant x3
    write_predictions(tmp_path / "rounds" / "00", fake.correct("same", 0))
    write_predictions(tmp_path / "rounds" / "01", fake.correct("better", 0))
    c, journal, out = confirmer(tmp_path, fake)
    incumbent = {"round": 0, "pipeline": "same"}
    single = decide(0.82, 0.80, rule="confirm", evidence=paired_evidence(c.base(1), c.base(0)))
    assert single.unproven and single.decision == "reverted"
    pooled = c.pooled(1, {"round": 1, "pipeline": "better"}, incumbent, seeds=2)
    assert pooled.n == 3 * N and pooled.wins == 12 and pooled.losses == 0
    verdict = decide(0.82, 0.80, rule="confirm", evidence=pooled, pooled=True)
    assert verdict.decision == "kept" and not verdict.unproven
    assert sorted(fake.calls) == [("00", "seed1", SEED_STEP), ("00", "seed2", 2 * SEED_STEP),
                                  ("01", "seed1", SEED_STEP), ("01", "seed2", 2 * SEED_STEP)]
    assert State.of(journal).extra_runs == 4 and "confirming the incumbent" in out.getvalue()
    # the next candidate against the same incumbent: only its own seeds are trained
    write_predictions(tmp_path / "rounds" / "02", fake.correct("same", 0))
    c.pooled(2, {"round": 2, "pipeline": "same"}, incumbent, seeds=2)
    assert fake.calls[4:] == [("02", "seed1", SEED_STEP), ("02", "seed2", 2 * SEED_STEP)]


def test_the_noise_floor_compares_round_0_with_itself_under_another_seed(tmp_path):
    fake = FakeTraining(extra=0)
    write_predictions(tmp_path / "rounds" / "00", fake.correct("same", 0))
    c, journal, out = confirmer(tmp_path, fake)
    evidence = c.noise_floor("same")
    assert evidence.n == N and evidence.wins + evidence.losses > 0  # another seed changes some images
    assert State.of(journal).noise_floor["delta_interval"] == list(evidence.interval)
    assert "noise floor: the same pipeline with another seed" in out.getvalue()


def test_a_confirmation_trains_no_more_runs_than_the_budget_has_left(tmp_path):
    fake = FakeTraining(extra=4)
    write_predictions(tmp_path / "rounds" / "00", fake.correct("same", 0))
    write_predictions(tmp_path / "rounds" / "01", fake.correct("better", 0))
    c, journal, out = confirmer(tmp_path, fake)
    pooled = c.pooled(1, {"round": 1, "pipeline": "better"}, {"round": 0, "pipeline": "same"}, seeds=2, max_runs=3)
    assert len(fake.calls) == 2 and pooled.n == 2 * N  # seed 1 of both; seed 2 would need 2 more runs, 1 is left
    assert State.of(journal).confirmation_cuts == [dict(State.of(journal).confirmation_cuts[0], round=1, seeds=1,
                                                        wanted=2, runs_left=1)]
    assert "confirmation cut to 1 of 2 seeds" in out.getvalue()
    write_predictions(tmp_path / "rounds" / "02", fake.correct("better", 0))
    c.pooled(2, {"round": 2, "pipeline": "better"}, {"round": 0, "pipeline": "same"}, seeds=1, max_runs=1)
    assert fake.calls[2:] == [("02", "seed1", SEED_STEP)]  # the incumbent's seed 1 exists: one run is enough


def test_no_noise_floor_run_when_the_budget_has_none_left(tmp_path):
    fake = FakeTraining(extra=0)
    write_predictions(tmp_path / "rounds" / "00", fake.correct("same", 0))
    c, journal, out = confirmer(tmp_path, fake)
    assert c.noise_floor("same", max_runs=0) is None and fake.calls == []
    assert "noise floor not measured" in out.getvalue()

"""The keep/revert rule and the stop rule, on numbers alone (no training)."""
import pytest

from improve.refine.budget import stop_reason
from improve.refine.decide import Verdict, decide


def test_a_candidate_without_a_score_fails_and_the_first_score_is_kept():
    assert decide(None, 0.9) == Verdict("failed", None)
    assert decide(None, None) == Verdict("failed", None)
    assert decide(0.5, None) == Verdict("kept", None)


@pytest.mark.parametrize("val,incumbent,min_delta,decision", [
    (0.95, 0.90, 0.0, "kept"),
    (0.90, 0.90, 0.0, "reverted"),  # a tie keeps the incumbent
    (0.85, 0.90, 0.0, "reverted"),
    (0.905, 0.90, 0.01, "reverted"),  # a gain within min_delta is not enough
    (0.92, 0.90, 0.01, "kept"),
])
def test_a_candidate_is_kept_only_when_it_beats_the_incumbent_by_more_than_min_delta(val, incumbent, min_delta,
                                                                                      decision):
    verdict = decide(val, incumbent, min_delta)
    assert verdict.decision == decision and verdict.delta == round(val - incumbent, 4)


def test_the_run_stops_after_its_rounds_at_the_target_or_when_the_time_is_spent():
    assert stop_reason(3, rounds=5) is None
    assert stop_reason(6, rounds=5) == "all 5 rounds done"
    assert stop_reason(0, rounds=0) is None  # round 0 always runs
    assert stop_reason(2, rounds=5, incumbent_val=0.97, target=0.95).startswith("validation accuracy 0.9700 reached")
    assert stop_reason(2, rounds=5, incumbent_val=0.90, target=0.95) is None
    assert stop_reason(2, rounds=5, incumbent_val=None, target=0.95) is None
    assert stop_reason(2, rounds=5, incumbent_val=1.0).startswith("validation accuracy 1.0000: no round can beat it")
    assert stop_reason(2, rounds=5, spent_s=61, time_budget=60) == "time budget of 60 s spent"
    assert stop_reason(2, rounds=5, spent_s=59, time_budget=60) is None
    assert stop_reason(2, rounds=5, spent_s=1e9, time_budget=0) is None  # 0: no budget

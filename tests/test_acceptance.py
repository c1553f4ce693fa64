"""Paired decisions on synthetic predictions: the evidence matches a reference computation, noise is not kept under
the paired rule, a clear gain is."""
import math

import numpy as np
import pytest
from scipy.stats import binomtest

from improve.refine.decide import decide, paired_evidence


def correct(n, wrong):
    a = np.ones(n, bool)
    a[list(wrong)] = False
    return a


def test_p_value_and_interval_match_a_reference_computation():
    rng = np.random.default_rng(0)
    inc = rng.random(300) < 0.8
    cand = inc.copy()
    flip = rng.choice(300, 40, replace=False)
    cand[flip] = ~cand[flip]
    e = paired_evidence(cand, inc)
    b, c = int(np.sum(cand & ~inc)), int(np.sum(~cand & inc))
    assert (e.wins, e.losses, e.n) == (b, c, 300)
    assert e.p_value == pytest.approx(binomtest(b, b + c, 0.5, alternative="greater").pvalue, abs=1e-6)
    diff = (b - c) / 300
    se = math.sqrt(((b + c) / 300 - diff ** 2) / 300)
    assert e.delta == pytest.approx(cand.mean() - inc.mean(), abs=1e-6)
    assert e.interval == pytest.approx((diff - 1.959964 * se, diff + 1.959964 * se), abs=1e-5)


def test_identical_predictions_give_no_evidence_of_a_gain():
    a = correct(200, range(20))
    e = paired_evidence(a, a)
    assert e.delta == 0 and e.p_value == 1.0 and e.interval == (0.0, 0.0)


def test_a_candidate_equal_up_to_seed_noise_is_not_kept_under_the_paired_rule():
    # 216 images (digits' validation split): one image more right, after 6 swaps each way in the discordant images
    inc = correct(216, range(0, 8))
    cand = correct(216, [*range(0, 1), *range(8, 14)])  # right on 7 of the incumbent's 8 misses, wrong on 6 others
    e = paired_evidence(cand, inc)
    assert e.delta > 0 and e.p_value > 0.3
    val, inc_val = cand.mean(), inc.mean()
    assert decide(val, inc_val, rule="greedy", evidence=e).decision == "kept"  # greedy keeps the lucky draw
    assert decide(val, inc_val, rule="paired", evidence=e).decision == "reverted"


def test_a_clearly_better_candidate_is_kept_under_the_paired_rule():
    inc = correct(300, range(60))
    cand = correct(300, range(50, 70))  # fixes 50 of 60 errors, adds 10
    e = paired_evidence(cand, inc)
    assert e.p_value < 0.001 and e.interval[0] > 0
    verdict = decide(cand.mean(), inc.mean(), rule="paired", evidence=e)
    assert verdict.decision == "kept" and verdict.rule == "paired" and verdict.evidence is e


def test_without_per_image_predictions_the_paired_rule_says_it_judged_greedily():
    verdict = decide(0.9, 0.8, rule="paired", evidence=None)
    assert verdict.decision == "kept" and verdict.rule == "greedy"
    with pytest.raises(ValueError, match="loop.accept='best'"):
        decide(0.9, 0.8, rule="best")


def test_predictions_of_different_images_cannot_be_paired():
    with pytest.raises(ValueError, match="same images"):
        paired_evidence(np.ones(5, bool), np.ones(6, bool))

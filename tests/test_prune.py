"""loop.prune: a round clearly behind the incumbent's curve stops early and is reverted as pruned."""
import io
import json
from types import SimpleNamespace

import pytest
import yaml
from rich.console import Console

from improve.agents import Edit, HeuristicAgent
from improve.agents.base import Choice
from improve.config.paths import round_dir
from improve.journal.log import Journal
from improve.pipeline.train import train
from improve.refine.loop import Refinement
from improve.refine.prune import curve_margin, lagged, matched, noise_margin, prune_plan, root_round

from .conftest import decisions

SMALL = ["dataset.max_train=200", "trainer.epochs=4", "trainer.warmup_epochs=0"]


def _loop(**kv):
    values = {"prune": True, "prune_after": 0.25, "prune_margin": None, "folds": 0}
    return SimpleNamespace(**{**values, **kv})


def _round(run_dir, r, curve, val_images=500, parent=None):
    rd = round_dir(run_dir, r)
    rd.mkdir(parents=True)
    (rd / "metrics.json").write_text(json.dumps({"status": "ok", "dataset": {"val": val_images},
                                                 "epochs": [{"epoch": i, "val_acc": v} for i, v in enumerate(curve)]}))
    if parent is not None:
        (rd / "init.json").write_text(json.dumps({"from_round": parent, "model": {}}))


def test_the_reference_is_the_incumbents_best_so_far_at_the_same_fraction_of_training():
    assert matched([0.2, 0.5, 0.4, 0.7], 4) == [0.2, 0.5, 0.5, 0.7]
    assert matched([0.2, 0.5, 0.4, 0.7], 2) == [0.5, 0.7]  # epoch 1 of 2 is half-way: the incumbent's epoch 2
    assert matched([0.2, 0.5], 4) == [None, 0.2, 0.2, 0.5]  # nothing to compare with before its first epoch
    assert noise_margin(0.8, 1000) == round(2 * (2 * 0.8 * 0.2 / 1000) ** 0.5, 4)
    assert noise_margin(1.0, 1000) == 0.0
    # the default margin is the widest over the prunable points: the early ones, nearer 0.5
    assert curve_margin([None, 0.55, 0.9], 1000) == noise_margin(0.55, 1000) > noise_margin(0.9, 1000)


def test_a_from_scratch_round_is_compared_with_the_root_of_the_incumbents_warm_start_chain(tmp_path):
    _round(tmp_path, 0, [0.3, 0.5, 0.6, 0.65])
    _round(tmp_path, 2, [0.7, 0.72, 0.75, 0.8], parent=0)
    incumbent = {"round": 2, "val_acc": 0.8}
    assert root_round(tmp_path, 2) == 0
    scratch = prune_plan(_loop(prune_margin=0.05), tmp_path, incumbent, 4, warm=False)
    assert scratch.against == 0 and scratch.reference == [None, 0.25, 0.45, 0.55] and scratch.start == 0
    warm = prune_plan(_loop(prune_margin=0.05), tmp_path, incumbent, 4, warm=True)
    assert warm.against == 2 and warm.reference[:2] == [None, 0.65]  # one epoch behind its own curve
    assert prune_plan(_loop(), tmp_path, incumbent, 12, warm=True).start == 2  # a quarter of 12 epochs first
    assert prune_plan(_loop(prune=False), tmp_path, incumbent, 4, warm=True) is None
    assert prune_plan(_loop(folds=5), tmp_path, incumbent, 4, warm=True) is None
    assert prune_plan(_loop(), tmp_path, None, 4, warm=True) is None  # round 0
    assert prune_plan(_loop(), tmp_path, incumbent, 1, warm=True) is None  # nothing to save


def _train(compose_cfg, tmp_path, name, prune=None, *overrides):
    cfg = compose_cfg(*SMALL, "test=false", *overrides)
    cfg.paths.output_dir = str(tmp_path / name)
    if prune is not None:
        cfg.prune = prune
    metrics = train(cfg)
    assert metrics["status"] == "ok", metrics.get("error")
    return metrics


def test_a_run_clearly_behind_the_reference_stops_at_the_first_epoch_the_rule_allows(compose_cfg, tmp_path):
    behind = _train(compose_cfg, tmp_path, "behind", {"reference": [0.99] * 4, "start": 1})
    assert behind["pruned"] == {"epoch": 2, "epochs": 4, "val_acc": behind["pruned"]["val_acc"], "reference": 0.99}
    assert len(behind["epochs"]) == 2 and behind["best_val_acc"] is not None  # its best checkpoint still counts
    assert (tmp_path / "behind" / "checkpoints" / "best.ckpt").is_file()


def test_a_run_level_with_the_reference_trains_all_its_epochs(compose_cfg, tmp_path):
    more = "dataset.max_train=600"  # on 200 images validation swung 0.26 -> 0.15 between reruns at 0.92 train accuracy
    first = _train(compose_cfg, tmp_path, "first", None, more)  # the same pipeline trained again is level with it
    _round(tmp_path / "run", 0, [e["val_acc"] for e in first["epochs"]], first["dataset"]["val"])
    plan = prune_plan(_loop(), tmp_path / "run", {"round": 0}, 4, warm=False)  # the loop's default rule
    level = _train(compose_cfg, tmp_path, "level", plan.config(), more)
    assert "pruned" not in level and len(level["epochs"]) == 4, (plan, level["epochs"])


def test_the_reference_lags_one_epoch_so_a_rerun_that_takes_off_later_is_not_pruned(tmp_path):
    assert lagged([0.14, 0.15, 0.29, 0.29]) == [None, 0.14, 0.15, 0.29] and lagged([0.5]) == [None]
    _round(tmp_path, 0, [0.14, 0.15, 0.29, 0.29], val_images=216)  # a curve whose take-off came at epoch 3 (seen)
    plan = prune_plan(_loop(), tmp_path, {"round": 0}, 4, warm=False)
    assert plan.reference[0] is None and plan.margin == curve_margin([0.14, 0.15], 216)
    assert plan.reference[2] == round(0.15 - plan.margin, 4)  # a rerun at 0.15 after three epochs is level with it


def test_a_run_with_a_deadline_ends_at_the_epoch_after_which_one_more_would_not_fit(compose_cfg, tmp_path):
    seconds = 8.0  # several epochs on a quiet machine, and room for one (with its validation) on a loaded one
    cut = _train(compose_cfg, tmp_path, "cut", None, "trainer.epochs=40", f"deadline_s={seconds}")
    n, stop = len(cut["epochs"]), cut["deadline"]
    assert {k: stop[k] for k in ("epoch", "epochs", "deadline_s")} == {"epoch": n, "epochs": 40, "deadline_s": seconds}
    assert 1 <= n < 40 and stop["elapsed_s"] <= seconds, stop  # within its seconds
    assert stop["elapsed_s"] + stop["epoch_s"] > seconds, stop  # one more epoch would not have fitted
    assert stop["elapsed_s"] + 2 * stop["epoch_s"] > seconds - 0.1, stop  # nor did it stop an epoch sooner than that
    assert (tmp_path / "cut" / "checkpoints" / "best.ckpt").is_file() and cut["best_val_acc"] is not None


def test_a_rounds_deadline_is_the_time_left_less_what_a_round_costs_beyond_training():
    from improve.refine.final_phase import MIN_DEADLINE_S, OVERHEAD_SLACK, Pace, deadline_reason, deadline_s

    pace = Pace(epoch_s=2.0, overhead_s=4.0, round_s=12.0)
    assert deadline_s(20.0, pace) == 20.0 - OVERHEAD_SLACK * 4.0 and deadline_s(20.0, None) == 20.0
    assert deadline_s(2.0, pace) == MIN_DEADLINE_S
    rounds = {"epochs": [{}] * 4, "timings": {"fit_s": 7.0, "epoch_s": [1.5] * 4}}  # 1 s of the fit is its setup
    measured = Pace.of(rounds, round_seconds=9.0)
    assert measured.overhead_s == 2.0 and measured.outside_s == 3.0 and deadline_s(20.0, measured) == 16.2
    assert "after 3 of 8 epochs" in deadline_reason({"epoch": 3, "epochs": 8, "deadline_s": 16.5})


class BadTrainer(HeuristicAgent):
    """Round 1: a learning rate that cannot learn in four epochs; the expert otherwise."""

    def analyst(self, ctx):
        return Choice("trainer", "scripted", "ok") if ctx.round == 1 else super().analyst(ctx)

    def engineer(self, choice, ctx, current, tried, error=None):
        if ctx.round == 1:
            return Edit(yaml=json.dumps({**current, "lr": 1.0e-7, "min_lr": 0.0, "warm_start": False}), rationale="scripted slow")
        return super().engineer(choice, ctx, current, tried, error)


def test_a_losing_round_is_pruned_journaled_shown_and_resumes_as_pruned_after_a_kill(tmp_path, compose_loop,
                                                                                       monkeypatch):
    monkeypatch.setattr("improve.refine.loop.make_agent", lambda llm, *args: (BadTrainer(), "agent: scripted"))
    cfg = compose_loop("loop.rounds=1", "loop.max_epochs=4", "loop.prune_margin=0.05", "loop.average_top_k=0",
                       "dataset.max_train=800")
    run, out = tmp_path / "run", io.StringIO()
    Refinement(cfg, run, console=Console(file=out, width=300)).run()
    pruned = decisions(run)[1]
    k = pruned["pruned"]["epoch"]
    assert pruned["decision"] == "pruned" and k < 4 and pruned["pruned"]["epochs"] == 4
    assert pruned["pruned"]["against"] == 0 and pruned["pruned"]["margin"] == 0.05
    assert len(json.loads((round_dir(run, 1) / "metrics.json").read_text())["epochs"]) == k
    assert pruned["reason"].startswith(f"pruned at epoch {k} of 4")
    assert f"pruned {k}/4" in out.getvalue() and f"pruned at epoch {k} of 4" in out.getvalue()
    assert f"pruned at epoch {k} of 4" in (run / "report.md").read_text()
    lines = (run / "journal.jsonl").read_text().splitlines()
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["event"] == "decision"
               and json.loads(line)["round"] == 1)
    (run / "journal.jsonl").write_text("\n".join(lines[:cut]) + "\n")  # killed after round 1 trained, undecided
    trained = (round_dir(run, 1) / "metrics.json").read_bytes()
    out = io.StringIO()
    Refinement(cfg, run, console=Console(file=out, width=300)).run()
    assert "judged without training it again" in out.getvalue()
    assert (round_dir(run, 1) / "metrics.json").read_bytes() == trained
    assert decisions(run)[1]["decision"] == "pruned" and decisions(run)[1]["pruned"] == pruned["pruned"]


def test_loop_prune_false_trains_a_losing_round_to_its_end(tmp_path, compose_loop, monkeypatch):
    monkeypatch.setattr("improve.refine.loop.make_agent", lambda llm, *args: (BadTrainer(), "agent: scripted"))
    cfg = compose_loop("loop.rounds=1", "loop.max_epochs=4", "loop.prune=false", "loop.average_top_k=0")
    Refinement(cfg, tmp_path / "run", console=Console(file=io.StringIO())).run()
    reverted = decisions(tmp_path / "run")[1]
    assert reverted["decision"] in ("reverted", "kept") and "pruned" not in reverted  # kept: both near chance
    assert len(json.loads((round_dir(tmp_path / "run", 1) / "metrics.json").read_text())["epochs"]) == 4


# ---------------------------------------------------------------------------------------------- the final phase
def test_the_final_phase_plans_the_epochs_its_deadline_leaves_time_for_and_no_more():
    from improve.refine.final_phase import OVERHEAD_SLACK, Pace, deadline_s

    for epoch_s, overhead_s, left in [(3.0, 4.0, 40.0), (0.7, 9.0, 10.0), (12.0, 1.0, 300.0), (5.0, 0.0, 4.0)]:
        pace = Pace(epoch_s, overhead_s, round_s=epoch_s * 4 + overhead_s)
        epochs = pace.epochs_for(left, max_epochs=40)
        assert epochs == 0 or epochs * epoch_s + OVERHEAD_SLACK * overhead_s <= left  # the round fits what is left
        assert epochs * epoch_s <= deadline_s(left, pace)  # and its clock lets every planned epoch through
        assert (epochs + 1) * epoch_s + OVERHEAD_SLACK * overhead_s > left or epochs == 40  # one more would not
    assert Pace(1.0, 0.0, 4.0).epochs_for(100.0, max_epochs=12) == 12
    assert Pace(0.4, 2.0, 3.6).epochs_for(2.1, max_epochs=40) == 0  # its seconds outside training eat the time
    # what the study's pay6 planned (mirror, seed 0): 22.1 s left after a 12.0 s round 0 of 4 epochs in a 10.7 s
    # fit (10.0 s of them its epochs): 7 epochs, where 90 % of the time left planned 6 and left 4.6 s unused
    measured = Pace.of({"epochs": [{}] * 4, "timings": {"fit_s": 10.74, "epoch_s": [2.5] * 4}}, round_seconds=12.0)
    assert measured.epochs_for(22.1, max_epochs=40) == 7


def test_the_final_phase_is_due_once_an_ordinary_round_would_eat_into_its_reserve():
    from improve.refine.final_phase import Pace, due, final_pipeline, reserve_s

    pace = Pace(epoch_s=2.0, overhead_s=2.0, round_s=10.0)
    assert not due(50.0, 30.0, pace) and due(39.0, 30.0, pace) and due(30.0, 30.0, pace)
    assert not due(None, 30.0, pace) and not due(10.0, 0.0, pace)
    assert not due(45.0, 30.0, pace, "near")  # one more round fits before the reserve: it is explored
    assert reserve_s(SimpleNamespace(time_budget=100.0, final_phase=0.3, folds=0)) == 30.0
    assert reserve_s(SimpleNamespace(time_budget=0.0, final_phase=0.3, folds=0)) == 0.0
    assert reserve_s(SimpleNamespace(time_budget=100.0, final_phase=0.3, folds=5)) == 0.0
    pipeline = {"trainer": {"lr": 0.003, "epochs": 4, "warm_start": False, "warmup_epochs": 1.0, "min_lr": 1e-5},
                "model": {}, "augment": {}}
    final = final_pipeline(pipeline, 9)
    assert final["trainer"] == {"lr": 0.0015, "epochs": 9, "warm_start": True, "warmup_epochs": 0.5,
                                "min_lr": 1e-5, "lr_find": False}
    assert final_pipeline(pipeline, 9, "far")["trainer"]["lr"] == 0.003  # still climbing: as if trained longer
    assert pipeline["trainer"]["epochs"] == 4  # the incumbent's own pipeline is left as it was


def test_a_climbing_incumbent_trains_long_now_when_the_time_before_the_reserve_buys_one_round():
    from improve.refine.final_phase import EXPLORE_ROUNDS, Pace, due

    pace = Pace(epoch_s=2.0, overhead_s=2.0, round_s=10.0)
    one_round = 30.0 + 15.0  # 15 s before the reserve: one round fits, not EXPLORE_ROUNDS
    assert EXPLORE_ROUNDS == 2
    assert due(one_round, 30.0, pace, "near") is None  # near its ceiling: one more move is worth a try
    assert "still climb" in due(one_round, 30.0, pace, "far")  # still climbing: its epochs are worth more
    assert due(30.0 + 25.0, 30.0, pace, "far") is None  # two rounds before the reserve: exploring can pay


class Recording(HeuristicAgent):
    def __init__(self):
        self.contexts = []

    def analyst(self, ctx):
        self.contexts.append(ctx)
        return super().analyst(ctx)


@pytest.mark.slow
def test_a_time_budget_ends_with_the_incumbent_trained_long_from_its_weights(tmp_path, compose_loop, monkeypatch):
    agent = Recording()
    monkeypatch.setattr("improve.refine.loop.make_agent", lambda llm, *args: (agent, "agent: scripted"))
    cfg = compose_loop("loop.rounds=20", "loop.max_epochs=3", "loop.time_budget=45", "loop.final_phase=0.5",
                       "loop.average_top_k=0")
    out = io.StringIO()
    Refinement(cfg, tmp_path / "run", console=Console(file=out, width=300)).run()
    ds = decisions(tmp_path / "run")
    finals = [d for d in ds if d["author"] == "final phase"]
    assert len(finals) == 1 and finals[0] is ds[-1], [d["author"] for d in ds]
    proposal = [e for e in Journal(tmp_path / "run" / "journal.jsonl").events()
                if e["event"] == "proposal" and e["round"] == finals[0]["round"]][0]
    assert proposal["pipeline"]["trainer"]["warm_start"] is True and "final phase: train the winner long" in \
        proposal["rationale"]
    assert all(c.seconds_left <= 45 - 22.5 + 1e-6 and c.reserved_s == 22.5 for c in agent.contexts)
    before = sum(d["seconds"] for d in ds if d is not finals[0])
    frozen = yaml.safe_load((round_dir(tmp_path / "run", finals[0]["round"]) / "config.yaml").read_text())
    assert 0 < frozen["deadline_s"] <= 45 - before + 1e-6, (frozen["deadline_s"], before)  # the clock bounds it too
    assert "final phase: train the winner long" in out.getvalue() and "stopping: the final phase ran" in out.getvalue()

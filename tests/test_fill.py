"""loop.fill_below: under a time budget too small for a look and another round, round 0 trains what it buys."""
import io

import yaml
from rich.console import Console

from improve.agents import HeuristicAgent
from improve.config.paths import round_dir
from improve.pipeline.fill import (OVERHEAD_SLACK, PARENT_S, after_s, fill_plan, filled_pipeline, nearest,
                                   replanned)
from improve.pipeline.train import train
from improve.refine.loop import Refinement
from improve.refine.state import State
from improve.journal.log import Journal

from .conftest import decisions


def test_a_budget_that_buys_two_runs_as_planned_leaves_the_plan_alone():
    outside = OVERHEAD_SLACK * (1.0 + 0.5) + PARENT_S  # 2.375 s besides its epochs
    run_s = 2 * 4.0 + outside  # 2 epochs of 4 s
    assert fill_plan(2 * run_s, 2.0, 40, planned=2, epoch_s=4.0, before_s=1.0, val_s=0.5) is None
    plan = fill_plan(2 * run_s - 0.1, 2.0, 40, planned=2, epoch_s=4.0, before_s=1.0, val_s=0.5)
    assert plan == {"planned": 2, "epochs": 5, "seconds": round(2 * run_s - 0.1, 1), "epoch_s": 4.0,
                    "outside_s": 2.38}  # (20.65 - 2.375) / 4 = 4.57: the nearest whole number of epochs
    assert fill_plan(20.0, 2.0, 3, planned=2, epoch_s=4.0, before_s=1.0, val_s=0.5)["epochs"] == 3  # at most max
    # a plan longer than the budget buys shrinks, so its schedule still ends; never below the epoch done
    assert fill_plan(12.0, 2.0, 40, planned=8, epoch_s=4.0, before_s=1.0, val_s=0.5)["epochs"] == 2  # 2.41
    assert fill_plan(3.0, 2.0, 40, planned=8, epoch_s=4.0, before_s=1.0, val_s=0.5)["epochs"] == 1  # 0.16
    # what only the first epoch paid is counted once, with the seconds outside the epochs, not in every epoch
    once = fill_plan(2 * run_s - 0.1, 2.0, 40, planned=2, epoch_s=4.0, before_s=1.0, val_s=0.5, once_s=0.625)
    assert once["outside_s"] == 3.0 and once["epochs"] == 4  # (20.65 - 3.0) / 4 = 4.41


def test_after_each_later_epoch_the_plan_is_made_again_from_the_seconds_left():
    assert after_s(1.0, 0.5) == OVERHEAD_SLACK * 0.5 + PARENT_S + (OVERHEAD_SLACK - 1) * 1.0
    assert [nearest(x) for x in (2.49, 2.5, 2.83, 0.3)] == [2, 3, 3, 0]
    # a slow first epoch planned 2 (20 s, 1 s before, 6 s for it): at 3 s an epoch the 8.5 s left buy 3 more (2.83)
    assert replanned(20.0, done=2, spent_s=10.0, after=1.5, epoch_s=3.0, max_epochs=40) == 5
    assert replanned(20.0, done=2, spent_s=10.0, after=1.5, epoch_s=3.0, max_epochs=4) == 4  # at most max_epochs
    assert replanned(20.0, done=3, spent_s=17.5, after=1.5, epoch_s=3.0, max_epochs=40) == 3  # 0.33 more: it ends
    assert replanned(20.0, done=3, spent_s=21.0, after=1.5, epoch_s=3.0, max_epochs=40) == 3  # never below done


def test_the_filled_pipeline_is_the_one_trained():
    pipeline = {"trainer": {"epochs": 2, "warmup_epochs": 1.0, "lr": 0.003}, "model": {"name": "resnet10t"}}
    out = filled_pipeline(pipeline, {"epochs": 5})
    assert out["trainer"] == {"epochs": 5, "warmup_epochs": 1.0, "lr": 0.003} and pipeline["trainer"]["epochs"] == 2
    assert filled_pipeline(pipeline, {"epochs": 1})["trainer"]["warmup_epochs"] == 1.0
    assert filled_pipeline({"trainer": {"epochs": 4, "warmup_epochs": 2.0}}, {"epochs": 1})["trainer"] == \
        {"epochs": 1, "warmup_epochs": 1.0}


def test_a_run_that_fills_the_budget_trains_its_epochs_in_one_replanned_schedule(compose_cfg, tmp_path):
    cfg = compose_cfg("dataset.max_train=200", "trainer.epochs=2", "trainer.warmup_epochs=0.5", "test=false",
                      "trainer.min_lr=0.00001")
    cfg.fill = {"seconds": 60.0, "below_rounds": 1000.0, "max_epochs": 4}  # buys far fewer than 1000 runs
    metrics = train(cfg)
    assert metrics["status"] == "ok", metrics.get("error")
    assert metrics["filled"]["planned"] == 2 and metrics["filled"]["epochs"] == 4
    assert len(metrics["epochs"]) == 4 and "replans" not in metrics["filled"]  # an hour's worth: 4 each time
    lrs = [e["lr"] for e in metrics["epochs"]]
    # one cosine over four epochs: at its halfway point after epoch 2, annealed at the end (not restarted)
    assert lrs[1] > 0.3 * cfg.trainer.lr and lrs[3] < 0.3 * lrs[1], lrs

    cfg.paths.output_dir = str(tmp_path / "roomy")
    cfg.fill = {"seconds": 3600.0, "below_rounds": 2.0, "max_epochs": 4}  # an hour buys many runs: as planned
    roomy = train(cfg)
    assert "filled" not in roomy and len(roomy["epochs"]) == 2


def test_a_small_budget_is_round_zeros_and_no_other_round_starts(tmp_path, compose_loop):
    cfg = compose_loop("trainer.epochs=1", "loop.max_epochs=3", "loop.rounds=5", "loop.time_budget=60",
                       "loop.fill_below=1000", "loop.average_top_k=0")  # 60 s buy fewer than 1000 runs of round 0
    out = io.StringIO()
    Refinement(cfg, tmp_path / "run", ["trainer.epochs=1"], console=Console(file=out, width=300),
               agent=HeuristicAgent()).run()  # the user pinned 1 epoch for round 0
    ds = decisions(tmp_path / "run")
    assert len(ds) == 1 and ds[0]["decision"] == "kept", ds
    assert ds[0]["filled"]["planned"] == 1 and ds[0]["filled"]["epochs"] == 3  # at most loop.max_epochs
    assert "re-planned its schedule for 3 epochs where 1 were planned" in ds[0]["reason"]
    text = out.getvalue()
    assert "round 0: loop.time_budget buys fewer than loop.fill_below runs of round 0" in text
    assert "stopping: round 0 trained 3 epochs, what loop.time_budget buys" in text
    state = State.of(Journal(tmp_path / "run" / "journal.jsonl"))
    assert state.incumbent["pipeline"]["trainer"]["epochs"] == 3  # the pipeline it trained, for a refit or a person
    saved = yaml.safe_load((tmp_path / "run" / "incumbent" / "config.yaml").read_text())
    assert saved["trainer"]["epochs"] == 3
    assert yaml.safe_load((round_dir(tmp_path / "run", 0) / "config.yaml").read_text())["fill"]["seconds"] == 60.0
    assert "re-planned its schedule" in (tmp_path / "run" / "report.md").read_text()


def test_without_a_time_budget_round_zero_keeps_its_plan(tmp_path, compose_loop):
    cfg = compose_loop("loop.rounds=0", "loop.fill_below=1000", "loop.average_top_k=0")
    Refinement(cfg, tmp_path / "run", console=Console(file=io.StringIO()), agent=HeuristicAgent()).run()
    frozen = yaml.safe_load((round_dir(tmp_path / "run", 0) / "config.yaml").read_text())
    assert frozen["fill"] is None and "filled" not in decisions(tmp_path / "run")[0]

"""loop.average_top_k: the weights of the incumbent and its warm-start ancestors averaged at the end (SWA over the
rounds' cycles), BatchNorm recomputed, judged like a candidate, and then what test, predict and export use."""
import dataclasses
import io
import json

import pytest
import torch
from rich.console import Console

from improve.final import soup
from improve.final.end_of_run import EndOfRun
from improve.final.finish import finish
from improve.journal.log import Journal
from improve.pipeline.inference import Predictor, predict_split, split_images
from improve.refine.loop import Refinement
from improve.refine.state import State

from .conftest import LOOP_FAST, compose

KEEP_ANY = EndOfRun(ensemble_top_k=0, accept="greedy", min_delta=-1.0, average_top_k=3)  # keeps whatever it scores


@pytest.fixture(scope="module")
def chained_run(tmp_path_factory):
    """A run whose rounds warm-start; ensemble_top_k keeps every round's checkpoint."""
    tmp = tmp_path_factory.mktemp("averaging")
    cfg = compose("config", [*LOOP_FAST, "loop.rounds=2", "trainer.warm_start=true", "loop.ensemble_top_k=2"],
                  tmp / "run", tmp / "cache")
    out = io.StringIO()
    loop = Refinement(cfg, tmp / "run", ["trainer.warm_start=true"], console=Console(file=out, width=250))
    result = loop.run()
    return tmp / "run", loop, result, out.getvalue()


def _state_with_incumbent(run, loop, r):
    """The run's state as if round r (warm-started) were the incumbent, its checkpoint that round's, and every round
    had scored alike (1-epoch rounds differ by more than soup.WITHIN)."""
    state = State.of(loop.journal)
    d = state.decisions[r]
    for other in state.decisions.values():
        other["val_acc"] = d["val_acc"]
        other["decision"] = "kept"  # so finish releases no round's weights that later tests average
    state.incumbent = {"round": r, "pipeline": state.proposals[r]["pipeline"], "val_acc": d["val_acc"],
                       "summary": d["summary"]}
    return state, run / "rounds" / f"{r:02d}" / "checkpoints" / "best.ckpt"


def test_the_lineage_follows_each_rounds_parent_back_to_round_0(chained_run):
    run, loop, _, _ = chained_run
    state, ckpt = _state_with_incumbent(run, loop, 2)
    members = soup.lineage(state, run, ckpt, 5)
    parent = json.loads((run / "rounds" / "02" / "init.json").read_text())["from_round"]
    assert [r for r, _ in members][:2] == [2, parent] and members[-1][0] == 0
    assert members[1][1] == run / "rounds" / "02" / "init.ckpt"  # the parent's weights as round 2 began
    assert len(soup.lineage(state, run, ckpt, 1)) == 1
    state.proposals[parent]["pipeline"]["augment"]["image_size"] = 64  # another image size ends the lineage
    assert [r for r, _ in soup.lineage(state, run, ckpt, 5)] == [2]
    state, _ = _state_with_incumbent(run, loop, 2)
    state.proposals[2]["pipeline"]["trainer"]["warm_start"] = False  # round 2 would have trained from scratch
    assert [r for r, _ in soup.lineage(state, run, ckpt, 5)] == [2]
    state, _ = _state_with_incumbent(run, loop, 2)
    state.decisions[parent]["val_acc"] -= soup.WITHIN + 0.01  # a much weaker ancestor is left out
    assert [r for r, _ in soup.lineage(state, run, ckpt, 5)] == [2]


def test_weights_are_averaged_and_batchnorm_statistics_recomputed(chained_run, tmp_path):
    run, loop, _, _ = chained_run
    state, ckpt = _state_with_incumbent(run, loop, 2)
    members = soup.lineage(state, run, ckpt, 2)
    config = loop.runner.config(state.incumbent["pipeline"], run / "best")
    from omegaconf import OmegaConf

    config = OmegaConf.create(config)
    path = soup.average(members, config, tmp_path / "avg", split_images(config, "train")[0])
    states = [torch.load(c, map_location="cpu", weights_only=True)["state_dict"] for _, c in members]
    averaged = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    conv = next(k for k, v in averaged.items() if k.endswith("weight") and v.dim() == 4)
    assert torch.allclose(averaged[conv], (states[0][conv] + states[1][conv]) / 2, atol=1e-6)
    bn = next(k for k in averaged if k.endswith("running_mean"))
    assert not torch.allclose(averaged[bn], (states[0][bn] + states[1][bn]) / 2, atol=1e-4)  # recomputed


def test_checkpoints_of_different_models_are_refused_with_the_fix(chained_run, tmp_path):
    run, _, _, _ = chained_run
    good = run / "rounds" / "02" / "init.ckpt"
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"net.fc.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(ValueError, match="loop.average_top_k=0"):
        soup.mean_state([good, other])


def test_kept_averaged_weights_are_the_final_model_tested_predicted_and_reported(chained_run, tmp_path):
    run, loop, _, _ = chained_run
    state, ckpt = _state_with_incumbent(run, loop, 2)
    loop.incumbent.checkpoint.write_bytes(ckpt.read_bytes())  # incumbent/ holds round 2's weights
    journal = Journal(run / "journal.jsonl")
    result = finish(run, state, journal, loop.incumbent, loop.runner, 0.0, KEEP_ANY)
    assert result["average"]["decision"] == "kept" and result["average"]["members"][0] == 2
    assert len(result["average"]["delta_interval"]) == 2 and "checkpoint" not in result["average"]
    assert json.loads((run / "best" / "averaged" / "averaged.json").read_text())["members"] == \
        result["average"]["members"]
    predictor = Predictor.from_run(run)
    val = predict_split(predictor.cfg, run / "best" / "best.ckpt", "val")
    assert val["acc"] == pytest.approx(result["average"]["val_acc"], abs=1e-4)
    assert result["single_test_acc"] is not None
    event = next(e for e in reversed(journal.events()) if e["event"] == "average")
    assert event["decision"] == "kept" and event["p_value"] is not None
    from improve.results.report import write_report

    write_report(run, State.of(journal))
    assert "Weight averaging (loop.average_top_k): averaged weights of rounds 2" in (run / "report.md").read_text()


def test_nothing_is_averaged_when_off_or_without_a_warm_started_incumbent(chained_run):
    run, loop, _, _ = chained_run
    state, ckpt = _state_with_incumbent(run, loop, 2)
    off = dataclasses.replace(KEEP_ANY, average_top_k=1)  # loop.average_top_k=1: off
    assert soup.judge(state, run, ckpt, off, loop.runner) is None
    state, ckpt = _state_with_incumbent(run, loop, 0)  # round 0 trained from scratch: no ancestor
    for proposal in state.proposals.values():  # ... and no round continued from its weights
        proposal["pipeline"]["trainer"]["warm_start"] = False
    assert soup.judge(state, run, ckpt, KEEP_ANY, loop.runner) is None
    assert not (run / "best" / "averaged").exists()


def test_an_averaging_that_fails_is_skipped_with_the_reason_and_the_run_keeps_its_model(chained_run, monkeypatch):
    run, loop, _, _ = chained_run
    state, ckpt = _state_with_incumbent(run, loop, 2)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory while recomputing BatchNorm")

    monkeypatch.setattr(soup, "average", broken)
    judged = soup.judge(state, run, ckpt, KEEP_ANY, loop.runner)
    assert judged["decision"] == "skipped" and "out of memory" in judged["reason"]
    assert "loop.average_top_k=0" in judged["reason"] and not (run / "best" / "averaged").exists()
    from improve.refine.console import AVERAGED, ensemble_line

    assert ensemble_line(judged, None, AVERAGED).startswith("averaged weights skipped: RuntimeError")


def test_rounds_that_continued_from_the_incumbent_join_its_soup(chained_run):
    run, loop, _, _ = chained_run
    state, ckpt = _state_with_incumbent(run, loop, 0)  # round 0 has no ancestor, but rounds continued from it
    children = [r for r in (1, 2) if json.loads((run / "rounds" / f"{r:02d}" / "init.json").read_text())
                ["from_round"] == 0]
    judged = soup.judge(state, run, ckpt, KEEP_ANY, loop.runner)
    assert children and judged["tried"][0] == 0 and set(children) <= set(judged["tried"])
    assert judged["decision"] == "kept" and judged["members"] == judged["tried"]


def test_an_ingredient_that_lowers_validation_accuracy_stays_out_of_the_soup(chained_run):
    run, loop, _, _ = chained_run
    state, ckpt = _state_with_incumbent(run, loop, 2)
    strict = dataclasses.replace(KEEP_ANY, min_delta=1.0)  # no average can gain a whole 1.0 of accuracy
    judged = soup.judge(state, run, ckpt, strict, loop.runner)
    assert judged["decision"] == "reverted" and judged["members"] == [2] and len(judged["tried"]) >= 2
    assert not (run / "best" / "averaged").exists()
    from improve.refine.console import AVERAGED, ensemble_line

    assert "averaged weights of rounds 2 (tried 2, " in ensemble_line(judged, None, AVERAGED)


def test_reverted_warm_started_rounds_keep_their_weights_for_the_soup_until_the_run_ends(tmp_path):
    overrides = [*LOOP_FAST, "loop.rounds=2", "trainer.warm_start=true", "loop.ensemble_top_k=0",
                 "loop.min_delta=1.0"]  # every change after round 0 is reverted
    cfg = compose("config", overrides, tmp_path / "run", tmp_path / "cache")
    loop = Refinement(cfg, tmp_path / "run", overrides[-3:], console=Console(file=io.StringIO(), width=250))
    result = loop.run()
    assert [d["decision"] for d in State.of(loop.journal).decisions.values()] == ["kept", "reverted", "reverted"]
    assert result["average"]["tried"][0] == 0 and sorted(result["average"]["tried"]) == [0, 1, 2]  # both offered
    assert not list((tmp_path / "run" / "rounds").glob("0[12]/checkpoints/best.ckpt"))  # and released after
    assert (tmp_path / "run" / "rounds" / "00" / "checkpoints" / "best.ckpt").is_file()


def test_a_soup_that_fails_part_way_keeps_what_joined_before_and_says_where_it_stopped(chained_run, monkeypatch):
    run, loop, _, _ = chained_run
    state, ckpt = _state_with_incumbent(run, loop, 2)  # round 2 and its ancestors back to round 0: two tries
    real, calls = soup.average, []

    def fails_on_the_second_try(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise RuntimeError("out of memory while recomputing BatchNorm")
        return real(*args, **kwargs)

    monkeypatch.setattr(soup, "average", fails_on_the_second_try)
    judged = soup.judge(state, run, ckpt, KEEP_ANY, loop.runner)
    assert len(calls) == 2 and judged["decision"] == "kept" and len(judged["members"]) == 2
    assert "out of memory" in judged["stopped"] and f"round {calls[1][-1][0]}" in judged["stopped"]
    assert (run / "best" / "averaged" / "best.ckpt").is_file()
    from improve.refine.console import AVERAGED, ensemble_line

    assert "stopped early: round" in ensemble_line(judged, 0.5, AVERAGED)

"""Agent replies become validated candidates: repairs, rejections, the user's pinned values (no training)."""
import io

import pytest
import yaml
from omegaconf import OmegaConf
from rich.console import Console

from improve.agents import Choice, Context, Edit, FirstPipeline, HeuristicAgent
from improve.config.overrides import pinned_values
from improve.config.schema import EDITABLE_GROUPS, group_defaults
from improve.journal.log import Journal
from improve.refine.console import LoopConsole
from improve.refine.proposals import Proposer
from improve.refine.state import State
from improve.refine.validator import Validator

DEFAULTS = {g: group_defaults(g) for g in EDITABLE_GROUPS}
PROFILE = {"name": "digits", "description": "digits", "num_classes": 10, "channels": 1, "train_images": 1000,
           "native_size": {"min": [8, 8], "median": [8, 8], "max": [8, 8]}, "pixel_mean": [0.3], "pixel_std": [0.4],
           "pretrained_reachable": False}


class Scripted(HeuristicAgent):
    """The offline expert, except for the replies scripted here (used in order, then the expert's own)."""

    def __init__(self, architect=(), engineer=()):
        self.architect_replies, self.engineer_replies = list(architect), list(engineer)

    def architect(self, ctx, defaults, error=None):
        return self.architect_replies.pop(0) if self.architect_replies else super().architect(ctx, defaults, error)

    def engineer(self, choice, ctx, current, tried, error=None):
        return self.engineer_replies.pop(0) if self.engineer_replies else super().engineer(choice, ctx, current,
                                                                                           tried, error)


def make(tmp_path, agent, pinned=None, max_repairs=1):
    journal, out = Journal(tmp_path / "journal.jsonl"), io.StringIO()
    loop = OmegaConf.create({"max_repairs": max_repairs, "init": "unified", "strategy": "iterative", "max_epochs": 40})
    proposer = Proposer(agent, journal, LoopConsole(Console(file=out, width=200)), loop, DEFAULTS,
                        Validator(10, 1, {}, timeout=30, max_epochs=40), pinned=pinned)
    return proposer, journal, out


def ctx(r=0, incumbent=None):
    return Context(profile=PROFILE, incumbent=incumbent or {"round": None, "pipeline": DEFAULTS, "val_acc": None,
                                                            "summary": {"diagnosis": "ok"}}, rounds=[], round=r)


def errors(journal):
    return [e for e in journal.events() if e["event"] == "validation_error"]


def test_the_users_command_line_values_stay_in_round_0_on_top_of_the_architects_pipeline(tmp_path):
    proposer, _, _ = make(tmp_path, HeuristicAgent(), pinned={"trainer": {"lr": 0.0123}})
    candidate = proposer.initial(ctx())
    assert candidate.author == "architect" and candidate.pipeline["trainer"]["lr"] == 0.0123
    assert candidate.pipeline["trainer"]["epochs"] == 12  # the rest is the architect's (1,000 images: 12 epochs)
    assert "user's values kept" in candidate.rationale


def test_pinned_values_are_read_from_the_composed_config(compose_loop):
    overrides = ["trainer.lr=0.01", "augment=photo", "dataset.max_train=5", "+model.kwargs.global_pool=max"]
    cfg = compose_loop(*overrides)
    pinned = pinned_values(cfg, overrides)
    assert pinned["trainer"] == {"lr": 0.01} and pinned["model"] == {"kwargs": {"global_pool": "max"}}
    assert pinned["augment"]["image_size"] == 224 and set(pinned) == {"trainer", "augment", "model"}


def test_a_rejected_first_pipeline_is_repaired_and_journaled(tmp_path):
    bad = FirstPipeline(pipeline={"augment": "image_size: 32", "model": "name: resnet19", "trainer": "lr: 0.01"},
                   rationale="typo")
    proposer, journal, out = make(tmp_path, Scripted(architect=[bad]))
    candidate = proposer.initial(ctx())
    assert candidate.author == "architect" and candidate.repairs == 1
    assert [e["kind"] for e in errors(journal)] == ["unknown_model"]
    assert "first pipeline rejected (unknown_model)" in out.getvalue() and "resnet18" in out.getvalue()


def test_an_architect_that_never_answers_usably_leaves_the_defaults(tmp_path):
    bad = FirstPipeline(pipeline={}, rationale="", error="the reply is not a JSON object")
    proposer, journal, _ = make(tmp_path, Scripted(architect=[bad, bad]))
    candidate = proposer.initial(ctx())
    assert candidate.author == "defaults" and candidate.pipeline == DEFAULTS
    assert [e["kind"] for e in errors(journal)] == ["bad_reply", "bad_reply"]


def test_an_unchanged_or_already_trained_edit_is_sent_back_and_then_the_round_has_no_candidate(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    tried = {**DEFAULTS, "trainer": {**DEFAULTS["trainer"], "lr": 0.001}}
    for r, p in enumerate([DEFAULTS, tried]):
        journal.append("proposal", round=r, author="x", group="trainer", pipeline=p, changes=[], rationale="",
                       preflight=None, repairs=0)
        journal.append("decision", round=r, author="x", group="trainer", decision="kept" if r == 0 else "reverted",
                       val_acc=0.9, delta=None, changes=[], summary={"diagnosis": "ok"}, seconds=1.0)
    same = Edit(yaml=yaml.safe_dump(DEFAULTS["trainer"]), rationale="same")
    again = Edit(yaml="lr: 0.001", rationale="tried")

    class Analyst(Scripted):
        def analyst(self, ctx):
            return Choice("trainer", "scripted", "ok")

    proposer, journal, _ = make(tmp_path, Analyst(engineer=[same, again]))
    state = State.of(journal)
    candidate = proposer.propose(state, ctx(2, state.incumbent))[0]
    assert candidate.pipeline is None and candidate.repairs == 2
    assert [e["kind"] for e in errors(journal)] == ["no_change", "duplicate"]
    analysis = [e for e in journal.events() if e["event"] == "analysis"][-1]
    assert analysis["group"] == "trainer" and analysis["diagnosis"] == "ok"


@pytest.mark.parametrize("diagnosis,key", [("underfit", "epochs"), ("unstable", "grad_clip")])
def test_the_engineer_acts_on_the_analysts_diagnosis_field(tmp_path, diagnosis, key):
    class Analyst(HeuristicAgent):
        def analyst(self, ctx):
            return Choice("trainer", "free text with no diagnosis in it", diagnosis)

    proposer, _, _ = make(tmp_path, Analyst())
    incumbent = {"round": 0, "pipeline": DEFAULTS, "val_acc": 0.5, "summary": {"diagnosis": "ok"}}
    candidate = proposer.propose(State([]), ctx(1, incumbent))[0]
    assert candidate.pipeline["trainer"][key] != DEFAULTS["trainer"][key]


def test_several_candidates_are_distinct_edits_of_the_one_group_the_analyst_chose(tmp_path):
    proposer, journal, _ = make(tmp_path, HeuristicAgent())
    incumbent = {"round": 0, "pipeline": DEFAULTS, "val_acc": 0.5, "summary": {"diagnosis": "underfitting"}}
    found = proposer.propose(State([]), ctx(1, incumbent), count=3)
    assert len(found) == 3 and len({c.group for c in found}) == 1
    group = found[0].group
    assert all(c.pipeline[group] != DEFAULTS[group] for c in found)
    assert len({yaml.safe_dump(c.pipeline, sort_keys=True) for c in found}) == 3  # no two alike
    assert all(c.pipeline[g] == DEFAULTS[g] for c in found for g in EDITABLE_GROUPS if g != group)
    assert len([e for e in journal.events() if e["event"] == "analysis"]) == 1  # one analyst call for the round

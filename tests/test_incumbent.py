"""incumbent/: promotion, repair after a kill, and telling a person's edit from the loop's own (no training)."""
import json

import pytest
import yaml

from improve.config.schema import EDITABLE_GROUPS, group_defaults
from improve.journal.log import Journal
from improve.refine.incumbent import IncumbentDir
from improve.refine.state import State
from improve.refine.validator import Validator

PIPELINE = {g: group_defaults(g) for g in EDITABLE_GROUPS}


@pytest.fixture
def run(tmp_path):
    """A run whose round 0 was kept: its journal, and incumbent/ as the loop wrote it."""
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append("proposal", round=0, author="architect", group="augment+model+trainer", pipeline=PIPELINE,
                   changes=[], rationale="x", preflight=None, repairs=0)
    journal.append("decision", round=0, author="architect", group="augment+model+trainer", decision="kept",
                   val_acc=0.9, delta=None, changes=[], summary={"diagnosis": "ok"}, seconds=1.0)
    incumbent = IncumbentDir(tmp_path, Validator(10, 1, {}, timeout=30))
    incumbent.promote(0, PIPELINE, 0.9)
    return incumbent, journal


def test_promote_writes_the_pipeline_and_a_state_that_matches_it(run):
    incumbent, journal = run
    state = json.loads((incumbent.dir / "state.json").read_text())
    assert state == {"round": 0, "val_acc": 0.9, "config_sha": incumbent.config_sha()}
    assert "Edit it between rounds" in incumbent.config.read_text()
    assert incumbent.hand_edit(State.of(journal), []) == (None, [])  # nobody touched it


def test_a_persons_edit_becomes_a_human_candidate_of_the_groups_it_changed(run):
    incumbent, journal = run
    incumbent.config.write_text(incumbent.config.read_text().replace("lr: 0.003", "lr: 0.001"))
    candidate, rejected = incumbent.hand_edit(State.of(journal), [])
    assert rejected == [] and candidate.author == "human" and candidate.group == "trainer"
    assert candidate.pipeline["trainer"]["lr"] == 0.001 and candidate.preflight.num_params > 0


def test_resume_overrides_are_a_hand_edit_on_top_of_the_incumbent(run):
    incumbent, journal = run
    candidate, rejected = incumbent.hand_edit(State.of(journal), ["model.drop_rate=0.3", "trainer.epochs=3"])
    assert rejected == [] and candidate.group == "model+trainer"
    assert candidate.pipeline["model"]["drop_rate"] == 0.3 and candidate.pipeline["trainer"]["epochs"] == 3
    assert "resume overrides" in candidate.rationale


@pytest.mark.parametrize("text,kind", [
    ("trainer: {lr: [oops", "not_yaml"),
    ("dataset: {name: x}", "other_group"),
    ("trainer: {lr: -1.0}", "out_of_range"),
    ("trainer: {learning_rate: 0.1}", "unknown_key"),
    ("a: &a [x, x, x]\nb: &b [*a, *a, *a]\ntrainer: {lr: *b}", "yaml_alias"),  # an alias bomb is never expanded
])
def test_a_broken_edit_is_rejected_with_its_kind_and_the_incumbent_restored(run, text, kind):
    incumbent, journal = run
    incumbent.config.write_text(text)
    candidate, rejected = incumbent.hand_edit(State.of(journal), [])
    assert candidate is None and [r.kind for r in rejected] == [kind]
    assert incumbent.config_sha() == json.loads((incumbent.dir / "state.json").read_text())["config_sha"]
    assert "lr: 0.003" in incumbent.config.read_text()


def test_a_promotion_cut_short_by_a_kill_is_not_mistaken_for_a_persons_edit(run):
    incumbent, journal = run
    better = {**PIPELINE, "trainer": {**PIPELINE["trainer"], "lr": 0.006}}
    journal.append("proposal", round=1, author="engineer", group="trainer", pipeline=better, changes=[],
                   rationale="x", preflight=None, repairs=0)
    incumbent.config.write_text(yaml.safe_dump(better))  # config.yaml written, state.json not yet: then kill -9
    assert incumbent.hand_edit(State.of(journal), []) == (None, [])


def test_sync_repairs_a_directory_left_behind_by_a_kill(run):
    incumbent, journal = run
    (incumbent.dir / "state.json").unlink()
    incumbent.config.write_text("half")
    incumbent.sync(State.of(journal).incumbent)
    assert json.loads((incumbent.dir / "state.json").read_text())["round"] == 0
    assert "lr: 0.003" in incumbent.config.read_text()

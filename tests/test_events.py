"""The journal's typed events: one record per kind, one writer, documented, and journals of earlier versions still
read and resume."""
import ast
import io
import json
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
from rich.console import Console

from improve.config.paths import PROJECT_ROOT
from improve.journal.events import KINDS, Decision, End, LLMCall, ValidationError, line_key, of_fields
from improve.journal.log import Journal
from improve.refine.loop import Refinement
from improve.refine.state import State

from .conftest import decisions

OLD = Path(__file__).parent / "data" / "journals"  # written by the code before the package had folders (e91eefe)


def test_every_event_kind_and_field_is_in_docs_journal_md():
    doc = (PROJECT_ROOT / "docs" / "journal.md").read_text()
    for kind, cls in KINDS.items():
        assert f"## `{kind}`" in doc
        section = doc.split(f"## `{kind}`", 1)[1].split("\n## ", 1)[0]
        missing = [line_key(f) for f in fields(cls) if f.name != "extra" and f"`{line_key(f)}`" not in section]
        assert missing == [], f"{kind}: document {missing} in docs/journal.md"


def test_the_package_writes_events_only_as_typed_records():
    raw = []
    for path in (PROJECT_ROOT / "improve").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append"
                    and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in KINDS):
                raw.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert raw == []


def test_a_record_is_written_with_its_kind_and_without_the_optional_fields_that_do_not_apply(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    line = journal.write(Decision.untrained(3, "engineer", "-", "skipped", "no LLM", {"calls": 0}))
    assert line["event"] == "decision" and line["summary"] == {"diagnosis": "skipped"} and "p_value" not in line
    assert journal.events()[0] == json.loads(json.dumps(line))
    line = journal.write(ValidationError(round=1, author="engineer", group="trainer", attempt=0, kind_of_error="range",
                                         error="trainer.lr=-1 must be > 0"))
    assert line["kind"] == "range" and "kind_of_error" not in line and "reply" not in line
    line = journal.write(LLMCall(round=0, role="analyst", model="m", cached=False, input_tokens=1, output_tokens=2,
                                 cache_read_tokens=0, cache_write_tokens=0, cost_usd=0.0, totals={},
                                 extra={"seconds": 1.5}))
    assert line["seconds"] == 1.5 and "extra" not in line


def test_a_record_from_fields_names_a_missing_or_unknown_field():
    with pytest.raises(ValueError, match=r"decision event: missing field\(s\) \['author'"):
        of_fields(Decision, {"round": 1})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['colour'\]"):
        of_fields(ValidationError, {"round": 1, "author": "a", "group": "g", "attempt": 0, "kind": "k", "error": "e",
                                    "colour": "red"})
    end = of_fields(End, {"rounds": 2, "incumbent_round": 1, "val_acc": 0.9, "test_acc": 0.8, "round0_test_acc": 0.7})
    assert end.extra == {"round0_test_acc": 0.7} and end.fields()["round0_test_acc"] == 0.7


@pytest.mark.parametrize("name", ["confirm_ensemble", "candidates_soup"])
def test_every_line_of_a_journal_written_before_the_typed_events_is_one_of_them(name):
    lines = Journal(OLD / name / "journal.jsonl").events()
    assert len(lines) > 10
    for line in lines:
        record = of_fields(KINDS[line["event"]], line)
        written = {**record.fields(), "event": line["event"], "time": line["time"]}
        assert {k: v for k, v in written.items() if v is not None} == {k: v for k, v in line.items() if v is not None}


def test_a_journal_written_before_the_typed_events_replays_to_the_same_state():
    events = Journal(OLD / "confirm_ensemble" / "journal.jsonl").events()
    state = State(events)
    kept = [e["round"] for e in events if e["event"] == "decision" and e["decision"] == "kept"]
    assert state.incumbent["round"] == kept[-1] and state.final is not None and state.noise_floor is not None
    assert state.next_round == 1 + max(e["round"] for e in events if e["event"] == "decision")
    assert len(state.confirmations) == state.extra_runs >= 1 and state.summaries()[0]["author"] == "architect"


def test_a_run_started_before_the_typed_events_resumes_after_them(tmp_path, cache_dir, compose_loop):
    """The old run was killed after round 0's proposal: its journal, cut there, and its run_config are all that is
    left; the resumed run trains round 0 again from the journaled proposal, goes on and ends with a tested model."""
    run = tmp_path / "run"
    run.mkdir()
    old = (OLD / "candidates_soup" / "journal.jsonl").read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(old) if json.loads(line)["event"] == "proposal") + 1
    (run / "journal.jsonl").write_text("".join(old[:cut]))
    cfg = compose_loop("loop.rounds=1")
    proposal = json.loads(old[cut - 1])
    Refinement(cfg, run, ["loop.rounds=1"], console=Console(file=io.StringIO(), width=200)).run()
    state = State.of(Journal(run / "journal.jsonl"))
    assert [d["round"] for d in decisions(run)] == [0, 1] and state.proposals[0]["pipeline"] == proposal["pipeline"]
    assert sum(e["event"] == "proposal" and e["round"] == 0 for e in Journal(run / "journal.jsonl").events()) == 1
    assert state.final["test_acc"] is not None and (run / "best" / "best.ckpt").is_file()
    shutil.rmtree(run / "rounds", ignore_errors=True)

"""The journal survives a torn write, and State replays a run from it (what resume relies on)."""
import json

from improve.journal.log import Journal
from improve.refine.state import State


def pipeline(lr):
    return {"augment": {"image_size": 32}, "model": {"name": "resnet10t"}, "trainer": {"lr": lr}}


def decided(journal, r, decision, val, lr, seconds=10.0):
    author = "architect" if r == 0 else "engineer"
    journal.append("proposal", round=r, author=author, group="trainer", pipeline=pipeline(lr), changes=[],
                   rationale="x", preflight=None, repairs=0)
    journal.append("decision", round=r, author=author, group="trainer", decision=decision, val_acc=val, delta=None,
                   changes=[], summary={"diagnosis": "ok"}, seconds=seconds)


def test_a_torn_last_line_is_ignored_and_repair_lets_the_next_event_start_clean(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append("start", config={})
    with open(journal.path, "a") as fh:
        fh.write('{"event": "proposal", "rou')  # a kill -9 in the middle of a write
    assert [e["event"] for e in journal.events()] == ["start"]
    journal.repair()
    journal.append("resume", overrides=[])
    assert [e["event"] for e in journal.events()] == ["start", "resume"]
    assert all(json.loads(line) for line in journal.path.read_text().splitlines())


def test_repair_leaves_an_intact_journal_as_it_is(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.repair()  # no file yet
    journal.append("start", config={})
    before = journal.path.read_bytes()
    journal.repair()
    assert journal.path.read_bytes() == before


def test_state_replays_the_incumbent_the_next_round_and_what_was_tried(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append("start", config={}, pinned={"trainer": {"lr": 0.01}})
    journal.append("profile", profile={"num_classes": 10})
    decided(journal, 0, "kept", 0.80, 0.001)
    decided(journal, 1, "kept", 0.85, 0.002)
    decided(journal, 2, "reverted", 0.84, 0.003)
    decided(journal, 3, "failed", None, 0.004)
    journal.append("proposal", round=4, author="engineer", group="trainer", pipeline=pipeline(0.005), changes=[],
                   rationale="interrupted", preflight=None, repairs=0)  # killed before its decision
    state = State.of(journal)
    assert state.profile == {"num_classes": 10} and state.pinned == {"trainer": {"lr": 0.01}}
    assert state.incumbent["round"] == 1 and state.incumbent_val == 0.85
    assert state.incumbent["pipeline"] == pipeline(0.002)
    assert state.next_round == 4 and 4 in state.proposals  # the interrupted round is redone from its proposal
    assert [t["lr"] for t in state.tried("trainer")] == [0.001, 0.002, 0.003, 0.004, 0.005]
    assert sorted(state.tried_pipelines().values()) == [0, 1, 2, 3]  # only decided rounds count as trained
    assert [s["decision"] for s in state.summaries()] == ["kept", "kept", "reverted", "failed"]
    assert state.final is None


def test_the_time_budget_counts_the_rounds_seconds_and_the_loops_own_work_is_reported_apart(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append("start", config={}, pinned={}, time=1000.0)
    journal.append("proposal", round=0, author="engineer", group="trainer", pipeline=pipeline(0.001), changes=[],
                   rationale="", preflight=None, repairs=0, time=1034.0 - 1)
    journal.append("decision", round=0, author="architect", group="pipeline", decision="kept", val_acc=0.8,
                   delta=None, changes=[], summary={}, seconds=30.0, time=1034.0)  # 4 s of profile and agents
    journal.append("resume", overrides=[], time=2000.0)  # a later session: the gap before it is no one's
    journal.append("decision", round=1, author="engineer", group="trainer", decision="reverted", val_acc=0.7,
                   delta=None, changes=[], summary={}, seconds=20.0, time=2022.0)  # 2 s before it
    journal.append("proposal", round=2, author="engineer", group="trainer", pipeline=pipeline(0.001), changes=[],
                   rationale="", preflight=None, repairs=0, time=2033.0 - 1)
    journal.append("decision", round=2, author="engineer", group="trainer", decision="kept", val_acc=0.9,
                   delta=None, changes=[], summary={}, seconds=10.0, time=2033.0)  # 1 s before it
    state = State.of(journal)
    assert state.training_seconds() == 60.0
    assert abs(state.between_rounds() - 7.0) < 1e-9
    spent = state.spent(end_time=2036.0)
    assert spent["kept"] == 40.0 and spent["reverted"] == 20.0 and spent["between_rounds"] == 7.0
    assert spent["end_of_run"] == 3.0


def test_a_run_with_no_kept_round_has_no_incumbent(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    decided(journal, 0, "failed", None, 0.001)
    state = State.of(journal)
    assert state.incumbent is None and state.incumbent_val is None and state.next_round == 1


def test_the_llm_summary_counts_seconds_tokens_and_what_validated(tmp_path, capsys):
    from improve.bench.cli import main

    journal = Journal(tmp_path / "journal.jsonl")
    call = dict(model="m", cached=False, cost_usd=0.0, totals={})
    journal.append("llm_call", round=0, role="architect", input_tokens=900, output_tokens=100, seconds=10.0,
                   error="cut off", error_kind="truncated", **call)
    journal.append("llm_call", round=0, role="architect", input_tokens=900, output_tokens=300, seconds=10.0, **call)
    decided(journal, 0, "kept", 0.5, 0.001)
    journal.append("llm_call", round=1, role="analyst", input_tokens=0, output_tokens=0, seconds=2.0,
                   error="HTTP 401", permanent=True, **call)
    journal.append("analysis", round=1, group="trainer", feedback="x", diagnosis="ok", author="expert (fallback)")
    decided(journal, 1, "reverted", 0.4, 0.002)
    main(["llm", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "architect   2 calls, 10.0 s each, 20.0 output tok/s; usable 1/2 (truncated 1, API failures 0)" in printed
    assert "analyst     1 calls, 2.0 s each, None output tok/s; usable 0/1 (truncated 0, API failures 1), validated 0" \
        in printed

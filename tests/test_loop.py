"""The refinement loop end to end: real configs, real subprocess rounds, small data."""
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict
from rich.console import Console

import improve.__main__  # noqa: F401  (registers the run_dir resolver)
from improve.agents import Choice, Edit, HeuristicAgent
from improve.config.overrides import load_run_config
from improve.config.paths import PROJECT_ROOT
from improve.journal.log import Journal
from improve.refine.loop import Refinement
from improve.refine.state import State

from .conftest import LOOP_FAST, decisions, run_cli


def test_cli_run_on_digits_uses_the_offline_expert_and_finishes_with_best_and_report(tmp_path, cache_dir):
    proc = run_cli("improve", "loop.rounds=2", *LOOP_FAST, "trainer.label_smoothing=0.05",
                   f"paths.cache_dir={cache_dir}", f"hydra.run.dir={tmp_path}",
                   env={"ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "offline expert" in proc.stdout
    assert "trainer.label_smoothing=0.05 are kept in round 0's pipeline" in proc.stdout  # the user's value, said
    first = next(e for e in Journal(tmp_path / "journal.jsonl").events() if e["event"] == "proposal")
    assert first["pipeline"]["trainer"]["label_smoothing"] == 0.05
    ds = decisions(tmp_path)
    assert [d["round"] for d in ds] == [0, 1, 2]
    assert all(d["decision"] in ("kept", "reverted") for d in ds)  # every round valid and trained
    assert [d["author"] for d in ds][:2] == ["architect", "engineer"]
    assert all(len(d["group"].split("+")) == 1 for d in ds[1:])  # one group a round
    end = [e for e in Journal(tmp_path / "journal.jsonl").events() if e["event"] == "end"][-1]
    assert end["test_acc"] is not None and end["rounds"] == 3
    assert (tmp_path / "best" / "best.ckpt").is_file() and (tmp_path / "best" / "config.yaml").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "| 0 | architect |" in report and "| 2 | engineer |" in report
    for r in range(3):  # one line per round, with its decision, and the round's files
        line = next(x for x in proc.stdout.splitlines() if x.startswith(f"round {r:>2}  "))
        assert ds[r]["decision"] in line and (tmp_path / "rounds" / f"{r:02d}" / "metrics.json").is_file()


def processes_with(env_entry: str) -> list:
    """Live processes whose environment holds `env_entry`."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if env_entry.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # exited meanwhile, or not ours
            pass
    return found


def start_loop_until_round_1_trains(run: Path, cache_dir: Path, **popen):
    """`python -m improve` in the background, returned once round 1 is training; and its environment mark."""
    args = [sys.executable, "-m", "improve", "loop.rounds=3", *LOOP_FAST, "dataset.max_train=600", "loop.max_epochs=3",
            f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run}"]  # rounds of a few seconds: time to stop one
    key, value = "IMPROVE_TEST_MARK", uuid.uuid4().hex  # inherited by every process the loop starts
    proc = subprocess.Popen(args, cwd=PROJECT_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", key: value},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)  # as a terminal
    deadline = time.time() + 240
    while time.time() < deadline:
        if (run / "rounds" / "01" / "metrics.json").is_file() and len(decisions(run)) == 1:
            time.sleep(0.3)
            return proc, f"{key}={value}"
        time.sleep(0.05)
    proc.kill()
    pytest.fail("round 1 never started")


def assert_round_1_died_with_the_loop(run: Path, mark: str) -> None:
    deadline = time.time() + 20
    while processes_with(mark) and time.time() < deadline:
        time.sleep(0.2)
    assert not processes_with(mark), "the training round outlived the loop"
    orphan = json.loads((run / "rounds" / "01" / "metrics.json").read_text())
    assert orphan["status"] == "running", "the training round went on after the loop was stopped"
    assert [d["round"] for d in decisions(run)] == [0]


def test_ctrl_c_during_a_round_stops_it_and_says_how_to_resume(tmp_path, cache_dir):
    run = tmp_path / "run"
    proc, mark = start_loop_until_round_1_trains(run, cache_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                 text=True)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert f"python -m improve resume={run}" in err and "Traceback" not in err
    assert_round_1_died_with_the_loop(run, mark)


@pytest.mark.slow
def test_kill_9_during_a_round_then_resume_completes_without_losing_or_repeating(tmp_path, cache_dir):
    run = tmp_path / "run"
    proc, mark = start_loop_until_round_1_trains(run, cache_dir, stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_round_1_died_with_the_loop(run, mark)
    state_before = json.loads((run / "incumbent" / "state.json").read_text())

    resumed = run_cli("improve", f"resume={run}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rounds = [d["round"] for d in decisions(run)]
    assert rounds == [0, 1, 2, 3]  # planned number, none lost, none repeated
    events = Journal(run / "journal.jsonl").events()
    assert sum(e["event"] == "proposal" and e["round"] == 1 for e in events) == 1  # the interrupted round reran
    kept = [d for d in decisions(run) if d["decision"] == "kept"]
    state = json.loads((run / "incumbent" / "state.json").read_text())
    assert state["round"] == kept[-1]["round"] and state_before["round"] == 0
    import hashlib

    assert hashlib.sha256((run / "incumbent" / "config.yaml").read_bytes()).hexdigest() == state["config_sha"]
    import torch

    torch.load(run / "incumbent" / "best.ckpt", map_location="cpu", weights_only=True)  # intact


def test_hand_edit_between_rounds_is_trained_as_a_human_round_and_judged(tmp_path, compose_loop):
    cfg = compose_loop("loop.rounds=0")
    out = io.StringIO()
    Refinement(cfg, tmp_path / "run", console=Console(file=out)).run()
    config = tmp_path / "run" / "incumbent" / "config.yaml"
    text = config.read_text()
    edited = text.replace("label_smoothing: 0.0", "label_smoothing: 0.15")
    assert edited != text
    config.write_text(edited)
    with open_dict(cfg):
        cfg.loop.rounds = 1
    Refinement(cfg, tmp_path / "run", ["loop.rounds=1", "seed=5"], console=Console(file=out)).run()
    assert "ignored on resume: seed=5" in out.getvalue()  # a run's seed is fixed; the loop setting applies
    ds = decisions(tmp_path / "run")
    assert [d["round"] for d in ds] == [0, 1]
    assert ds[1]["author"] == "human" and ds[1]["group"] == "trainer"
    assert ds[1]["decision"] in ("kept", "reverted") and ds[1]["val_acc"] is not None
    assert "trainer: label_smoothing 0 -> 0.15" in ds[1]["changes"]
    assert "hand edit found" in out.getvalue()


class ScriptedEngineer(HeuristicAgent):
    """Replies with bad YAML first; `good_after` decides when the heuristic's own edit comes."""

    def __init__(self, bad, good_after):
        self.bad, self.good_after, self.calls = list(bad), good_after, 0

    def engineer(self, choice, ctx, current, tried, error=None):
        self.calls += 1
        if self.calls <= self.good_after:
            return Edit(yaml=self.bad[(self.calls - 1) % len(self.bad)], rationale="scripted")
        return super().engineer(choice, ctx, current, tried, error)


def test_invalid_edit_is_repaired_and_an_unrepairable_round_trains_nothing(tmp_path, compose_loop, monkeypatch):
    marker = tmp_path / "pwned"
    bad = [f"_target_: os.system\ncommand: touch {marker}", "lr: !!python/object/apply:os.system ['x']"]
    agent = ScriptedEngineer(bad, good_after=1)
    monkeypatch.setattr("improve.refine.loop.make_agent", lambda llm, *args: (agent, "agent: scripted"))
    cfg = compose_loop("loop.rounds=2", "loop.max_repairs=1")
    Refinement(cfg, tmp_path / "run", console=Console(file=io.StringIO())).run()
    events = Journal(tmp_path / "run" / "journal.jsonl").events()
    errors = [e for e in events if e["event"] == "validation_error"]
    ds = {d["round"]: d for d in decisions(tmp_path / "run")}
    assert errors[0]["round"] == 1 and errors[0]["kind"] == "forbidden_target"
    assert ds[1]["decision"] in ("kept", "reverted")  # repaired on the second try, then trained
    assert not marker.exists()

    agent2 = ScriptedEngineer(bad, good_after=100)  # never valid: the round is invalid, nothing trained
    monkeypatch.setattr("improve.refine.loop.make_agent", lambda llm, *args: (agent2, "agent: scripted"))
    with open_dict(cfg):
        cfg.loop.rounds = 3
    Refinement(cfg, tmp_path / "run", console=Console(file=io.StringIO())).run()
    ds = {d["round"]: d for d in decisions(tmp_path / "run")}
    assert ds[3]["decision"] == "invalid" and not (tmp_path / "run" / "rounds" / "03").exists()
    kinds = [e["kind"] for e in Journal(tmp_path / "run" / "journal.jsonl").events()
             if e["event"] == "validation_error" and e["round"] == 3]
    assert kinds == ["forbidden_target", "yaml_tag"]
    assert not marker.exists()


def test_all_at_once_strategy_and_sequential_init_run_end_to_end(tmp_path, compose_loop):
    cfg = compose_loop("loop.rounds=1", "loop.strategy=all_at_once", "loop.init=sequential")
    result = Refinement(cfg, tmp_path / "run", console=Console(file=io.StringIO())).run()
    ds = decisions(tmp_path / "run")
    assert ds[0]["author"] == "engineers" and ds[1]["group"] == "augment+model+trainer"
    groups_changed = {c.split(":")[0] for c in ds[1]["changes"]}
    assert groups_changed == {"augment", "model", "trainer"}
    assert result["test_acc"] is not None


class SeenByAgent(HeuristicAgent):
    """Proposes a NaN-producing normalisation in round 1, then records what the analyst is shown."""

    def __init__(self):
        self.contexts = []

    def analyst(self, ctx):
        self.contexts.append(ctx)
        return super().analyst(ctx) if ctx.round != 1 else Choice("augment", "scripted", "ok")

    def engineer(self, choice, ctx, current, tried, error=None):
        if ctx.round == 1:
            return Edit(yaml="std: [1.0e-38]\nmean: [0.5]", rationale="scripted NaN")
        return super().engineer(choice, ctx, current, tried, error)


def test_failed_round_is_reverted_its_reason_shown_to_the_agents_and_the_loop_goes_on(tmp_path, compose_loop,
                                                                                       monkeypatch):
    agent = SeenByAgent()
    monkeypatch.setattr("improve.refine.loop.make_agent", lambda llm, *args: (agent, "agent: scripted"))
    cfg = compose_loop("loop.rounds=2")
    Refinement(cfg, tmp_path / "run", console=Console(file=io.StringIO())).run()
    ds = decisions(tmp_path / "run")
    assert [d["decision"] for d in ds][:2] == ["kept", "failed"] and ds[2]["decision"] in ("kept", "reverted")
    assert "training loss became" in ds[1]["reason"]
    shown = agent.contexts[-1].rounds[1]
    assert shown["decision"] == "failed" and shown["summary"]["diagnosis"] == "unstable"
    state = json.loads((tmp_path / "run" / "incumbent" / "state.json").read_text())
    assert state["round"] != 1


def test_round_timeout_fails_the_round_and_nothing_is_kept(tmp_path, compose_loop):
    cfg = compose_loop("loop.rounds=0", "loop.round_timeout=1", "dataset.max_train=0",
                       "loop.max_epochs=5")  # a round of several seconds
    out = io.StringIO()
    result = Refinement(cfg, tmp_path / "run", console=Console(file=out)).run()
    (d,) = decisions(tmp_path / "run")
    assert d["decision"] == "failed" and "timed out after 1 s" in d["reason"]
    assert result["incumbent_round"] is None and "no round succeeded" in out.getvalue()



def test_resume_applies_setting_overrides_and_a_group_option_brings_its_whole_group(tmp_path, compose_loop):
    saved = compose_loop()
    (tmp_path / "run_config.yaml").write_text(OmegaConf.to_yaml(saved))
    overrides = ["llm=heuristic", "loop.rounds=7", "hardware.num_workers=3", "seed=3"]
    loaded = load_run_config(tmp_path, overrides, compose_loop(*overrides))
    assert loaded.loop.rounds == 7 and loaded.hardware.num_workers == 3 and loaded.llm.provider == "heuristic"
    assert loaded.seed == saved.seed and loaded.resume == str(tmp_path)  # a run's seed is its own


def test_paired_rule_runs_end_to_end_and_every_judged_decision_carries_its_evidence(tmp_path, compose_loop):
    cfg = compose_loop("loop.rounds=2", "loop.accept=paired")
    out = io.StringIO()
    Refinement(cfg, tmp_path / "run", console=Console(file=out, width=250)).run()
    ds = decisions(tmp_path / "run")
    judged = [d for d in ds[1:] if d["decision"] in ("kept", "reverted")]
    assert judged and all(d["rule"] == "paired" and len(d["delta_interval"]) == 2 and 0 <= d["p_value"] <= 1
                          for d in judged)
    assert all(d["n"] == len(json.loads((tmp_path / "run" / "rounds" / "00" / "val_predictions.json").read_text())
                             ["y_true"]) for d in judged)
    round_lines = [line for line in out.getvalue().splitlines() if line.startswith("round  ")]
    assert all("±" in line and " p " in line for line in round_lines[1:])  # round 0 has nothing to compare with
    assert "Decision rule: paired" in (tmp_path / "run" / "report.md").read_text()


def test_confirm_rule_with_a_noise_floor_stays_inside_the_rounds_budget(tmp_path, compose_loop):
    cfg = compose_loop("loop.rounds=3", "loop.accept=confirm", "loop.confirm_seeds=1", "loop.noise_floor=true")
    out = io.StringIO()
    Refinement(cfg, tmp_path / "run", console=Console(file=out, width=250)).run()
    events = Journal(tmp_path / "run" / "journal.jsonl").events()
    state = State(events)
    assert state.noise_floor is not None and "noise floor:" in out.getvalue()
    assert len(state.decisions) + state.extra_runs <= 4  # round 0 and 3 runs after it, confirmations included
    assert all(d["rule"] == "confirm" for r, d in state.decisions.items() if r > 0 and d["decision"] != "invalid")
    assert "Noise floor:" in (tmp_path / "run" / "report.md").read_text()


def test_k_fold_rounds_are_judged_on_pooled_out_of_fold_predictions_of_every_train_and_val_image(tmp_path,
                                                                                                  compose_loop):
    cfg = compose_loop("loop.rounds=1", "loop.folds=3", "loop.accept=paired")
    out = io.StringIO()
    Refinement(cfg, tmp_path / "run", console=Console(file=out, width=250)).run()
    r0 = tmp_path / "run" / "rounds" / "00"
    pooled = json.loads((r0 / "val_predictions.json").read_text())
    assert pooled["folds"] == 3 and pooled["index"] == sorted(set(pooled["index"]))
    assert len(pooled["index"]) == 1797 - 360  # every image outside the test split, each predicted once
    metrics = json.loads((r0 / "metrics.json").read_text())
    assert metrics["cv"]["folds"] == 3 and len(metrics["cv"]["fold_val_acc"]) == 3
    assert metrics["best_val_acc"] == pytest.approx(pooled["acc"], abs=1e-6)
    assert all((r0 / f"fold{i}" / "val_predictions.json").is_file() for i in (1, 2))
    judged = [d for d in decisions(tmp_path / "run")[1:] if d["decision"] in ("kept", "reverted")]
    assert all(d["n"] == 1437 and d["p_value"] is not None for d in judged)
    assert "loop.folds=3: each round trains 3 times" in out.getvalue()
    assert "3-fold cross-validation" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.slow
def test_tracking_loggers_record_every_round_grouped_under_the_refinement_run(tmp_path, compose_loop):
    import mlflow

    cfg = compose_loop("loop.rounds=1", "logger=tensorboard")
    Refinement(cfg, tmp_path / "run", console=Console(file=io.StringIO(), width=250)).run()
    events = sorted(p.relative_to(tmp_path / "run" / "tensorboard").parts[0]
                    for p in (tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    assert events[0] == "round_00" and "round_01" in events
    store = tmp_path / "mlruns"
    cfg = compose_loop("loop.rounds=1", "logger=mlflow", f"logger.save_dir={store}")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run2")
    Refinement(cfg, tmp_path / "run2", console=Console(file=io.StringIO(), width=250)).run()
    mlflow.set_tracking_uri(f"sqlite:///{store.resolve() / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["improve"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == ["run2/round_00", "run2/round_01"]
    assert all(r.data.tags["refinement_run"] == "run2" and "trainer.lr" in r.data.params for r in runs)
    assert any(key.startswith("val/acc") or key.startswith("val_acc") for r in runs for key in r.data.metrics)

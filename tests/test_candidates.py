"""Several candidates a round: trained at once (local processes, Ray), one decision, resume after an interruption."""
import io
import time

import pytest
from rich.console import Console

from improve.journal.log import Journal
from improve.refine.executors import resources, share_hardware
from improve.refine.loop import Refinement
from improve.refine.runner import Runner
from improve.refine.state import State

from .conftest import decisions, run_cli


def test_candidates_share_the_threads_and_the_gpus_of_this_machine():
    config = {"hardware": {"threads": 0, "accelerator": "auto", "devices": "auto"}}
    assert [share_hardware(config, i, 2, 16, 0)["hardware"]["threads"] for i in range(2)] == [8, 8]
    assert [share_hardware(config, i, 4, 16, 2)["hardware"]["devices"] for i in range(4)] == [[0], [1], [0], [1]]
    assert share_hardware({"hardware": {"threads": 3}}, 0, 2, 16, 0)["hardware"]["threads"] == 3  # the user's
    assert resources({"threads": 4, "accelerator": "gpu", "devices": 2}) == {"num_cpus": 4, "num_gpus": 2}
    assert resources({"threads": 0, "accelerator": "cpu", "devices": 1}) == {"num_cpus": 1, "num_gpus": 0}


def test_an_interrupted_round_trains_only_its_unfinished_candidate_on_resume(tmp_path, compose_loop, monkeypatch):
    cfg = compose_loop("loop.rounds=1", "loop.candidates=2")
    real = Runner.run
    trained = []

    def interrupted(self, config, rd, **kw):
        if rd.name == "cand1":  # Ctrl-C while candidate 2 trains, after candidate 1 has finished
            deadline = time.time() + 120
            while "candidate_result" not in (self.run_dir / "journal.jsonl").read_text() and time.time() < deadline:
                time.sleep(0.2)
            raise KeyboardInterrupt
        trained.append(str(rd.relative_to(self.run_dir)))
        return real(self, config, rd, **kw)

    monkeypatch.setattr(Runner, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Refinement(cfg, tmp_path / "run", console=Console(file=io.StringIO(), width=250)).run()
    state = State(Journal(tmp_path / "run" / "journal.jsonl").events())
    assert sorted(state.candidates[1]) == [0, 1] and list(state.candidate_results[1]) == [0] and 1 not in state.decisions
    first = (tmp_path / "run" / "rounds" / "01" / "cand0" / "metrics.json").stat().st_mtime_ns

    def counted(self, config, rd, **kw):
        trained.append(str(rd.relative_to(self.run_dir)))
        return real(self, config, rd, **kw)

    monkeypatch.setattr(Runner, "run", counted)
    trained.clear()
    out = io.StringIO()
    Refinement(cfg, tmp_path / "run", console=Console(file=out, width=250)).run()
    assert trained == ["rounds/01/cand1"]  # the finished candidate is not trained again
    assert "training 1 of 2 candidates" in out.getvalue() and "1 finished before" in out.getvalue()
    ds = decisions(tmp_path / "run")
    assert [d["round"] for d in ds] == [0, 1] and len(ds[1]["candidates"]) == 2
    assert (tmp_path / "run" / "rounds" / "01" / "cand0" / "metrics.json").stat().st_mtime_ns == first  # untouched


@pytest.mark.slow
def test_two_candidates_on_a_local_ray_both_train_and_round_1_has_one_decision(tmp_path, cache_dir):
    proc = run_cli("improve", "loop.candidates=2", "loop.executor=ray", "loop.rounds=1", "hardware=cpu",
                   "hardware.progress_bar=false", "dataset.max_train=200", "loop.max_epochs=1", "llm=heuristic",
                   "loop.pretrained_reachable=false", f"paths.cache_dir={cache_dir}", f"hydra.run.dir={tmp_path}/run",
                   timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = Journal(tmp_path / "run" / "journal.jsonl").events()
    assert sorted(e["candidate"] for e in events if e["event"] == "candidate_proposal") == [0, 1]
    results = [e for e in events if e["event"] == "candidate_result"]
    assert sorted(e["candidate"] for e in results) == [0, 1] and all(e["status"] == "ok" for e in results)
    round1 = [e for e in events if e["event"] == "decision" and e["round"] == 1]
    assert len(round1) == 1 and len(round1[0]["candidates"]) == 2
    assert "loop.executor=ray" in proc.stdout
    proposal = next(e for e in events if e["event"] == "proposal" and e["round"] == 1)
    assert proposal["of_candidates"] == 2 and proposal["candidate"] == max(
        (e for e in results), key=lambda e: (e["val_acc"], -e["candidate"]))["candidate"]

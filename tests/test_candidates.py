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


def test_successive_halving_keeps_the_better_half_at_each_rung_and_resumes_it_where_it_stopped():
    from pathlib import Path

    from improve.refine.candidates import rung_stop, successive_halving
    from improve.refine.console import LoopConsole
    from improve.refine.executors import Job

    quality = {0: 0.2, 1: 0.5, 2: 0.4, 3: 0.7}
    calls, reported = [], {}

    def train(jobs, done):
        calls.append([(j.output_dir.name, j.config.get("stop_epoch"), j.config.get("ckpt_path")) for j in jobs])
        out = []
        for j in jobs:
            i, stop = int(j.output_dir.name[-1]), j.config.get("stop_epoch")
            epochs = stop or j.config["trainer"]["epochs"]
            out.append({"status": "ok", "best_val_acc": quality[i] + 0.01 * epochs,
                        **({"stopped": {"epoch": stop, "epochs": 8}} if stop else {})})
            done(len(out) - 1, out[-1])
        return out

    jobs = {i: Job({"trainer": {"epochs": 8}}, Path(f"/runs/cand{i}")) for i in range(4)}
    final = successive_halving(jobs, train, lambda i, m: reported.setdefault(i, m), LoopConsole(Console(
        file=io.StringIO())), 1)
    assert [[(name, stop) for name, stop, _ in call] for call in calls] == [
        [("cand0", 2), ("cand1", 2), ("cand2", 2), ("cand3", 2)],  # a quarter of the epochs for all four
        [("cand1", 4), ("cand3", 4)],  # the better half, to half of them
        [("cand3", None)]]  # the best to the end
    assert calls[1][0][2] == "/runs/cand1/checkpoints/last.ckpt" and calls[2][0][2] == "/runs/cand3/checkpoints/last.ckpt"
    assert final[0]["stopped"]["epoch"] == 2 and final[2]["stopped"]["epoch"] == 2 and final[1]["stopped"]["epoch"] == 4
    assert "stopped" not in final[3] and sorted(reported) == [0, 1, 2, 3]
    assert rung_stop(8, 2) == 2 and rung_stop(1, 1) is None and rung_stop(3, 1) == 2


def test_two_candidates_are_halved_and_the_better_trains_on_from_its_checkpoint(tmp_path, compose_loop):
    import json

    cfg = compose_loop("loop.rounds=1", "loop.candidates=2", "loop.max_epochs=2", "loop.average_top_k=0")
    out = io.StringIO()
    Refinement(cfg, tmp_path / "run", console=Console(file=out, width=300)).run()
    rd = tmp_path / "run" / "rounds" / "01"
    runs = {i: json.loads((rd / f"cand{i}" / "metrics.json").read_text()) for i in range(2)}
    stopped = [i for i in runs if runs[i].get("stopped")]
    assert len(stopped) == 1 and len(runs[stopped[0]]["epochs"]) == 1  # left behind at the rung
    went_on = 1 - stopped[0]
    assert [e["epoch"] for e in runs[went_on]["epochs"]] == [0, 1] and runs[went_on]["status"] == "ok"
    results = [e for e in Journal(tmp_path / "run" / "journal.jsonl").events() if e["event"] == "candidate_result"]
    assert sorted(e["candidate"] for e in results) == [0, 1] and [e["stopped"] for e in results if e.get("stopped")]
    assert "successive halving" in out.getvalue() and decisions(tmp_path / "run")[1]["decision"] in ("kept", "reverted")

"""Faults at every phase of a run: kill -9, SIGTERM, a full disk, files left unreadable. Each ends, after resume,
with a complete and consistent run: every round decided once, nothing decided trained again, a tested model, and
no process of the killed run left behind."""
import errno
import io
import json
import signal
import subprocess
import sys
import textwrap
import time
import os
import uuid
from pathlib import Path

import pytest
import torch
from rich.console import Console

import improve.__main__  # noqa: F401  (registers the run_dir resolver)
from improve.config.paths import PROJECT_ROOT, round_checkpoint, round_dir
from improve.files import DiskFull
from improve.journal.log import Journal
from improve.refine import incumbent as incumbent_module
from improve.refine.loop import Refinement
from improve.refine.runner import UnusableRun, finished_run

from .conftest import LOOP_FAST, decisions, run_cli
from .llm_server import ARCHITECT, ScriptedLLMServer, url_for
from .test_loop import processes_with, start_loop_until_round_1_trains

# Runs `python -m improve ...` with one function replaced: its nth call kills this process with SIGKILL, at once
# or `delay` seconds into the call (so the kill lands while it works). A real kill -9 at a chosen moment.
KILLER = textwrap.dedent("""
    import importlib, os, runpy, signal, sys, threading
    target, nth, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    module, _, attr = target.partition(":")
    *path, name = attr.split(".")
    owner = importlib.import_module(module)
    for part in path:
        owner = getattr(owner, part)
    original, calls = getattr(owner, name), [0]

    def killing(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            if delay:
                threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, name, killing)
    sys.argv = ["improve", *sys.argv[4:]]
    runpy.run_module("improve", run_name="__main__")
""")

RUN = [*LOOP_FAST, "loop.rounds=2"]

PHASES = {  # (what is killed, nth call, delay in seconds, extra settings, rounds the run decides)
    "a: while a round trains": ("improve.refine.runner:train_in_process", 2, 2.5, [], 2),
    "b: between a round's end and its decision": ("improve.refine.loop:decide", 2, 0, [], 2),
    "c: during K candidates": ("improve.refine.runner:train_in_process", 3, 1.5, ["loop.candidates=2"], 2),
    # the noise floor is a confirmation run of round 0: an extra run, so loop.rounds=2 leaves one more round
    "d: during a confirmation run": ("improve.refine.confirm:Confirmer.seed_run", 1, 2.0, ["loop.noise_floor=true"],
                                     1),
    "e: during the soup": ("improve.final.soup:judge", 1, 0, [], 2),
    "f: during the ensemble": ("improve.final.finish:judge", 1, 0, ["loop.ensemble_top_k=2"], 2),
    "g: during the test and the exports": ("improve.final.finish:export", 1, 0, [], 2),
}


def decided_metrics(run: Path) -> dict:
    """metrics.json of every decided round, byte for byte: what resume must not train again."""
    return {d["round"]: (round_dir(run, d["round"]) / "metrics.json").read_bytes()
            for d in decisions(run) if (round_dir(run, d["round"]) / "metrics.json").is_file()}


def assert_complete(run: Path, rounds: int) -> None:
    """Every round decided exactly once, the run ended with a tested model, and its files are whole."""
    assert [d["round"] for d in decisions(run)] == list(range(rounds + 1))
    events = Journal(run / "journal.jsonl").events()
    proposals = [e["round"] for e in events if e["event"] == "proposal"]
    assert len(proposals) == len(set(proposals)), proposals  # an interrupted round is redone from its proposal
    end = [e for e in events if e["event"] == "end"][-1]
    assert end["test_acc"] is not None
    torch.load(run / "best" / "best.ckpt", map_location="cpu", weights_only=True)
    assert (run / "report.md").is_file() and (run / "test_predictions.json").is_file()


def assert_nothing_left_running(mark: str) -> None:
    deadline = time.time() + 20
    while processes_with(mark) and time.time() < deadline:
        time.sleep(0.2)
    assert not processes_with(mark), "a process of the killed run outlived it"


@pytest.mark.slow
@pytest.mark.parametrize("phase", sorted(PHASES))
def test_kill_9_at_every_phase_then_resume_completes_the_run(phase, tmp_path, cache_dir):
    target, nth, delay, extra, rounds = PHASES[phase]
    run = tmp_path / "run"
    key, value = "IMPROVE_TEST_MARK", uuid.uuid4().hex  # inherited by every process the run starts
    killed = subprocess.run([sys.executable, "-c", KILLER, target, str(nth), str(delay), *RUN, *extra,
                             f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run}"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", key: value})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert_nothing_left_running(f"{key}={value}")
    before = decided_metrics(run)

    resumed = run_cli("improve", f"resume={run}", env={key: value})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert_complete(run, rounds)
    after = decided_metrics(run)
    assert all(after[r] == m for r, m in before.items()), "a round decided before the kill was trained again"
    assert_nothing_left_running(f"{key}={value}")


def test_sigterm_during_a_round_stops_cleanly_says_how_to_resume_and_orphans_nothing(tmp_path, cache_dir):
    run = tmp_path / "run"
    proc, mark = start_loop_until_round_1_trains(run, cache_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                 text=True)
    proc.send_signal(signal.SIGTERM)  # a cluster's preemption
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "interrupted (SIGTERM)" in err and f"python -m improve resume={run}" in err and "Traceback" not in err
    assert_nothing_left_running(mark)
    assert [d["round"] for d in decisions(run)] == [0]


def test_a_full_disk_stops_the_run_with_what_to_do_and_resume_goes_on_once_there_is_space(tmp_path, compose_loop,
                                                                                         monkeypatch):
    cfg = compose_loop("loop.rounds=1")
    run = tmp_path / "run"
    real_copy = incumbent_module.atomic_copy

    def full(src, dst):  # the incumbent's checkpoint is being written when the disk fills
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(incumbent_module, "atomic_copy", full)
    with pytest.raises(DiskFull) as err:
        Refinement(cfg, run, console=Console(file=io.StringIO())).run()
    message = str(err.value.strerror)
    assert "is full" in message and f"python -m improve resume={run}" in message and "journal.jsonl" in message
    journal = Journal(run / "journal.jsonl")
    journal.repair()
    assert [e["event"] for e in journal.events()][-1] == "proposal"  # round 0 trained; its decision never written

    monkeypatch.setattr(incumbent_module, "atomic_copy", real_copy)  # space again
    Refinement(cfg, run, console=Console(file=io.StringIO())).run()
    assert_complete(run, rounds=1)


def test_a_training_run_that_hit_a_full_disk_stops_the_run_instead_of_failing_its_round(tmp_path, compose_loop,
                                                                                         monkeypatch):
    monkeypatch.setattr("improve.refine.runner.scored_run", lambda *a, **k: {
        "status": "failed", "error": "[Errno 28] No space left on device", "errno": errno.ENOSPC, "epochs": []})
    with pytest.raises(DiskFull):
        Refinement(compose_loop("loop.rounds=0"), tmp_path / "run", console=Console(file=io.StringIO())).run()
    assert decisions(tmp_path / "run") == []  # no round was failed for the machine's fault


def test_files_cut_short_found_on_resume_are_said_and_redone_never_a_traceback(tmp_path, compose_loop):
    cfg = compose_loop("loop.rounds=1")
    run = tmp_path / "run"
    Refinement(cfg, run, console=Console(file=io.StringIO())).run()
    lines = (run / "journal.jsonl").read_text().splitlines()
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["event"] == "decision"
               and json.loads(line)["round"] == 1)

    def undecide_round_1():  # as if killed after round 1 trained, before its decision
        (run / "journal.jsonl").write_text("\n".join(lines[:cut]) + "\n")

    # intact: judged without training again
    undecide_round_1()
    trained = (round_dir(run, 1) / "metrics.json").read_bytes()
    out = io.StringIO()
    Refinement(cfg, run, console=Console(file=out, width=300)).run()
    assert "judged without training it again" in out.getvalue()
    assert (round_dir(run, 1) / "metrics.json").read_bytes() == trained
    assert_complete(run, rounds=1)

    # metrics.json cut short: the round trains again, said on the console, in the journal and the report
    undecide_round_1()
    (round_dir(run, 1) / "metrics.json").write_text('{"status": "ok", "epo')
    out = io.StringIO()
    Refinement(cfg, run, console=Console(file=out, width=300)).run()
    assert "metrics.json is unreadable" in out.getvalue() and "trained the round again" in out.getvalue()
    assert_complete(run, rounds=1)
    recovered = [e for e in Journal(run / "journal.jsonl").events() if e["event"] == "recovered"]
    assert recovered and recovered[-1]["round"] == 1
    assert "Recovered after an interruption" in (run / "report.md").read_text()

    # the incumbent's checkpoint cut short: restored from its round's
    inc_round = json.loads((run / "incumbent" / "state.json").read_text())["round"]
    whole = (run / "incumbent" / "best.ckpt").read_bytes()
    assert round_checkpoint(run, inc_round).read_bytes() == whole
    (run / "incumbent" / "best.ckpt").write_bytes(whole[: len(whole) // 3])
    out = io.StringIO()
    Refinement(cfg, run, console=Console(file=out, width=300)).run()
    assert "incumbent/best.ckpt is unreadable" in out.getvalue() and f"restored from rounds/{inc_round:02d}" in \
        out.getvalue()
    assert (run / "incumbent" / "best.ckpt").read_bytes() == whole
    assert_complete(run, rounds=1)


def test_a_runner_reading_a_cut_short_checkpoint_says_which_file(tmp_path):
    rd = tmp_path / "rounds" / "03"
    (rd / "checkpoints").mkdir(parents=True)
    (rd / "metrics.json").write_text(json.dumps({"status": "ok"}))
    (rd / "checkpoints" / "best.ckpt").write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(UnusableRun, match="03/checkpoints/best.ckpt is unreadable"):
        finished_run(rd)
    (rd / "metrics.json").write_text('{"status": "ok", "epo')
    with pytest.raises(UnusableRun, match="03/metrics.json is unreadable"):
        finished_run(rd)
    (rd / "metrics.json").write_text(json.dumps({"status": "running"}))
    assert finished_run(rd) is None  # killed while it trained: not finished, so it trains again


def test_an_llm_server_that_fails_drips_or_disappears_mid_run_is_said_and_the_run_goes_on(tmp_path, compose_loop,
                                                                                          monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    holder = {}

    def disappear():  # the server process goes away: nothing listens on its port any more
        holder["server"].httpd.shutdown()
        holder["server"].httpd.server_close()
        return {"status": 503}

    analyst = iter([{"status": 503}, {"status": 503},  # round 1: 5xx on both tries
                    {"drip": 0.2, "json": {"group": "trainer", "feedback": "slow"}}])  # round 2: bytes trickle in

    def script(role, body):
        if role == "architect":
            return {"json": ARCHITECT}
        if role == "engineer":
            return {"json": {"rationale": "halve the lr", "config": {**ARCHITECT["trainer"], "lr": 0.0015}}}
        reply = next(analyst, None)
        return reply if reply is not None else disappear()  # round 3: gone

    with ScriptedLLMServer(script) as server:
        holder["server"] = server
        cfg = compose_loop("loop.rounds=3", "llm=openai", f"llm.base_url={url_for(server, 'openai')}",
                           "llm.cache=false", "llm.timeout=0.5", "llm.retries=1")
        out = io.StringIO()
        start = time.perf_counter()
        Refinement(cfg, tmp_path / "run", console=Console(file=out, width=300)).run()
    console, report = out.getvalue(), (tmp_path / "run" / "report.md").read_text()
    assert [d["round"] for d in decisions(tmp_path / "run")] == [0, 1, 2, 3]
    assert time.perf_counter() - start < 240
    for said in ("HTTP 503", "had not finished its reply after", "unreachable"):
        assert said in console and said in report, said
    assert "Traceback" not in console

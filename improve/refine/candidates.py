"""Several candidates a round (`loop.candidates=K`): K edits of the one group the analyst chose, trained at once.

Iterative Refinement keeps its attribution: all K change the same single group of the same
incumbent. Each is journaled (`candidate_proposal`, `candidate_result`) and shown as it finishes;
the best validation score among them goes to the keep/revert decision under the acceptance rule
in force, and its run is copied to be the round's own (`rounds/NN/`); every candidate stays in
`rounds/NN/candI/`, without its checkpoint. A failed candidate does not stop the others. With
`loop.halving` (the default) they are screened by successive halving: all train part of their epochs, the
better half goes on from where it stopped, until the last train to their end (`successive_halving`). After a
kill, a finished candidate (one stopped by halving included) is never trained again; the unfinished ones are,
from the start.
"""
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from improve.config.paths import round_dir
from improve.journal.events import CandidateProposal, CandidateResult, Recovered
from improve.journal.log import Journal
from improve.refine.console import LoopConsole
from improve.refine.executors import Job, run_local, run_ray
from improve.refine.proposals import Candidate
from improve.refine.runner import Runner, UnusableRun, run_metrics
from improve.refine.state import State


@dataclass
class Picked:
    """The round's chosen candidate and how all of them did."""

    index: int
    metrics: Dict[str, Any]  # the chosen one's metrics.json
    summary: List[Dict[str, Any]]  # per candidate: candidate, val_acc, status, changes

    def journal(self) -> Dict[str, Any]:
        return {"candidate": self.index, "of_candidates": len(self.summary), "candidates": self.summary}


def _adopt(rd: Path, chosen: Path) -> None:
    """Copy the chosen candidate's run into the round's folder, replacing what an earlier attempt left there. A copy,
    not a move: killed right after, a resumed round still finds the candidate finished in its own folder."""
    for entry in chosen.iterdir():
        target = rd / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if entry.is_dir():
            shutil.copytree(entry, target)
        else:
            shutil.copy2(entry, target)


def _train(jobs: List[Job], loop, runner: Runner, done: Callable[[int, Dict[str, Any]], None]) -> List[Dict[str, Any]]:
    """The jobs trained at once by loop.executor; results in job order, each reported through done(j, metrics)."""
    if jobs and loop.executor == "ray":
        return run_ray(jobs, runner, loop.ray_address, done)
    return run_local(jobs, runner, done) if jobs else []


def rung_stop(epochs: int, level: int) -> Optional[int]:
    """Where a candidate of `epochs` epochs stops at halving level `level` (2^-level of its epochs, at least one);
    None when that is all its epochs (it trains to its end)."""
    stop = max(1, math.ceil(epochs / 2 ** level))
    return stop if stop < epochs else None


def successive_halving(jobs: Dict[int, Job], train: Callable, done: Callable[[int, Dict[str, Any]], None],
                       console: LoopConsole, r: int) -> Dict[int, Dict[str, Any]]:
    """Successive halving over the candidates (`jobs`: candidate -> its job): all train 2^-L of their epochs
    (L = ceil(log2 K)), the better half (by best validation accuracy by then) goes on from its last checkpoint to
    twice as far, and so on until the last train to their end. A candidate left behind keeps the metrics of where
    it stopped (`stopped`); a failed one is out. `train(jobs, done)` trains a list at once. Returns candidate ->
    its final metrics; each is reported through done(candidate, metrics) when final."""
    alive, final = list(jobs), {}
    resumed: set = set()
    for level in range(math.ceil(math.log2(len(alive))), 0, -1):
        if len(alive) < 2:
            break
        rung = {i: stop for i in alive if (stop := rung_stop(jobs[i].config["trainer"]["epochs"], level))}
        running = list(rung)
        if not running:
            break
        configs = [Job({**jobs[i].config, "stop_epoch": rung[i], "save_last": True,
                        "ckpt_path": _last(jobs[i]) if i in resumed else None}, jobs[i].output_dir) for i in running]
        got = dict(zip(running, train(configs, lambda j, m: None)))
        resumed.update(i for i in running if got[i].get("status") == "ok")
        for i in running:
            if got[i].get("status") != "ok":
                final[i] = got[i]
                done(i, got[i])
        ranked = sorted((i for i in running if i not in final), key=lambda i: (-(got[i]["best_val_acc"] or 0.0), i))
        better = ranked[:math.ceil(len(ranked) / 2)]
        for i in ranked[len(better):]:
            final[i] = got[i]
            done(i, got[i])
        keep = [i for i in alive if i in better or i not in rung]  # too few epochs to stop early: they go on
        console.say(f"round {r}: successive halving: {len(running)} candidates trained 1/{2 ** level} of their "
                    f"epochs; going on: " + ", ".join(f"candidate {i + 1} (val {got[i]['best_val_acc']:.4f})"
                                                       if i in got else f"candidate {i + 1}" for i in keep), "cyan")
        alive = keep
    rest = [Job({**jobs[i].config, "ckpt_path": _last(jobs[i]) if i in resumed else None}, jobs[i].output_dir)
            for i in alive]
    for i, metrics in zip(alive, train(rest, lambda j, m: done(alive[j], m))):
        final[i] = metrics
    return final


def _last(job: Job) -> str:
    return str(Path(job.output_dir) / "checkpoints" / "last.ckpt")


def train_candidates(run_dir: Path, journal: Journal, console: LoopConsole, state: State, r: int,
                     candidates: List[Candidate], loop, runner: Runner) -> Picked:
    """Train round r's candidates that have not finished yet, all at once, and pick the best."""
    k = len(candidates)
    inc = state.incumbent["pipeline"] if state.incumbent else None
    for i, c in enumerate(candidates):
        if i not in state.candidates.get(r, {}):
            journal.write(CandidateProposal(round=r, candidate=i, of=k, **c.proposal(c.changes(inc))))
    rd = round_dir(run_dir, r)
    results = {}
    for i in state.candidate_results.get(r, {}):
        try:
            found = run_metrics(rd / f"cand{i}")
        except UnusableRun as err:  # cut short by a kill or a full disk: it trains again
            journal.write(Recovered(round=r, reason=str(err), action=f"trained candidate {i} again"))
            console.say(f"round {r}: {err}: training candidate {i} again", "yellow")
            continue
        if found is not None:
            results[i] = found
    todo = [i for i in range(k) if i not in results]
    console.say(f"round {r}: training {len(todo)} of {k} candidates of {candidates[0].group} at once "
                f"(loop.executor={loop.executor})" + (f"; {k - len(todo)} finished before" if results else ""),
                "cyan")

    def done(i: int, metrics: Dict[str, Any]) -> None:
        val = metrics.get("best_val_acc") if metrics.get("status") == "ok" else None
        journal.write(CandidateResult(round=r, candidate=i, val_acc=val, status=metrics.get("status"),
                                      error=metrics.get("error"), stopped=metrics.get("stopped")))
        shown = f"val {val:.4f}" if val is not None else f"failed: {metrics.get('error')}"
        if metrics.get("stopped"):
            shown += (f", stopped at epoch {metrics['stopped']['epoch']} of {metrics['stopped']['epochs']} by "
                      f"successive halving")
        console.say(f"round {r} candidate {i + 1}/{k}: {', '.join(candidates[i].changes(inc)) or '-'}: {shown}",
                    None if val is not None else "red")

    jobs = {i: Job(runner.config(candidates[i].pipeline, rd / f"cand{i}"), rd / f"cand{i}") for i in todo}
    if loop.halving and len(jobs) >= 2:
        results.update(successive_halving(jobs, lambda js, d: _train(js, loop, runner, d), done, console, r))
    else:
        order = list(jobs)
        results.update(zip(order, _train([jobs[i] for i in order], loop, runner, lambda j, m: done(order[j], m))))
    scores = {i: m.get("best_val_acc") for i, m in results.items() if m.get("status") == "ok"}
    best = max(scores, key=lambda i: (scores[i], -i)) if scores else 0
    _adopt(rd, rd / f"cand{best}")
    for i in range(k):
        shutil.rmtree(rd / f"cand{i}" / "checkpoints", ignore_errors=True)  # only the chosen one may be kept
    summary = [{"candidate": i, "val_acc": scores.get(i), "status": results[i].get("status"),
                "changes": candidates[i].changes(inc)} for i in range(k)]
    return Picked(best, results[best], summary)

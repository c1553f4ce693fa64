"""Several candidates a round (`loop.candidates=K`): K edits of the one group the analyst chose, trained at once.

Iterative Refinement keeps its attribution: all K change the same single group of the same
incumbent. Each is journaled (`candidate_proposal`, `candidate_result`) and shown as it finishes;
the best validation score among them goes to the keep/revert decision under the acceptance rule
in force, and its run is copied to be the round's own (`rounds/NN/`); every candidate stays in
`rounds/NN/candI/`, without its checkpoint. A failed candidate does not stop the others. After a kill,
a finished candidate is never trained again; the unfinished ones are.
"""
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

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

    def done(j: int, metrics: Dict[str, Any]) -> None:
        i = todo[j]
        val = metrics.get("best_val_acc") if metrics.get("status") == "ok" else None
        journal.write(CandidateResult(round=r, candidate=i, val_acc=val, status=metrics.get("status"),
                                      error=metrics.get("error")))
        shown = f"val {val:.4f}" if val is not None else f"failed: {metrics.get('error')}"
        console.say(f"round {r} candidate {i + 1}/{k}: {', '.join(candidates[i].changes(inc)) or '-'}: {shown}",
                    None if val is not None else "red")

    jobs = [Job(runner.config(candidates[i].pipeline, rd / f"cand{i}"), rd / f"cand{i}") for i in todo]
    if jobs and loop.executor == "ray":
        got = run_ray(jobs, runner, loop.ray_address, done)
    else:
        got = run_local(jobs, runner, done) if jobs else []
    results.update(zip(todo, got))
    scores = {i: m.get("best_val_acc") for i, m in results.items() if m.get("status") == "ok"}
    best = max(scores, key=lambda i: (scores[i], -i)) if scores else 0
    _adopt(rd, rd / f"cand{best}")
    for i in range(k):
        shutil.rmtree(rd / f"cand{i}" / "checkpoints", ignore_errors=True)  # only the chosen one may be kept
    summary = [{"candidate": i, "val_acc": scores.get(i), "status": results[i].get("status"),
                "changes": candidates[i].changes(inc)} for i in range(k)]
    return Picked(best, results[best], summary)

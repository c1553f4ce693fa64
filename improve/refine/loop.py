"""The refinement loop: validated one-group edits, train, keep or revert, journal, resume.

Run directory:
  journal.jsonl         append-only events (`journal/`); the source of truth for resume (`state.State`)
  run_config.yaml       the composed run settings
  incumbent/            config.yaml (the pipeline a person may edit), best.ckpt, state.json (`incumbent.py`)
  rounds/NN/            config.yaml (frozen train config), stdout.log, train.log, metrics.json, checkpoints/
  best/                 the final incumbent: config.yaml (re-trainable), best.ckpt, exports (`final/finish.py`)
  report.md             the round table

A round is done when its `decision` event is in the journal; anything after the last
decision is redone on resume, from the journaled proposal when there is one. The parts:
proposals (agent calls and repairs), runner (training), decide (keep/revert), budget (stop), incumbent
(its files, hand edits), console (what is printed), then results/report and final/finish;
docs/architecture.md follows one round through them.
"""
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf

from improve.agents import Context, RoundSkipped, make_agent
from improve.config.overrides import SETTINGS, override_key, pinned_values, pipeline_overrides
from improve.config.paths import project_path, round_checkpoint, round_dir
from improve.config.schema import EDITABLE_GROUPS
from improve.data.profile import dataset_profile, pretrained_reachable
from improve.files import DISK_FULL, DiskFull, atomic_text
from improve.final.end_of_run import EndOfRun
from improve.final.finish import finish
from improve.journal.events import (Decision, Diagnosed, Profile, Proposal, Recovered, Resume, Start,
                                    ValidationError, WarmStartSkipped)
from improve.journal.log import Journal
from improve.llm import BudgetExhausted
from improve.pipeline import hardware
from improve.pipeline.fill import fill_reason, filled_pipeline
from improve.pipeline.process import warm_up
from improve.pipeline.confusion import confusion_summary
from improve.pipeline.record import curve_summary
from improve.refine.budget import Budget, stop_reason
from improve.refine.candidates import train_candidates
from improve.refine.confirm import Confirmer
from improve.refine.console import LoopConsole, change_text
from improve.refine.decide import Evidence, decide
from improve.refine.diagnoses import actionable, diagnose, training_images
from improve.refine.edits import EditRejected
from improve.refine.final_phase import (FINAL, Pace, deadline_reason, deadline_s, due, final_pipeline,
                                        rationale, reserve_s, training_s)
from improve.refine.incumbent import IncumbentDir
from improve.refine.proposals import Candidate, Proposer
from improve.refine.prune import PrunePlan, prune_plan, pruned_reason
from improve.refine.runner import Runner, UnusableRun, finished_run, run_metrics_or_none
from improve.refine.state import State, llm_usage
from improve.refine.validator import Validator
from improve.refine.warm_start import init_checkpoint, parent_round, prepare
from improve.results.report import write_report

HISTORY_ROUNDS = 12  # rounds the agents see in full; older ones are only counted


class Refinement:
    """One refinement run in `run_dir`. `overrides`: the command line's, as Hydra parsed them.

    On a new run, pipeline overrides (`trainer.lr=0.01`, `augment=photo`) are kept in round 0's pipeline, on top
    of the architect's. On resume they are a hand edit, trained as a round of its own; settings (loop, constraints,
    llm, hardware) apply; anything else (dataset, seed, paths) is named as ignored."""

    def __init__(self, cfg: DictConfig, run_dir: Path, overrides: Optional[List[str]] = None, console=None,
                 agent=None):
        self.cfg, self.run_dir, self.given_agent = cfg, Path(run_dir), agent  # agent: None = from cfg.llm
        self.overrides = list(overrides or [])
        self.console = LoopConsole(console)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.run_dir / "journal.jsonl")
        self.budget = Budget(cfg.loop)
        self.runner = Runner(cfg, self.run_dir)
        self._fix_first = False  # this round acts on what the incumbent's errors found, with all the time left
        self._final_skipped: Optional[str] = None  # why the final phase could not run (its rejection's kind)

    # ------------------------------------------------------------------ entry point
    def run(self) -> Dict[str, Any]:
        """The whole run (or the rest of it, on resume): its rounds, then the end of run; the `end` event's fields.
        A full disk stops it with DiskFull, whose message says how to go on; what was decided is in the journal."""
        try:
            return self._run()
        except OSError as err:
            if err.errno not in DISK_FULL:
                raise
            raise DiskFull(err.errno, f"the disk holding {self.run_dir} is full ({err}). Every decided round is kept "
                                      f"in journal.jsonl; free some space (earlier runs, the data cache under "
                                      f"paths.cache_dir) and go on with: python -m improve resume={self.run_dir}") \
                from None

    def _run(self) -> Dict[str, Any]:
        cfg = self.cfg
        warm_up()  # rounds fork from a process that imports torch and Lightning meanwhile
        self.journal.repair()
        resuming = bool(self.journal.events())
        hand_overrides = self._start(resuming)
        self.agent, notice = ((self.given_agent, f"agent: {self.given_agent.name} (given)") if self.given_agent
                              else make_agent(cfg.llm, project_path(cfg.paths.cache_dir)))
        self.agent.bind(self.run_dir, self.journal, self.console.say)
        for line in notice.splitlines():
            self.console.say(line, "yellow" if "offline" in line or line.startswith("warning") else None)
        state = State.of(self.journal)
        if state.profile is None:
            reachable = pretrained_reachable(cfg.loop.pretrained_reachable)
            profile = dataset_profile(cfg.dataset, project_path(cfg.dataset.path), project_path(cfg.paths.cache_dir),
                                      OmegaConf.to_container(cfg.constraints), reachable)
            self.journal.write(Profile(profile=profile))
            state = State.of(self.journal)
        self.profile = state.profile
        constraints = OmegaConf.to_container(cfg.constraints)
        hw = hardware.resolve(cfg.hardware)
        self.validator = Validator.of(cfg.loop, self.profile, constraints, step_counts=not hw.gpu,
                                      loaders=max(hw.num_workers, 1))
        self.incumbent = IncumbentDir(self.run_dir, self.validator)
        self.confirmer = Confirmer(self.run_dir, self.journal, self.console, cfg.seed, self.runner)
        self.proposer = Proposer(self.agent, self.journal, self.console, cfg.loop, self._defaults(), self.validator,
                                 pinned=state.pinned)
        if cfg.loop.folds >= 2:
            self.console.say(f"loop.folds={cfg.loop.folds}: each round trains {cfg.loop.folds} times, once per "
                             f"stratified fold, and is scored on the pooled out-of-fold predictions", "cyan")
        human = self._hand_edit(state, hand_overrides)
        self.incumbent.sync(state.incumbent)
        repaired = self.incumbent.verify(state.incumbent)
        if repaired is not None:
            self._recovered(repaired)
        while True:
            state = State.of(self.journal)
            r = state.next_round
            state, stop, final = self._what_next(state, r)
            if stop and final is None:
                self.console.say(f"stopping: {stop}")
                break
            self.validator.seconds_left = self._seconds_left(state, final is not None)  # a round must fit it
            try:
                if r in state.proposals:  # interrupted before its decision: train the same candidate again
                    self._round(state, r, Candidate.from_proposal(state.proposals[r]), self._trained(state, r))
                elif r in state.candidates:  # interrupted while its candidates trained: the unfinished train again
                    self._round_of_candidates(state, r, [Candidate.from_proposal(e)
                                                         for _, e in sorted(state.candidates[r].items())])
                elif r == 0:
                    self._round(state, r, self.proposer.initial(self._context(state, r)))
                elif human is not None or (human := self._hand_edit(state, [])) is not None:
                    candidate, human = human, None
                    self._round(state, r, candidate)
                elif final is not None:
                    self.console.say(f"round {r}: {final.rationale}", "cyan")
                    self._round(state, r, final)
                else:  # the incumbent's errors were read by _what_next
                    found = self.proposer.propose(state, self._context(state, r), cfg.loop.candidates)
                    if len(found) > 1:
                        self._round_of_candidates(state, r, found)
                    else:
                        self._round(state, r, found[0])
            except RoundSkipped as err:
                self._skip(r, f"LLM unreachable, round skipped (llm.fallback=skip): {err}")
            except BudgetExhausted as err:
                self.console.say(f"stopping: {err}", "yellow")
                break
        return self._finish()

    def _start(self, resuming: bool) -> List[str]:
        """Journal the start or the resume; returns the overrides to train as a hand edit."""
        pipeline = pipeline_overrides(self.overrides)
        if not resuming:
            pinned = pinned_values(self.cfg, pipeline)
            self.journal.write(Start(config=OmegaConf.to_container(self.cfg, resolve=True), pinned=pinned))
            atomic_text(self.run_dir / "run_config.yaml", OmegaConf.to_yaml(self.cfg, resolve=True))
            if pinned:
                self.console.say(f"your pipeline values {' '.join(pipeline)} are kept in round 0's pipeline, on top "
                                 f"of the architect's; later rounds may change them", "cyan")
            return []
        self.journal.write(Resume(overrides=self.overrides))
        self.console.say(f"resuming {self.run_dir} after round {State.of(self.journal).next_round - 1}")
        ignored = [o for o in self.overrides
                   if o not in pipeline and override_key(o).split(".")[0] not in SETTINGS]
        if ignored:
            self.console.say(f"ignored on resume: {' '.join(ignored)} (a run's dataset, seed and paths are fixed; "
                             f"start a new run to change them)", "yellow")
        return pipeline

    def _skip(self, r: int, reason: str) -> None:
        llm = self._llm_usage(r)
        self.journal.write(Decision.untrained(r, "engineer", "-", "skipped", reason, llm))
        self.console.round(r, "-", "LLM unreachable", None, None, "skipped", 0.0, reason)

    def _llm_usage(self, r: int) -> Dict[str, Any]:
        return llm_usage(self.journal.events(), r)

    def _what_next(self, state: State, r: int) -> Tuple[State, Optional[str], Optional[Candidate]]:
        """Before round r: why the run stops (None: it goes on) and the final phase's round when it is due; the
        state with the incumbent's errors read (they may call for a fix first, which comes before the final phase)."""
        loop = self.cfg.loop
        stop = stop_reason(r + state.extra_runs, loop.rounds, state.incumbent_val, loop.target,
                           self.budget.spent(state), loop.time_budget)
        ended = [d["round"] for d in state.decisions.values() if d["author"] == FINAL]
        if ended and not stop:
            stop = f"the final phase ran (round {ended[0]}): the budget's last part trained the incumbent long"
        filled = state.filled
        if filled and not filled.get("kept") and not stop:
            stop = (f"round 0 trained {filled['epochs']} epochs, what loop.time_budget buys: it buys fewer than "
                    f"loop.fill_below={self.cfg.loop.fill_below:g} runs of round 0, too few for another round to pay")
        rounds_done = stop is not None and stop.startswith("all ") and r not in state.proposals
        self._fix_first = False
        if stop is None and r > 0 and r not in state.proposals and r not in state.candidates:
            state = self._diagnose(state, r)
            self._fix_first = self._fix_pending(state, r)
        final = None
        if (stop is None or rounds_done) and not self._fix_first:
            final = self._final_phase(state, r, rounds_done)
        if final is None and stop is None and self._final_skipped == "too_costly":
            stop = "the time left buys no epoch of the incumbent"
        return state, stop, final

    def _final_done(self, state: State) -> bool:
        return any(d["author"] == FINAL for d in state.decisions.values()) or self._final_skipped is not None

    def _reserve(self, state: State) -> float:
        """Seconds still kept for the final phase (0 once it ran or without it)."""
        return 0.0 if self._final_done(state) else reserve_s(self.cfg.loop)

    def _seconds_left(self, state: State, final: bool = False) -> Optional[float]:
        """What loop.time_budget leaves this round: less the final phase's reserve, except for the final phase and
        a round that acts on what the errors found."""
        left = self.budget.seconds_left(state)
        whole = final or self._fix_first
        return left if left is None or whole else max(left - self._reserve(state), 0.0)

    def _final_phase(self, state: State, r: int, rounds_done: bool = False) -> Optional[Candidate]:
        """The final phase's round when it is due (loop.final_phase; `rounds_done`: loop.rounds are spent, so it is
        due now if time is left), validated like a person's edit; None otherwise. A final phase that buys no epoch,
        or that fails its check, is said once and skipped."""
        loop, inc = self.cfg.loop, state.incumbent
        reserve = self._reserve(state)
        if not reserve or inc is None or r == 0 or r in state.proposals or inc["round"] not in state.decisions:
            return None
        pace = self._incumbent_pace(state)
        left = self.budget.seconds_left(state)
        headroom = (inc.get("summary") or {}).get("headroom", "near")
        now = due(left, reserve, pace, headroom)
        if not (rounds_done and pace is not None) and now is None:
            return None
        epochs = pace.epochs_for(left, loop.max_epochs)
        pipeline = final_pipeline(inc["pipeline"], max(epochs, 1), headroom)
        why = rationale(epochs, left, pace, pipeline["trainer"]["lr"], "" if rounds_done else now)
        try:
            if epochs < 1:
                raise EditRejected("too_costly", f"the {left:.0f} s left buy no epoch of the incumbent: they leave "
                                                 f"{training_s(left, pace):.1f} s for training once the round's "
                                                 f"seconds outside its epochs are set aside, and an epoch takes "
                                                 f"{pace.epoch_s:.1f} s")
            self.validator.seconds_left = left
            preflight = self.validator.pipeline(pipeline, FINAL)
        except EditRejected as err:
            self._final_skipped = err.kind
            self.console.say(f"round {r}: final phase skipped: {err}", "yellow")
            self.journal.write(ValidationError(round=r, author=FINAL, group="trainer", attempt=0,
                                               kind_of_error=err.kind, error=str(err)))
            return None
        return Candidate(pipeline, FINAL, "trainer", why, preflight)

    def _fix_pending(self, state: State, r: int) -> bool:
        """Whether the incumbent's errors, read just before round r, found a cause the pipeline still has: that
        round acts on it first, with all the time left (a fix is worth more than training longer)."""
        inc = state.incumbent
        diagnosed = state.diagnosed.get(inc["round"]) if inc else None
        return bool(diagnosed and diagnosed["round"] == r
                    and any(actionable(f, inc["pipeline"]) for f in diagnosed["findings"]))

    def _context(self, state: State, r: int) -> Context:
        inc = state.incumbent or {"round": None, "pipeline": self._defaults(), "val_acc": None,
                                  "summary": {"diagnosis": "ok"}}
        findings = [{**f, "actionable": actionable(f, inc["pipeline"])} for f in state.findings()]
        return Context(profile=self.profile, incumbent=inc, rounds=state.summaries()[-HISTORY_ROUNDS:], round=r,
                       seed=self.cfg.seed, max_epochs=self.cfg.loop.max_epochs,
                       runs_left=self.budget.runs_left(state, r) + 1, seconds_left=self._seconds_left(state),
                       round_timeout=self.cfg.loop.round_timeout, findings=findings,
                       reserved_s=self._reserve(state) or None)

    def _diagnose(self, state: State, r: int) -> State:
        """Before round r is proposed: what the incumbent's validation errors say (once per incumbent), journaled
        and said on the console; the state with it. A file that cannot be read is one line, and the agents read the
        curves only."""
        inc = state.incumbent
        if not self.cfg.loop.diagnose or inc is None or inc["round"] in state.diagnosed:
            return state
        path = round_dir(self.run_dir, inc["round"]) / "val_predictions.json"
        if not path.is_file():
            return state
        try:
            predictions = json.loads(path.read_text())
            if not hasattr(self, "_images"):
                self._images = training_images(self.cfg.dataset, project_path(self.cfg.dataset.path),
                                               project_path(self.cfg.paths.cache_dir))
            findings = diagnose(predictions, self._images, inc["pipeline"], self.profile["channels"])
            errors = confusion_summary(predictions)
        except (OSError, ValueError, KeyError, TypeError) as err:
            self.console.say(f"round {r}: the errors of round {inc['round']} could not be read ({type(err).__name__}: "
                             f"{err}); the agents read its curves only", "yellow")
            findings, errors = [], None
        self.journal.write(Diagnosed(round=r, of_round=inc["round"], findings=[f.journal() for f in findings],
                                     errors=errors.journal() if errors else None))
        for f in findings:
            self.console.say(f"round {r}: the errors of round {inc['round']} say {f.rule} "
                             f"({', '.join('/'.join(p) for p in f.pairs[:3]) or f.evidence[:120]}): {f.edit}", "cyan")
        return State.of(self.journal)

    def _defaults(self) -> Dict[str, Dict[str, Any]]:
        return {g: OmegaConf.to_container(self.cfg[g], resolve=True) for g in EDITABLE_GROUPS}

    def _hand_edit(self, state: State, overrides: List[str]) -> Optional[Candidate]:
        candidate, rejected = self.incumbent.hand_edit(state, overrides)
        for bad in rejected:
            self.journal.write(ValidationError(round=state.next_round, author="human", group="pipeline", attempt=0,
                                               kind_of_error=bad.kind, error=bad.error))
            self.console.say(f"hand edit in {bad.source} rejected: {bad.error}; the incumbent is restored", "red")
        if candidate is not None:
            self.console.say(f"hand edit found: training it as a round of its own ({candidate.rationale})", "cyan")
        return candidate

    # ------------------------------------------------------------------ one round
    def _round(self, state: State, r: int, candidate: Candidate, trained: Optional[Dict[str, Any]] = None,
               picked: Optional[Dict[str, Any]] = None, start: Optional[float] = None) -> None:
        """Train (unless `trained` holds its finished metrics) and judge one candidate; `picked` says which of the
        round's candidates it is, and how they all did."""
        picked = picked or {}
        changes = candidate.changes(state.incumbent["pipeline"] if state.incumbent else None)
        if candidate.pipeline is None:  # no valid edit after the repairs: nothing is trained
            llm = self._llm_usage(r)
            self.journal.write(Decision.untrained(r, candidate.author, candidate.group, "invalid", candidate.rationale,
                                                  llm))
            self.console.round(r, candidate.group, "no valid edit", None, None, "invalid", 0.0, None, llm,
                               candidate.author)
            return
        if r not in state.proposals:
            self.journal.write(Proposal(round=r, **candidate.proposal(changes),
                                        **{k: v for k, v in picked.items() if k != "candidates"}))
            if candidate.author == "human":  # the edit now lives in the journal: incumbent/ shows the incumbent again
                self.incumbent.sync(State.of(self.journal).incumbent, force=True)
        start = start or time.perf_counter()
        if trained is None:
            self._warm_start(state, r, [candidate.pipeline])
        plan = None if picked else self._prune_plan(state, r, candidate.pipeline)  # candidates are not pruned
        if trained is None:
            trained = self.runner.round(r, candidate.pipeline, plan.config() if plan else None, self._deadline(state),
                                        self._fill(state, r))
        metrics = trained
        filled = metrics.get("filled") if metrics.get("status") == "ok" else None
        if filled:  # round 0 took the small budget: it is the pipeline it trained, for every epoch it trained
            candidate = replace(candidate, pipeline=filled_pipeline(candidate.pipeline, filled))
            self.console.say(f"round {r}: {fill_reason(filled)}", "yellow")
        if metrics.get("deadline"):
            cut = metrics["deadline"]
            self.console.say(f"round {r}: stopped after {cut['epoch']} of its {cut['epochs']} epochs, before "
                             f"loop.time_budget ran out ({cut['deadline_s']:.0f} s of training were left)", "yellow")
        val = metrics.get("best_val_acc") if metrics.get("status") == "ok" else None
        loop = self.cfg.loop
        verdict = decide(val, state.incumbent_val, loop.min_delta, loop.accept,
                         self._evidence(r, state) if val is not None else None, loop.alpha)
        pruned = metrics.get("pruned") if val is not None else None
        if pruned and verdict.decision != "kept":  # stopped early behind the incumbent's curve: no seeds either
            verdict = replace(verdict, decision="pruned", unproven=False)
            pruned = {**pruned, **({"against": plan.against, "margin": plan.margin} if plan else {})}
        else:
            pruned = None
        if verdict.unproven:  # a gain the validation set cannot tell from noise: more seeds of both decide
            pooled = self.confirmer.pooled(r, {"round": r, "pipeline": candidate.pipeline}, state.incumbent,
                                           loop.confirm_seeds, self.budget.runs_left(state, r, start))
            verdict = decide(val, state.incumbent_val, loop.min_delta, loop.accept, pooled, loop.alpha, pooled=True)
        if r == 0 and val is not None and loop.noise_floor:
            self.confirmer.noise_floor(candidate.pipeline, self.budget.runs_left(state, r, start))
        seconds = round(time.perf_counter() - start, 1)  # confirmation runs included: they count against the budget
        if verdict.decision == "kept":
            self.incumbent.promote(r, candidate.pipeline, val)
        elif loop.ensemble_top_k < 2 and (loop.average_top_k < 2 or parent_round(self.run_dir, r) is None):
            # its checkpoint is no one's starting point, ensemble member nor soup ingredient (a warm-started round)
            round_checkpoint(self.run_dir, r).unlink(missing_ok=True)
        reason = (pruned_reason(pruned, plan.journal() if plan else None) if pruned else
                  deadline_reason(metrics["deadline"]) if val is not None and metrics.get("deadline") else
                  fill_reason(filled) if filled else
                  None if val is not None else (metrics.get("error") or "no metrics.json written"))
        llm = self._llm_usage(r)
        evidence = verdict.evidence.journal() if verdict.evidence else {}
        self.journal.write(Decision(round=r, author=candidate.author, group=candidate.group, decision=verdict.decision,
                                    val_acc=val, incumbent_val=state.incumbent_val, delta=verdict.delta,
                                    rule=verdict.rule, **{k: v for k, v in evidence.items() if k != "delta"},
                                    changes=changes, summary=self._summary(r, metrics), seconds=seconds, reason=reason,
                                    config_sha=self.incumbent.config_sha(), llm=llm,
                                    candidates=picked.get("candidates") or None, pruned=pruned, filled=filled))
        shown = f"pruned {pruned['epoch']}/{pruned['epochs']}" if pruned else verdict.decision
        self.console.round(r, candidate.group, change_text(changes, metrics), val, verdict.delta, shown,
                           seconds, reason, llm, candidate.author, verdict.evidence)
        write_report(self.run_dir, State.of(self.journal))

    def _summary(self, r: int, metrics: Dict[str, Any]) -> Dict[str, Any]:
        """What the agents read of a round: its curves, and its validation errors (`errors`: per-class accuracy
        and the most confused pairs) when it wrote its predictions."""
        summary = curve_summary(metrics)
        path = round_dir(self.run_dir, r) / "val_predictions.json"
        if metrics.get("status") == "ok" and path.is_file():
            try:
                errors = confusion_summary(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                errors = None  # finished_run checked it is readable; a mismatch leaves the curves only
            if errors is not None:
                summary["errors"] = errors.journal()
        return summary

    def _deadline(self, state: State) -> Optional[float]:
        """The seconds of training the next round may take under loop.time_budget: all that is left, reserve
        included, less what a round spends outside its epochs at the incumbent's pace (`final_phase.deadline_s`;
        None: no time budget). The same after a resume: it rests on the journal's decided rounds and the incumbent's
        files only."""
        left = self.budget.seconds_left(state)
        return None if left is None else deadline_s(left, self._incumbent_pace(state))

    def _fill(self, state: State, r: int) -> Optional[Dict[str, Any]]:
        """Round 0's `fill` under loop.time_budget and loop.fill_below (`pipeline/fill.py`): all the budget, which it
        takes when it buys fewer than loop.fill_below runs of it; None for any other round, without a time budget, or
        under loop.folds (its k runs share the budget). The same after a resume: nothing was spent before round 0."""
        loop = self.cfg.loop
        left = self.budget.seconds_left(state)
        if r != 0 or left is None or not loop.fill_below or loop.folds >= 2:
            return None
        return {"seconds": round(left, 1), "below_rounds": float(loop.fill_below), "max_epochs": int(loop.max_epochs)}

    def _incumbent_pace(self, state: State) -> Optional[Pace]:
        """What the incumbent's round cost (its metrics.json and decided seconds); None before one is decided."""
        inc = state.incumbent
        if inc is None or inc["round"] not in state.decisions:
            return None
        return Pace.of(run_metrics_or_none(round_dir(self.run_dir, inc["round"])) or {},
                       state.decisions[inc["round"]]["seconds"])

    def _prune_plan(self, state: State, r: int, pipeline: Dict[str, Dict]) -> Optional[PrunePlan]:
        """The curve round r is pruned against under loop.prune (None: not pruned); the same after a resume, as it
        rests on the incumbent's files and the round's warm-start files only."""
        rd = round_dir(self.run_dir, r)
        warm = init_checkpoint(self.run_dir, pipeline, rd) is not None
        return prune_plan(self.cfg.loop, self.run_dir, state.incumbent, int(pipeline["trainer"]["epochs"]), warm)

    def _trained(self, state: State, r: int) -> Optional[Dict[str, Any]]:
        """The metrics of round r's run when its training finished before an interruption that came before its
        decision (its chosen candidate's, when it had several): judged without training again. None: train it;
        a file it left unreadable is said and journaled."""
        rd, proposal = round_dir(self.run_dir, r), state.proposals[r]
        if proposal.get("of_candidates"):
            config = None
        else:
            plan = self._prune_plan(state, r, proposal["pipeline"])
            config = self.runner.config(proposal["pipeline"], rd, plan.config() if plan else None,
                                        self._deadline(state), self._fill(state, r))
        try:
            metrics = finished_run(rd, config)
        except UnusableRun as err:
            self._recovered(Recovered(round=r, reason=str(err), action="trained the round again"))
            return None
        if metrics is not None:
            self.console.say(f"round {r}: its training had finished before the interruption; judged without "
                             f"training it again", "cyan")
        return metrics

    def _recovered(self, event: Recovered) -> None:
        self.journal.write(event)
        where = f"round {event.round}: " if event.round is not None else ""
        self.console.say(f"{where}{event.reason}: {event.action}", "yellow")

    def _round_of_candidates(self, state: State, r: int, candidates: List[Candidate]) -> None:
        """Several edits of one group, trained at once (loop.executor); the best goes to the decision."""
        start = time.perf_counter()
        self._warm_start(state, r, [c.pipeline for c in candidates])
        picked = train_candidates(self.run_dir, self.journal, self.console, state, r, candidates, self.cfg.loop,
                                  self.runner)
        self._round(state, r, candidates[picked.index], picked.metrics, picked.journal(), start)

    def _evidence(self, r: int, state: State) -> Optional[Evidence]:
        """Round r against the incumbent, image by image on the validation split; None without both predictions."""
        if state.incumbent is None:
            return None
        return self.confirmer.pooled(r, {"round": r, "pipeline": None}, state.incumbent, seeds=0)

    def _warm_start(self, state: State, r: int, pipelines: List[Dict[str, Dict]]) -> None:
        """trainer.warm_start: the incumbent's weights copied for round r, or one line saying why not."""
        note = prepare(self.run_dir, r, pipelines, state.incumbent, self.incumbent.checkpoint, self.cfg.loop.folds)
        if note:
            self.journal.write(WarmStartSkipped(round=r, reason=note))
            self.console.say(f"round {r}: {note}", "yellow")

    def _finish(self) -> Dict[str, Any]:
        state = State.of(self.journal)
        loop = self.cfg.loop
        result = finish(self.run_dir, state, self.journal, self.incumbent, self.runner,
                        self.cfg.constraints.min_accuracy, EndOfRun.of(loop), loop.refit)
        write_report(self.run_dir, State.of(self.journal))
        self.console.final(result, self.run_dir / "best", self.cfg.constraints.min_accuracy)
        if result.get("llm_failed"):
            self.console.llm_failed(result["llm_failed"], self.cfg.llm.fallback)
        if result.get("llm_unusable"):
            self.console.say(f"[bold yellow]warning: none of the {result['llm_unusable']['calls']} LLM replies was "
                             f"usable, so the offline expert played every role; see the rejections above (a larger "
                             f"model, or llm.max_tokens for cut-off replies)[/]")
        return result

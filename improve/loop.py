"""The refinement loop: validated one-group edits, train, keep or revert, journal, resume.

Run directory:
  journal.jsonl         append-only events; the source of truth for resume
  run_config.yaml       the composed run settings
  incumbent/            config.yaml (the pipeline a person may edit), best.ckpt, state.json
  rounds/NN/            config.yaml (frozen train config), stdout.log, train.log, metrics.json, checkpoints/
  best/                 the final incumbent: config.yaml (re-trainable), best.ckpt
  report.md             the round table

A round is done when its `decision` event is in the journal; anything after the last
decision is redone on resume, from the journaled proposal when there is one.
"""
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml
from omegaconf import DictConfig, OmegaConf

from .agents import Context, RoundSkipped, make_agent
from .llm import BudgetExhausted
from .edits import EditRejected, check_group, parse_edit, preflight, validate_edit
from .history import curve_summary, fingerprint, pipeline_diff
from .journal import Journal
from .profile import dataset_profile, pretrained_reachable
from .record import write_json
from .report import console_line, write_report
from .rounds import train_config, train_in_process, warm_up
from .schema import EDITABLE_GROUPS
from .export import export
from .inference import predict_test_split
from .train import project_path

log = logging.getLogger("improve.loop")
HISTORY_ROUNDS = 12  # rounds the agents see in full; older ones are only counted


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _atomic_text(dst: Path, text: str) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, dst)


class State:
    """Everything the loop knows, rebuilt from the journal's events."""

    def __init__(self, events: List[Dict[str, Any]]):
        self.proposals: Dict[int, Dict[str, Any]] = {}
        self.decisions: Dict[int, Dict[str, Any]] = {}
        self.incumbent: Optional[Dict[str, Any]] = None
        self.profile: Optional[Dict[str, Any]] = None
        self.final: Optional[Dict[str, Any]] = None
        for e in events:
            kind = e["event"]
            if kind == "profile":
                self.profile = e["profile"]
            elif kind == "proposal":
                self.proposals[e["round"]] = e
            elif kind == "decision":
                self.decisions[e["round"]] = e
                if e["decision"] == "kept":
                    self.incumbent = {"round": e["round"], "pipeline": self.proposals[e["round"]]["pipeline"],
                                      "val_acc": e["val_acc"], "summary": e["summary"]}
            elif kind == "end":
                self.final = e

    @property
    def next_round(self) -> int:
        return max(self.decisions, default=-1) + 1

    def tried(self, group: str) -> List[Dict[str, Any]]:
        return [p["pipeline"][group] for p in self.proposals.values()]

    def tried_pipelines(self) -> Dict[str, int]:
        return {fingerprint(p["pipeline"]): r for r, p in self.proposals.items() if r in self.decisions}

    def summaries(self) -> List[Dict[str, Any]]:
        out = []
        for r in sorted(self.decisions):
            d, p = self.decisions[r], self.proposals.get(r, {})
            out.append({"round": r, "author": d["author"], "group": d["group"], "changes": d["changes"],
                        "rationale": (p.get("rationale") or "")[:300], "val_acc": d["val_acc"], "delta": d["delta"],
                        "decision": d["decision"], "summary": d["summary"], "seconds": d["seconds"]})
        return out


class Refinement:
    def __init__(self, cfg: DictConfig, run_dir: Path, overrides: Optional[List[str]] = None, console=None):
        from rich.console import Console

        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.overrides = list(overrides or [])
        self.console = console or Console(soft_wrap=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.run_dir / "journal.jsonl")
        self.incumbent_dir = self.run_dir / "incumbent"
        self.session_start = time.perf_counter()

    # ------------------------------------------------------------------ entry point
    def run(self) -> Dict[str, Any]:
        cfg = self.cfg
        warm_up()  # rounds fork from a process that imports torch and Lightning meanwhile
        self.journal.repair()
        events = self.journal.events()
        if not events:
            self.journal.append("start", config=OmegaConf.to_container(cfg, resolve=True))
            _atomic_text(self.run_dir / "run_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        else:
            self.journal.append("resume", overrides=self.overrides)
            self.console.print(f"resuming {self.run_dir} after round {State(events).next_round - 1}")
        self.agent, notice = make_agent(cfg.llm, project_path(cfg.paths.cache_dir))
        if hasattr(self.agent, "bind"):
            self.agent.bind(self.run_dir, self.journal)
        self.console.print(notice, style="yellow" if "offline" in notice else None, highlight=False)
        state = State(self.journal.events())
        if state.profile is None:
            reachable = pretrained_reachable(cfg.loop.pretrained_reachable)
            profile = dataset_profile(cfg.dataset, project_path(cfg.dataset.path), project_path(cfg.paths.cache_dir),
                                      OmegaConf.to_container(cfg.constraints), reachable)
            self.journal.append("profile", profile=profile)
            state = State(self.journal.events())
        self.profile = state.profile
        human = self._human_edit(state)
        self._sync_incumbent(state)
        while True:
            state = State(self.journal.events())
            r = state.next_round
            stop = self._stop_reason(state, r)
            if stop:
                self.console.print(f"stopping: {stop}", highlight=False)
                break
            try:
                if r == 0:
                    self._round(state, r, *self._initial(state, r))
                elif human is not None or (human := self._human_edit(state)) is not None:
                    self._round(state, r, *human)
                    human = None
                else:
                    self._round(state, r, *self._propose(state, r))
            except RoundSkipped as err:
                self._skip(r, f"LLM unreachable, round skipped (llm.fallback=skip): {err}")
            except BudgetExhausted as err:
                self.console.print(f"stopping: {err}", style="yellow", highlight=False)
                break
        return self._finish(State(self.journal.events()))

    def _skip(self, r: int, reason: str) -> None:
        self.journal.append("decision", round=r, author="engineer", group="-", decision="skipped", val_acc=None,
                            delta=None, changes=[], summary={"diagnosis": "skipped"}, seconds=0.0, reason=reason,
                            llm=self._llm_usage(r))
        self.console.print(console_line(r, "-", "LLM unreachable", None, None, "skipped", 0.0, reason),
                           highlight=False)

    def _llm_usage(self, r: int) -> Dict[str, Any]:
        calls = [e for e in self.journal.events() if e["event"] == "llm_call" and e["round"] == r]
        return {"calls": len(calls), "input_tokens": sum(e["input_tokens"] for e in calls),
                "output_tokens": sum(e["output_tokens"] for e in calls),
                "cost_usd": round(sum(e["cost_usd"] for e in calls), 6)}

    def _stop_reason(self, state: State, r: int) -> Optional[str]:
        loop = self.cfg.loop
        if r > loop.rounds:
            return f"all {loop.rounds} rounds done"
        if loop.target and state.incumbent and state.incumbent["val_acc"] >= loop.target:
            return f"validation accuracy {state.incumbent['val_acc']:.4f} reached loop.target={loop.target}"
        if loop.time_budget:
            spent = sum(d["seconds"] for d in state.decisions.values() if d["time"] < self._session_wall()) \
                + (time.perf_counter() - self.session_start)
            if spent >= loop.time_budget:
                return f"time budget of {loop.time_budget:.0f} s spent"
        return None

    def _session_wall(self) -> float:
        return time.time() - (time.perf_counter() - self.session_start)

    # ------------------------------------------------------------------ context for the agents
    def _context(self, state: State, r: int) -> Context:
        inc = state.incumbent or {"round": None, "pipeline": self._defaults(), "val_acc": None,
                                  "summary": {"diagnosis": "ok"}}
        return Context(profile=self.profile, incumbent=inc, rounds=state.summaries()[-HISTORY_ROUNDS:], round=r,
                       seed=self.cfg.seed, max_epochs=self.cfg.loop.max_epochs)

    def _defaults(self) -> Dict[str, Dict[str, Any]]:
        return {g: OmegaConf.to_container(self.cfg[g], resolve=True) for g in EDITABLE_GROUPS}

    def _shape(self) -> Tuple[int, int]:
        return self.profile["num_classes"], self.profile["channels"]

    def _constraints(self) -> Dict[str, Any]:
        return OmegaConf.to_container(self.cfg.constraints)

    # ------------------------------------------------------------------ proposals
    def _initial(self, state: State, r: int):
        """Round 0: the architect's whole pipeline (unified) or one group at a time (sequential)."""
        if r in state.proposals:
            return self._replay(state.proposals[r])
        ctx, defaults, error = self._context(state, r), self._defaults(), None
        for attempt in range(self.cfg.loop.max_repairs + 1):
            try:
                if self.cfg.loop.init == "unified":
                    proposal = self.agent.architect(ctx, defaults, error=error)
                    if proposal.error:
                        raise EditRejected("bad_reply", proposal.error)
                    texts, why, author = proposal.pipeline, proposal.rationale, "architect"
                else:
                    edits = {g: self.agent.init_group(g, ctx, defaults[g]) for g in EDITABLE_GROUPS}
                    texts = {g: e.yaml for g, e in edits.items()}
                    why, author = "; ".join(f"{g}: {e.rationale}" for g, e in edits.items()), "engineers"
                pipeline = {g: check_group(g, parse_edit(texts.get(g, ""), g), defaults[g]) for g in EDITABLE_GROUPS}
                pf = preflight(pipeline, *self._shape(), self._constraints())
                return pipeline, author, "+".join(EDITABLE_GROUPS), why, pf, attempt
            except RoundSkipped as err:
                self.console.print(f"round {r}: the architect is unreachable ({err}); using the defaults", style="red",
                                   highlight=False)
                break
            except EditRejected as err:
                error = str(err)
                self.journal.append("validation_error", round=r, author="architect", group="pipeline",
                                    attempt=attempt, kind=err.kind, error=error)
                self.console.print(f"round {r}: rejected first pipeline ({err.kind}): {error}", style="red",
                                   highlight=False)
        pipeline = self._defaults()
        return pipeline, "defaults", "+".join(EDITABLE_GROUPS), "no usable pipeline from the architect; " \
            "starting from the configured defaults", preflight(pipeline, *self._shape(), self._constraints()), 0

    def _propose(self, state: State, r: int):
        if r in state.proposals:
            return self._replay(state.proposals[r])
        ctx = self._context(state, r)
        base = state.incumbent["pipeline"] if state.incumbent else self._defaults()
        choice = self.agent.analyst(ctx)
        groups = list(EDITABLE_GROUPS) if self.cfg.loop.strategy == "all_at_once" else [choice.group]
        if any(g not in EDITABLE_GROUPS for g in groups):
            self.journal.append("validation_error", round=r, author="analyst", group=choice.group, attempt=0,
                                kind="other_group", error=f"analyst picked {choice.group!r}")
            groups = [EDITABLE_GROUPS[r % len(EDITABLE_GROUPS)]]
        self.journal.append("analysis", round=r, group="+".join(groups), feedback=choice.feedback)
        candidate, whys, pf, repairs = dict(base), [], None, 0
        seen = state.tried_pipelines()
        for g in groups:
            result = self._engineer(state, r, g, choice.feedback, ctx, candidate, seen)
            if result is None:
                continue
            candidate, why, pf, attempts = result
            whys.append(why)
            repairs += attempts
        if pf is None:
            return None, "engineer", "+".join(groups), "no valid edit", None, repairs
        return candidate, "engineer", "+".join(groups), " | ".join(whys), pf, repairs

    def _engineer(self, state: State, r: int, group: str, feedback: str, ctx: Context,
                  pipeline: Dict[str, Dict], seen: Dict[str, int]):
        error = None
        for attempt in range(self.cfg.loop.max_repairs + 1):
            edit = self.agent.engineer(group, feedback, ctx, pipeline[group], state.tried(group), error)
            try:
                if edit.error:
                    raise EditRejected("bad_reply", edit.error)
                candidate, pf = validate_edit(edit.yaml, group, pipeline, *self._shape(), self._constraints())
                if candidate[group] == pipeline[group]:
                    raise EditRejected("no_change", f"the '{group}' group is unchanged; propose a different "
                                                    f"configuration")
                if fingerprint(candidate) in seen:
                    raise EditRejected("duplicate", f"this exact pipeline was already trained in round "
                                                    f"{seen[fingerprint(candidate)]}; propose something untried")
                return candidate, edit.rationale, pf, attempt
            except EditRejected as err:
                error = str(err)
                self.journal.append("validation_error", round=r, author="engineer", group=group, attempt=attempt,
                                    kind=err.kind, error=error, reply=edit.yaml[:4000])
                self.console.print(f"round {r}: {group} edit rejected ({err.kind}): {error}", style="red",
                                   highlight=False)
        return None

    def _replay(self, proposal: Dict[str, Any]):
        return (proposal["pipeline"], proposal["author"], proposal["group"], proposal["rationale"],
                proposal.get("preflight"), proposal.get("repairs", 0))

    # ------------------------------------------------------------------ hand edits
    def _human_edit(self, state: State):
        """A person's edit of incumbent/config.yaml, or pipeline overrides given with resume, as a candidate."""
        if state.incumbent is None:
            return None
        current = state.incumbent["pipeline"]
        edited, source = None, None
        state_file = self.incumbent_dir / "state.json"
        config_file = self.incumbent_dir / "config.yaml"
        if state_file.is_file() and config_file.is_file():
            written = json.loads(state_file.read_text()).get("config_sha")
            if written and _sha(config_file) != written:
                source = "incumbent/config.yaml"
                try:
                    data = yaml.safe_load(config_file.read_text()) or {}
                    if not isinstance(data, dict) or set(data) - set(EDITABLE_GROUPS):
                        raise EditRejected("other_group", f"incumbent/config.yaml may hold only {list(EDITABLE_GROUPS)}")
                    edited = {g: check_group(g, data.get(g) or {}, current[g]) for g in EDITABLE_GROUPS}
                    pending = state.proposals.get(state.next_round)
                    if pending and edited == pending["pipeline"]:
                        edited = None  # our own promotion, cut short by a kill before its decision: not a person's
                except (EditRejected, yaml.YAMLError) as err:
                    self._reject_human(state, source, err)
                    edited = None
        pipeline_overrides = [o for o in self.overrides if o.split(".")[0].split("=")[0] in EDITABLE_GROUPS]
        if pipeline_overrides:
            self.overrides = [o for o in self.overrides if o not in pipeline_overrides]
            source = "resume overrides " + " ".join(pipeline_overrides)
            base = edited or current
            try:
                dotted = OmegaConf.to_container(OmegaConf.from_dotlist(pipeline_overrides))
                edited = {g: check_group(g, dotted.get(g) or {}, base[g]) for g in EDITABLE_GROUPS}
            except (EditRejected, ValueError) as err:
                self._reject_human(state, source, err)
                edited = None
        if edited is None:
            return None
        changed = [g for g in EDITABLE_GROUPS if edited[g] != current[g]]
        if not changed:
            return None
        try:
            pf = preflight(edited, *self._shape(), self._constraints())
        except EditRejected as err:
            self._reject_human(state, source, err)
            return None
        self.console.print(f"hand edit found ({source}): training it as a round of its own", style="cyan",
                           highlight=False)
        return edited, "human", "+".join(changed), f"edited by hand ({source})", pf, 0

    def _reject_human(self, state: State, source: str, err: Exception) -> None:
        self.journal.append("validation_error", round=state.next_round, author="human", group="pipeline", attempt=0,
                            kind=getattr(err, "kind", "not_yaml"), error=str(err))
        self.console.print(f"hand edit in {source} rejected: {err}; the incumbent is restored", style="red",
                           highlight=False)
        self._sync_incumbent(state, force=True)

    # ------------------------------------------------------------------ one round
    def _round(self, state: State, r: int, pipeline, author: str, group: str, rationale: str, pf, repairs: int):
        base = state.incumbent["pipeline"] if state.incumbent else {}
        changes = pipeline_diff(base, pipeline) if pipeline else {}
        flat_changes = [f"{g}: {c}" for g, cs in changes.items() for c in cs]
        if pipeline is not None and not base:  # no incumbent yet: describe the pipeline, not a diff against nothing
            m, a = pipeline["model"], pipeline["augment"]
            flat_changes = [f"{m['name']}{' pretrained' if m['pretrained'] else ''} at {a['image_size']}px, "
                            f"{', '.join(t['name'] for t in a['train_transforms']) or 'no transforms'}, "
                            f"{pipeline['trainer']['epochs']} epochs of {pipeline['trainer']['optimizer']}"]
        if pipeline is None:  # no valid edit after the repairs: nothing is trained
            llm = self._llm_usage(r)
            self.journal.append("decision", round=r, author=author, group=group, decision="invalid", val_acc=None,
                                delta=None, changes=[], summary={"diagnosis": "invalid"}, seconds=0.0,
                                reason=rationale, llm=llm)
            self.console.print(console_line(r, group, "no valid edit", None, None, "invalid", 0.0, None, llm),
                               highlight=False)
            return
        if r not in state.proposals:
            pf_dict = pf.__dict__ if hasattr(pf, "__dict__") else pf
            self.journal.append("proposal", round=r, author=author, group=group, pipeline=pipeline,
                                changes=flat_changes, rationale=rationale, preflight=pf_dict, repairs=repairs)
            if author == "human":
                self._sync_incumbent(State(self.journal.events()), force=True)  # the edit now lives in the journal
        start = time.perf_counter()
        metrics = self._train(r, pipeline)
        seconds = round(time.perf_counter() - start, 1)
        summary = curve_summary(metrics)
        val = metrics.get("best_val_acc") if metrics.get("status") == "ok" else None
        inc_val = state.incumbent["val_acc"] if state.incumbent else None
        if val is None:
            decision = "failed"
        elif inc_val is None or val > inc_val + self.cfg.loop.min_delta:
            decision = "kept"
        else:
            decision = "reverted"
        delta = round(val - inc_val, 4) if val is not None and inc_val is not None else None
        if decision == "kept":
            self._promote(r, pipeline, val)
        else:  # its checkpoint is no one's starting point (rounds write no last.ckpt)
            (self.run_dir / "rounds" / f"{r:02d}" / "checkpoints" / "best.ckpt").unlink(missing_ok=True)
        reason = None if val is not None else (metrics.get("error") or "no metrics.json written")
        llm = self._llm_usage(r)
        self.journal.append("decision", round=r, author=author, group=group, decision=decision, val_acc=val,
                            incumbent_val=inc_val, delta=delta, changes=flat_changes, summary=summary,
                            seconds=seconds, reason=reason, config_sha=_sha(self.incumbent_dir / "config.yaml"),
                            llm=llm)
        label = ", ".join(flat_changes) or "-"
        self.console.print(console_line(r, group, label, val, delta, decision, seconds, reason, llm), highlight=False)
        write_report(self.run_dir, State(self.journal.events()))

    def _train_config(self, pipeline: Dict[str, Dict], output_dir: Path) -> Dict[str, Any]:
        return train_config(self.cfg, pipeline, output_dir)

    def _train(self, r: int, pipeline: Dict[str, Dict]) -> Dict[str, Any]:
        rd = self.run_dir / "rounds" / f"{r:02d}"
        live = self.cfg.hardware.progress_bar and sys.stdout.isatty()
        return train_in_process(self._train_config(pipeline, rd), rd, self.cfg.loop.round_timeout, live,
                                keep={"llm"})

    # ------------------------------------------------------------------ the incumbent
    def _promote(self, r: int, pipeline: Dict[str, Dict], val: float) -> None:
        """Replace the incumbent: each file atomically, state.json last."""
        self.incumbent_dir.mkdir(exist_ok=True)
        ckpt = self.run_dir / "rounds" / f"{r:02d}" / "checkpoints" / "best.ckpt"
        if ckpt.is_file():
            _atomic_copy(ckpt, self.incumbent_dir / "best.ckpt")
        header = (f"# The incumbent pipeline (round {r}, val acc {val:.4f}). Edit it between rounds: the loop\n"
                  f"# trains your edit as a round of its own (author: human) and judges it like any other.\n")
        _atomic_text(self.incumbent_dir / "config.yaml", header + yaml.safe_dump(pipeline, sort_keys=False))
        write_json(self.incumbent_dir / "state.json", {"round": r, "val_acc": val,
                                                       "config_sha": _sha(self.incumbent_dir / "config.yaml")})

    def _sync_incumbent(self, state: State, force: bool = False) -> None:
        """Make incumbent/ match the journal (after a kill between its files, or to undo a rejected hand edit)."""
        if state.incumbent is None:
            return
        state_file = self.incumbent_dir / "state.json"
        current = json.loads(state_file.read_text()) if state_file.is_file() else {}
        if force or current.get("round") != state.incumbent["round"] or not (self.incumbent_dir / "best.ckpt").is_file():
            self._promote(state.incumbent["round"], state.incumbent["pipeline"], state.incumbent["val_acc"])

    # ------------------------------------------------------------------ the end
    def _finish(self, state: State) -> Dict[str, Any]:
        inc = state.incumbent
        result: Dict[str, Any] = {"rounds": len(state.decisions), "incumbent_round": None, "val_acc": None,
                                  "test_acc": None}
        if inc is None:
            self.console.print("no round succeeded: nothing to evaluate", style="red")
        else:
            best = self.run_dir / "best"
            best.mkdir(exist_ok=True)
            ckpt = self.incumbent_dir / "best.ckpt"
            train_cfg = self._train_config(inc["pipeline"], best)
            (best / "config.yaml").write_text(
                "# The best pipeline of this run; retrain it with\n"
                f"#   python -m improve.train --config-path={best.resolve()} --config-name=config\n"
                + yaml.safe_dump({**train_cfg, "test": True}, sort_keys=False))
            _atomic_copy(ckpt, best / "best.ckpt")
            test = predict_test_split(OmegaConf.create(train_cfg), ckpt)
            write_json(self.run_dir / "test_predictions.json", test)
            first_ckpt = self.run_dir / "rounds" / "00" / "checkpoints" / "best.ckpt"
            if inc["round"] != 0 and 0 in state.proposals and first_ckpt.is_file():
                # reported, never used for selection: how much the refinement gained over the first pipeline
                first_cfg = OmegaConf.create(self._train_config(state.proposals[0]["pipeline"], best))
                result["round0_test_acc"] = round(predict_test_split(first_cfg, first_ckpt)["acc"], 4)
            else:
                result["round0_test_acc"] = round(test["acc"], 4) if inc["round"] == 0 else None
            export(self.run_dir)
            min_acc = self.cfg.constraints.min_accuracy
            result.update(incumbent_round=inc["round"], val_acc=inc["val_acc"], test_acc=round(test["acc"], 4),
                          min_accuracy_met=(test["acc"] >= min_acc) if min_acc else None)
        first = state.decisions.get(0, {})
        result["round0_val_acc"] = first.get("val_acc")
        calls = [e for e in self.journal.events() if e["event"] == "llm_call"]
        if calls:
            result["llm"] = calls[-1]["totals"]
        self.journal.append("end", **result)
        write_report(self.run_dir, State(self.journal.events()))
        if inc is not None:
            self.console.print(
                f"[bold green]best: round {inc['round']}, val acc {inc['val_acc']:.4f}, test acc {result['test_acc']:.4f}"
                f"[/] ({result['rounds']} rounds; round 0 test acc {result['round0_test_acc']}) -> "
                f"{self.run_dir / 'best'}", highlight=False)
            if result.get("llm"):
                t = result["llm"]
                self.console.print(f"LLM: {t['calls']} calls, {t['input_tokens']:,} input + {t['output_tokens']:,} "
                                   f"output tokens, ${t['cost_usd']:.4f}", highlight=False)
            if result.get("min_accuracy_met") is False:
                self.console.print(f"constraints.min_accuracy={self.cfg.constraints.min_accuracy} not met",
                                   style="red")
        return result


def load_run_config(run_dir: Path, overrides: List[str]) -> DictConfig:
    """The saved settings of a run, with the command line's loop/constraints/llm/hardware overrides applied."""
    saved = run_dir / "run_config.yaml"
    if not saved.is_file():
        raise FileNotFoundError(f"resume={run_dir}: no run_config.yaml there; give the directory of a run started "
                                f"with python -m improve (it holds journal.jsonl)")
    cfg = OmegaConf.load(saved)
    settings = [o for o in overrides if o.split(".")[0] in ("loop", "constraints", "llm", "hardware")]
    if settings:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(settings))
    cfg.resume = str(run_dir)
    return cfg

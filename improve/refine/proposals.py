"""Agent calls and repairs: what the architect, analyst and engineers propose, validated into a Candidate.

Every reply is untrusted text, checked by the run's Validator in a bounded child process. A rejected reply goes back to its author with the validator's exact
message, up to `loop.max_repairs` times; each rejection is journaled (`validation_error`) and shown.
"""
from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, List, Optional

import yaml

from improve.agents import Agent, Choice, Context, RoundSkipped
from improve.config.diff import fingerprint, pipeline_diff
from improve.config.schema import EDITABLE_GROUPS
from improve.journal.events import Analysis, ValidationError
from improve.journal.log import Journal
from improve.refine.console import LoopConsole
from improve.refine.edits import EditRejected
from improve.refine.preflight import Preflight
from improve.refine.state import State
from improve.refine.validator import Validator


@dataclass
class Candidate:
    """One round's pipeline and where it came from. `pipeline` None: no valid edit after the repairs."""

    pipeline: Optional[Dict[str, Dict[str, Any]]]
    author: str  # architect, engineer, engineers, human, defaults
    group: str  # the group(s) it changes, joined by '+'
    rationale: str
    preflight: Optional[Preflight] = None
    repairs: int = 0  # rejected replies before this one

    @classmethod
    def from_proposal(cls, event: Dict[str, Any]) -> "Candidate":
        """The candidate a journaled `proposal` event describes (a resumed round trains it again)."""
        pf = event.get("preflight")
        return cls(event["pipeline"], event["author"], event["group"], event["rationale"],
                   Preflight(**pf) if pf else None, event.get("repairs", 0))

    def proposal(self, changes: List[str]) -> Dict[str, Any]:
        """The fields of its `proposal` event."""
        return {"author": self.author, "group": self.group, "pipeline": self.pipeline, "changes": changes,
                "rationale": self.rationale, "preflight": asdict(self.preflight) if self.preflight else None,
                "repairs": self.repairs}

    def changes(self, base: Optional[Dict[str, Dict[str, Any]]]) -> List[str]:
        """'group: change' lines against `base`; with no base, a one-line description of the whole pipeline."""
        if self.pipeline is None:
            return []
        if not base:
            m, a, t = self.pipeline["model"], self.pipeline["augment"], self.pipeline["trainer"]
            return [f"{m['name']}{' pretrained' if m['pretrained'] else ''} at {a['image_size']}px, "
                    f"{', '.join(x['name'] for x in a['train_transforms']) or 'no transforms'}, "
                    f"{t['epochs']} epochs of {t['optimizer']}"]
        return [f"{g}: {c}" for g, cs in pipeline_diff(base, self.pipeline).items() for c in cs]


ALL_GROUPS = "+".join(EDITABLE_GROUPS)


class Proposer:
    """Turns the agents' replies into validated candidates for one run."""

    def __init__(self, agent: Agent, journal: Journal, console: LoopConsole, loop, defaults: Dict[str, Dict],
                 validator: Validator, pinned: Optional[Dict[str, Dict]] = None):
        self.agent, self.journal, self.console, self.loop = agent, journal, console, loop
        self.defaults, self.validator = defaults, validator
        self.pinned = pinned or {}  # the user's command-line pipeline values: they override round 0's pipeline

    def _reject(self, r: int, author: str, group: str, attempt: int, err: EditRejected, what: str,
                reply: Optional[str] = None) -> str:
        self.journal.write(ValidationError(round=r, author=author, group=group, attempt=attempt, kind_of_error=err.kind,
                                           error=str(err), reply=reply[:4000] if reply is not None else None))
        self.console.rejected(r, what, err.kind, str(err))
        return str(err)

    # ------------------------------------------------------------------ round 0
    def initial(self, ctx: Context) -> Candidate:
        """Round 0: the architect's whole pipeline (unified) or one group at a time (sequential), then the pins."""
        error = None
        for attempt in range(self.loop.max_repairs + 1):
            try:
                if self.loop.init == "unified":
                    proposal = self.agent.architect(ctx, self.defaults, error=error)
                    if proposal.error:
                        raise EditRejected(proposal.error_kind, proposal.error)
                    texts, why, author = proposal.pipeline, proposal.rationale, proposal.author or "architect"
                else:
                    edits = {g: self.agent.init_group(g, ctx, self.defaults[g]) for g in EDITABLE_GROUPS}
                    bad = next((e for e in edits.values() if e.error), None)
                    if bad is not None:
                        raise EditRejected(bad.error_kind, bad.error)
                    texts = {g: e.yaml for g, e in edits.items()}
                    why = "; ".join(f"{g}: {e.rationale}" for g, e in edits.items())
                    author = _authors([e.author or "engineers" for e in edits.values()])
                pipeline, pf = self.validator.first(texts, self.defaults, self.pinned)
                return Candidate(pipeline, author, ALL_GROUPS, why + self._pin_note(), pf, attempt)
            except RoundSkipped as err:
                self.console.say(f"round {ctx.round}: the architect is unreachable ({err}); using the defaults", "red")
                break
            except EditRejected as err:
                error = self._reject(ctx.round, "architect", "pipeline", attempt, err, "first pipeline")
        epochs = min(self.defaults["trainer"]["epochs"], self.loop.max_epochs)
        trainer = {**self.defaults["trainer"], "epochs": epochs,
                   "warmup_epochs": min(self.defaults["trainer"]["warmup_epochs"], epochs)}
        defaults = {**self.defaults, "trainer": trainer}
        texts = {g: yaml.safe_dump(v) for g, v in defaults.items()}
        # the configured defaults train even when pre-flight estimates they cannot finish: the timeout will say so
        pipeline, pf = replace(self.validator, round_cost=None).first(texts, defaults, self.pinned)
        return Candidate(pipeline, "defaults", ALL_GROUPS, "no usable pipeline from the architect; starting from the "
                                                           f"configured defaults ({epochs} epochs, loop.max_epochs="
                                                           f"{self.loop.max_epochs})" + self._pin_note(), pf)

    def _pin_note(self) -> str:
        return f" (user's values kept: {self.pinned})" if self.pinned else ""

    # ------------------------------------------------------------------ later rounds
    def propose(self, state: State, ctx: Context, count: int = 1) -> List[Candidate]:
        """The analyst picks one group (every group for all_at_once); its engineer edits it, `count` times into
        distinct candidates (loop.candidates): each later edit is asked for with the earlier ones as tried. Fewer
        come back when the engineer has no further valid, untried edit; a single invalid one when it has none."""
        r = ctx.round
        base = state.incumbent["pipeline"] if state.incumbent else self.defaults
        choice = self.agent.analyst(ctx)
        groups = list(EDITABLE_GROUPS) if self.loop.strategy == "all_at_once" else [choice.group]
        if any(g not in EDITABLE_GROUPS for g in groups):
            self.journal.write(ValidationError(round=r, author="analyst", group=choice.group, attempt=0,
                                               kind_of_error="other_group", error=f"analyst picked {choice.group!r}"))
            groups = [EDITABLE_GROUPS[r % len(EDITABLE_GROUPS)]]
        self.journal.write(Analysis(round=r, group="+".join(groups), feedback=choice.feedback,
                                    diagnosis=choice.diagnosis, author=choice.author or "analyst"))
        seen, siblings, out = state.tried_pipelines(), [], []
        for _ in range(count):
            found = self._edit(state, ctx, choice, groups, base, seen, siblings)
            if found.pipeline is None:
                break
            out.append(found)
            seen[fingerprint(found.pipeline)] = r
            siblings.append(found.pipeline)
        return out or [found]

    def _edit(self, state: State, ctx: Context, choice: Choice, groups: List[str], base: Dict[str, Dict],
              seen: Dict[str, int], siblings: List[Dict[str, Dict]]) -> Candidate:
        pipeline, whys, pf, repairs, authors = dict(base), [], None, 0, []
        for g in groups:
            result = self._engineer(state, ctx, replace(choice, group=g), pipeline, seen,
                                    [s[g] for s in siblings])
            repairs += result.repairs
            authors.append(result.author)
            if result.pipeline is not None:
                pipeline, pf = result.pipeline, result.preflight
                whys.append(result.rationale)
        if pf is None:
            return Candidate(None, _authors(authors), "+".join(groups), "no valid edit", None, repairs)
        return Candidate(pipeline, _authors(authors), "+".join(groups), " | ".join(whys), pf, repairs)

    def _engineer(self, state: State, ctx: Context, choice: Choice, pipeline: Dict[str, Dict],
                  seen: Dict[str, int], siblings: List[Dict[str, Any]] = ()) -> Candidate:
        group, error, author = choice.group, None, "engineer"
        attempts = self.loop.max_repairs + 1
        before = state.tried(group)
        tried = before + [s for s in siblings if s not in before]
        for attempt in range(attempts):
            edit = self.agent.engineer(choice, ctx, pipeline[group], tried, error)
            author = edit.author or "engineer"
            try:
                if edit.error:
                    raise EditRejected(edit.error_kind, edit.error)
                candidate, pf = self.validator.edit(edit.yaml, group, pipeline)
                if candidate[group] == pipeline[group]:
                    raise EditRejected("no_change", f"the '{group}' group is unchanged; propose a different "
                                                    f"configuration")
                if fingerprint(candidate) in seen:
                    raise EditRejected("duplicate", f"this exact pipeline was already proposed in round "
                                                    f"{seen[fingerprint(candidate)]}; propose something untried")
                return Candidate(candidate, author, group, edit.rationale, pf, attempt)
            except EditRejected as err:
                error = self._reject(ctx.round, author, group, attempt, err, f"{group} edit", edit.yaml)
        return Candidate(None, author, group, "no valid edit", None, attempts)


def _authors(names: List[str]) -> str:
    """'engineer', or e.g. 'engineer+expert (fallback)' when the offline expert answered some of the calls."""
    return "+".join(dict.fromkeys(names))
